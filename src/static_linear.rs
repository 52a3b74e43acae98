//! The static quantized Linear (docs/numerics.md §3): quint8 activations in, quint8 activations out, int8
//! weights with per-tensor or per-channel qparams, float bias, FBGEMM's requantization.
//!
//! The integer products are exact on every instruction-set path (the AVX512-VNNI semantics): the
//! int16 pair saturation of PyTorch's non-VNNI x86 kernels is not reproduced.

use std::cell::RefCell;

use crate::alloc;
use crate::error::{Error, Result};
use crate::kernels::{Epilogue, Int8Operands, Kernels};
use crate::linear::{byte_sum, in_features_i32};
use crate::pack::PackedWeights;
use crate::quant::{check_weight_qparams, QParams};
use crate::requantize::{bias_in_accumulator_units, Requantize};
use crate::threads::{for_shares, num_threads, PARALLEL_THRESHOLD_MACS};

/// Rows per block of the int32 accumulator buffer.
const ROW_BLOCK: usize = 64;

/// A static int8 Linear: packed int8 weights, their qparams, and a float bias.
#[derive(Clone, Debug)]
pub struct StaticLinear {
    weights: PackedWeights,
    /// Weight scales as float32, one per output feature (repeated when per tensor).
    scales: Vec<f32>,
    /// Weight zero points, one per output feature (repeated when per tensor).
    zero_points: Vec<i32>,
    per_channel: bool,
    col_offsets: Vec<i32>,
    bias: Option<Vec<f32>>,
}

impl StaticLinear {
    /// `weight` is row-major `n x k` int8. With `per_channel`, `scales` and `zero_points` have one
    /// entry per output feature; otherwise exactly one. Scales are used as float32, as FBGEMM does;
    /// zero points must lie in the int8 range.
    pub fn new(
        weight: &[i8],
        n: usize,
        k: usize,
        scales: &[f32],
        zero_points: &[i32],
        per_channel: bool,
        bias: Option<Vec<f32>>,
    ) -> Result<Self> {
        in_features_i32(k)?;
        Self::with_weights(PackedWeights::pack(weight, n, k)?, scales, zero_points, per_channel, bias)
    }

    /// Weights already packed; the rest as for [`new`](Self::new).
    pub fn with_weights(
        weights: PackedWeights,
        scales: &[f32],
        zero_points: &[i32],
        per_channel: bool,
        bias: Option<Vec<f32>>,
    ) -> Result<Self> {
        let (n, k) = (weights.n(), weights.k());
        let k_i32 = in_features_i32(k)?;
        let expected = if per_channel { n } else { 1 };
        let scheme = if per_channel { "per-channel (one per output feature)" } else { "per-tensor" };
        for (what, len) in [("scales", scales.len()), ("zero points", zero_points.len())] {
            if len != expected {
                return Err(Error::Shape(format!("{scheme} weight {what} must have {expected} entries, got {len}")));
            }
        }
        check_weight_qparams(scales, zero_points, bias.as_deref())?;
        if let Some(b) = &bias {
            if b.len() != n {
                return Err(Error::Shape(format!("bias has {} elements, expected out_features = {n}", b.len())));
            }
        }
        let scales = if per_channel { alloc::copy_of(scales)? } else { alloc::vec_of(n, scales[0])? };
        let zero_points = if per_channel { alloc::copy_of(zero_points)? } else { alloc::vec_of(n, zero_points[0])? };
        let col_offsets =
            alloc::collect(n, weights.col_sums().iter().zip(&zero_points).map(|(&sum, &zp)| sum.wrapping_sub(zp.wrapping_mul(k_i32))))?;
        Ok(StaticLinear { weights, scales, zero_points, per_channel, col_offsets, bias })
    }

    pub fn in_features(&self) -> usize {
        self.weights.k()
    }

    pub fn out_features(&self) -> usize {
        self.weights.n()
    }

    /// Writes the row-major int8 weight (`out_features x in_features`) into `out`.
    ///
    /// # Panics
    /// When `out` has another length.
    pub fn weight_into(&self, out: &mut [i8]) {
        self.weights.unpack_into(out);
    }

    /// `out = quint8(x @ W^T + bias)`, `rows x out_features`: `x` is row-major `rows x in_features`
    /// uint8 with the qparams `input`, `out` gets the qparams `output` (docs/numerics.md §3.1). With `relu`
    /// the outputs are at least `output.zero_point` (the fused LinearReLU).
    ///
    /// Works in this thread's [`StaticScratch`]: once a call of as many rows and columns has grown
    /// it (a model's warm-up does), a call allocates nothing, however its rows are split between
    /// threads.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        kernels: &Kernels,
        x: &[u8],
        rows: usize,
        input: QParams,
        output: QParams,
        relu: bool,
        out: &mut [u8],
    ) -> Result<()> {
        check_len(x.len(), rows, self.in_features(), "input")?;
        check_len(out.len(), rows, self.out_features(), "output")?;
        with_scratch(|scratch| self.prepare(x, rows, input, output, relu, scratch)?.run(kernels, out))
    }

    /// The first half of [`forward`](Self::forward), which reads `x`: checks the arguments, copies
    /// `x` into `scratch` as the GEMM reads it (rows padded to `k_padded` with zeros, and their
    /// sums) and forms the per-column terms there. The second half,
    /// [`PreparedCall::run`], reads only `scratch` (a caller may let go of `x` meanwhile).
    pub fn prepare<'a>(
        &'a self,
        x: &[u8],
        rows: usize,
        input: QParams,
        output: QParams,
        relu: bool,
        scratch: &'a mut StaticScratch,
    ) -> Result<PreparedCall<'a>> {
        let (n, k, stride) = (self.out_features(), self.in_features(), self.weights.k_padded());
        check_len(x.len(), rows, k, "input")?;
        let s_x = check_qparams(input, "input")?;
        let s_y = check_qparams(output, "output")?;
        let StaticScratch { input: padded, row_sums, multipliers, bias, .. } = &mut *scratch;
        // Room first (nothing else can fail afterwards).
        alloc::resize(padded, alloc::elements(rows, stride, "the padded input")?, 0)?;
        for v in [&mut *multipliers, &mut *bias] {
            v.clear();
            alloc::reserve(v, n)?;
        }
        row_sums.clear();
        alloc::reserve(row_sums, rows)?;
        if k > 0 {
            // The GEMM reads rows padded to k_padded; the padding bytes are 0 and add nothing.
            for (src, dst) in x.chunks_exact(k).zip(padded.chunks_exact_mut(stride)) {
                let (values, padding) = dst.split_at_mut(k);
                values.copy_from_slice(src);
                padding.fill(0);
                row_sums.push(byte_sum(src));
            }
        } else {
            row_sums.resize(rows, 0);
        }
        // act_times_w first, for the bias; then divided by s_y into the multipliers.
        multipliers.extend(self.scales.iter().map(|&s_w| s_x * s_w));
        if let Some(b) = &self.bias {
            bias.resize(n, 0.0);
            bias_in_accumulator_units(b, multipliers, self.per_channel, bias);
        }
        multipliers.iter_mut().for_each(|m| *m /= s_y);
        Ok(PreparedCall {
            layer: self,
            rows,
            x_zero_point: input.zero_point,
            y_zero_point: output.zero_point,
            y_min: if relu { output.zero_point } else { 0 },
            scratch,
        })
    }
}

thread_local! {
    /// Each thread's buffers for [`StaticLinear::forward`].
    static SCRATCH: RefCell<StaticScratch> = RefCell::new(StaticScratch::default());
}

/// Runs `f` with this thread's [`StaticScratch`], which [`StaticLinear::forward`] reuses from call
/// to call. `f` must not call `with_scratch` (nor `forward`) itself.
pub fn with_scratch<R>(f: impl FnOnce(&mut StaticScratch) -> R) -> R {
    SCRATCH.with_borrow_mut(f)
}

/// Buffers the static Linear reuses from call to call, all owned by the calling thread (the pool
/// threads work in parts of them, so none of their own grows): a call allocates only to grow them.
#[derive(Clone, Debug, Default)]
pub struct StaticScratch {
    /// The input rows padded to the weights' `k_padded` with zeros.
    input: Vec<u8>,
    /// `Σ_k` of each input row.
    row_sums: Vec<i32>,
    /// `f32(f32(s_x * s_w[n]) / f32(s_y))` per output column.
    multipliers: Vec<f32>,
    /// The bias in accumulator units per output column (empty without a bias).
    bias: Vec<f32>,
    /// The int32 accumulators of one block of rows per share of the rows.
    accumulators: Vec<i32>,
}

/// A call of [`StaticLinear::forward`] whose input and per-column terms are in a
/// [`StaticScratch`] (see [`StaticLinear::prepare`]), ready to [`run`](Self::run).
pub struct PreparedCall<'a> {
    layer: &'a StaticLinear,
    rows: usize,
    x_zero_point: i32,
    y_zero_point: i32,
    y_min: i32,
    scratch: &'a mut StaticScratch,
}

impl PreparedCall<'_> {
    /// The second half of [`StaticLinear::forward`]: the products and their requantization into
    /// `out` (`rows x out_features`), blocks of rows split between threads when large. It
    /// allocates only to grow the scratch's accumulators.
    pub fn run(self, kernels: &Kernels, out: &mut [u8]) -> Result<()> {
        let PreparedCall { layer, rows, x_zero_point, y_zero_point, y_min, scratch } = self;
        let (n, k) = (layer.out_features(), layer.in_features());
        check_len(out.len(), rows, n, "output")?;
        if n == 0 || rows == 0 {
            return Ok(());
        }
        let macs = rows.saturating_mul(n).saturating_mul(k);
        let rows_per_share = rows_per_share(rows, macs);
        let share_rows = |first_row: usize| rows_per_share.min(rows - first_row);
        let accumulators: usize = (0..rows).step_by(rows_per_share).map(|first| ROW_BLOCK.min(share_rows(first)) * n).sum();
        alloc::resize(&mut scratch.accumulators, accumulators, 0)?;
        let StaticScratch { input, row_sums, multipliers, bias, accumulators } = scratch;
        let (input, row_sums) = (&input[..], &row_sums[..]);
        let params = Requantize {
            terms: Epilogue {
                x_zero_point,
                col_offsets: &layer.col_offsets,
                w_zero_points: &layer.zero_points,
                multipliers: &multipliers[..],
                bias: layer.bias.is_some().then_some(&bias[..]),
            },
            y_zero_point,
            y_min,
        };
        let mut shares: [Option<Share<'_>>; MAX_SHARES] = std::array::from_fn(|_| None);
        let (mut out, mut accumulators) = (out, &mut accumulators[..]);
        for (share, first_row) in shares.iter_mut().zip((0..rows).step_by(rows_per_share)) {
            let count = share_rows(first_row);
            let (out_share, rest) = std::mem::take(&mut out).split_at_mut(count * n);
            let (acc, acc_rest) = std::mem::take(&mut accumulators).split_at_mut(ROW_BLOCK.min(count) * n);
            (out, accumulators) = (rest, acc_rest);
            *share = Some(Share { first_row, out: out_share, acc });
        }
        let used = rows.div_ceil(rows_per_share);
        let stride = layer.weights.k_padded();
        for_shares(&mut shares[..used], 1, 1, macs, |_, shares| {
            for Share { first_row, out, acc } in shares.iter_mut().flatten() {
                for (i, out_block) in out.chunks_mut(ROW_BLOCK * n).enumerate() {
                    let (first, block_rows) = (*first_row + i * ROW_BLOCK, out_block.len() / n);
                    let a = &input[first * stride..(first + block_rows) * stride];
                    let acc = &mut acc[..block_rows * n];
                    (kernels.gemm_u8i8)(Int8Operands { a, lda: stride, rows: block_rows, b: &layer.weights }, acc, n);
                    (kernels.requantize)(acc, &row_sums[first..first + block_rows], &params, out_block);
                }
            }
        });
        Ok(())
    }
}

/// The rows of one share of a call, with the output rows and the accumulator block it owns.
struct Share<'a> {
    first_row: usize,
    out: &'a mut [u8],
    acc: &'a mut [i32],
}

/// The most shares a call's rows are split into, so that they fit in an array on the stack and a
/// split call allocates nothing (a machine with more threads uses this many for one call).
const MAX_SHARES: usize = 64;

/// Each share's rows are a multiple of this (the tallest GEMM micro-kernel tile).
const SHARE_ROWS_UNIT: usize = 8;

/// The rows per share of a call of `rows` rows costing `macs` multiply-accumulates: all of them
/// unless the call is worth splitting between the intra-op threads (at least two rows and
/// [`PARALLEL_THRESHOLD_MACS`]), else one share per thread (at most [`MAX_SHARES`]) of whole
/// GEMM row tiles.
fn rows_per_share(rows: usize, macs: usize) -> usize {
    if rows < 2 || macs < PARALLEL_THRESHOLD_MACS {
        return rows;
    }
    rows.div_ceil(num_threads().clamp(1, MAX_SHARES)).next_multiple_of(SHARE_ROWS_UNIT)
}

fn check_len(len: usize, rows: usize, k: usize, what: &str) -> Result<()> {
    if Some(len) != rows.checked_mul(k) {
        return Err(Error::Shape(format!("{what} has {len} elements, expected {rows} x {k}")));
    }
    Ok(())
}

/// The float32 scale of quint8 qparams, checked: positive, finite and normal as float32 (a finite
/// reciprocal), zero point in 0..=255.
fn check_qparams(q: QParams, what: &str) -> Result<f32> {
    let scale = q.scale_f32();
    if !(scale.is_normal() && scale > 0.0) {
        return Err(Error::Value(format!("{what} scale must be positive, finite and normal in float32, got {}", q.scale)));
    }
    if !(0..=255).contains(&q.zero_point) {
        return Err(Error::Value(format!("{what} zero point must lie in [0, 255] (quint8), got {}", q.zero_point)));
    }
    Ok(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{kernels_for, supported_isas};

    fn qp(scale: f64, zero_point: i32) -> QParams {
        QParams { scale, zero_point }
    }

    /// Runs `layer` on every supported path, checks they agree, and returns the output.
    fn run(layer: &StaticLinear, x: &[u8], rows: usize, input: QParams, output: QParams, relu: bool) -> Vec<u8> {
        let mut results = supported_isas().into_iter().map(|isa| {
            let kernels = kernels_for(isa).unwrap();
            let mut out = vec![0u8; rows * layer.out_features()];
            layer.forward(&kernels, x, rows, input, output, relu, &mut out).unwrap();
            (isa, out)
        });
        let (_, first) = results.next().unwrap();
        for (isa, out) in results {
            assert_eq!(out, first, "{isa:?} differs from scalar");
        }
        first
    }

    #[test]
    fn hand_computed_per_tensor_case() {
        // W = [[1, 2, 3], [-1, 0, 4]], s_w = 0.5, x = [[10, 20, 30]] with x_zp 10, s_x = 0.25.
        // corr = [0*1 + 10*2 + 20*3, 0*-1 + 10*0 + 20*4] = [80, 80];
        // bias [1, -1] / (0.25*0.5) = [8, -8] -> xf = [88, 72];
        // s_y = 0.5 -> mult = 0.125/0.5 = 0.25 -> [22, 18] + y_zp 3 = [25, 21].
        let layer = StaticLinear::new(&[1, 2, 3, -1, 0, 4], 2, 3, &[0.5], &[0], false, Some(vec![1.0, -1.0])).unwrap();
        assert_eq!(run(&layer, &[10, 20, 30], 1, qp(0.25, 10), qp(0.5, 3), false), vec![25, 21]);
    }

    #[test]
    fn hand_computed_per_channel_case_with_weight_zero_points() {
        // W = [[3, 0], [1, -2]], x = [2, 4] with x_zp 0, s_x 0.5, s_y 1, y_zp 7.
        // Column 0 (s_w 1, zp 1): 2*(3-1) + 4*(0-1) = 0; bias 6 / (0.5*1) = 12; 12 * 0.5 = 6 -> 13.
        // Column 1 (s_w 2, zp -1): 2*(1+1) + 4*(-2+1) = 0; bias 0; 0 -> 7.
        let layer = StaticLinear::new(&[3, 0, 1, -2], 2, 2, &[1.0, 2.0], &[1, -1], true, Some(vec![6.0, 0.0])).unwrap();
        assert_eq!(run(&layer, &[2, 4], 1, qp(0.5, 0), qp(1.0, 7), false), vec![13, 7]);
    }

    #[test]
    fn full_range_inputs_are_not_saturated_in_int16_pairs() {
        // x = 255 everywhere with weights 127 / -128: every adjacent pair sums to 255*127*2 = 64770
        // (or 255*-128*2 = -65280), beyond int16. vpmaddubsw would saturate each pair to 32767
        // (-32768), giving 2*32767 = 65534 for K = 4; the exact sum is 129540.
        let k = 4;
        let weight: Vec<i8> = [[127i8; 4], [-128i8; 4]].concat();
        let layer = StaticLinear::new(&weight, 2, k, &[1.0], &[0], false, None).unwrap();
        // s_x = s_w = 1, s_y = 1000: mult = 0.001, so y = rne(129.54) = 130 and rne(-130.56) = -131.
        // Saturated pairs would give rne(65.534) = 66 and rne(-65.536) = -66 instead.
        assert_eq!(run(&layer, &[255; 4], 1, qp(1.0, 0), qp(1000.0, 0), false), vec![130, 0]);
        assert_eq!(run(&layer, &[255; 4], 1, qp(1.0, 0), qp(1000.0, 200), false), vec![255, 69]);
        assert_eq!(run(&layer, &[255; 4], 1, qp(1.0, 0), qp(1000.0, 255), false), vec![255, 124]);
    }

    #[test]
    fn padding_contributes_nothing() {
        // K = 5 is padded to 8: the padding bytes are 0, and the row sum covers only the real K,
        // so a large input zero point compensates exactly.
        let weight: Vec<i8> = (0..15).map(|i| (i * 7 % 23 - 11) as i8).collect();
        let layer = StaticLinear::new(&weight, 3, 5, &[1.0], &[0], false, None).unwrap();
        let x = [200u8, 201, 202, 203, 204];
        let out = run(&layer, &x, 1, qp(1.0, 200), qp(1.0, 128), false);
        let expected: Vec<u8> = (0..3)
            .map(|n| {
                let dot: i32 = (0..5).map(|k| (x[k] as i32 - 200) * weight[n * 5 + k] as i32).sum();
                (dot + 128).clamp(0, 255) as u8
            })
            .collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn relu_floors_at_the_output_zero_point() {
        let layer = StaticLinear::new(&[1, -1], 2, 1, &[1.0], &[0], false, None).unwrap();
        assert_eq!(run(&layer, &[10], 1, qp(1.0, 0), qp(1.0, 50), false), vec![60, 40]);
        assert_eq!(run(&layer, &[10], 1, qp(1.0, 0), qp(1.0, 50), true), vec![60, 50]);
    }

    #[test]
    fn many_rows_match_a_direct_reference_across_blocks_and_threads() {
        let (rows, k, n) = (600, 256, 128); // above PARALLEL_THRESHOLD_MACS: the threaded path
        let x: Vec<u8> = (0..rows * k).map(|i| (i * 37 % 256) as u8).collect();
        let weight: Vec<i8> = (0..n * k).map(|i| ((i * 53 % 256) as i32 - 128) as i8).collect();
        let scales: Vec<f32> = (0..n).map(|j| 0.001 + j as f32 * 1e-4).collect();
        let zps: Vec<i32> = (0..n).map(|j| j as i32 % 5 - 2).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.37 - 5.0).collect();
        let layer = StaticLinear::new(&weight, n, k, &scales, &zps, true, Some(bias.clone())).unwrap();
        let (input, output) = (qp(0.02, 17), qp(0.05, 120));
        let out = run(&layer, &x, rows, input, output, false);
        for r in 0..rows {
            for j in 0..n {
                let corr: i32 =
                    (0..k).map(|kk| (x[r * k + kk] as i32 - 17) * (weight[j * k + kk] as i32 - zps[j])).sum();
                let atw = 0.02f32 * scales[j];
                let expected = crate::requantize::requantize_value(corr, atw / 0.05f32, Some(bias[j] / atw), 120, 0);
                assert_eq!(out[r * n + j], expected, "row {r} col {j}");
            }
        }
    }

    #[test]
    fn degenerate_shapes_work() {
        let layer = StaticLinear::new(&[], 3, 0, &[1.0], &[0], false, Some(vec![1.0, 2.0, -1.0])).unwrap();
        assert_eq!(run(&layer, &[], 2, qp(1.0, 0), qp(1.0, 10), false), vec![11, 12, 9, 11, 12, 9]);
        let layer = StaticLinear::new(&[], 0, 4, &[1.0], &[0], false, None).unwrap();
        assert_eq!(run(&layer, &[1, 2, 3, 4], 1, qp(1.0, 0), qp(1.0, 0), false), Vec::<u8>::new());
        let layer = StaticLinear::new(&[1, 2], 1, 2, &[1.0], &[0], false, None).unwrap();
        assert_eq!(run(&layer, &[], 0, qp(1.0, 0), qp(1.0, 0), false), Vec::<u8>::new());
    }

    #[test]
    fn bad_arguments_are_typed_errors() {
        let bad = |r: Result<StaticLinear>| r.unwrap_err();
        assert!(matches!(bad(StaticLinear::new(&[1, 2], 2, 1, &[1.0], &[0], true, None)), Error::Shape(_)));
        assert!(matches!(bad(StaticLinear::new(&[1, 2], 2, 1, &[1.0, 1.0], &[0, 0], false, None)), Error::Shape(_)));
        assert!(matches!(bad(StaticLinear::new(&[1, 2], 2, 1, &[0.0], &[0], false, None)), Error::Value(_)));
        assert!(matches!(bad(StaticLinear::new(&[1, 2], 2, 1, &[1.0], &[200], false, None)), Error::Value(_)));
        assert!(matches!(bad(StaticLinear::new(&[1, 2], 2, 1, &[1.0], &[0], false, Some(vec![1.0]))), Error::Shape(_)));
        let layer = StaticLinear::new(&[1, 2], 2, 1, &[1.0], &[0], false, None).unwrap();
        let kernels = kernels_for(supported_isas()[0]).unwrap();
        let mut out = [0u8; 2];
        let call = |x: &[u8], input: QParams, output: QParams, out: &mut [u8]| {
            layer.forward(&kernels, x, 1, input, output, false, out).unwrap_err()
        };
        assert!(matches!(call(&[1, 2], qp(1.0, 0), qp(1.0, 0), &mut out), Error::Shape(_)));
        assert!(matches!(call(&[1], qp(1e-60, 0), qp(1.0, 0), &mut out), Error::Value(_)));
        assert!(matches!(call(&[1], qp(1.0, 0), qp(f64::NAN, 0), &mut out), Error::Value(_)));
        assert!(matches!(call(&[1], qp(1.0, 256), qp(1.0, 0), &mut out), Error::Value(_)));
        assert!(matches!(call(&[1], qp(1.0, 0), qp(1.0, -1), &mut out), Error::Value(_)));
        assert!(matches!(call(&[1], qp(1.0, 0), qp(1.0, 0), &mut [0u8; 3]), Error::Shape(_)));
    }
}
