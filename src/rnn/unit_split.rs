//! The time loop of one layer direction with every step split between the intra-op threads by
//! hidden units, reading the layer's one packed copy of its weights.
//!
//! A recurrent layer's `W_ih` and `W_hh` are packed in column blocks that never straddle a gate
//! ([`gate_block_width`](crate::column_blocks::gate_block_width)): the gate rows of a range of
//! whole blocks of hidden units are whole blocks in every gate. Slice `s` owns such a range of
//! units; its task computes, for those units and all of their gates, the input projection of a
//! chunk of steps (at the chunk's first step), the step's hidden projection and the element-wise
//! cell, on its own buffers, laid out as a layer of that many units so that the cell kernels run
//! on them unchanged. The calling thread then quantizes the slices' new `h` for the next step (its
//! scale needs every unit of every running row), reading it where the slices left it (the whole
//! state is put together only after the last step), and writes it to the output: one parallel
//! section per step, each thread streaming only its part of the weights, which stays in that
//! core's cache.
//!
//! Same bits as one thread: integer products are exact, each column is dequantized with its own
//! terms, each unit's cell reads only that unit's values, and a slice starts at a multiple of
//! [`GATE_BLOCK_ALIGN`] units, so each unit gets the sigmoid form it gets in one piece.

use std::ops::Range;
use std::sync::Mutex;

use super::buffers::{trim_vec, Buffers};
use super::cell_kind::CellKind;
use super::direction::{at_step, next_chunk, run_cell, time, Call, Chunk, LayerInput, Output, State, SHARE_ROWS_UNIT};
use super::projection::Projection;
use super::sequence::CellWeights;
use crate::alloc;
use crate::column_blocks::GATE_BLOCK_ALIGN;
use crate::error::{Error, Result};
use crate::kernels::{correct_zero_points, Accumulators, Kernels, Projected};
use crate::linear::{DynamicLinear, QuantizedActivations};
use crate::threads::{for_shares, num_threads, PARALLEL_THRESHOLD_MACS};

/// How the hidden units of a layer direction are cut: slices of `units` units (the last one
/// shorter), `slices` of them.
pub(super) struct Plan {
    units: usize,
    slices: usize,
}

/// The cut of `cell`'s hidden units between the intra-op threads when its steps are worth
/// splitting so, else `None`: both projections int8 and packed in the same gate-aligned blocks,
/// no LSTM projection, at least two blocks per gate and two threads, and a step (with its share of
/// the input projection) of at least [`PARALLEL_THRESHOLD_MACS`] for the whole batch. With more
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
    let step_macs = batch.saturating_mul(shape.kind.gates() * hidden).saturating_mul(hidden + ih.in_features());
    let threads = num_threads();
    if threads < 2 || blocks < 2 || step_macs < PARALLEL_THRESHOLD_MACS || (threads > blocks && batch >= threads * SHARE_ROWS_UNIT) {
        return None;
    }
    let units = blocks.div_ceil(threads.min(blocks)) * block;
    Some(Plan { units, slices: hidden.div_ceil(units) })
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

    /// The accumulators `acc` of the rows of `xq` from `first_row` on, zero-point corrected, with
    /// their dequantization.
    fn correct<'a>(&'a self, xq: &QuantizedActivations, first_row: usize, acc: &'a mut [i32]) -> Accumulators<'a> {
        if self.corrects {
            correct_zero_points(acc, &xq.row_sums[first_row..], &self.zero_points);
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

/// One slice's units, the terms of its columns, and its buffers: the input-projection
/// accumulators of a chunk, the hidden-projection ones of a step, and its units of the state
/// (`c` empty unless an LSTM), all laid out as a layer of the slice's units.
#[derive(Default)]
pub(super) struct SliceBuffers {
    units: Range<usize>,
    ih: SliceTerms,
    hh: SliceTerms,
    acc_ih: Vec<i32>,
    acc_hh: Vec<i32>,
    c: Vec<f32>,
    h: Vec<f32>,
}

impl SliceBuffers {
    /// Frees what a large call left behind (see [`Buffers`]).
    pub(super) fn trim(&mut self) {
        self.ih.trim();
        self.hh.trim();
        trim_vec(&mut self.acc_ih);
        trim_vec(&mut self.acc_hh);
        trim_vec(&mut self.c);
        trim_vec(&mut self.h);
    }
}

/// What every slice of one step reads.
struct StepWork<'a> {
    kernels: &'a Kernels,
    kind: CellKind,
    hidden: usize,
    ih: &'a DynamicLinear,
    hh: &'a DynamicLinear,
    /// The quantized layer input, and the chunk whose input projection this step computes (its
    /// first step), else `None`.
    xq_ih: &'a QuantizedActivations,
    chunk: Option<&'a Chunk>,
    /// The step's rows within its chunk's input projection.
    ig_rows: Range<usize>,
    /// The quantized `h` of the running rows.
    xq_hh: &'a QuantizedActivations,
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
    mut output: Option<Output<'_>>,
    buffers: &mut Buffers,
) -> Result<()> {
    let Call { kernels, packing, reduce_range, shape } = *call;
    let (Projection::Int8(ih), Projection::Int8(hh)) = (&cell.ih, &cell.hh) else {
        return Err(Error::Value("a step split by hidden units needs int8 projections".into()));
    };
    let (kind, hidden, gates) = (shape.kind, shape.hidden_size, shape.kind.gates());
    let batch = state.h.len() / hidden;
    let Buffers { xq_ih, step, slices, .. } = buffers;
    if slices.len() < plan.slices {
        alloc::reserve(slices, plan.slices - slices.len())?;
        slices.resize_with(plan.slices, SliceBuffers::default);
    }
    let slices = &mut slices[..plan.slices];
    for (s, slice) in slices.iter_mut().enumerate() {
        let units = s * plan.units..((s + 1) * plan.units).min(hidden);
        slice.ih.gather(ih, gates, hidden, &units)?;
        slice.hh.gather(hh, gates, hidden, &units)?;
        let n = units.len();
        alloc::resize(&mut slice.h, batch * n, 0.0)?;
        alloc::resize(&mut slice.c, if kind.has_cell_state() { batch * n } else { 0 }, 0.0)?;
        for (row, part) in state.h.chunks_exact(hidden).zip(slice.h.chunks_exact_mut(n)) {
            part.copy_from_slice(&row[units.clone()]);
        }
        for (row, part) in state.c.chunks_exact(hidden).zip(slice.c.chunks_exact_mut(n)) {
            part.copy_from_slice(&row[units.clone()]);
        }
        slice.units = units;
    }
    let xq_ih = layer_input.quantized(call, ih, xq_ih)?;
    let xq_hh = step.xq_hh.get_or_insert_with(QuantizedActivations::empty);
    let columns = gates * hidden;
    let mut next = 0;
    while let Some(chunk) = next_chunk(packing, reverse, next) {
        next = chunk.steps.end;
        for i in chunk.steps.clone() {
            let t = time(packing, reverse, i);
            let (offset, active) = packing.step(t);
            if active == 0 {
                continue;
            }
            let h_parts = || slices.iter().map(|s| (&s.h[..active * s.units.len()], s.units.len()));
            hh.quantize_input_parts_into(kernels, h_parts, active, reduce_range, xq_hh).map_err(|e| at_step(e, t))?;
            let first_of_chunk = i == chunk.steps.start;
            let work = StepWork {
                kernels,
                kind,
                hidden,
                ih,
                hh,
                xq_ih,
                chunk: first_of_chunk.then_some(&chunk),
                ig_rows: offset - chunk.first_row..offset - chunk.first_row + active,
                xq_hh,
            };
            let ih_macs = if first_of_chunk { chunk.rows * columns * ih.in_features() } else { 0 };
            let failure = Mutex::new(None);
            for_shares(slices, 1, 1, active * columns * hidden + ih_macs, |_, share| {
                for slice in share {
                    if let Err(e) = slice_step(&work, slice) {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    }
                }
            });
            if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
                return Err(e);
            }
            if let Some(output) = output.as_mut() {
                for slice in slices.iter() {
                    write_units(output, offset, slice, active);
                }
            }
        }
    }
    for slice in slices.iter() {
        let n = slice.units.len();
        for (row, part) in state.h.chunks_exact_mut(hidden).zip(slice.h.chunks_exact(n)) {
            row[slice.units.clone()].copy_from_slice(part);
        }
        for (row, part) in state.c.chunks_exact_mut(hidden).zip(slice.c.chunks_exact(n)) {
            row[slice.units.clone()].copy_from_slice(part);
        }
    }
    Ok(())
}

/// Writes the slice's units of its first `active` rows of `h` as their columns of the packed
/// output rows from `offset` on.
fn write_units(output: &mut Output<'_>, offset: usize, slice: &SliceBuffers, active: usize) {
    let n = slice.units.len();
    for (p, part) in slice.h[..active * n].chunks_exact(n).enumerate() {
        let start = (offset + p) * output.stride + output.column + slice.units.start;
        output.rows[start..start + n].copy_from_slice(part);
    }
}

/// One slice's share of a step: its input projection of the chunk (at the chunk's first step),
/// its hidden projection, and the cell of its units over the step's running rows.
fn slice_step(work: &StepWork<'_>, slice: &mut SliceBuffers) -> Result<()> {
    let SliceBuffers { units, ih, hh, acc_ih, acc_hh, c, h } = slice;
    let n = units.len();
    let columns = work.kind.gates() * n;
    let active = work.ig_rows.len();
    if let Some(chunk) = work.chunk {
        alloc::resize(acc_ih, chunk.rows * columns, 0)?;
        let acc = &mut acc_ih[..chunk.rows * columns];
        accumulate_gates(work, work.ih, work.xq_ih, chunk.first_row..chunk.first_row + chunk.rows, units, acc)?;
        ih.correct(work.xq_ih, chunk.first_row, acc);
    }
    alloc::resize(acc_hh, active * columns, 0)?;
    let acc = &mut acc_hh[..active * columns];
    accumulate_gates(work, work.hh, work.xq_hh, 0..active, units, acc)?;
    let hg = Projected::Int8(hh.correct(work.xq_hh, 0, acc));
    let ig = Projected::Int8(ih.view(work.xq_ih, acc_ih)).rows(work.ig_rows.clone(), columns);
    let c = if c.is_empty() { &mut c[..] } else { &mut c[..active * n] };
    run_cell(work.kernels, work.kind, &hg, &ig, c, &mut h[..active * n], n);
    Ok(())
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
