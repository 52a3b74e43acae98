//! Linear layers over the kernel table: the dynamic int8 Linear (docs/numerics.md §2.1) and the float16
//! weight Linear (docs/numerics.md §2.3).

use std::cell::RefCell;

use crate::alloc;
use crate::error::{Error, Result};
use crate::kernels::{Accumulators, DequantizedOut, Epilogue, Int8Blocks, Int8Operands, Kernels, Range};
use crate::column_blocks::{ColumnBlocks, COLUMN_BLOCK};
use crate::quant::{check_bias, check_weight_qparams, choose_qparams, QParams};
use crate::threads::{for_claimed_shares, for_row_shares, reduce_row_shares};

thread_local! {
    /// Each thread's quantized-input buffer for [`with_input_buffer`].
    static INPUT: RefCell<QuantizedActivations> = RefCell::new(QuantizedActivations::empty());
    /// Each thread's epilogue buffers for [`DynamicLinear::forward_quantized`].
    static SCRATCH: RefCell<LinearScratch> = RefCell::new(LinearScratch::default());
}

/// Runs `f` with this thread's reusable quantized-activation buffer, so that calling a layer
/// again and again allocates nothing. `f` must not call `with_input_buffer` itself.
pub fn with_input_buffer<R>(f: impl FnOnce(&mut QuantizedActivations) -> R) -> R {
    INPUT.with_borrow_mut(f)
}

/// Activations quantized to uint8 with one set of qparams for the whole tensor, in rows padded to
/// the weights' `k_padded` with zeros.
#[derive(Clone, Debug)]
pub struct QuantizedActivations {
    pub data: Vec<u8>,
    pub rows: usize,
    pub k: usize,
    pub stride: usize,
    /// `Σ_k` of each row's bytes; empty when a layer with symmetric weights (all weight zero points
    /// 0) quantized the input for itself, as it does not use them.
    pub row_sums: Vec<i32>,
    pub qparams: QParams,
}

/// Quantizes `rows` rows of `k` values (`x`, row-major) dynamically into `out`, reusing its
/// buffers: range over the whole tensor, qparams by PyTorch's rule for quint8 (`reduce_range`
/// halves the levels), then docs/numerics.md §1.1 per element. `stride` is the padded row length
/// (`>= k`); the row sums are computed only when `row_sums` is true (else left empty). NaN or
/// infinite input is an error, and on error `out` is left unchanged.
#[allow(clippy::too_many_arguments)] // the quantizer's arguments and the choice
fn quantize_rows(
    kernels: &Kernels,
    x: &[f32],
    rows: usize,
    k: usize,
    stride: usize,
    reduce_range: bool,
    row_sums: bool,
    out: &mut QuantizedActivations,
) -> Result<()> {
    check_len(x.len(), rows, k, "input")?;
    let cost = rows * k * QUANTIZE_COST;
    let range_of = |share: std::ops::Range<usize>| (kernels.range)(&x[share.start * k..share.end * k]);
    let range = reduce_row_shares(rows, cost, range_of, merge_ranges);
    let Range::Finite { min, max } = range else {
        return Err(Error::Value("input contains NaN or infinity, which cannot be quantized".into()));
    };
    let qparams = choose_qparams(min, max, 0, 255, reduce_range)?;
    // Room first, so that a failure leaves `out` as it was.
    let more_row_sums = if row_sums { rows.saturating_sub(out.row_sums.len()) } else { 0 };
    alloc::reserve(&mut out.row_sums, more_row_sums)?;
    // Every byte is written below (values, then zero padding), so old contents need no clearing.
    alloc::resize(&mut out.data, alloc::elements(rows, stride, "the quantized input")?, 0)?;
    if k > 0 {
        for_row_shares(&mut out.data, stride, cost, |first_row, share| {
            for (row, dst) in (first_row..).zip(share.chunks_exact_mut(stride)) {
                let (values, padding) = dst.split_at_mut(k);
                (kernels.quantize_u8)(&x[row * k..(row + 1) * k], qparams.inv_scale_f32(), qparams.zero_point, values);
                padding.fill(0);
            }
        });
    }
    out.row_sums.clear();
    if row_sums {
        out.row_sums.extend((0..rows).map(|r| byte_sum(&out.data[r * stride..r * stride + k])));
    }
    out.rows = rows;
    out.k = k;
    out.stride = stride;
    out.qparams = qparams;
    Ok(())
}

impl QuantizedActivations {
    /// No rows: a buffer for [`DynamicLinear::quantize_input_into`] to fill.
    pub fn empty() -> Self {
        QuantizedActivations {
            data: Vec::new(),
            rows: 0,
            k: 0,
            stride: 0,
            row_sums: Vec::new(),
            qparams: QParams { scale: 1.0, zero_point: 0 },
        }
    }
}

/// The cost of quantizing one element (finding the range, then quantizing), in the
/// multiply-accumulates of [`crate::threads::PARALLEL_THRESHOLD_MACS`]: inputs of more than about
/// 128K elements are quantized by all threads.
const QUANTIZE_COST: usize = 32;

/// The range of two parts of one tensor: non-finite if either is.
pub(crate) fn merge_ranges(a: Range, b: Range) -> Range {
    match (a, b) {
        (Range::Finite { min: a_min, max: a_max }, Range::Finite { min: b_min, max: b_max }) => {
            Range::Finite { min: a_min.min(b_min), max: a_max.max(b_max) }
        }
        _ => Range::NonFinite,
    }
}

/// Buffers [`DynamicLinear::forward_quantized_with`] reuses from call to call.
#[derive(Clone, Debug, Default)]
pub struct LinearScratch {
    /// `f32(s_x * s_w[n])` per output column: it depends on the input's scale.
    multipliers: Vec<f32>,
    /// Row sums of an input quantized without them.
    row_sums: Vec<i32>,
}

/// `Σ bytes` as i32, in 16-byte chunks the compiler vectorizes (exact for rows shorter than
/// 2^23 bytes, far beyond any layer width).
pub(crate) fn byte_sum(bytes: &[u8]) -> i32 {
    let chunks = bytes.chunks_exact(16);
    let tail: u32 = chunks.remainder().iter().map(|&b| b as u32).sum();
    let body: u32 = chunks.map(|c| c.iter().map(|&b| b as u32).sum::<u32>()).sum();
    (body + tail) as i32
}

/// `k` as the int32 FBGEMM computes the weights' column offsets with (`Σ_k W - zp * K`), or a
/// ValueError beyond `i32::MAX`.
pub(crate) fn in_features_i32(k: usize) -> Result<i32> {
    i32::try_from(k).map_err(|_| Error::Shape(format!("in_features = {k} is too large: at most 2**31 - 1")))
}

fn check_len(len: usize, rows: usize, k: usize, what: &str) -> Result<()> {
    if Some(len) != rows.checked_mul(k) {
        return Err(Error::Shape(format!("{what} has {len} elements, expected {rows} x {k}")));
    }
    Ok(())
}

/// A dynamic int8 Linear: int8 weights with per-tensor or per-channel qparams, float bias.
#[derive(Clone, Debug)]
pub struct DynamicLinear {
    weights: ColumnBlocks,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
    col_offsets: Vec<i32>,
    bias: Option<Vec<f32>>,
    /// Whether some weight zero point is non-zero (the epilogue then uses the input's row sums).
    uses_row_sums: bool,
}

impl DynamicLinear {
    /// `weight` is row-major `n x k` int8. `scales`/`zero_points` have length 1 (per tensor) or `n`
    /// (per output feature); scales are used as float32, as FBGEMM does, and must be positive
    /// normal floats; zero points lie in the int8 range; the bias is finite.
    pub fn new(weight: &[i8], n: usize, k: usize, scales: &[f32], zero_points: &[i32], bias: Option<Vec<f32>>) -> Result<Self> {
        Self::new_in_blocks(weight, n, k, COLUMN_BLOCK, scales, zero_points, bias)
    }

    /// [`DynamicLinear::new`] with the weights packed in blocks of `width` output columns (see
    /// [`gate_block_width`](crate::column_blocks::gate_block_width)).
    pub fn new_in_blocks(
        weight: &[i8],
        n: usize,
        k: usize,
        width: usize,
        scales: &[f32],
        zero_points: &[i32],
        bias: Option<Vec<f32>>,
    ) -> Result<Self> {
        in_features_i32(k)?;
        Self::with_weights(ColumnBlocks::pack(weight, n, k, width)?, scales, zero_points, bias)
    }

    /// All-zero `n x k` weights with scale 1 and zero point 0 (what a module holds before its
    /// weights are set), in blocks of `width` output columns; they cost no memory until replaced.
    pub fn zeros(n: usize, k: usize, width: usize, bias: Option<Vec<f32>>) -> Result<Self> {
        in_features_i32(k)?;
        Self::with_weights(ColumnBlocks::zeros(n, k, width)?, &[1.0], &[0], bias)
    }

    /// Weights already packed (see [`ColumnBlocks::from_blocks`]); the rest as for [`new`](Self::new).
    pub fn with_weights(weights: ColumnBlocks, scales: &[f32], zero_points: &[i32], bias: Option<Vec<f32>>) -> Result<Self> {
        let (n, k) = (weights.n(), weights.k());
        let k_i32 = in_features_i32(k)?;
        let per_column = |what: &str, len: usize| -> Result<()> {
            if len == 1 || len == n {
                Ok(())
            } else {
                Err(Error::Shape(format!("{what} must have 1 or {n} (out_features) entries, got {len}")))
            }
        };
        per_column("weight scales", scales.len())?;
        per_column("weight zero points", zero_points.len())?;
        if scales.len() != zero_points.len() {
            return Err(Error::Shape(format!(
                "weight scales ({}) and zero points ({}) must have the same length",
                scales.len(),
                zero_points.len()
            )));
        }
        check_weight_qparams(scales, zero_points, bias.as_deref())?;
        if let Some(b) = &bias {
            if b.len() != n {
                return Err(Error::Shape(format!("bias has {} elements, expected out_features = {n}", b.len())));
            }
        }
        let expand = |v: &[f32]| if v.len() == n { alloc::copy_of(v) } else { alloc::vec_of(n, v[0]) };
        let scales = expand(scales)?;
        let zero_points = if zero_points.len() == n { alloc::copy_of(zero_points)? } else { alloc::vec_of(n, zero_points[0])? };
        let col_offsets =
            alloc::collect(n, weights.col_sums().zip(&zero_points).map(|(sum, &zp)| sum.wrapping_sub(zp.wrapping_mul(k_i32))))?;
        let uses_row_sums = zero_points.iter().any(|&zp| zp != 0);
        Ok(DynamicLinear { weights, scales, zero_points, col_offsets, bias, uses_row_sums })
    }

    pub fn in_features(&self) -> usize {
        self.weights.k()
    }

    /// Writes the row-major int8 weight (`out_features x in_features`) into `out`.
    ///
    /// # Panics
    /// When `out` has another length.
    pub fn weight_into(&self, out: &mut [i8]) {
        self.weights.unpack_into(out);
    }

    /// Bytes the layer holds: the packed weights with their column sums (see
    /// [`PackedWeights::nbytes`](crate::pack::PackedWeights::nbytes)), and its per-column scales,
    /// zero points, column offsets and bias.
    pub fn nbytes(&self) -> usize {
        let bias: &[f32] = self.bias.as_deref().unwrap_or_default();
        self.weights.nbytes()
            + size_of_val(&self.scales[..])
            + size_of_val(&self.zero_points[..])
            + size_of_val(&self.col_offsets[..])
            + size_of_val(bias)
    }

    /// Whether the epilogue uses the input's row sums: some weight zero point is non-zero.
    fn uses_row_sums(&self) -> bool {
        self.uses_row_sums
    }

    pub fn out_features(&self) -> usize {
        self.weights.n()
    }

    /// Quantizes `x` (`rows x in_features`) as this layer's GEMM wants it, leaving out the row sums
    /// when every weight zero point is 0 (the epilogue does not use them then).
    pub fn quantize_input(&self, kernels: &Kernels, x: &[f32], rows: usize, reduce_range: bool) -> Result<QuantizedActivations> {
        let mut out = QuantizedActivations::empty();
        self.quantize_input_into(kernels, x, rows, reduce_range, &mut out)?;
        Ok(out)
    }

    /// [`DynamicLinear::quantize_input`] into a reused buffer.
    pub fn quantize_input_into(
        &self,
        kernels: &Kernels,
        x: &[f32],
        rows: usize,
        reduce_range: bool,
        out: &mut QuantizedActivations,
    ) -> Result<()> {
        let (k, stride, row_sums) = (self.in_features(), self.weights.k_padded(), self.uses_row_sums());
        quantize_rows(kernels, x, rows, k, stride, reduce_range, row_sums, out)
    }

    /// ValueError unless `xq` was quantized for this layer (its `in_features`, its padded stride).
    fn check_quantized_input(&self, xq: &QuantizedActivations) -> Result<()> {
        if xq.k != self.in_features() || xq.stride != self.weights.k_padded() {
            return Err(Error::Shape(format!(
                "quantized input has {} features, expected in_features = {}",
                xq.k,
                self.in_features()
            )));
        }
        Ok(())
    }

    /// `out = dequantize(xq @ W^T) + bias`, `rows x out_features`, docs/numerics.md §2.1 steps 4-5,
    /// with this thread's [`LinearScratch`]: once a call of as many rows and columns has grown it,
    /// a call allocates nothing (a model's warm-up grows it at load time).
    pub fn forward_quantized(&self, kernels: &Kernels, xq: &QuantizedActivations, out: &mut [f32]) -> Result<()> {
        SCRATCH.with_borrow_mut(|scratch| self.forward_quantized_with(kernels, xq, out, scratch))
    }

    /// [`DynamicLinear::forward_quantized`] with buffers kept in `scratch` between calls: it
    /// allocates only to grow them.
    pub fn forward_quantized_with(
        &self,
        kernels: &Kernels,
        xq: &QuantizedActivations,
        out: &mut [f32],
        scratch: &mut LinearScratch,
    ) -> Result<()> {
        let n = self.out_features();
        self.check_quantized_input(xq)?;
        check_len(out.len(), xq.rows, n, "output")?;
        let s_x = xq.qparams.scale_f32();
        let LinearScratch { multipliers, row_sums } = scratch;
        multipliers.clear();
        multipliers.extend(self.scales.iter().map(|&s_w| s_x * s_w));
        let params = self.epilogue(xq.qparams.zero_point, multipliers);
        if n == 0 || xq.rows == 0 {
            return Ok(());
        }
        // Row sums the input lacks: computed when this layer uses them, else any value (zeros).
        let row_sums: &[i32] = if xq.row_sums.len() == xq.rows {
            &xq.row_sums
        } else {
            row_sums.clear();
            alloc::reserve(row_sums, xq.rows)?;
            match self.uses_row_sums() {
                true => row_sums.extend((0..xq.rows).map(|r| byte_sum(&xq.data[r * xq.stride..r * xq.stride + xq.k]))),
                false => alloc::resize(row_sums, xq.rows, 0)?,
            }
            row_sums
        };
        let a_rows = |first_row: usize, rows: usize| &xq.data[first_row * xq.stride..(first_row + rows) * xq.stride];
        let block_params = |columns: std::ops::Range<usize>| Epilogue {
            col_offsets: &params.col_offsets[columns.clone()],
            w_zero_points: &params.w_zero_points[columns.clone()],
            multipliers: &params.multipliers[columns.clone()],
            bias: params.bias.map(|b| &b[columns]),
            ..params
        };
        let macs = xq.rows * n * xq.k;
        if xq.rows == 1 {
            // A batch of one: column blocks claimed one by one, each thread reading only the
            // weights of its blocks.
            let width = self.weights.width();
            for_claimed_shares(out, width, 1, macs, |first_block, out_columns| {
                for (i, out_block) in out_columns.chunks_mut(width).enumerate() {
                    let start = (first_block + i) * width;
                    let (weights, params) = (self.weights.block_at(start), block_params(start..start + out_block.len()));
                    let operands = Int8Operands { a: a_rows(0, 1), lda: xq.stride, rows: 1, b: weights };
                    let ldo = out_block.len();
                    (kernels.gemm_u8i8_dequantize)(operands, DequantizedOut { row_sums, epilogue: &params, out: out_block, ldo });
                }
            });
            return Ok(());
        }
        let run_rows = |first_row: usize, out_rows: &mut [f32]| {
            let rows = out_rows.len() / n;
            let row_sums = &row_sums[first_row..first_row + rows];
            for (columns, weights) in self.weights.blocks() {
                let out = &mut out_rows[columns.start..];
                let params = block_params(columns);
                let operands = Int8Operands { a: a_rows(first_row, rows), lda: xq.stride, rows, b: weights };
                (kernels.gemm_u8i8_dequantize)(operands, DequantizedOut { row_sums, epilogue: &params, out, ldo: n });
            }
        };
        for_row_shares(out, n, macs, run_rows);
        Ok(())
    }

    /// The raw int32 products of `acc.len() / out_features` quantized rows from `first_row` on:
    /// `acc[r * n + j] = Σ_k xq[first_row + r, k] * W[j, k]`, before any correction or scaling
    /// (see [`DynamicLinear::epilogue`]). Large products are split between threads by rows.
    pub fn accumulate(&self, kernels: &Kernels, xq: &QuantizedActivations, first_row: usize, acc: &mut [i32]) -> Result<()> {
        let n = self.out_features();
        self.check_quantized_input(xq)?;
        let rows = acc.len().checked_div(n).unwrap_or(0);
        if rows * n != acc.len() || first_row + rows > xq.rows {
            return Err(Error::Shape(format!(
                "{} accumulators from row {first_row} do not fit {} rows of {n} outputs",
                acc.len(),
                xq.rows
            )));
        }
        if rows == 0 {
            return Ok(());
        }
        let run_rows = |first: usize, share: &mut [i32]| {
            let start = (first_row + first) * xq.stride;
            let share_rows = share.len() / n;
            let a = &xq.data[start..start + share_rows * xq.stride];
            let operands = Int8Blocks { a, lda: xq.stride, rows: share_rows, blocks: self.weights.packed() };
            (kernels.gemm_u8i8_blocks)(operands, share, n);
        };
        for_row_shares(acc, n, rows * n * xq.k, run_rows);
        Ok(())
    }

    /// Bytes per row of an input quantized for this layer: `in_features` padded as its packed
    /// weights want (zeros after the values).
    pub fn input_stride(&self) -> usize {
        self.weights.k_padded()
    }

    /// Output columns per block of the packed weights: a range of columns that starts and ends
    /// at multiples of it (or at `out_features`) is what [`DynamicLinear::accumulate_columns`]
    /// computes.
    pub fn block_width(&self) -> usize {
        self.weights.width()
    }

    /// [`DynamicLinear::accumulate`] of the rows `rows` of `xq` and the output columns `columns`
    /// only, on the calling thread: `acc[r * ldo + j] = Σ_k xq[rows.start + r, k] * W[columns.start
    /// + j, k]`, the other elements left alone. `columns` must start and end at block boundaries
    /// ([`DynamicLinear::block_width`]); nothing is allocated.
    pub fn accumulate_columns(
        &self,
        kernels: &Kernels,
        xq: &QuantizedActivations,
        rows: std::ops::Range<usize>,
        columns: std::ops::Range<usize>,
        acc: &mut [i32],
        ldo: usize,
    ) -> Result<()> {
        self.check_quantized_input(xq)?;
        let count = rows.len();
        let fits = rows.end <= xq.rows && columns.len() <= ldo && (count == 0 || acc.len() >= (count - 1) * ldo + columns.len());
        let blocks = self.weights.blocks_of(columns.clone()).filter(|_| fits).ok_or_else(|| {
            Error::Shape(format!("columns {columns:?} of rows {rows:?} are not whole blocks of this layer's output"))
        })?;
        if count == 0 {
            return Ok(());
        }
        let a = &xq.data[rows.start * xq.stride..rows.end * xq.stride];
        (kernels.gemm_u8i8_blocks)(Int8Blocks { a, lda: xq.stride, rows: count, blocks }, acc, ldo);
        Ok(())
    }

    /// The dequantizing epilogue of inputs with zero point `x_zero_point`, given their
    /// `multipliers[n] = f32(s_x * s_w[n])`: what [`DynamicLinear::forward_quantized`] applies to
    /// the accumulators of [`DynamicLinear::accumulate`].
    pub fn epilogue<'a>(&'a self, x_zero_point: i32, multipliers: &'a [f32]) -> Epilogue<'a> {
        Epilogue {
            x_zero_point,
            col_offsets: &self.col_offsets,
            w_zero_points: &self.zero_points,
            multipliers,
            bias: self.bias.as_deref(),
        }
    }

    /// The accumulators `acc` of [`DynamicLinear::accumulate`] for inputs quantized with `x`, as
    /// a recurrent step reads them ([`Accumulators`]: the epilogue with the multipliers formed on
    /// the fly); `acc` must already hold the weight-zero-point correction
    /// ([`correct_zero_points`](crate::kernels::correct_zero_points) with
    /// [`DynamicLinear::weight_zero_points`]), and `bias` stands for the layer's bias (zeros when
    /// it has none).
    pub fn accumulators<'a>(&'a self, acc: &'a [i32], x: QParams, bias: &'a [f32]) -> Accumulators<'a> {
        Accumulators {
            acc,
            x_zero_point: x.zero_point,
            x_scale: x.scale_f32(),
            col_offsets: &self.col_offsets,
            scales: &self.scales,
            bias,
        }
    }

    /// The weight zero points per output column, `None` when they are all 0 (the epilogue then
    /// does not use the row sums).
    pub fn weight_zero_points(&self) -> Option<&[i32]> {
        self.uses_row_sums().then_some(&self.zero_points[..])
    }

    /// Per output column, `Σ_k W[n, k] - w_zero_point[n] * K` (the epilogue's column offsets).
    pub fn col_offsets(&self) -> &[i32] {
        &self.col_offsets
    }

    /// Per output column, the weight scale.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// Quantizes `x` and runs the layer: the whole dynamic Linear.
    pub fn forward(&self, kernels: &Kernels, x: &[f32], rows: usize, reduce_range: bool, out: &mut [f32]) -> Result<()> {
        let xq = self.quantize_input(kernels, x, rows, reduce_range)?;
        self.forward_quantized(kernels, &xq, out)
    }
}

/// A Linear with float16 weights and float32 activations (`dtype=float16` dynamic modules).
#[derive(Clone, Debug)]
pub struct Fp16Linear {
    /// IEEE binary16 bits, transposed to `k x n`.
    weight_t: Vec<u16>,
    n: usize,
    k: usize,
    bias: Option<Vec<f32>>,
}

impl Fp16Linear {
    /// `weight` is row-major `n x k` float16 bits (already saturated to +-65504 and rounded).
    pub fn new(weight: &[u16], n: usize, k: usize, bias: Option<Vec<f32>>) -> Result<Self> {
        check_len(weight.len(), n, k, "weight")?;
        check_bias(bias.as_deref())?;
        if let Some(b) = &bias {
            if b.len() != n {
                return Err(Error::Shape(format!("bias has {} elements, expected out_features = {n}", b.len())));
            }
        }
        let mut weight_t = alloc::vec_of(n * k, 0u16)?;
        for (row, chunk) in weight.chunks_exact(k.max(1)).take(n).enumerate() {
            for (col, &w) in chunk.iter().enumerate() {
                weight_t[col * n + row] = w;
            }
        }
        Ok(Fp16Linear { weight_t, n, k, bias })
    }

    pub fn in_features(&self) -> usize {
        self.k
    }

    pub fn out_features(&self) -> usize {
        self.n
    }

    /// Writes the row-major float16 weight bits (`out_features x in_features`) into `out`.
    ///
    /// # Panics
    /// When `out` has another length.
    pub fn weight_bits_into(&self, out: &mut [u16]) {
        assert_eq!(out.len(), self.n * self.k, "weight_bits_into: wrong output length");
        for (kk, column) in self.weight_t.chunks_exact(self.n.max(1)).take(self.k).enumerate() {
            for (row, &w) in column.iter().enumerate() {
                out[row * self.k + kk] = w;
            }
        }
    }

    /// `out = x @ f16(W)^T + bias` with f32 FMA accumulation in FBGEMM's order (see
    /// [`Kernels::gemm_f32_f16`]). Nothing is quantized, so NaN and infinity propagate as in
    /// float math.
    pub fn forward(&self, kernels: &Kernels, x: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        check_len(x.len(), rows, self.k, "input")?;
        check_len(out.len(), rows, self.n, "output")?;
        (kernels.gemm_f32_f16)(x, rows, self.k, &self.weight_t, self.n, self.bias.as_deref(), out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input quantized by a layer with symmetric weights (no row sums) gives a layer with
    /// non-zero weight zero points the same output as one quantized with its row sums.
    #[test]
    fn missing_row_sums_are_computed_when_used() {
        let kernels = crate::kernels();
        let (rows, k, n) = (5, 37, 19);
        let w: Vec<i8> = (0..n * k).map(|i| (i * 37 % 255) as i8).collect();
        let x: Vec<f32> = (0..rows * k).map(|i| (i * 13 % 29) as f32 / 7.0 - 1.0).collect();
        let symmetric = DynamicLinear::new(&w, n, k, &[0.02], &[0], None).unwrap();
        let zero_points: Vec<i32> = (0..n as i32).map(|j| j - 9).collect();
        let asymmetric = DynamicLinear::new(&w, n, k, &vec![0.02; n], &zero_points, Some(vec![0.5; n])).unwrap();
        let without = symmetric.quantize_input(kernels, &x, rows, false).unwrap();
        let with = asymmetric.quantize_input(kernels, &x, rows, false).unwrap();
        assert!(without.row_sums.is_empty());
        assert_eq!(with.row_sums.len(), rows);
        assert_eq!(without.data, with.data);
        let (mut got, mut want) = (vec![0f32; rows * n], vec![0f32; rows * n]);
        asymmetric.forward_quantized(kernels, &without, &mut got).unwrap();
        asymmetric.forward_quantized(kernels, &with, &mut want).unwrap();
        assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // And the symmetric layer gives the same with or without them.
        symmetric.forward_quantized(kernels, &without, &mut got).unwrap();
        symmetric.forward_quantized(kernels, &with, &mut want).unwrap();
        assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    /// The products of a range of whole blocks equal those columns of the whole product, written
    /// with the given row stride and nothing else touched; a range that is not whole blocks, or
    /// rows past the input, are errors.
    #[test]
    fn a_range_of_whole_blocks_gives_those_columns_of_the_product() {
        let kernels = crate::kernels();
        let (rows, k, n, width) = (6, 21, 4 * 64, 32);
        let w: Vec<i8> = (0..n * k).map(|i| (i * 53 % 251) as i8).collect();
        let x: Vec<f32> = (0..rows * k).map(|i| (i * 17 % 31) as f32 / 5.0 - 3.0).collect();
        let layer = DynamicLinear::new_in_blocks(&w, n, k, width, &[0.01], &[0], None).unwrap();
        let xq = layer.quantize_input(kernels, &x, rows, true).unwrap();
        let mut whole = vec![0; rows * n];
        layer.accumulate(kernels, &xq, 0, &mut whole).unwrap();
        let (columns, ldo) = (64..160, 100);
        let mut part = vec![-7; 3 * ldo];
        layer.accumulate_columns(kernels, &xq, 2..5, columns.clone(), &mut part, ldo).unwrap();
        for (r, row) in part.chunks_exact(ldo).enumerate() {
            assert_eq!(row[..columns.len()], whole[(2 + r) * n + columns.start..(2 + r) * n + columns.end], "row {r}");
            assert!(row[columns.len()..].iter().all(|&v| v == -7), "row {r}: only the columns are written");
        }
        assert!(matches!(layer.accumulate_columns(kernels, &xq, 0..1, 16..64, &mut part, ldo), Err(Error::Shape(_))));
        assert!(matches!(layer.accumulate_columns(kernels, &xq, 4..7, 0..32, &mut part, ldo), Err(Error::Shape(_))));
        assert!(matches!(layer.accumulate_columns(kernels, &xq, 0..4, 0..32, &mut part, ldo), Err(Error::Shape(_))));
    }
}
