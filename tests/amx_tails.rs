//! The AMX path's tile edges against the scalar reference, bit for bit: every row count of a strip
//! (1..=17, 31, 33: partial A tiles, one or two of them), K tails of every length (fewer than 16
//! k-groups after the whole tile steps, `k` not a multiple of 4) and every column count up to 33
//! (partial and odd panel counts; for long `K` the panel edges). Skipped, loudly, on CPUs without AMX-INT8.

mod common;

use common::Rng;
use ferroq::kernels::{DequantizedOut, Epilogue, Int8Operands, Kernels};
use ferroq::pack::PackedWeights;
use ferroq::{kernels_for, Isa};

const ROWS: [usize; 19] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 33];
const KS: [usize; 15] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 63, 64, 65, 127, 129, 1000];

/// Every column count up to 33 for short `K`; for long `K` (slow for the scalar reference in a
/// debug build) the panel edges only.
fn columns(k: usize) -> Vec<usize> {
    if k < 127 {
        (1..=33).collect()
    } else {
        vec![1, 2, 15, 16, 17, 31, 32, 33]
    }
}

/// The AMX table, or `None` (after saying so) when this machine cannot run it.
fn amx() -> Option<Kernels> {
    let table = kernels_for(Isa::Amx);
    if table.is_none() {
        eprintln!("!!!!! NOT TESTED: the amx path is not supported on this machine !!!!!");
    }
    table
}

/// `m x k` activations with row stride `k_padded + 3` (zeros in the padding, 0xAB after it), and
/// `n x k` weights, with byte 0 of the stream at the extremes now and then.
fn operands(bytes: &mut Rng, m: usize, k: usize, n: usize) -> (Vec<u8>, usize, PackedWeights) {
    let w: Vec<i8> = (0..n * k).map(|i| if i % 7 == 0 { -128 } else { bytes.byte() as i8 }).collect();
    let b = PackedWeights::pack(&w, n, k).unwrap();
    let lda = b.k_padded() + 3;
    let mut a = vec![0xABu8; m * lda];
    for row in a.chunks_exact_mut(lda) {
        row[k..b.k_padded()].fill(0);
        row[..k].iter_mut().enumerate().for_each(|(i, x)| *x = if i % 5 == 0 { 255 } else { bytes.byte() });
    }
    (a, lda, b)
}

#[test]
fn amx_tile_edges_equal_scalar() {
    let Some(amx) = amx() else { return };
    let scalar = kernels_for(Isa::Scalar).unwrap();
    let mut bytes = Rng(17);
    for m in ROWS {
        for k in KS {
            for n in columns(k) {
                let (a, lda, b) = operands(&mut bytes, m, k, n);
                let ldo = n + 2;
                let mut want = vec![-7i32; m * ldo];
                let mut got = want.clone();
                let product = Int8Operands { a: &a, lda, rows: m, b: &b };
                (scalar.gemm_u8i8)(product, &mut want, ldo);
                (amx.gemm_u8i8)(product, &mut got, ldo);
                assert_eq!(got, want, "gemm_u8i8 m={m} k={k} n={n}");
            }
        }
    }
}

#[test]
fn amx_dequantizing_tile_edges_equal_scalar() {
    let Some(amx) = amx() else { return };
    let scalar = kernels_for(Isa::Scalar).unwrap();
    let mut bytes = Rng(29);
    for m in ROWS {
        for k in KS {
            for n in columns(k) {
                let (a, lda, b) = operands(&mut bytes, m, k, n);
                let row_sums: Vec<i32> = a.chunks_exact(lda).map(|row| row[..k].iter().map(|&x| x as i32).sum()).collect();
                let col_offsets: Vec<i32> = (0..n).map(|j| b.col_sums()[j] - (j as i32 - 3) * k as i32).collect();
                let w_zero_points: Vec<i32> = (0..n as i32).map(|j| j - 3).collect();
                let multipliers: Vec<f32> = (0..n).map(|j| 1e-4 * (j + 1) as f32).collect();
                let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.37 - 2.0).collect();
                for bias in [None, Some(bias.as_slice())] {
                    let params = Epilogue {
                        x_zero_point: 11,
                        col_offsets: &col_offsets,
                        w_zero_points: &w_zero_points,
                        multipliers: &multipliers,
                        bias,
                    };
                    let ldo = n + 1;
                    let mut want = vec![f32::NAN; m * ldo];
                    let mut got = want.clone();
                    let product = Int8Operands { a: &a, lda, rows: m, b: &b };
                    let (row_sums, epilogue) = (row_sums.as_slice(), &params);
                    (scalar.gemm_u8i8_dequantize)(product, DequantizedOut { row_sums, epilogue, out: &mut want, ldo });
                    (amx.gemm_u8i8_dequantize)(product, DequantizedOut { row_sums, epilogue, out: &mut got, ldo });
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                    assert_eq!(bits(&got), bits(&want), "gemm_u8i8_dequantize m={m} k={k} n={n} bias={}", bias.is_some());
                }
            }
        }
    }
}
