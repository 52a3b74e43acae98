//! One linear map of a recurrent cell (`W_ih`, `W_hh` or the LSTM projection `W_hr`), with int8
//! weights (dynamic quantization of its input, docs/numerics.md §2.1) or float16 weights (docs/numerics.md §2.3).

use std::sync::Arc;

use crate::error::Result;
use crate::kernels::Kernels;
use crate::linear::{DynamicLinear, Fp16Linear, LinearScratch, QuantizedActivations};

/// The weights of one linear map inside a recurrent layer; its bias, if any, is fused in. Shared
/// (not copied) with the Python objects they were built from.
#[derive(Clone, Debug)]
pub enum Projection {
    /// int8 weights: every call quantizes its whole input with one scale and zero point.
    Int8(Arc<DynamicLinear>),
    /// float16 weights, float32 activations: nothing is quantized.
    Fp16(Arc<Fp16Linear>),
}

/// Buffers a [`Projection`] reuses across calls.
#[derive(Clone, Debug)]
pub struct ProjectionScratch {
    activations: QuantizedActivations,
    linear: LinearScratch,
}

impl Default for ProjectionScratch {
    fn default() -> Self {
        ProjectionScratch { activations: QuantizedActivations::empty(), linear: LinearScratch::default() }
    }
}

impl Projection {
    pub fn in_features(&self) -> usize {
        match self {
            Projection::Int8(l) => l.in_features(),
            Projection::Fp16(l) => l.in_features(),
        }
    }

    pub fn out_features(&self) -> usize {
        match self {
            Projection::Int8(l) => l.out_features(),
            Projection::Fp16(l) => l.out_features(),
        }
    }

    /// `out = x @ W^T + b` for `x` of `rows x in_features`. The int8 path quantizes all of `x`
    /// with one set of qparams (levels 0..127 when `reduce_range`): what goes into one call is
    /// what shares a scale.
    pub fn forward(
        &self,
        kernels: &Kernels,
        x: &[f32],
        rows: usize,
        reduce_range: bool,
        out: &mut [f32],
        scratch: &mut ProjectionScratch,
    ) -> Result<()> {
        match self {
            Projection::Int8(l) => {
                l.quantize_input_into(kernels, x, rows, reduce_range, &mut scratch.activations)?;
                l.forward_quantized_with(kernels, &scratch.activations, out, &mut scratch.linear)
            }
            Projection::Fp16(l) => l.forward(kernels, x, rows, out),
        }
    }
}
