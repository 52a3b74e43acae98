//! The time loop of one layer direction with every step split between the intra-op threads by
//! hidden units, reading the layer's one packed copy of its weights.
//!
//! A recurrent layer's `W_ih` and `W_hh` are packed in column blocks that never straddle a gate
//! ([`gate_block_width`](crate::column_blocks::gate_block_width)): the gate rows of a range of
//! whole blocks of hidden units are whole blocks in every gate. Slice `s` owns such a range of
//! units; its task computes, for those units and all of their gates, the input projection of a
//! chunk of steps (at the chunk's first step), the step's hidden projection and the element-wise
//! cell, on its own buffers, laid out as a layer of that many units so that the cell kernels run
//! on them unchanged; it then finds the range of its new `h` and writes it to its columns of the
//! output. The quantization of `h` for the next step needs the range of every unit of every
//! running row: the calling thread merges the slices' ranges between steps (all that runs on
//! one thread), and at the next step's start each task quantizes its own slice's `h` into its
//! columns of the shared quantized `h` (and the slices no task has claimed yet), and waits until
//! every slice's part is written before its hidden projection ([`quantize_shared`]). One
//! parallel section per step, each thread streaming only its part of the weights, which stays in
//! that core's cache; the whole state is put together only after the last step.
//!
//! Same bits as one thread: the range of `h` is the same whatever the cut (minimum and maximum of
//! the slices' ranges) and each element is quantized on its own, integer products are exact, each
//! column is dequantized with its own terms, each unit's cell reads only that unit's values, and
//! a slice starts at a multiple of [`GATE_BLOCK_ALIGN`] units, so each unit gets the sigmoid form
//! it gets in one piece.

use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use super::buffers::{trim_vec, Buffers};
use super::cell_kind::CellKind;
use super::direction::{at_step, next_chunk, run_cell, time, Call, Chunk, LayerInput, Output, State, SHARE_ROWS_UNIT};
use super::projection::Projection;
use super::sequence::CellWeights;
use crate::alloc;
use crate::column_blocks::GATE_BLOCK_ALIGN;
use crate::error::{Error, Result};
use crate::kernels::{correct_zero_points, Accumulators, Kernels, Projected, Range as ValueRange};
use crate::linear::{byte_sum, merge_ranges, DynamicLinear, QuantizedActivations};
use crate::quant::choose_qparams;
use crate::threads::{for_shares_from, num_threads, SharedMut, SPLIT_STEP_MACS};

/// How the hidden units of a layer direction are cut: slices of `units` units (the last one
/// shorter), `slices` of them.
pub(super) struct Plan {
    units: usize,
    slices: usize,
}

/// The cut of `cell`'s hidden units between the intra-op threads when its steps are worth
/// splitting so, else `None`: both projections int8 and packed in the same gate-aligned blocks,
/// no LSTM projection, at least two blocks per gate and two threads, and a step (with its share of
/// the input projection) of at least [`SPLIT_STEP_MACS`] for the whole batch. With more
/// threads than blocks per gate, a batch that row shares can give every thread goes to them
/// instead (see [`super::direction`]).
pub(super) fn plan(call: &Call<'_>, cell: &CellWeights, state: &State<'_>) -> Option<Plan> {
    let shape = call.shape;
    let (Projection::Int8(ih), Projection::Int8(hh), None) = (&cell.ih, &cell.hh, &cell.hr) else {
        return None;
    };
    let (hidden, block) = (shape.hidden_size, hh.block_width());
    if ih.block_width() != block || !block.is_multiple_of(GATE_BLOCK_ALIGN) || !hidden.is_multiple_of(block) {
        return None;
    }
    let (blocks, batch) = (hidden / block, state.h.len() / hidden);
    let macs = step_macs(batch, shape.kind, hidden, ih.in_features());
    let threads = num_threads();
    if threads < 2 || blocks < 2 || macs < SPLIT_STEP_MACS || (threads > blocks && batch >= threads * SHARE_ROWS_UNIT) {
        return None;
    }
    let units = blocks.div_ceil(threads.min(blocks)) * block;
    Some(Plan { units, slices: hidden.div_ceil(units) })
}

/// The multiply-accumulates of a step of `rows` rows of a layer of `hidden` units and
/// `in_features` inputs, with its share of the input projection: what [`plan`] weighs and what
/// [`run`] splits between the threads.
fn step_macs(rows: usize, kind: CellKind, hidden: usize, in_features: usize) -> usize {
    rows.saturating_mul(kind.gates() * hidden).saturating_mul(hidden + in_features)
}

impl Plan {
    /// The units of slice `s` of a layer of `hidden` units.
    fn units_of(&self, s: usize, hidden: usize) -> Range<usize> {
        s * self.units..((s + 1) * self.units).min(hidden)
    }
}

/// The per-column terms of one projection's dequantization for a slice's columns (its units of
/// every gate, gate after gate).
#[derive(Default)]
struct SliceTerms {
    col_offsets: Vec<i32>,
    scales: Vec<f32>,
    /// The bias, zeros for a projection without one.
    bias: Vec<f32>,
    zero_points: Vec<i32>,
    /// Whether some of `zero_points` is non-zero (the accumulators then need their correction).
    corrects: bool,
}

impl SliceTerms {
    /// `layer`'s terms of the columns of `units` in each of its `gates` gates of `hidden` units.
    fn gather(&mut self, layer: &DynamicLinear, gates: usize, hidden: usize, units: &Range<usize>) -> Result<()> {
        let (col_offsets, scales) = (layer.col_offsets(), layer.scales());
        let (zero_points, bias) = (layer.weight_zero_points(), layer.bias());
        let columns = || (0..gates).flat_map(|g| g * hidden + units.start..g * hidden + units.end);
        let count = gates * units.len();
        gather_into(&mut self.col_offsets, count, columns().map(|c| col_offsets[c]))?;
        gather_into(&mut self.zero_points, count, columns().map(|c| zero_points.map_or(0, |z| z[c])))?;
        gather_into(&mut self.scales, count, columns().map(|c| scales[c]))?;
        gather_into(&mut self.bias, count, columns().map(|c| bias.map_or(0.0, |b| b[c])))?;
        self.corrects = self.zero_points.iter().any(|&z| z != 0);
        Ok(())
    }

    /// The accumulators `acc` of rows of `xq` whose byte sums are `row_sums`, zero-point
    /// corrected, with their dequantization.
    fn correct<'a>(&'a self, xq: &QuantizedActivations, row_sums: &[i32], acc: &'a mut [i32]) -> Accumulators<'a> {
        if self.corrects {
            correct_zero_points(acc, row_sums, &self.zero_points);
        }
        self.view(xq, acc)
    }

    /// `acc` with its dequantization terms.
    fn view<'a>(&'a self, xq: &QuantizedActivations, acc: &'a [i32]) -> Accumulators<'a> {
        Accumulators {
            acc,
            x_zero_point: xq.qparams.zero_point,
            x_scale: xq.qparams.scale_f32(),
            col_offsets: &self.col_offsets,
            scales: &self.scales,
            bias: &self.bias,
        }
    }

    fn trim(&mut self) {
        trim_vec(&mut self.col_offsets);
        trim_vec(&mut self.zero_points);
        trim_vec(&mut self.scales);
        trim_vec(&mut self.bias);
    }
}

/// `to` holding exactly the `count` values of `from`, reusing its memory.
fn gather_into<T>(to: &mut Vec<T>, count: usize, from: impl Iterator<Item = T>) -> Result<()> {
    to.clear();
    alloc::reserve(to, count)?;
    to.extend(from);
    Ok(())
}

/// The buffers of steps split by hidden units, kept between calls.
#[derive(Default)]
pub(super) struct SplitBuffers {
    slices: Vec<SliceBuffers>,
    /// Every slice's units of `h`, slice after slice, each laid out as a layer of the slice's
    /// units (`batch` rows): the tasks read each other's while they quantize it at a step's start
    /// ([`quantize_shared`]), and each then updates its own.
    h: Vec<f32>,
    /// Per slice, how far the quantization of its `h` for the current step is: [`PENDING`],
    /// [`CLAIMED`] or [`DONE`].
    quantized: Vec<AtomicU8>,
}

impl SplitBuffers {
    /// Frees what a large call left behind (see [`Buffers`]).
    pub(super) fn trim(&mut self) {
        self.slices.iter_mut().for_each(SliceBuffers::trim);
        trim_vec(&mut self.h);
    }
}

/// A slice's part of the step's quantized `h`: not yet claimed by any task.
const PENDING: u8 = 0;
/// Claimed by a task, which is writing it.
const CLAIMED: u8 = 1;
/// Written: readable by every task.
const DONE: u8 = 2;

/// One slice's units, the terms of its columns, and its buffers: the input-projection
/// accumulators of a chunk, the hidden-projection ones of a step, its units of `c` (empty unless
/// an LSTM), laid out as a layer of the slice's units, the byte sums of the quantized `h`'s rows
/// (only for a `W_hh` with non-zero zero points in the slice's columns), and the range of the
/// slice's `h` for the next step.
#[derive(Default)]
struct SliceBuffers {
    units: Range<usize>,
    ih: SliceTerms,
    hh: SliceTerms,
    acc_ih: Vec<i32>,
    acc_hh: Vec<i32>,
    c: Vec<f32>,
    row_sums: Vec<i32>,
    range: Option<ValueRange>,
}

impl SliceBuffers {
    fn trim(&mut self) {
        self.ih.trim();
        self.hh.trim();
        trim_vec(&mut self.acc_ih);
        trim_vec(&mut self.acc_hh);
        trim_vec(&mut self.c);
    }
}

/// The packed output rows a split direction writes to, as a pointer: each slice's task writes
/// its own units' columns of the step's rows.
struct OutputColumns {
    rows: SharedMut<f32>,
    len: usize,
    stride: usize,
    column: usize,
}

/// What every slice of one step reads.
struct StepWork<'a> {
    kernels: &'a Kernels,
    kind: CellKind,
    hidden: usize,
    plan: &'a Plan,
    /// Rows of the whole batch (of each slice's part of [`SplitBuffers::h`]).
    batch: usize,
    ih: &'a DynamicLinear,
    hh: &'a DynamicLinear,
    /// The quantized layer input, and the chunk whose input projection this step computes (its
    /// first step), else `None`.
    xq_ih: &'a QuantizedActivations,
    chunk: Option<&'a Chunk>,
    /// The step's rows within its chunk's input projection.
    ig_rows: Range<usize>,
    /// The quantized `h` of the step's running rows: its scale and shape set, its bytes written
    /// through `xq_bytes` by the tasks at the step's start ([`quantize_shared`]) and read only
    /// after every part is [`DONE`].
    xq_hh: &'a QuantizedActivations,
    xq_bytes: SharedMut<u8>,
    /// [`SplitBuffers::h`] and [`SplitBuffers::quantized`].
    h: SharedMut<f32>,
    quantized: &'a [AtomicU8],
    /// Running rows of the next step (0 after the last), whose range each slice finds.
    next_active: usize,
    /// The packed row of the step's first running row, and where its `h` goes, if anywhere.
    offset: usize,
    output: Option<&'a OutputColumns>,
}

/// [`super::direction::run`] with every step split by hidden units as `plan` says.
#[allow(clippy::too_many_arguments)] // the layer, its cut, its input, state and output, and the buffers
pub(super) fn run(
    call: &Call<'_>,
    cell: &CellWeights,
    plan: &Plan,
    reverse: bool,
    layer_input: LayerInput<'_>,
    state: &mut State<'_>,
    output: Option<Output<'_>>,
    buffers: &mut Buffers,
) -> Result<()> {
    let Call { kernels, packing, reduce_range, shape } = *call;
    let (Projection::Int8(ih), Projection::Int8(hh)) = (&cell.ih, &cell.hh) else {
        return Err(Error::Value("a step split by hidden units needs int8 projections".into()));
    };
    let (kind, hidden, gates) = (shape.kind, shape.hidden_size, shape.kind.gates());
    let batch = state.h.len() / hidden;
    let Buffers { xq_ih, step, split, .. } = buffers;
    let SplitBuffers { slices, h: h_all, quantized } = split;
    if slices.len() < plan.slices {
        alloc::reserve(slices, plan.slices - slices.len())?;
        slices.resize_with(plan.slices, SliceBuffers::default);
    }
    if quantized.len() < plan.slices {
        alloc::reserve(quantized, plan.slices - quantized.len())?;
        quantized.resize_with(plan.slices, || AtomicU8::new(PENDING));
    }
    let (slices, quantized) = (&mut slices[..plan.slices], &quantized[..plan.slices]);
    alloc::resize(h_all, batch * hidden, 0.0)?;
    for (s, slice) in slices.iter_mut().enumerate() {
        let units = plan.units_of(s, hidden);
        slice.ih.gather(ih, gates, hidden, &units)?;
        slice.hh.gather(hh, gates, hidden, &units)?;
        let n = units.len();
        alloc::resize(&mut slice.c, if kind.has_cell_state() { batch * n } else { 0 }, 0.0)?;
        slice.row_sums.clear();
        if slice.hh.corrects {
            alloc::reserve(&mut slice.row_sums, batch)?;
        }
        let h_part = &mut h_all[batch * units.start..batch * units.end];
        for (row, part) in state.h.chunks_exact(hidden).zip(h_part.chunks_exact_mut(n)) {
            part.copy_from_slice(&row[units.clone()]);
        }
        for (row, part) in state.c.chunks_exact(hidden).zip(slice.c.chunks_exact_mut(n)) {
            part.copy_from_slice(&row[units.clone()]);
        }
        slice.units = units;
        slice.range = None;
    }
    let xq_ih = layer_input.quantized(call, ih, xq_ih)?;
    let xq_hh = step.xq_hh.get_or_insert_with(QuantizedActivations::empty);
    let stride = hh.input_stride();
    // Zeros first: the tasks write the values of each row, and the padding stays zero.
    alloc::resize(&mut xq_hh.data, alloc::elements(batch, stride, "the quantized state")?, 0)?;
    xq_hh.data.fill(0);
    (xq_hh.k, xq_hh.stride) = (hidden, stride);
    xq_hh.row_sums.clear();
    let output = output.map(|o| OutputColumns { len: o.rows.len(), rows: SharedMut::new(o.rows), stride: o.stride, column: o.column });
    // The rows the slices' ranges cover (`None`: not found yet).
    let mut ranged_rows = None;
    let mut next = 0;
    while let Some(chunk) = next_chunk(packing, reverse, next) {
        next = chunk.steps.end;
        for i in chunk.steps.clone() {
            let t = time(packing, reverse, i);
            let (offset, active) = packing.step(t);
            if active == 0 {
                continue;
            }
            if ranged_rows != Some(active) {
                for slice in slices.iter_mut() {
                    let part = &h_all[batch * slice.units.start..][..active * slice.units.len()];
                    slice.range = Some((kernels.range)(part));
                }
            }
            let range = slices.iter().filter_map(|s| s.range).reduce(merge_ranges);
            let Some(ValueRange::Finite { min, max }) = range else {
                return Err(at_step(Error::Value("the state holds NaN or infinity".into()), t));
            };
            xq_hh.qparams = choose_qparams(min, max, 0, 255, reduce_range).map_err(|e| at_step(e, t))?;
            xq_hh.rows = active;
            quantized.iter().for_each(|q| q.store(PENDING, Ordering::Relaxed));
            let next_active = if i + 1 < packing.steps() { packing.step(time(packing, reverse, i + 1)).1 } else { 0 };
            let first_of_chunk = i == chunk.steps.start;
            let xq_bytes = SharedMut::new(&mut xq_hh.data);
            let work = StepWork {
                kernels,
                kind,
                hidden,
                plan,
                batch,
                ih,
                hh,
                xq_ih,
                chunk: first_of_chunk.then_some(&chunk),
                ig_rows: offset - chunk.first_row..offset - chunk.first_row + active,
                xq_hh,
                xq_bytes,
                h: SharedMut::new(h_all),
                quantized,
                next_active,
                offset,
                output: output.as_ref(),
            };
            let macs = step_macs(active, kind, hidden, ih.in_features());
            let failure = Mutex::new(None);
            for_shares_from(slices, 1, 1, macs, SPLIT_STEP_MACS, |first, share| {
                for (s, slice) in (first..).zip(share) {
                    if let Err(e) = slice_step(&work, s, slice) {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    }
                }
            });
            if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
                return Err(e);
            }
            ranged_rows = Some(next_active);
        }
    }
    for slice in slices.iter() {
        let n = slice.units.len();
        let h_part = &h_all[batch * slice.units.start..batch * slice.units.end];
        for (row, part) in state.h.chunks_exact_mut(hidden).zip(h_part.chunks_exact(n)) {
            row[slice.units.clone()].copy_from_slice(part);
        }
        for (row, part) in state.c.chunks_exact_mut(hidden).zip(slice.c.chunks_exact(n)) {
            row[slice.units.clone()].copy_from_slice(part);
        }
    }
    Ok(())
}

/// Slice `s`'s share of a step: its part of the step's quantized `h` (and any part no task has
/// claimed yet), its input projection of the chunk (at the chunk's first step), its hidden
/// projection, and the cell of its units over the step's running rows; then the range of its new
/// `h` over the next step's running rows, and its columns of the output.
fn slice_step(work: &StepWork<'_>, s: usize, slice: &mut SliceBuffers) -> Result<()> {
    let SliceBuffers { units, ih, hh, acc_ih, acc_hh, c, row_sums, range } = slice;
    let n = units.len();
    let columns = work.kind.gates() * n;
    let active = work.ig_rows.len();
    quantize_part(work, s);
    if let Some(chunk) = work.chunk {
        alloc::resize(acc_ih, chunk.rows * columns, 0)?;
        let acc = &mut acc_ih[..chunk.rows * columns];
        accumulate_gates(work, work.ih, work.xq_ih, chunk.first_row..chunk.first_row + chunk.rows, units, acc)?;
        let row_sums = if ih.corrects { &work.xq_ih.row_sums[chunk.first_row..] } else { &[] };
        ih.correct(work.xq_ih, row_sums, acc);
    }
    quantize_shared(work);
    let xq_hh = work.xq_hh;
    if hh.corrects {
        let (k, stride) = (xq_hh.k, xq_hh.stride);
        row_sums.clear();
        row_sums.extend((0..active).map(|r| byte_sum(&xq_hh.data[r * stride..r * stride + k])));
    }
    alloc::resize(acc_hh, active * columns, 0)?;
    let acc = &mut acc_hh[..active * columns];
    accumulate_gates(work, work.hh, xq_hh, 0..active, units, acc)?;
    let hg = Projected::Int8(hh.correct(xq_hh, row_sums, acc));
    let ig = Projected::Int8(ih.view(work.xq_ih, acc_ih)).rows(work.ig_rows.clone(), columns);
    let c = if c.is_empty() { &mut c[..] } else { &mut c[..active * n] };
    // SAFETY: the slice's part of `SplitBuffers::h` (`batch * n` values from `batch *
    // units.start`, inside it): only this task writes it, and every task has finished reading
    // it, since every part of the quantized `h` is `DONE` (`quantize_shared`); the other tasks
    // touch only their own parts until the step ends.
    let h = unsafe { std::slice::from_raw_parts_mut(work.h.ptr().add(work.batch * units.start), work.batch * n) };
    run_cell(work.kernels, work.kind, &hg, &ig, c, &mut h[..active * n], n);
    *range = Some((work.kernels.range)(&h[..work.next_active * n]));
    if let Some(output) = work.output {
        for (p, part) in h[..active * n].chunks_exact(n).enumerate() {
            let start = (work.offset + p) * output.stride + output.column + units.start;
            assert!(start + n <= output.len, "output row {} past the output", work.offset + p);
            // SAFETY: `start..start + n` lies in the output (just checked), and holds this
            // slice's units of one row: no other task writes or reads it during the step.
            unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), output.rows.ptr().add(start), n) };
        }
    }
    Ok(())
}
/// Writes slice `s`'s part of the step's quantized `h` (its units' columns of the running rows)
/// unless a task has claimed it already.
fn quantize_part(work: &StepWork<'_>, s: usize) {
    if work.quantized[s].compare_exchange(PENDING, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_err() {
        return;
    }
    let units = work.plan.units_of(s, work.hidden);
    let (n, active, stride) = (units.len(), work.ig_rows.len(), work.xq_hh.stride);
    let qparams = work.xq_hh.qparams;
    // SAFETY: slice `s`'s part of `SplitBuffers::h` (`batch * n` values from `batch *
    // units.start`), of which the step's running rows are read: no task writes any part before
    // every part of the quantized `h` is `DONE`, which this one is not until it is written below.
    let h = unsafe { std::slice::from_raw_parts(work.h.ptr().add(work.batch * units.start), active * n) };
    for (r, row) in h.chunks_exact(n).enumerate() {
        // SAFETY: the slice's columns of row `r < active <= rows` of the quantized `h`, inside
        // its `rows * stride` bytes (`units.end <= hidden = k <= stride`): only the task that
        // claimed the part writes them, and no task reads them before the part is `DONE`.
        let out = unsafe { std::slice::from_raw_parts_mut(work.xq_bytes.ptr().add(r * stride + units.start), n) };
        (work.kernels.quantize_u8)(row, qparams.inv_scale_f32(), qparams.zero_point, out);
    }
    work.quantized[s].store(DONE, Ordering::Release);
}

/// Returns once every slice's part of the step's quantized `h` is written, writing those no
/// task has claimed yet: a task never waits for a part nobody is writing (when one thread runs
/// every task, the first writes every part), only for parts other tasks are busy writing.
fn quantize_shared(work: &StepWork<'_>) {
    (0..work.quantized.len()).for_each(|s| quantize_part(work, s));
    for part in work.quantized {
        let mut spins = 0u32;
        while part.load(Ordering::Acquire) != DONE {
            spins = spins.saturating_add(1);
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The products of the rows `rows` of `xq` with `layer`'s rows of the slice's `units` in each
/// gate, into `acc` (rows of the slice's columns, gate after gate).
fn accumulate_gates(
    work: &StepWork<'_>,
    layer: &DynamicLinear,
    xq: &QuantizedActivations,
    rows: Range<usize>,
    units: &Range<usize>,
    acc: &mut [i32],
) -> Result<()> {
    let (n, hidden) = (units.len(), work.hidden);
    let columns = work.kind.gates() * n;
    for g in 0..work.kind.gates() {
        let gate_columns = g * hidden + units.start..g * hidden + units.end;
        layer.accumulate_columns(work.kernels, xq, rows.clone(), gate_columns, &mut acc[g * n..], columns)?;
    }
    Ok(())
}
