//! A bit-level check the shared harness (`tests/kernels.rs`) leaves open: it lets NaNs differ in
//! payload. Here the aarch64 paths must widen every binary16 value to the scalar bits exactly.

use crate::kernels::{scalar, table, Isa, Kernels};

/// The aarch64 tables this CPU runs.
fn paths() -> Vec<Kernels> {
    let paths: Vec<Kernels> =
        Isa::ALL.into_iter().filter(|&isa| isa != Isa::Scalar).filter_map(table).collect();
    assert!(paths.iter().any(|k| k.isa == Isa::Neon), "the neon path must exist on every aarch64 CPU");
    paths
}

#[test]
fn float16_weights_widen_to_the_scalar_bits_nans_included() {
    let n = 1 << 16;
    let w: Vec<u16> = (0..=u16::MAX).collect();
    for x in [1.0f32, -1.0] {
        let mut want = vec![0.0f32; n];
        scalar::gemm_f32_f16(&[x], 1, 1, &w, n, None, &mut want);
        for kernels in paths() {
            let mut got = vec![0.0f32; n];
            (kernels.gemm_f32_f16)(&[x], 1, 1, &w, n, None, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{}: binary16 {i:#06x} times {x}", kernels.isa.name());
            }
        }
    }
}
