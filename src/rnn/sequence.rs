//! Whole sequences through a stack of recurrent layers (docs/numerics.md §4.1): per layer and direction,
//! the input projection is ONE dynamic-quantized product over every valid row of the sequence
//! (one activation scale for all steps and batch elements); the hidden projection quantizes the
//! hidden state of the running batch elements once per step; layer `l + 1` reads the
//! concatenated `[forward, reverse]` outputs of layer `l`, quantized again as one tensor.

use super::buffers::{with_buffers, Buffers, SequenceBuffers};
use super::cell_kind::CellKind;
use super::direction::{self, Call, LayerInput, Output, State};
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

/// Where [`Rnn::forward_into`] writes a sequence's results: `y`, `h_n` and `c_n` as in
/// [`SequenceOutput`] (`c_n` empty unless the stack is an LSTM), of the lengths
/// [`Rnn::output_lens`] gives. Every value is written: they need no initial values.
pub struct SequenceOutputMut<'a> {
    pub y: &'a mut [f32],
    pub h_n: &'a mut [f32],
    pub c_n: &'a mut [f32],
}

/// The part of a call that runs once the caller's arrays are read (see [`Rnn::forward_into`]).
pub type Detached<'a> = dyn FnMut() -> Result<()> + Send + 'a;

/// How the layers of one call run: their [`Call`], whether the first layer's input is quantized
/// per direction (else it is `first`, packed rows), whether the caller's `x` is in packed order
/// (`y` then too) and whether it is batch-first.
#[derive(Clone, Copy)]
struct Layers<'a> {
    call: &'a Call<'a>,
    quantized: [bool; 2],
    first: &'a [f32],
    in_order: bool,
    batch_first: bool,
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
        let [y_len, h_len, c_len] = self.output_lens(input.steps, input.batch)?;
        let (mut y, mut h_n, mut c_n) = (alloc::vec_of(y_len, 0.0)?, alloc::vec_of(h_len, 0.0)?, alloc::vec_of(c_len, 0.0)?);
        let out = SequenceOutputMut { y: &mut y, h_n: &mut h_n, c_n: &mut c_n };
        self.forward_into(kernels, input, reduce_range, out, |rest| rest())?;
        Ok(SequenceOutput { y, h_n, c_n: self.shape.kind.has_cell_state().then_some(c_n) })
    }

    /// The numbers of values of `y`, `h_n` and `c_n` (0 unless an LSTM) for `steps` x `batch`.
    pub fn output_lens(&self, steps: usize, batch: usize) -> Result<[usize; 3]> {
        let shape = &self.shape;
        let states = alloc::elements(shape.num_layers * shape.directions(), batch, "h_n")?;
        let y_rows = alloc::elements(steps, batch, "the output")?;
        Ok([
            alloc::elements(y_rows, shape.directions() * shape.output_size(), "the output")?,
            alloc::elements(states, shape.output_size(), "h_n")?,
            if shape.kind.has_cell_state() { alloc::elements(states, shape.hidden_size, "c_n")? } else { 0 },
        ])
    }

    /// [`Rnn::forward`] into `out`, in two parts. First, everything `input` holds is read: the
    /// initial states go where the steps update them, and the first layer's input is quantized
    /// for its int8 `W_ih` (packed, or for a float16 `W_ih` copied, when that needs floats). Then
    /// `detach` is called with the rest of the work, which reads nothing of `input`, only the
    /// stack, `out` and this thread's buffers; it must run it once and return its result. (The
    /// Python binding releases the GIL there: the caller's arrays, which other Python threads
    /// may change meanwhile, are never read without it.)
    pub fn forward_into(
        &self,
        kernels: &Kernels,
        input: &SequenceInput<'_>,
        reduce_range: bool,
        out: SequenceOutputMut<'_>,
        detach: impl FnOnce(&mut Detached<'_>) -> Result<()>,
    ) -> Result<()> {
        self.check_input(input)?;
        let lens = self.output_lens(input.steps, input.batch)?;
        let SequenceOutputMut { y, h_n, c_n } = out;
        if [y.len(), h_n.len(), c_n.len()] != lens {
            return Err(Error::Shape(format!("outputs of {}, {} and {} values, expected {lens:?}", y.len(), h_n.len(), c_n.len())));
        }
        if input.batch == 0 {
            // Nothing runs (and `steps` may be anything).
            return Ok(());
        }
        let packing = Packing::new(input.steps, input.batch, input.lengths)?;
        let call = Call { kernels, packing: &packing, reduce_range, shape: &self.shape };
        // Time-major input without lengths (or one batch element) is already in packed order.
        let in_order = input.lengths.is_none() && (!input.batch_first || input.batch == 1);
        let (sorted, batch_first, input_batch) = (input.lengths.is_some(), input.batch_first, input.batch);
        with_buffers(|buffers| {
            let mut sequence = std::mem::take(&mut buffers.sequence);
            let result = (|| {
                let quantized = self.read_input(&call, input, in_order, buffers, &mut sequence.input)?;
                let SequenceBuffers { input: first, outputs, h, c } = &mut sequence;
                // The states run in sorted order: in `h_n` and `c_n` themselves without lengths.
                let mut sorted_states = if sorted {
                    alloc::resize(h, h_n.len(), 0.0)?;
                    alloc::resize(c, c_n.len(), 0.0)?;
                    Some((&mut h[..h_n.len()], &mut c[..c_n.len()]))
                } else {
                    None
                };
                match sorted_states.as_mut() {
                    Some((h, c)) => self.read_states(&packing, input, h, c),
                    None => self.read_states(&packing, input, h_n, c_n),
                }
                detach(&mut || {
                    let layers = Layers { call: &call, quantized, first, in_order, batch_first };
                    let Some((h, c)) = sorted_states.as_mut() else {
                        return self.run_layers(&layers, outputs, h_n, c_n, y, buffers);
                    };
                    self.run_layers(&layers, outputs, h, c, y, buffers)?;
                    let (out_size, hidden) = (self.shape.output_size(), self.shape.hidden_size);
                    for (values, features, states) in [(&**h, out_size, &mut *h_n), (&**c, hidden, &mut *c_n)] {
                        let slot = input_batch * features;
                        for (sorted, state) in values.chunks_exact(slot).zip(states.chunks_exact_mut(slot)) {
                            packing.unsort_rows_into(sorted, features, state);
                        }
                    }
                    Ok(())
                })
            })();
            buffers.sequence = sequence;
            result
        })
    }

    /// Reads the first layer's input from `input.x`: quantized for each direction's int8 `W_ih`
    /// (the forward direction's into `xq_ih`, the reverse one's into `xq_first`) when `x` is in
    /// packed order (`in_order`); else, or for a float16 `W_ih`, packed or copied into `rows`.
    /// Says, per direction, whether its input is quantized.
    fn read_input(&self, call: &Call<'_>, input: &SequenceInput<'_>, in_order: bool, buffers: &mut Buffers, rows: &mut Vec<f32>) -> Result<[bool; 2]> {
        let mut quantized = [false; 2];
        if !in_order {
            call.packing.pack_into(input.x, self.shape.input_size, input.batch_first, rows)?;
            return Ok(quantized);
        }
        let mut copied = false;
        for (direction, cell) in self.cells.iter().take(self.shape.directions()).enumerate() {
            match &cell.ih {
                Projection::Int8(ih) => {
                    let xq = if direction == 0 { &mut buffers.xq_ih } else { &mut buffers.xq_first };
                    LayerInput::Rows(input.x).quantized(call, ih, xq)?;
                    quantized[direction] = true;
                }
                Projection::Fp16(_) if !copied => {
                    rows.clear();
                    alloc::reserve(rows, input.x.len())?;
                    rows.extend_from_slice(input.x);
                    copied = true;
                }
                Projection::Fp16(_) => {}
            }
        }
        Ok(quantized)
    }

    /// Puts the initial states (`input.h0` and `input.c0`, zeros when absent) of every layer and
    /// direction into `h` and `c`, rows in sorted order.
    fn read_states(&self, packing: &Packing, input: &SequenceInput<'_>, h: &mut [f32], c: &mut [f32]) {
        let (out_size, hidden) = (self.shape.output_size(), self.shape.hidden_size);
        for (state, initial, features) in [(h, input.h0, out_size), (c, input.c0, hidden)] {
            match initial {
                Some(initial) => {
                    let slot = input.batch * features;
                    for (sorted, values) in state.chunks_exact_mut(slot).zip(initial.chunks_exact(slot)) {
                        packing.sort_rows_into(values, features, sorted);
                    }
                }
                None => state.fill(0.0),
            }
        }
    }

    /// Runs every layer, updating the states `h` and `c` (sorted rows, every layer and direction)
    /// in place and writing the last layer's output to `y`: straight there when the input is in
    /// packed order, else to `outputs` and then unpacked. Layer `l` below the last writes
    /// `outputs[l % 2]`, which layer `l + 1` reads.
    fn run_layers(&self, layers: &Layers<'_>, outputs: &mut [Vec<f32>; 2], h: &mut [f32], c: &mut [f32], y: &mut [f32], buffers: &mut Buffers) -> Result<()> {
        let Layers { call, quantized, first, in_order, batch_first } = *layers;
        let shape = &self.shape;
        let (directions, out_size, hidden) = (shape.directions(), shape.output_size(), shape.hidden_size);
        let batch = h.len() / (self.cells.len() * out_size);
        let width = directions * out_size;
        let len = alloc::elements(call.packing.rows(), width, "a layer's output")?;
        let [even, odd] = outputs;
        for layer in 0..shape.num_layers {
            let (below, this) = if layer % 2 == 0 { (&*odd, &mut *even) } else { (&*even, &mut *odd) };
            let target: &mut [f32] = if layer + 1 == shape.num_layers && in_order {
                &mut *y
            } else {
                alloc::resize(this, len, 0.0)?;
                &mut this[..len]
            };
            for direction in 0..directions {
                let index = layer * directions + direction;
                let layer_input = match layer {
                    0 if quantized[direction] => LayerInput::Quantized,
                    0 => LayerInput::Rows(first),
                    _ => LayerInput::Rows(&below[..len]),
                };
                if layer == 0 && direction == 1 && quantized[1] {
                    std::mem::swap(&mut buffers.xq_ih, &mut buffers.xq_first);
                }
                let c = if c.is_empty() { &mut [][..] } else { &mut c[index * batch * hidden..(index + 1) * batch * hidden] };
                let mut state = State { h: &mut h[index * batch * out_size..(index + 1) * batch * out_size], c };
                let output = Output { rows: &mut *target, stride: width, column: direction * out_size };
                direction::run(call, &self.cells[index], direction == 1, layer_input, &mut state, Some(output), buffers)?;
            }
        }
        if !in_order {
            let last = if shape.num_layers % 2 == 1 { even } else { odd };
            call.packing.unpack_into(&last[..len], width, batch_first, y);
        }
        Ok(())
    }

    /// One step of a one-layer, one-direction stack without projection (a cell): `x` is
    /// `(batch, input_size)`; `h` (`(batch, hidden_size)`) and, for an LSTM, `c` (likewise;
    /// empty otherwise) hold the state and are updated in place. Equal to [`Rnn::forward`] on a
    /// one-step sequence.
    pub fn step(&self, kernels: &Kernels, x: &[f32], batch: usize, h: &mut [f32], c: &mut [f32], reduce_range: bool) -> Result<()> {
        self.step_into(kernels, x, batch, h, c, reduce_range, |rest| rest())
    }

    /// [`Rnn::step`] in two parts, as [`Rnn::forward_into`]: `x` is quantized (or, for a float16
    /// `W_ih`, copied) first, then `detach` is called with the step, which reads nothing of `x`.
    #[allow(clippy::too_many_arguments)] // the step's arguments and the detaching
    pub fn step_into(
        &self,
        kernels: &Kernels,
        x: &[f32],
        batch: usize,
        h: &mut [f32],
        c: &mut [f32],
        reduce_range: bool,
        detach: impl FnOnce(&mut Detached<'_>) -> Result<()>,
    ) -> Result<()> {
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
        let input = SequenceInput { x, steps: 1, batch, batch_first: false, h0: None, c0: None, lengths: None };
        with_buffers(|buffers| {
            let mut sequence = std::mem::take(&mut buffers.sequence);
            let result = (|| {
                let [quantized, _] = self.read_input(&call, &input, true, buffers, &mut sequence.input)?;
                let layer_input = if quantized { LayerInput::Quantized } else { LayerInput::Rows(&sequence.input) };
                let mut state = State { h, c };
                detach(&mut || direction::run(&call, &self.cells[0], false, layer_input, &mut state, None, buffers))
            })();
            buffers.sequence = sequence;
            result
        })
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
