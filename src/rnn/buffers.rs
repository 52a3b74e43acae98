//! The buffers of the recurrent layers' time loops and of whole sequences (the first layer's
//! input, the outputs of the layers below the last, the sorted states of a batch with lengths),
//! kept per thread between calls so that a stream of single steps (the cells) allocates nothing
//! once warmed up, on every path, a sequence allocates nothing per step, and repeated calls
//! fault in no fresh pages; whatever a call grew beyond [`KEEP_ELEMENTS`] (8 MiB of floats) is
//! freed when it ends, so that a thread keeps at most a few such buffers of its largest
//! recent call below that size. (A step large enough to be split between threads
//! still allocates its list of row shares: a few small vectors against millions of
//! multiply-accumulates.) `tests/rnn_allocations.rs` counts the allocations.

use std::cell::RefCell;

use super::projection::ProjectionScratch;
use super::unit_split::SplitBuffers;
use crate::linear::QuantizedActivations;

thread_local! {
    /// Each thread's buffers, kept between calls.
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Buffers above this many elements are freed after a call instead of kept for the next one.
const KEEP_ELEMENTS: usize = 1 << 21;

/// Runs `f` with this thread's reusable [`Buffers`] (fresh ones if they are in use already).
pub(super) fn with_buffers<R>(f: impl FnOnce(&mut Buffers) -> R) -> R {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => {
            let result = f(&mut buffers);
            buffers.trim();
            result
        }
        Err(_) => f(&mut Buffers::default()),
    })
}

/// Frees `v` if it holds more than [`KEEP_ELEMENTS`].
pub(super) fn trim_vec<T>(v: &mut Vec<T>) {
    if v.capacity() > KEEP_ELEMENTS {
        *v = Vec::new();
    }
}

/// Frees `xq` if its data holds more than [`KEEP_ELEMENTS`].
fn trim_activations(xq: &mut Option<QuantizedActivations>) {
    if xq.as_ref().is_some_and(|q| q.data.capacity() > KEEP_ELEMENTS) {
        *xq = None;
    }
}

impl Buffers {
    /// Frees the buffers a large call left behind, so that a thread keeps only small ones.
    fn trim(&mut self) {
        trim_activations(&mut self.xq_ih);
        trim_activations(&mut self.xq_first);
        let SequenceBuffers { input, outputs: [even, odd], h, c } = &mut self.sequence;
        [input, even, odd, h, c].into_iter().for_each(trim_vec);
        trim_vec(&mut self.acc_ih);
        trim_vec(&mut self.ig);
        trim_vec(&mut self.zeros);
        trim_activations(&mut self.step.xq_hh);
        trim_vec(&mut self.step.acc_hh);
        trim_vec(&mut self.step.hg);
        trim_vec(&mut self.step.unprojected);
        self.split.trim();
    }
}

/// Buffers reused by every layer and direction of a call, and by later calls.
#[derive(Default)]
pub(super) struct Buffers {
    /// The quantized layer input (int8 `W_ih`).
    pub xq_ih: Option<QuantizedActivations>,
    /// The first layer's input quantized for the reverse direction's int8 `W_ih`, while the
    /// forward direction runs on `xq_ih`.
    pub xq_first: Option<QuantizedActivations>,
    pub sequence: SequenceBuffers,
    /// Input-projection accumulators of one chunk (int8 `W_ih`).
    pub acc_ih: Vec<i32>,
    /// The input projection of every row (float16 `W_ih`).
    pub ig: Vec<f32>,
    /// The bias of int8 projections without one.
    pub zeros: Vec<f32>,
    pub step: StepBuffers,
    /// The buffers of steps split by hidden units ([`super::unit_split`]).
    pub split: SplitBuffers,
}

/// Buffers of a whole sequence.
#[derive(Default)]
pub(super) struct SequenceBuffers {
    /// The first layer's input when it runs on floats (packed, or a copy of the caller's).
    pub input: Vec<f32>,
    /// The outputs of the layers below the last (layer `l` writes `outputs[l % 2]`), and the
    /// last one's when the result needs unpacking.
    pub outputs: [Vec<f32>; 2],
    /// The states of every layer and direction in sorted order (a batch with lengths).
    pub h: Vec<f32>,
    pub c: Vec<f32>,
}

/// Buffers of one step.
#[derive(Default)]
pub(super) struct StepBuffers {
    /// The quantized hidden state (int8 `W_hh`).
    pub xq_hh: Option<QuantizedActivations>,
    /// Hidden-projection accumulators (int8 `W_hh`).
    pub acc_hh: Vec<i32>,
    /// The hidden projection (float16 `W_hh`).
    pub hg: Vec<f32>,
    /// LSTM `o * tanh(c)` before the projection `W_hr`.
    pub unprojected: Vec<f32>,
    pub scratch: ProjectionScratch,
}
