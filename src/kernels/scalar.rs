//! The portable reference kernels: the specification the SIMD paths must equal bit for bit, and the
//! fallback on CPUs without a faster path.

use std::ops::Range as Indices;

use super::{
    f16_sum_start, scalar_step, DequantizedOut, Epilogue, Int8Blocks, Int8Operands, Isa, Kernels, Range, F16_COLUMN_BLOCK,
    F16_K_BLOCK,
};
use crate::pack::{K_GROUP, PANEL_WIDTH};
use crate::quant::{dequantize_accumulator, quantize_value};

/// The scalar table.
pub const KERNELS: Kernels = Kernels {
    isa: Isa::Scalar,
    range,
    quantize_u8,
    gemm_u8i8,
    gemm_u8i8_blocks,
    gemm_u8i8_dequantize,
    requantize: crate::requantize::requantize,
    gemm_f32_f16,
    lstm: scalar_step::lstm,
    gru: scalar_step::gru,
    elman: scalar_step::elman,
};

/// See [`Kernels::range`].
pub fn range(x: &[f32]) -> Range {
    let (mut min, mut max) = match x.first() {
        Some(&v) => (v, v),
        None => return Range::Finite { min: 0.0, max: 0.0 },
    };
    for &v in x {
        if !v.is_finite() {
            return Range::NonFinite;
        }
        min = min.min(v);
        max = max.max(v);
    }
    Range::finite(min, max)
}

/// See [`Kernels::quantize_u8`].
pub fn quantize_u8(x: &[f32], inv_scale: f32, zero_point: i32, out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_value(v, inv_scale, zero_point, 0, 255) as u8;
    }
}

/// See [`Kernels::gemm_u8i8_blocks`]: [`gemm_u8i8`] on each block.
pub fn gemm_u8i8_blocks(operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) {
    for (column, operands) in operands.each() {
        gemm_u8i8(operands, &mut out[column..], ldo);
    }
}

/// See [`Kernels::gemm_u8i8`].
pub fn gemm_u8i8(operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    let Int8Operands { a, lda, rows, b } = operands;
    for r in 0..rows {
        let a_row = &a[r * lda..r * lda + b.k_padded()];
        for p in 0..b.n_panels() {
            let mut acc = [0i32; PANEL_WIDTH];
            let (bytes, width) = b.panel_bytes(p);
            let acc = &mut acc[..width];
            for (group, a_group) in bytes.chunks_exact(width * K_GROUP).zip(a_row.chunks_exact(K_GROUP)) {
                for (lane, w) in acc.iter_mut().zip(group.chunks_exact(K_GROUP)) {
                    for (&x, &w) in a_group.iter().zip(w) {
                        *lane = lane.wrapping_add(x as i32 * w as i32);
                    }
                }
            }
            let n0 = p * PANEL_WIDTH;
            // A padded last panel (`pads_last_panel`) has columns past `n`: dropped.
            let columns = width.min(b.n() - n0);
            out[r * ldo + n0..r * ldo + n0 + columns].copy_from_slice(&acc[..columns]);
        }
    }
}

/// The dequantizing epilogue over `rows` rows of `n` accumulators (`n` the columns of `params`):
/// `acc[r*n + j]` -> `out[r*n + j]`, with `row_sums[r] = Σ_k a[r, k]`, for as many rows as the
/// shortest of `acc`, `out` and `row_sums` hold. The second half of
/// [`Kernels::gemm_u8i8_dequantize`].
pub fn dequantize(acc: &[i32], row_sums: &[i32], params: &Epilogue<'_>, out: &mut [f32]) {
    for (acc_row, row_sum, out_row) in params.rows(acc, row_sums, out) {
        for (j, (y, &acc)) in out_row.iter_mut().zip(acc_row).enumerate() {
            *y = dequantize_accumulator(params.correct(acc, row_sum, j), params.multipliers[j], params.bias_of(j));
        }
    }
}

/// See [`Kernels::gemm_u8i8_dequantize`]: literally [`gemm_u8i8`] then [`dequantize`].
///
/// # Panics
/// When a slice is too short for `rows` rows, or when `ldo < n` with more than one row.
pub fn gemm_u8i8_dequantize(operands: Int8Operands<'_>, store: DequantizedOut<'_>) {
    gemm_then_dequantize(gemm_u8i8, dequantize, operands, store);
}

/// Columns [`gemm_then_dequantize`] dequantizes at a time (their accumulators wait in an array on
/// the stack).
const DEQUANTIZE_CHUNK: usize = 256;

/// [`Kernels::gemm_u8i8_dequantize`] composed from a path's `gemm_u8i8` and `dequantize`: equal to
/// the two kernels in sequence by construction (the paths without a fused epilogue use it; so does
/// the scalar table, with the scalar kernels). The accumulators are stored in the output rows
/// themselves (an int32 takes the room of a float32) and dequantized in place, a chunk of columns
/// at a time: nothing is allocated, on whichever thread it runs.
///
/// # Panics
/// When a slice is too short for `rows` rows, or when `ldo < n` with more than one row.
pub(crate) fn gemm_then_dequantize(
    gemm_u8i8: fn(Int8Operands<'_>, &mut [i32], usize),
    dequantize: fn(&[i32], &[i32], &Epilogue<'_>, &mut [f32]),
    operands: Int8Operands<'_>,
    store: DequantizedOut<'_>,
) {
    let DequantizedOut { row_sums, epilogue: params, out, ldo } = store;
    let (rows, n) = (operands.rows, operands.b.n());
    if rows == 0 || n == 0 {
        return;
    }
    assert!(rows == 1 || ldo >= n, "gemm_u8i8_dequantize: ldo ({ldo}) must be at least n ({n})");
    assert!(out.len() >= (rows - 1) * ldo + n, "gemm_u8i8_dequantize: out has {} elements, too few", out.len());
    assert!(row_sums.len() >= rows, "gemm_u8i8_dequantize: {} row sums for {rows} rows", row_sums.len());
    // SAFETY: i32 and f32 have the same size and alignment, and every bit pattern is a valid value
    // of both; `acc` views the same elements as `out`, which is borrowed uniquely here and not
    // used again until `acc` is dead.
    let acc = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<i32>(), out.len()) };
    gemm_u8i8(operands, acc, ldo);
    let mut chunk = [0i32; DEQUANTIZE_CHUNK];
    for row in 0..rows {
        for start in (0..n).step_by(DEQUANTIZE_CHUNK) {
            let columns = start..(start + DEQUANTIZE_CHUNK).min(n);
            let out = &mut out[row * ldo + columns.start..row * ldo + columns.end];
            // The accumulators' bits, back from the floats that hold them.
            let acc = &mut chunk[..columns.len()];
            for (a, y) in acc.iter_mut().zip(out.iter()) {
                *a = y.to_bits() as i32;
            }
            let params = Epilogue {
                col_offsets: &params.col_offsets[columns.clone()],
                w_zero_points: &params.w_zero_points[columns.clone()],
                multipliers: &params.multipliers[columns.clone()],
                bias: params.bias.map(|b| &b[columns.clone()]),
                ..*params
            };
            dequantize(acc, &row_sums[row..row + 1], &params, out);
        }
    }
}

/// See [`Kernels::gemm_f32_f16`].
pub fn gemm_f32_f16(x: &[f32], rows: usize, k: usize, w: &[u16], n: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let full = n - n % F16_COLUMN_BLOCK;
    let mut block_sum = [0f32; F16_COLUMN_BLOCK];
    for r in 0..rows {
        let x_row = &x[r * k..(r + 1) * k];
        let out_row = &mut out[r * n..(r + 1) * n];
        out_row.fill(f16_sum_start(k));
        let (head, tail) = out_row.split_at_mut(full);
        // Whole blocks of columns: one chain over every input.
        accumulate_f16(x_row, 0..k, w, n, 0, head);
        // The last columns: block 0 goes straight into the sums, later blocks are summed from
        // +0.0 on their own and then added.
        for k0 in (0..k).step_by(F16_K_BLOCK) {
            let inputs = k0..k.min(k0 + F16_K_BLOCK);
            if k0 == 0 {
                accumulate_f16(x_row, inputs, w, n, full, tail);
            } else {
                let block_sum = &mut block_sum[..tail.len()];
                block_sum.fill(0.0);
                accumulate_f16(x_row, inputs, w, n, full, block_sum);
                for (o, &s) in tail.iter_mut().zip(block_sum.iter()) {
                    *o += s;
                }
            }
        }
        if let Some(bias) = bias {
            for (o, &b) in out_row.iter_mut().zip(bias) {
                *o += b;
            }
        }
    }
}

/// `acc[c] = fma(x_row[kk], w[kk, j0 + c], acc[c])` for `kk` in `inputs`, in order.
fn accumulate_f16(x_row: &[f32], inputs: Indices<usize>, w: &[u16], n: usize, j0: usize, acc: &mut [f32]) {
    for kk in inputs {
        let xv = x_row[kk];
        for (a, &wb) in acc.iter_mut().zip(&w[kk * n + j0..]) {
            *a = xv.mul_add(half::f16::from_bits(wb).to_f32(), *a);
        }
    }
}
