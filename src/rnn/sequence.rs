//! Whole sequences through a stack of recurrent layers (docs/numerics.md §4.1): per layer and direction,
//! the input projection is ONE dynamic-quantized product over every valid row of the sequence
//! (one activation scale for all steps and batch elements); the hidden projection quantizes the
//! hidden state of the running batch elements once per step; layer `l + 1` reads the
//! concatenated `[forward, reverse]` outputs of layer `l`, quantized again as one tensor.

use std::borrow::Cow;

use super::cell_kind::CellKind;
use super::buffers::with_buffers;
use super::direction::{self, Call, Output, State};
use super::packing::Packing;
use super::projection::Projection;
use crate::alloc;
use crate::error::{Error, Result};
use crate::kernels::Kernels;

/// The weights of one layer in one direction; each projection carries its own bias.
#[derive(Clone, Debug)]
pub struct CellWeights {
    /// `W_ih` (`gates * hidden` x layer input), with `b_ih`.
    pub ih: Projection,
    /// `W_hh` (`gates * hidden` x output size), with `b_hh`.
    pub hh: Projection,
    /// LSTM projection `W_hr` (`proj_size` x `hidden`), bias-free: `h = W_hr (o * tanh(c))`.
    pub hr: Option<Projection>,
}

/// The configuration of a stack of recurrent layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnShape {
    pub kind: CellKind,
    pub input_size: usize,
    pub hidden_size: usize,
    /// 0 for none; otherwise LSTM only, smaller than `hidden_size`.
    pub proj_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
}

impl RnnShape {
    /// 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Features of `h`: `proj_size` when projecting, else `hidden_size`.
    pub fn output_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Features of layer `layer`'s input.
    fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.directions() * self.output_size()
        }
    }
}

/// One call's input: `x` is `(steps, batch, input_size)`, or `(batch, steps, input_size)` when
/// `batch_first`; `h0` is `(layers * directions, batch, output_size)` and `c0` (LSTM) is
/// `(layers * directions, batch, hidden_size)`, zeros when absent; `lengths` gives each batch
/// element's number of valid steps (all `steps` when absent).
#[derive(Clone, Copy, Debug)]
pub struct SequenceInput<'a> {
    pub x: &'a [f32],
    pub steps: usize,
    pub batch: usize,
    pub batch_first: bool,
    pub h0: Option<&'a [f32]>,
    pub c0: Option<&'a [f32]>,
    pub lengths: Option<&'a [usize]>,
}

/// `y` in the input's layout with `directions * output_size` features (zeros past each
/// sequence's end); `h_n`/`c_n` shaped like `h0`/`c0`, each element's state after its last step.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceOutput {
    pub y: Vec<f32>,
    pub h_n: Vec<f32>,
    pub c_n: Option<Vec<f32>>,
}

/// A stack of recurrent layers with packed weights.
#[derive(Clone, Debug)]
pub struct Rnn {
    shape: RnnShape,
    /// Index `layer * directions + direction`.
    cells: Vec<CellWeights>,
}

impl Rnn {
    /// Checks every projection's shape against `shape`.
    pub fn new(shape: RnnShape, cells: Vec<CellWeights>) -> Result<Self> {
        if shape.hidden_size == 0 || shape.num_layers == 0 {
            return Err(Error::Value(format!(
                "hidden_size and num_layers must be positive, got {} and {}",
                shape.hidden_size, shape.num_layers
            )));
        }
        if shape.proj_size > 0 && (shape.kind != CellKind::Lstm || shape.proj_size >= shape.hidden_size) {
            return Err(Error::Value(format!(
                "proj_size ({}) needs an LSTM and must be smaller than hidden_size ({})",
                shape.proj_size, shape.hidden_size
            )));
        }
        let expected = alloc::elements(shape.num_layers, shape.directions(), "the cells (layers x directions)")?;
        if cells.len() != expected {
            return Err(Error::Shape(format!("expected {expected} cells (layers x directions), got {}", cells.len())));
        }
        let rows = alloc::elements(shape.kind.gates(), shape.hidden_size, "a gate matrix")?;
        let check = |what: &str, p: &Projection, out: usize, input: usize| -> Result<()> {
            if p.out_features() != out || p.in_features() != input {
                return Err(Error::Shape(format!(
                    "{what} has shape ({}, {}), expected ({out}, {input})",
                    p.out_features(),
                    p.in_features()
                )));
            }
            Ok(())
        };
        for (index, cell) in cells.iter().enumerate() {
            let layer = index / shape.directions();
            check(&format!("W_ih of cell {index}"), &cell.ih, rows, shape.layer_input_size(layer))?;
            check(&format!("W_hh of cell {index}"), &cell.hh, rows, shape.output_size())?;
            match (&cell.hr, shape.proj_size) {
                (None, 0) => {}
                (Some(hr), p) if p > 0 => check(&format!("W_hr of cell {index}"), hr, p, shape.hidden_size)?,
                _ => {
                    return Err(Error::Shape(format!(
                        "cell {index}: a projection W_hr is needed exactly when proj_size > 0 (proj_size = {})",
                        shape.proj_size
                    )))
                }
            }
        }
        Ok(Rnn { shape, cells })
    }

    pub fn shape(&self) -> &RnnShape {
        &self.shape
    }

    /// The weights, `layer * directions + direction`.
    pub fn cells(&self) -> &[CellWeights] {
        &self.cells
    }

    /// Runs the whole sequence (docs/numerics.md §4.1, §4.3); `reduce_range` picks activation levels 0..127
    /// (PyTorch) or 0..255 for every int8 projection.
    pub fn forward(&self, kernels: &Kernels, input: &SequenceInput<'_>, reduce_range: bool) -> Result<SequenceOutput> {
        self.check_input(input)?;
        let shape = &self.shape;
        let (directions, out_size, hidden) = (shape.directions(), shape.output_size(), shape.hidden_size);
        let batch = input.batch;
        let state_rows = alloc::elements(shape.num_layers * directions, batch, "h_n")?;
        let mut h_n = alloc::vec_of(alloc::elements(state_rows, out_size, "h_n")?, 0.0)?;
        let c_len = if shape.kind.has_cell_state() { alloc::elements(state_rows, hidden, "c_n")? } else { 0 };
        let mut c_n = alloc::vec_of(c_len, 0.0)?;
        if batch == 0 {
            // Nothing runs (and `steps` may be anything).
            return Ok(SequenceOutput { y: Vec::new(), h_n, c_n: shape.kind.has_cell_state().then_some(c_n) });
        }
        let packing = Packing::new(input.steps, batch, input.lengths)?;
        let rows = packing.rows();

        let call = Call { kernels, packing: &packing, reduce_range, shape };
        // Time-major input without lengths (or one batch element) is already in packed order.
        let in_order = input.lengths.is_none() && (!input.batch_first || batch == 1);
        let mut layer_input = if in_order {
            Cow::Borrowed(input.x)
        } else {
            Cow::Owned(packing.pack(input.x, shape.input_size, input.batch_first)?)
        };
        for layer in 0..shape.num_layers {
            let mut layer_output = alloc::vec_of(alloc::elements(rows, directions * out_size, "a layer's output")?, 0.0)?;
            for direction in 0..directions {
                let index = layer * directions + direction;
                let h_slot = index * batch * out_size..(index + 1) * batch * out_size;
                let c_slot = index * batch * hidden..(index + 1) * batch * hidden;
                let mut h = match input.h0 {
                    Some(h0) => packing.sort_rows(&h0[h_slot.clone()], out_size)?,
                    None => alloc::vec_of(batch * out_size, 0.0)?,
                };
                let mut c = match input.c0 {
                    Some(c0) => packing.sort_rows(&c0[c_slot.clone()], hidden)?,
                    None if shape.kind.has_cell_state() => alloc::vec_of(batch * hidden, 0.0)?,
                    None => Vec::new(),
                };
                let mut state = State { h: &mut h, c: &mut c };
                let output = Output { rows: &mut layer_output, stride: directions * out_size, column: direction * out_size };
                with_buffers(|buffers| {
                    direction::run(&call, &self.cells[index], direction == 1, &layer_input, &mut state, Some(output), buffers)
                })?;
                packing.unsort_rows_into(&h, out_size, &mut h_n[h_slot]);
                if shape.kind.has_cell_state() {
                    packing.unsort_rows_into(&c, hidden, &mut c_n[c_slot]);
                }
            }
            layer_input = Cow::Owned(layer_output);
        }
        let y = if in_order {
            layer_input.into_owned()
        } else {
            packing.unpack(&layer_input, directions * out_size, input.batch_first)?
        };
        Ok(SequenceOutput { y, h_n, c_n: shape.kind.has_cell_state().then_some(c_n) })
    }

    /// One step of a one-layer, one-direction stack without projection (a cell): `x` is
    /// `(batch, input_size)`; `h` (`(batch, hidden_size)`) and, for an LSTM, `c` (likewise;
    /// empty otherwise) hold the state and are updated in place. Equal to [`Rnn::forward`] on a
    /// one-step sequence.
    pub fn step(&self, kernels: &Kernels, x: &[f32], batch: usize, h: &mut [f32], c: &mut [f32], reduce_range: bool) -> Result<()> {
        let shape = &self.shape;
        if shape.num_layers != 1 || shape.bidirectional || shape.proj_size != 0 {
            return Err(Error::Value("a single step needs one layer, one direction and no projection".into()));
        }
        let hidden = shape.hidden_size;
        let c_len = if shape.kind.has_cell_state() { batch * hidden } else { 0 };
        if Some(x.len()) != batch.checked_mul(shape.input_size) || Some(h.len()) != batch.checked_mul(hidden) || c.len() != c_len {
            return Err(Error::Shape(format!(
                "a step of batch {batch} takes input ({batch}, {}), h ({batch}, {hidden}) and {}, got {}, {} and {} values",
                shape.input_size,
                if c_len > 0 { "c of the same shape" } else { "no c" },
                x.len(),
                h.len(),
                c.len()
            )));
        }
        let packing = Packing::new(1, batch, None)?;
        let call = Call { kernels, packing: &packing, reduce_range, shape };
        let mut state = State { h, c };
        with_buffers(|buffers| direction::run(&call, &self.cells[0], false, x, &mut state, None, buffers))
    }

    fn check_input(&self, input: &SequenceInput<'_>) -> Result<()> {
        let shape = &self.shape;
        if input.steps == 0 {
            return Err(Error::Shape("Expected sequence length to be larger than 0 in RNN".into()));
        }
        let expect = |what: &str, len: usize, dims: [usize; 3]| -> Result<()> {
            if Some(len) != dims[0].checked_mul(dims[1]).and_then(|v| v.checked_mul(dims[2])) {
                return Err(Error::Shape(format!("{what} has {len} elements, expected {dims:?}")));
            }
            Ok(())
        };
        let x_dims = if input.batch_first {
            [input.batch, input.steps, shape.input_size]
        } else {
            [input.steps, input.batch, shape.input_size]
        };
        expect("input", input.x.len(), x_dims)?;
        let states = shape.num_layers * shape.directions();
        if let Some(h0) = input.h0 {
            expect("h0", h0.len(), [states, input.batch, shape.output_size()])?;
        }
        match (input.c0, shape.kind.has_cell_state()) {
            (Some(c0), true) => expect("c0", c0.len(), [states, input.batch, shape.hidden_size])?,
            (Some(_), false) => return Err(Error::Value("c0 is only used by an LSTM".into())),
            (None, _) => {}
        }
        Ok(())
    }
}
