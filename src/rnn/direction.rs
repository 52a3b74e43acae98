//! The time loop of one layer in one direction (docs/numerics.md §4.1, §4.3).
//!
//! The input projection quantizes the whole layer input once (one scale for every step), as
//! PyTorch does, but its GEMM runs in chunks of about [`CHUNK_ROWS`] rows just ahead of the steps
//! that read them, so its int32 accumulators stay in cache and are dequantized inside the
//! element-wise pass, like the hidden projection's: per step, `h` is quantized, multiplied by
//! `W_hh` into int32, and one pass per row dequantizes both projections, adds them, applies the
//! activations and updates the state. float16-weight projections produce floats instead.

use super::buffers::{Buffers, StepBuffers};
use super::cell::{canonical_nan, CellKernels, CellKind};
use super::gates::{correct_zero_points, Accumulators, Gates};
use super::packing::Packing;
use super::projection::Projection;
use super::sequence::{CellWeights, RnnShape};
use crate::alloc;
use crate::error::{Error, Result};
use crate::kernels::Kernels;
use crate::linear::{DynamicLinear, Fp16Linear, QuantizedActivations};

/// Rows of input projection computed at a time: a multiple of the GEMM's row tiles, large enough
/// for its full speed, small enough for the accumulators to stay in cache.
const CHUNK_ROWS: usize = 64;

/// What every step of one call shares.
#[derive(Clone, Copy)]
pub(super) struct Call<'a> {
    pub kernels: &'a Kernels,
    /// The element-wise steps matching `kernels`' path.
    pub cells: CellKernels,
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

/// Where a direction writes its outputs: packed rows of `stride` values, from `column` on.
pub(super) struct Output<'a> {
    pub rows: &'a mut [f32],
    pub stride: usize,
    pub column: usize,
}

/// Runs the steps of one layer in one direction over `layer_input` (packed rows), updating
/// `state` and writing each step's `h` to `output`, if any.
pub(super) fn run(
    call: &Call<'_>,
    cell: &CellWeights,
    reverse: bool,
    layer_input: &[f32],
    state: &mut State<'_>,
    mut output: Option<Output<'_>>,
    buffers: &mut Buffers,
) -> Result<()> {
    let Call { kernels, packing, reduce_range, shape, .. } = *call;
    let columns = shape.kind.gates() * shape.hidden_size;
    let rows = packing.rows();
    let Buffers { xq_ih, acc_ih, ig, zeros, step } = buffers;
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
    match &cell.ih {
        Projection::Int8(l) => {
            let xq = xq_ih.get_or_insert_with(QuantizedActivations::empty);
            l.quantize_input_into(kernels, layer_input, rows, reduce_range, xq)?;
        }
        Projection::Fp16(l) => {
            alloc::resize(ig, alloc::elements(rows, columns, "the input projection")?, 0.0)?;
            l.forward(kernels, layer_input, rows, ig)?;
        }
    }
    let steps = packing.steps();
    let time = |i: usize| if reverse { steps - 1 - i } else { i };
    let mut next = 0;
    while next < steps {
        // A chunk: the next steps in processing order, up to CHUNK_ROWS rows (at least one step).
        let first = next;
        let mut chunk_rows = 0;
        while next < steps && (next == first || chunk_rows + packing.step(time(next)).1 <= CHUNK_ROWS) {
            chunk_rows += packing.step(time(next)).1;
            next += 1;
        }
        // Consecutive steps have consecutive packed rows, starting at the earliest step's.
        let first_row = packing.step(time(if reverse { next - 1 } else { first })).0;
        let ig_chunk = match (ih, xq_ih.as_ref()) {
            (Some(terms), Some(xq)) => {
                alloc::resize(acc_ih, chunk_rows * columns, 0)?;
                Gates::Int8(terms.accumulate(kernels, xq, first_row, &mut acc_ih[..chunk_rows * columns])?)
            }
            _ => Gates::Float(&ig[first_row * columns..(first_row + chunk_rows) * columns]),
        };
        for i in first..next {
            let t = time(i);
            let (offset, active) = packing.step(t);
            if active == 0 {
                continue;
            }
            let ig = ig_chunk.rows(offset - first_row..offset - first_row + active, columns);
            let out_size = shape.output_size();
            let h = &mut state.h[..active * out_size];
            let c = &mut state.c[..if shape.kind.has_cell_state() { active * shape.hidden_size } else { 0 }];
            one_step(call, hh, cell.hr.as_ref(), &ig, h, c, step).map_err(|e| at_step(e, t))?;
            if let Some(output) = output.as_mut() {
                for (p, h_row) in h.chunks_exact(out_size).enumerate() {
                    let start = (offset + p) * output.stride + output.column;
                    output.rows[start..start + out_size].copy_from_slice(h_row);
                }
            }
        }
    }
    Ok(())
}

/// `W_hh`, with the terms of its dequantization when it is int8.
#[derive(Clone, Copy)]
enum Hidden<'a> {
    Int8(Int8Terms<'a>),
    Fp16(&'a Fp16Linear),
}

/// One step over the running rows (`h`, and `c` for an LSTM), given their input projection; `hr`
/// is the LSTM projection, if any.
fn one_step(
    call: &Call<'_>,
    hh: Hidden<'_>,
    hr: Option<&Projection>,
    ig: &Gates<'_>,
    h: &mut [f32],
    c: &mut [f32],
    buffers: &mut StepBuffers,
) -> Result<()> {
    let Call { kernels, cells, reduce_range, shape, .. } = *call;
    let hidden = shape.hidden_size;
    let columns = shape.kind.gates() * hidden;
    let active = h.len() / shape.output_size();
    let StepBuffers { xq_hh, acc_hh, hg, unprojected, scratch } = buffers;
    let hg = match hh {
        Hidden::Int8(terms) => {
            let xq = xq_hh.get_or_insert_with(QuantizedActivations::empty);
            terms.layer.quantize_input_into(kernels, h, active, reduce_range, xq)?;
            alloc::resize(acc_hh, active * columns, 0)?;
            Gates::Int8(terms.accumulate(kernels, xq, 0, &mut acc_hh[..active * columns])?)
        }
        Hidden::Fp16(l) => {
            alloc::resize(hg, active * columns, 0.0)?;
            l.forward(kernels, h, active, hg)?;
            Gates::Float(hg)
        }
    };
    match (shape.kind, hr) {
        (CellKind::Lstm, None) => (cells.lstm)(&hg, ig, c, h, hidden),
        (CellKind::Lstm, Some(hr)) => {
            alloc::resize(unprojected, active * hidden, 0.0)?;
            (cells.lstm)(&hg, ig, c, unprojected, hidden);
            hr.forward(kernels, unprojected, active, reduce_range, h, scratch)?;
            h.iter_mut().for_each(|v| *v = canonical_nan(*v));
        }
        (CellKind::Gru, _) => (cells.gru)(&hg, ig, h, hidden),
        (kind, _) => (cells.simple)(kind, &hg, ig, h, hidden),
    }
    Ok(())
}

/// An int8 projection with the per-column terms of its dequantization ([`Accumulators`]).
#[derive(Clone, Copy)]
struct Int8Terms<'a> {
    layer: &'a DynamicLinear,
    /// The weight zero points, `None` when they are all 0 (their correction term vanishes).
    zero_points: Option<&'a [i32]>,
    /// The bias, or `zeros`.
    bias: &'a [f32],
}

impl<'a> Int8Terms<'a> {
    /// `layer`'s terms; `zeros` (at least `out_features` zeros) stands in for a missing bias.
    fn new(layer: &'a DynamicLinear, zeros: &'a [f32]) -> Self {
        let terms = layer.epilogue_terms();
        // An OR over all of them (vectorizes, unlike an early-exit search).
        let zero_points = Some(terms.zero_points).filter(|zps| zps.iter().fold(0, |acc, &z| acc | z) != 0);
        Int8Terms { layer, zero_points, bias: terms.bias.unwrap_or(zeros) }
    }

    /// The products of `xq`'s rows from `first_row` on (as many as `acc` holds), zero-point
    /// corrected, with their dequantization.
    fn accumulate<'b>(&self, kernels: &Kernels, xq: &QuantizedActivations, first_row: usize, acc: &'b mut [i32]) -> Result<Accumulators<'b>>
    where
        'a: 'b,
    {
        self.layer.accumulate(kernels, xq, first_row, acc)?;
        if let Some(zero_points) = self.zero_points {
            correct_zero_points(acc, &xq.row_sums[first_row..], zero_points);
        }
        let terms = self.layer.epilogue_terms();
        Ok(Accumulators {
            acc,
            x_zero_point: xq.qparams.zero_point,
            x_scale: xq.qparams.scale_f32(),
            col_offsets: terms.col_offsets,
            scales: terms.scales,
            bias: self.bias,
        })
    }
}

/// Says which step's state could not be quantized: a finite input gives a finite state unless
/// the recurrence overflows (an Elman relu stack can), and only NaN or infinity fails to quantize.
fn at_step(err: Error, t: usize) -> Error {
    match err {
        Error::Value(_) => Error::Value(format!(
            "the recurrent state at step {t} holds NaN or infinity (the recurrence overflowed) and cannot be quantized"
        )),
        other => other,
    }
}
