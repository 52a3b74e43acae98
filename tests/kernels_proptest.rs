//! Property tests: on random shapes and values, every SIMD path this CPU supports equals the scalar
//! reference (integers exactly, floats by their bits, any NaN equal to any NaN). `tests/kernels.rs`
//! reports which paths this machine cannot run.

use ferroq::kernels::{scalar, DequantizedOut, Epilogue, Int8Operands, Kernels};
use ferroq::pack::PackedWeights;
use ferroq::{kernels_for, supported_isas, Isa};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn simd_paths() -> Vec<Kernels> {
    supported_isas()
        .into_iter()
        .filter(|&isa| isa != Isa::Scalar)
        .map(|isa| kernels_for(isa).expect("supported"))
        .collect()
}

fn same_float(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Activation bytes, often at the ends of the range or below 128.
fn activation() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), 0u8..128, Just(0), Just(255), Just(128)]
}

/// Weights, often at the ends of the range.
fn weight() -> impl Strategy<Value = i8> {
    prop_oneof![any::<i8>(), Just(-128), Just(127)]
}

/// `(m, k, n, lda - k_padded, ldo - n, activations m x k, weights n x k)`.
type GemmCase = (usize, usize, usize, usize, usize, Vec<u8>, Vec<i8>);

fn gemm_case() -> impl Strategy<Value = GemmCase> {
    (0usize..11, 0usize..90, 0usize..70, 0usize..9, 0usize..5).prop_flat_map(|(m, k, n, lda_extra, ldo_extra)| {
        (Just(m), Just(k), Just(n), Just(lda_extra), Just(ldo_extra), vec(activation(), m * k), vec(weight(), n * k))
    })
}

/// The epilogue of a product `m x n`: `(row_sums, x_zero_point, col_offsets, w_zero_points,
/// multipliers, bias)`.
type EpilogueCase = (Vec<i32>, i32, Vec<i32>, Vec<i32>, Vec<f32>, Option<Vec<f32>>);

fn epilogue_case(m: usize, n: usize) -> impl Strategy<Value = EpilogueCase> {
    (
        vec(prop_oneof![any::<i32>(), 0i32..300_000], m),
        prop_oneof![any::<i32>(), 0i32..256],
        vec(prop_oneof![any::<i32>(), -100_000i32..100_000], n),
        prop_oneof![vec(Just(0i32), n), vec(prop_oneof![any::<i32>(), -128i32..128], n)],
        vec(prop_oneof![any::<f32>(), 1e-7f32..1e-2], n),
        option::of(vec(prop_oneof![any::<f32>(), -10f32..10.0], n)),
    )
}

/// The padded activation rows of a [`GemmCase`]: stride `lda`, zeros in `k..k_padded`, junk after.
fn padded_rows(x: &[u8], m: usize, k: usize, b: &PackedWeights, lda: usize) -> Vec<u8> {
    let mut a = vec![0xa5u8; m * lda];
    for (row, values) in a.chunks_exact_mut(lda.max(1)).zip(x.chunks_exact(k.max(1))) {
        row[..k].copy_from_slice(&values[..k]);
        row[k..b.k_padded()].fill(0);
    }
    a
}

proptest! {
    #[test]
    fn gemm_u8i8_equals_scalar((m, k, n, lda_extra, ldo_extra, x, w) in gemm_case()) {
        let b = PackedWeights::pack(&w, n, k).unwrap();
        let (lda, ldo) = (b.k_padded() + lda_extra, n + ldo_extra);
        let a = padded_rows(&x, m, k, &b, lda);
        let len = if m == 0 { 0 } else { (m - 1) * ldo + n };
        let mut want = vec![-7i32; len];
        let operands = Int8Operands { a: &a, lda, rows: m, b: &b };
        scalar::gemm_u8i8(operands, &mut want, ldo);
        for kernels in simd_paths() {
            let mut got = vec![-7i32; len];
            (kernels.gemm_u8i8)(operands, &mut got, ldo);
            prop_assert_eq!(&got, &want, "{}", kernels.isa.name());
        }
    }

    #[test]
    fn gemm_u8i8_dequantize_equals_gemm_then_dequantize(
        ((m, k, n, lda_extra, ldo_extra, x, w), epilogue) in gemm_case().prop_flat_map(|case| {
            let (m, n) = (case.0, case.2);
            (Just(case), epilogue_case(m, n))
        })
    ) {
        let (row_sums, x_zero_point, col_offsets, w_zero_points, multipliers, bias) = epilogue;
        let params = Epilogue {
            x_zero_point,
            col_offsets: &col_offsets,
            w_zero_points: &w_zero_points,
            multipliers: &multipliers,
            bias: bias.as_deref(),
        };
        let b = PackedWeights::pack(&w, n, k).unwrap();
        let (lda, ldo) = (b.k_padded() + lda_extra, n + ldo_extra);
        let a = padded_rows(&x, m, k, &b, lda);
        // The specification: scalar GEMM, then scalar epilogue row by row (junk between rows kept).
        let len = if m == 0 { 0 } else { (m - 1) * ldo + n };
        let mut acc = vec![0i32; len];
        scalar::gemm_u8i8(Int8Operands { a: &a, lda, rows: m, b: &b }, &mut acc, ldo);
        let mut want = vec![0.25f32; len];
        for r in 0..m {
            let row = r * ldo..r * ldo + n;
            scalar::dequantize(&acc[row.clone()], &row_sums[r..r + 1], &params, &mut want[row]);
        }
        let scalar_table = ferroq::kernels::table(Isa::Scalar).expect("scalar");
        for kernels in std::iter::once(scalar_table).chain(simd_paths()) {
            let mut got = vec![0.25f32; len];
            let operands = Int8Operands { a: &a, lda, rows: m, b: &b };
            (kernels.gemm_u8i8_dequantize)(operands, DequantizedOut { row_sums: &row_sums, epilogue: &params, out: &mut got, ldo });
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let isa = kernels.isa.name();
                prop_assert!(same_float(g, w), "{}: m={} k={} n={} element {}: {:e} vs scalar {:e}", isa, m, k, n, i, g, w);
            }
        }
    }

    #[test]
    fn quantize_u8_equals_scalar(
        x in vec(prop_oneof![any::<f32>(), -300f32..300.0], 0..80),
        inv_scale in prop_oneof![any::<f32>(), 0.01f32..100.0],
        zero_point in prop_oneof![0i32..256, any::<i32>()],
    ) {
        let mut want = vec![0u8; x.len()];
        scalar::quantize_u8(&x, inv_scale, zero_point, &mut want);
        for kernels in simd_paths() {
            let mut got = vec![0u8; x.len()];
            (kernels.quantize_u8)(&x, inv_scale, zero_point, &mut got);
            prop_assert_eq!(&got, &want, "{}", kernels.isa.name());
        }
    }

    #[test]
    fn range_equals_scalar(x in vec(prop_oneof![8 => -1e6f32..1e6, 1 => any::<f32>()], 0..150)) {
        let want = scalar::range(&x);
        for kernels in simd_paths() {
            prop_assert_eq!((kernels.range)(&x), want, "{}", kernels.isa.name());
        }
    }
}
