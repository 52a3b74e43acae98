//! Bit-level checks the shared harness (`tests/kernels.rs`) leaves open: it compares ranges with
//! `==` (so `-0.0 == 0.0`) and lets NaNs differ in payload. Here the aarch64 paths must give the
//! scalar bits exactly.

use crate::kernels::{scalar, table, Isa, Kernels, Range};

/// The aarch64 tables this CPU runs.
fn paths() -> Vec<Kernels> {
    let paths: Vec<Kernels> =
        Isa::ALL.into_iter().filter(|&isa| isa != Isa::Scalar).filter_map(table).collect();
    assert!(paths.iter().any(|k| k.isa == Isa::Neon), "the neon path must exist on every aarch64 CPU");
    paths
}

fn bits(range: Range) -> Option<(u32, u32)> {
    match range {
        Range::Finite { min, max } => Some((min.to_bits(), max.to_bits())),
        Range::NonFinite => None,
    }
}

#[test]
fn range_keeps_the_sign_of_zero_like_scalar() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for len in 1..=70 {
        for trial in 0..8 {
            let x: Vec<f32> = (0..len)
                .map(|_| match (next() % 4, trial % 2) {
                    (0, 1) => 1.5,
                    (1, 1) => -2.0,
                    (r, _) if r % 2 == 0 => 0.0,
                    _ => -0.0,
                })
                .collect();
            for kernels in paths() {
                assert_eq!(
                    bits((kernels.range)(&x)),
                    bits(scalar::range(&x)),
                    "{}: range of {x:?}",
                    kernels.isa.name()
                );
            }
        }
    }
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
