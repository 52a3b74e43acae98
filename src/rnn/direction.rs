//! The time loop of one layer in one direction (docs/numerics.md §4.1, §4.3).
//!
//! The input projection quantizes the whole layer input once (one scale for every step), as
//! PyTorch does, but its GEMM runs in chunks of about [`CHUNK_ROWS`] rows just ahead of the steps
//! that read them, so its int32 accumulators stay in cache and are dequantized inside the
//! element-wise pass, like the hidden projection's: per step, `h` is quantized, multiplied by
//! `W_hh` into int32, and one pass per row dequantizes both projections, adds them, applies the
//! activations and updates the state. float16-weight projections produce floats instead.
//!
//! Threads: a layer whose int8 `W_ih` and `W_hh` are packed in gate-aligned blocks (as the
//! Python modules pack them) splits each large step by hidden units instead
//! ([`super::unit_split`]): each thread computes every projection and the cell of its own units,
//! reading only its part of the weights. Otherwise the input projection's chunks and the
//! quantization of the layer input split by rows like any large product. A step's rows are
//! independent once `h` is quantized (its scale needs every row, which is the one synchronisation
//! point per step), so a large step (see [`rows_per_share`]) gives each thread a share of whole row
//! tiles and computes, per share, the hidden projection and the cell in one parallel section: one
//! join per step, the same bits as one thread (integer products are exact and each row's cell
//! reads only its own values). A batch of one is not split by rows.

use super::buffers::{Buffers, StepBuffers};
use super::cell_kind::CellKind;
use super::packing::Packing;
use super::projection::Projection;
use super::sequence::{CellWeights, RnnShape};
use super::unit_split;
use crate::alloc;
use crate::error::{Error, Result};
use crate::kernels::scalar_step::canonical_nan;
use crate::kernels::{correct_zero_points, Accumulators, Kernels, Nonlinearity, Projected};
use crate::linear::{DynamicLinear, Fp16Linear, QuantizedActivations};
use crate::threads::{for_shares, num_threads, PARALLEL_THRESHOLD_MACS};

use std::ops::Range;
use std::sync::Mutex;

/// Rows of input projection computed at a time: a multiple of the GEMM's row tiles, large enough
/// for its full speed (each chunk reads all of `W_ih` once: on AMX, 128 rows run about 30% faster
/// than 64 when the weights come from L3), small enough for the accumulators to stay in cache.
const CHUNK_ROWS: usize = 128;

/// What every step of one call shares.
#[derive(Clone, Copy)]
pub(super) struct Call<'a> {
    pub kernels: &'a Kernels,
    pub packing: &'a Packing,
    pub reduce_range: bool,
    pub shape: &'a RnnShape,
}

/// The recurrent state of the batch, rows in sorted (decreasing length) order; `c` is empty
/// unless the layer is an LSTM.
pub(super) struct State<'a> {
    pub h: &'a mut [f32],
    pub c: &'a mut [f32],
}

/// A layer's input: its packed rows, or `Quantized` when `xq_ih` of the [`Buffers`] holds them
/// already quantized for the layer's int8 `W_ih` (the first layer's, quantized while the
/// caller's array could be read).
#[derive(Clone, Copy)]
pub(super) enum LayerInput<'a> {
    Rows(&'a [f32]),
    Quantized,
}

impl LayerInput<'_> {
    /// The input quantized for the int8 `W_ih` `ih`, in `xq`: quantized there now unless it is
    /// already.
    pub(super) fn quantized<'b>(
        self,
        call: &Call<'_>,
        ih: &DynamicLinear,
        xq: &'b mut Option<QuantizedActivations>,
    ) -> Result<&'b QuantizedActivations> {
        match self {
            LayerInput::Rows(rows) => {
                let xq = xq.get_or_insert_with(QuantizedActivations::empty);
                ih.quantize_input_into(call.kernels, rows, call.packing.rows(), call.reduce_range, xq)?;
                Ok(xq)
            }
            LayerInput::Quantized => xq.as_ref().ok_or_else(|| Error::Value("the layer input was not quantized".into())),
        }
    }
}

/// Where a direction writes its outputs: packed rows of `stride` values, from `column` on.
pub(super) struct Output<'a> {
    pub rows: &'a mut [f32],
    pub stride: usize,
    pub column: usize,
}

/// Runs the steps of one layer in one direction over `layer_input`, updating `state` and writing
/// each step's `h` to `output`, if any. When the output's rows are exactly `h`'s (one direction,
/// forward), each step writes its `h` straight there and the next step reads it from there (see
/// [`Direct`]); otherwise the steps update `state.h` in place and copy it out.
pub(super) fn run(
    call: &Call<'_>,
    cell: &CellWeights,
    reverse: bool,
    layer_input: LayerInput<'_>,
    state: &mut State<'_>,
    output: Option<Output<'_>>,
    buffers: &mut Buffers,
) -> Result<()> {
    if let Some(plan) = unit_split::plan(call, cell, state) {
        return unit_split::run(call, cell, &plan, reverse, layer_input, state, output, buffers);
    }
    let Call { kernels, packing, shape, .. } = *call;
    let columns = shape.kind.gates() * shape.hidden_size;
    let rows = packing.rows();
    let Buffers { xq_ih, acc_ih, ig, zeros, step, .. } = buffers;
    alloc::resize(zeros, columns, 0.0)?;
    let zeros: &[f32] = zeros;
    let hh = match &cell.hh {
        Projection::Int8(l) => Hidden::Int8(Int8Terms::new(l, zeros)),
        Projection::Fp16(l) => Hidden::Fp16(l),
    };
    let ih = match &cell.ih {
        Projection::Int8(l) => Some(Int8Terms::new(l, zeros)),
        Projection::Fp16(_) => None,
    };
    match (&cell.ih, layer_input) {
        (Projection::Int8(l), _) => {
            layer_input.quantized(call, l, xq_ih)?;
        }
        (Projection::Fp16(l), LayerInput::Rows(layer_input)) => {
            alloc::resize(ig, alloc::elements(rows, columns, "the input projection")?, 0.0)?;
            l.forward(kernels, layer_input, rows, ig)?;
        }
        (Projection::Fp16(_), LayerInput::Quantized) => return Err(Error::Value("a float16 W_ih reads its input as floats".into())),
    }
    let out_size = shape.output_size();
    let (mut direct, mut copied) = match output {
        Some(output) if output.stride == out_size && !reverse => (Some(Direct { rows: output.rows, last: None }), None),
        output => (None, output),
    };
    let mut next = 0;
    while let Some(Chunk { steps, first_row, rows: chunk_rows }) = next_chunk(packing, reverse, next) {
        next = steps.end;
        let ig_chunk = match (ih, xq_ih.as_ref()) {
            (Some(terms), Some(xq)) => {
                alloc::resize(acc_ih, chunk_rows * columns, 0)?;
                Projected::Int8(terms.accumulate(kernels, xq, first_row, &mut acc_ih[..chunk_rows * columns])?)
            }
            _ => Projected::Float(&ig[first_row * columns..(first_row + chunk_rows) * columns]),
        };
        for i in steps {
            let t = time(packing, reverse, i);
            let (offset, active) = packing.step(t);
            if active == 0 {
                continue;
            }
            let ig = ig_chunk.rows(offset - first_row..offset - first_row + active, columns);
            let c = &mut state.c[..if shape.kind.has_cell_state() { active * shape.hidden_size } else { 0 }];
            match direct.as_mut() {
                Some(direct) => {
                    let (prev, h) = direct.step(state.h, offset, active, out_size);
                    one_step(call, hh, cell.hr.as_ref(), &ig, Some(prev), h, c, step)
                }
                None => {
                    let h = &mut state.h[..active * out_size];
                    let stepped = one_step(call, hh, cell.hr.as_ref(), &ig, None, h, c, step);
                    if let Some(output) = copied.as_mut() {
                        output.write(offset, h, out_size);
                    }
                    stepped
                }
            }
            .map_err(|e| at_step(e, t))?;
        }
    }
    if let Some(direct) = direct {
        direct.finish(state.h, out_size);
    }
    Ok(())
}

/// The output rows of a forward direction that writes each step's `h` straight into them:
/// `rows` are packed rows of exactly `h`'s features, and `last` is the step whose rows hold the
/// latest `h` (its first packed row and running rows), `None` before the first step. `state.h`
/// (sorted rows) holds the initial state, and receives each row's last `h` when the row stops
/// running (a shorter sequence's end) and at the end ([`Direct::finish`]).
struct Direct<'a> {
    rows: &'a mut [f32],
    last: Option<(usize, usize)>,
}

impl Direct<'_> {
    /// The previous `h` of a step's `active` running rows (`state_h` at the first step, else
    /// the last step's first rows: forward, the running rows only ever get fewer) and the step's
    /// own output rows (from packed row `offset` on) for its new `h`.
    fn step<'s>(&'s mut self, state_h: &'s mut [f32], offset: usize, active: usize, out_size: usize) -> (&'s [f32], &'s mut [f32]) {
        let rows = offset * out_size..(offset + active) * out_size;
        let Some((last_offset, last_active)) = self.last.replace((offset, active)) else {
            return (&state_h[..active * out_size], &mut self.rows[rows]);
        };
        // Rows `active..last_active` stopped at the last step: that `h` is their final state.
        let split = (last_offset + active) * out_size;
        state_h[active * out_size..last_active * out_size].copy_from_slice(&self.rows[split..(last_offset + last_active) * out_size]);
        split_pair(self.rows, last_offset * out_size..split, rows)
    }

    /// Puts the last step's `h` into `state_h`, whose other rows hold their final state already.
    fn finish(self, state_h: &mut [f32], out_size: usize) {
        if let Some((offset, active)) = self.last {
            state_h[..active * out_size].copy_from_slice(&self.rows[offset * out_size..(offset + active) * out_size]);
        }
    }
}

/// `values[read]` to read and `values[write]` to write, two ranges that do not overlap.
fn split_pair<T>(values: &mut [T], read: Range<usize>, write: Range<usize>) -> (&[T], &mut [T]) {
    if read.start < write.start {
        let (head, tail) = values.split_at_mut(write.start);
        (&head[read], &mut tail[..write.len()])
    } else {
        let (head, tail) = values.split_at_mut(read.start);
        (&tail[..read.len()], &mut head[write])
    }
}

impl Output<'_> {
    /// Writes the rows of `h` (`out_size` values each) as the packed rows from `offset` on.
    pub(super) fn write(&mut self, offset: usize, h: &[f32], out_size: usize) {
        for (p, h_row) in h.chunks_exact(out_size).enumerate() {
            let start = (offset + p) * self.stride + self.column;
            self.rows[start..start + out_size].copy_from_slice(h_row);
        }
    }
}

/// Consecutive steps (in processing order) whose input projection is computed at once, and
/// their packed rows.
pub(super) struct Chunk {
    /// Indices in processing order (see [`time`]).
    pub steps: Range<usize>,
    /// The packed row of the chunk's earliest step.
    pub first_row: usize,
    pub rows: usize,
}

/// The time step processed `i`-th.
pub(super) fn time(packing: &Packing, reverse: bool, i: usize) -> usize {
    if reverse {
        packing.steps() - 1 - i
    } else {
        i
    }
}

/// The chunk of steps from processing index `next` on: up to [`CHUNK_ROWS`] rows, at least one
/// step; `None` after the last step.
pub(super) fn next_chunk(packing: &Packing, reverse: bool, next: usize) -> Option<Chunk> {
    let (first, steps) = (next, packing.steps());
    if first >= steps {
        return None;
    }
    let (mut end, mut rows) = (first, 0);
    while end < steps && (end == first || rows + packing.step(time(packing, reverse, end)).1 <= CHUNK_ROWS) {
        rows += packing.step(time(packing, reverse, end)).1;
        end += 1;
    }
    // Consecutive steps have consecutive packed rows, starting at the earliest step's.
    let first_row = packing.step(time(packing, reverse, if reverse { end - 1 } else { first })).0;
    Some(Chunk { steps: first..end, first_row, rows })
}

/// `W_hh`, with the terms of its dequantization when it is int8.
#[derive(Clone, Copy)]
enum Hidden<'a> {
    Int8(Int8Terms<'a>),
    Fp16(&'a Fp16Linear),
}

/// One step over the running rows (`h`, and `c` for an LSTM), given their input projection; `hr`
/// is the LSTM projection, if any. `prev` holds the rows' previous `h`, which the step reads
/// before it writes the new one to `h`; `None` when `h` holds it (updated in place). After the
/// previous `h` is quantized (its scale needs every row), the hidden projection and the
/// element-wise cell of a large step run in row shares on the intra-op threads
/// ([`rows_per_share`]), each share's rows being independent of the others': one join per step.
#[allow(clippy::too_many_arguments)] // the step's weights, its input projection, its state and buffers
fn one_step(
    call: &Call<'_>,
    hh: Hidden<'_>,
    hr: Option<&Projection>,
    ig: &Projected<'_>,
    mut prev: Option<&[f32]>,
    h: &mut [f32],
    c: &mut [f32],
    buffers: &mut StepBuffers,
) -> Result<()> {
    let Call { kernels, reduce_range, shape, .. } = *call;
    let (hidden, out_size) = (shape.hidden_size, shape.output_size());
    let columns = shape.kind.gates() * hidden;
    let active = h.len() / out_size;
    if let (Some(values), CellKind::Gru) = (prev, shape.kind) {
        // The GRU cell updates `h` in place.
        h.copy_from_slice(values);
        prev = None;
    }
    let StepBuffers { xq_hh, acc_hh, hg, unprojected, scratch } = buffers;
    let xq = match hh {
        Hidden::Int8(terms) => {
            let xq = xq_hh.get_or_insert_with(QuantizedActivations::empty);
            terms.layer.quantize_input_into(kernels, prev.unwrap_or(&*h), active, reduce_range, xq)?;
            alloc::resize(acc_hh, active * columns, 0)?;
            Some(&*xq)
        }
        Hidden::Fp16(_) => {
            alloc::resize(hg, active * columns, 0.0)?;
            None
        }
    };
    let acc: &mut [i32] = if xq.is_some() { &mut acc_hh[..active * columns] } else { &mut [] };
    let hg: &mut [f32] = if xq.is_some() { &mut [] } else { &mut hg[..active * columns] };
    if hr.is_some() {
        alloc::resize(unprojected, active * hidden, 0.0)?;
    }
    let unprojected: &mut [f32] = if hr.is_some() { &mut unprojected[..active * hidden] } else { &mut [] };
    let rows = StepRows { first_row: 0, acc, hg, prev, h: &mut *h, c, unprojected: &mut *unprojected };
    let macs = active * columns * out_size;
    match rows_per_share(active, macs) {
        Some(rows_per_share) => {
            let mut shares = rows.split(rows_per_share, shape);
            let count = shares.iter().flatten().count();
            let failure = Mutex::new(None);
            for_shares(&mut shares[..count], 1, 1, macs, |_, shares| {
                for share in shares.iter_mut().flatten() {
                    if let Err(e) = step_rows(call, hh, xq, ig, share) {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    }
                }
            });
            if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
                return Err(e);
            }
        }
        None => step_rows(call, hh, xq, ig, &mut { rows })?,
    }
    if let Some(hr) = hr {
        hr.forward(kernels, unprojected, active, reduce_range, h, scratch)?;
        h.iter_mut().for_each(|v| *v = canonical_nan(*v));
    }
    Ok(())
}

/// Each thread's share of a step's rows is a multiple of this (the tallest GEMM row tile).
pub(super) const SHARE_ROWS_UNIT: usize = 8;

/// The rows per share when a step of `active` rows costing `macs` multiply-accumulates is worth
/// splitting between the intra-op threads, else `None`: at least two shares of whole GEMM row
/// tiles, and enough work for the split to pay ([`PARALLEL_THRESHOLD_MACS`]).
fn rows_per_share(active: usize, macs: usize) -> Option<usize> {
    if macs < PARALLEL_THRESHOLD_MACS || active < 2 * SHARE_ROWS_UNIT {
        return None;
    }
    let threads = num_threads().min(MAX_STEP_SHARES);
    (threads > 1).then(|| active.div_ceil(threads).next_multiple_of(SHARE_ROWS_UNIT))
}

/// The most shares a step is split into (its rows are few: a batch), so that the shares fit in an
/// array on the stack and a split step allocates nothing.
const MAX_STEP_SHARES: usize = 16;

/// The first `values` values of `v` (all of them if fewer), leaving `v` the rest.
fn take<'b, T>(v: &mut &'b mut [T], values: usize) -> &'b mut [T] {
    let values = values.min(v.len());
    let (head, tail) = std::mem::take(v).split_at_mut(values);
    *v = tail;
    head
}

/// The first `values` values of `v` (all of them if fewer), leaving `v` the rest.
fn take_shared<'b, T>(v: &mut &'b [T], values: usize) -> &'b [T] {
    let (head, tail) = v.split_at(values.min(v.len()));
    *v = tail;
    head
}

/// A block of consecutive running rows of one step, from `first_row` on, with the parts of the
/// step's buffers they own: the hidden-projection accumulators (int8 `W_hh`, else empty) or
/// floats (float16 `W_hh`, else empty), the previous `h` (`None` when `h` holds it), the state
/// (`c` empty unless an LSTM) and the LSTM's `o * tanh(c)` before its projection (empty without
/// one).
struct StepRows<'a> {
    first_row: usize,
    acc: &'a mut [i32],
    hg: &'a mut [f32],
    prev: Option<&'a [f32]>,
    h: &'a mut [f32],
    c: &'a mut [f32],
    unprojected: &'a mut [f32],
}

impl<'a> StepRows<'a> {
    /// Consecutive blocks of `rows_per_share` rows (the last one shorter), at most
    /// [`MAX_STEP_SHARES`] (the rest of the array `None`).
    fn split(self, rows_per_share: usize, shape: &RnnShape) -> [Option<StepRows<'a>>; MAX_STEP_SHARES] {
        let (hidden, columns) = (shape.hidden_size, shape.kind.gates() * shape.hidden_size);
        let active = self.h.len() / shape.output_size();
        assert!(active.div_ceil(rows_per_share) <= MAX_STEP_SHARES, "{active} rows in shares of {rows_per_share}");
        let StepRows { mut acc, mut hg, mut prev, mut h, mut c, mut unprojected, .. } = self;
        let mut shares = std::array::from_fn(|_| None);
        for (share, first_row) in shares.iter_mut().zip((0..active).step_by(rows_per_share)) {
            let rows = rows_per_share.min(active - first_row);
            // An unused buffer is empty and gives empty parts.
            *share = Some(StepRows {
                first_row,
                acc: take(&mut acc, rows * columns),
                hg: take(&mut hg, rows * columns),
                prev: prev.as_mut().map(|prev| take_shared(prev, rows * shape.output_size())),
                h: take(&mut h, rows * shape.output_size()),
                c: take(&mut c, rows * hidden),
                unprojected: take(&mut unprojected, rows * hidden),
            });
        }
        shares
    }
}

/// The hidden projection of `rows` (from `xq`, the quantized state of every running row, for
/// int8 `W_hh`; from the previous `h` for float16) and the element-wise cell on them, reading their rows
/// of the step's input projection `ig`.
fn step_rows(call: &Call<'_>, hh: Hidden<'_>, xq: Option<&QuantizedActivations>, ig: &Projected<'_>, rows: &mut StepRows<'_>) -> Result<()> {
    let Call { kernels, shape, .. } = *call;
    let hidden = shape.hidden_size;
    let columns = shape.kind.gates() * hidden;
    let StepRows { first_row, acc, hg, prev, h, c, unprojected } = rows;
    let count = h.len() / shape.output_size();
    let hg = match (hh, xq) {
        (Hidden::Int8(terms), Some(xq)) => Projected::Int8(terms.accumulate(kernels, xq, *first_row, acc)?),
        (Hidden::Fp16(l), _) => {
            l.forward(kernels, prev.unwrap_or(&**h), count, hg)?;
            Projected::Float(hg)
        }
        (Hidden::Int8(_), None) => return Err(Error::Value("an int8 hidden projection needs the quantized state".into())),
    };
    let ig = ig.rows(*first_row..*first_row + count, columns);
    let h_out: &mut [f32] = if unprojected.is_empty() { h } else { unprojected };
    run_cell(kernels, shape.kind, &hg, &ig, c, h_out, hidden);
    Ok(())
}

/// The element-wise cell of `kind` over the rows of `h_out` (`hidden` units each): reads both
/// projections, updates `c` (an LSTM's; empty otherwise) and writes `h_out` (a GRU also reads
/// the previous `h` from it).
pub(super) fn run_cell(kernels: &Kernels, kind: CellKind, hg: &Projected<'_>, ig: &Projected<'_>, c: &mut [f32], h_out: &mut [f32], hidden: usize) {
    match kind {
        CellKind::Lstm => (kernels.lstm)(hg, ig, c, h_out, hidden),
        CellKind::Gru => (kernels.gru)(hg, ig, h_out, hidden),
        CellKind::RnnTanh => (kernels.elman)(Nonlinearity::Tanh, hg, ig, h_out, hidden),
        CellKind::RnnRelu => (kernels.elman)(Nonlinearity::Relu, hg, ig, h_out, hidden),
    }
}

/// An int8 projection with the per-column terms of its dequantization ([`Accumulators`]).
#[derive(Clone, Copy)]
struct Int8Terms<'a> {
    layer: &'a DynamicLinear,
    /// The bias, or `zeros`.
    bias: &'a [f32],
}

impl<'a> Int8Terms<'a> {
    /// `layer`'s terms; `zeros` (at least `out_features` zeros) stands in for a missing bias.
    fn new(layer: &'a DynamicLinear, zeros: &'a [f32]) -> Self {
        Int8Terms { layer, bias: layer.bias().unwrap_or(zeros) }
    }

    /// The products of `xq`'s rows from `first_row` on (as many as `acc` holds), zero-point
    /// corrected, with their dequantization.
    fn accumulate<'b>(&self, kernels: &Kernels, xq: &QuantizedActivations, first_row: usize, acc: &'b mut [i32]) -> Result<Accumulators<'b>>
    where
        'a: 'b,
    {
        self.layer.accumulate(kernels, xq, first_row, acc)?;
        if let Some(zero_points) = self.layer.weight_zero_points() {
            correct_zero_points(acc, &xq.row_sums[first_row..], zero_points);
        }
        Ok(self.layer.accumulators(acc, xq.qparams, self.bias))
    }
}

/// Says which step's state could not be quantized: a finite input gives a finite state unless
/// the recurrence overflows (an Elman relu stack can), and only NaN or infinity fails to quantize.
pub(super) fn at_step(err: Error, t: usize) -> Error {
    match err {
        Error::Value(_) => Error::Value(format!(
            "the recurrent state at step {t} holds NaN or infinity (the recurrence overflowed) and cannot be quantized"
        )),
        other => other,
    }
}
