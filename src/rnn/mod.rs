//! Dynamic quantized recurrent layers: LSTM, GRU and Elman RNN stacks (multi-layer,
//! bidirectional, variable lengths) and, as their one-layer one-step case, the cells, with
//! PyTorch's x86 numerics (docs/numerics.md §4 and §5).
//!
//! Beyond PyTorch: `bias = false` (projections without bias), the Elman RNN, variable lengths on
//! padded input (packed-sequence semantics), and LSTM projections (`proj_size`): `h = W_hr (o *
//! tanh(c))` as a bias-free dynamic-quantized Linear whose input `o * tanh(c)` is quantized per
//! step over the running batch rows, like the hidden state.

mod buffers;
pub mod cell_kind;
mod direction;
pub mod packing;
pub mod projection;
pub mod sequence;
mod unit_split;

pub use cell_kind::CellKind;
pub use projection::Projection;
pub use sequence::{CellWeights, Detached, Rnn, RnnShape, SequenceInput, SequenceOutput, SequenceOutputMut};

