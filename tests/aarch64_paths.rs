//! Which kernel paths an aarch64 CPU runs. `.ci/aarch64-tests` sets `FERROQ_EXPECT_ISAS` (e.g.
//! `scalar,neon,neon-dotprod`) for each QEMU CPU model, so a run proves that the model exercised
//! exactly those paths; without the variable the test only prints them. Built for aarch64 only.
#![cfg(target_arch = "aarch64")]

use ferroq::{active_isa, kernels_for, supported_isas, Isa};

#[test]
fn supported_paths_are_the_expected_ones() {
    let names: Vec<&str> = supported_isas().iter().map(|isa| isa.name()).collect();
    let names = names.join(",");
    println!("paths: {names} (active: {})", active_isa().name());

    // NEON is part of the aarch64 baseline; the dot-product path follows the CPU's feature.
    assert!(kernels_for(Isa::Neon).is_some(), "the neon path must exist on every aarch64 CPU");
    assert_eq!(kernels_for(Isa::NeonDotprod).is_some(), std::arch::is_aarch64_feature_detected!("dotprod"));

    match std::env::var("FERROQ_EXPECT_ISAS") {
        Ok(expected) => assert_eq!(names, expected, "supported paths differ from FERROQ_EXPECT_ISAS"),
        Err(_) => println!("FERROQ_EXPECT_ISAS is not set: nothing to compare the paths with"),
    }
}
