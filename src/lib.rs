//! ferroq: int8 quantized neural-network layers for CPU inference, with PyTorch's numerics.
//!
//! The crate is usable from Rust on its own (`--no-default-features`); the `python` feature adds
//! the PyO3 module `ferroq._core` that the Python package wraps.

pub mod activations;
pub mod alloc;
mod block_buffer;
pub mod column_blocks;
pub mod dispatch;
pub mod embedding_bag;
pub mod error;
pub mod kernels;
pub mod linear;
pub mod pack;
pub mod pack_stream;
pub mod quant;
pub mod requantize;
pub mod rnn;
pub mod static_linear;
pub mod threads;

#[cfg(feature = "python")]
mod py;

pub use dispatch::{active_isa, kernels, kernels_for, supported_isas};
pub use kernels::Isa;
pub use error::{Error, Result};
