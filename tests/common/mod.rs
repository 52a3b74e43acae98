//! What the Rust integration tests share: one deterministic generator ([`Rng`]), the list of
//! kernel paths to test (saying loudly which ones this machine cannot run), float comparison by
//! bits, and recurrent stacks of every weight kind.
//!
//! Each test binary includes this module (`mod common;`) and uses a part of it.
#![allow(dead_code)] // each test binary uses a different part

use ferroq::column_blocks::gate_block_width;
use ferroq::kernels::Kernels;
use ferroq::linear::{DynamicLinear, Fp16Linear};
use ferroq::rnn::{CellWeights, Projection, Rnn, RnnShape};
use ferroq::{kernels_for, supported_isas, Isa};

/// SplitMix64: a small deterministic generator, so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Uniform in `lo..hi`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }

    /// `n` values uniform in `-scale..scale`.
    pub fn floats(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(-scale, scale)).collect()
    }

    /// Any byte.
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// Any finite float: random bits, with the exponent redrawn when it would be all ones.
    pub fn finite_bits(&mut self) -> f32 {
        let v = f32::from_bits(self.next() as u32);
        if v.is_finite() {
            v
        } else {
            f32::from_bits(self.next() as u32 & 0xbf7f_ffff)
        }
    }
}

/// Every supported path but scalar, after saying loudly which paths this run does not test. With
/// `FERROQ_REQUIRE_ISAS` (comma-separated names, e.g. `avx2,avxvnni,avx512vnni`) a missing path
/// is an error, as on a CI machine known to have it.
pub fn simd_paths() -> Vec<Kernels> {
    let supported = supported_isas();
    for isa in Isa::ALL.into_iter().filter(|isa| !supported.contains(isa)) {
        eprintln!("!!!!! NOT TESTED: the {} path is not supported on this machine !!!!!", isa.name());
    }
    if let Ok(required) = std::env::var("FERROQ_REQUIRE_ISAS") {
        for name in required.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let isa = Isa::from_name(name).unwrap_or_else(|| panic!("FERROQ_REQUIRE_ISAS names an unknown path {name:?}"));
            assert!(supported.contains(&isa), "FERROQ_REQUIRE_ISAS requires {name}, which this machine does not support");
        }
    }
    let paths: Vec<Kernels> =
        supported.into_iter().filter(|&isa| isa != Isa::Scalar).map(|isa| kernels_for(isa).expect("supported")).collect();
    let names: Vec<&str> = paths.iter().map(|k| k.isa.name()).collect();
    eprintln!("testing against scalar: {names:?}");
    paths
}

/// Every supported path, scalar first, after saying which ones this run does not test.
pub fn all_paths() -> Vec<Kernels> {
    let scalar = kernels_for(Isa::Scalar).expect("scalar always runs");
    std::iter::once(scalar).chain(simd_paths()).collect()
}

/// Equal bits, or both NaN.
pub fn same_float(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Asserts [`same_float`] element by element (and equal lengths).
pub fn assert_same_floats(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            same_float(g, w),
            "{what}: element {i} is {g:e} ({:#010x}), scalar gives {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// How a recurrent stack's projections are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Per-channel int8, symmetric, with bias.
    Int8,
    /// Per-channel int8 with nonzero weight zero points, without bias.
    Asymmetric,
    /// float16 with bias.
    Fp16,
    /// float16 without bias.
    Fp16NoBias,
}

/// A projection of `rows x cols` weights (`bias` only where the kind has one).
pub fn projection(rng: &mut Rng, weights: Weights, rows: usize, cols: usize, bias: bool) -> Projection {
    projection_of_gates(rng, weights, rows, cols, bias, 1)
}

/// [`projection`] of `gates` gates, int8 weights packed in the blocks a recurrent layer's gate
/// matrix gets (the same values).
pub fn projection_of_gates(rng: &mut Rng, weights: Weights, rows: usize, cols: usize, bias: bool, gates: usize) -> Projection {
    match weights {
        Weights::Int8 | Weights::Asymmetric => {
            let weight: Vec<i8> = (0..rows * cols).map(|_| rng.byte() as i8).collect();
            let scales: Vec<f32> = (0..rows).map(|r| 0.002 + r as f32 * 1e-5).collect();
            let asymmetric = weights == Weights::Asymmetric;
            let zero_points: Vec<i32> = (0..rows).map(|r| if asymmetric { (r % 5) as i32 - 2 } else { 0 }).collect();
            let bias = (bias && !asymmetric).then(|| rng.floats(rows, 1.0));
            let width = gate_block_width(rows, gates);
            Projection::Int8(DynamicLinear::new_in_blocks(&weight, rows, cols, width, &scales, &zero_points, bias).unwrap().into())
        }
        Weights::Fp16 | Weights::Fp16NoBias => {
            let weight: Vec<u16> = (0..rows * cols).map(|_| half::f16::from_f32(rng.uniform(-0.3, 0.3)).to_bits()).collect();
            let bias = (bias && weights == Weights::Fp16).then(|| rng.floats(rows, 1.0));
            Projection::Fp16(Fp16Linear::new(&weight, rows, cols, bias).unwrap().into())
        }
    }
}

/// A recurrent stack of `shape` with `weights` everywhere (the LSTM projection without bias).
pub fn stack(shape: RnnShape, weights: Weights, seed: u64) -> Rnn {
    stack_of(shape, weights, seed, false)
}

/// The stack of [`stack`] (the same values), its int8 `W_ih` and `W_hh` packed in gate blocks when
/// `gate_blocks` (as the Python modules pack them), so that its steps can be split by hidden units.
pub fn stack_of(shape: RnnShape, weights: Weights, seed: u64, gate_blocks: bool) -> Rnn {
    let gate_count = if gate_blocks { shape.kind.gates() } else { 1 };
    let mut rng = Rng(seed);
    let gates = shape.kind.gates() * shape.hidden_size;
    let cells = (0..shape.num_layers * shape.directions())
        .map(|index| {
            let input = if index < shape.directions() { shape.input_size } else { shape.directions() * shape.output_size() };
            CellWeights {
                ih: projection_of_gates(&mut rng, weights, gates, input, true, gate_count),
                hh: projection_of_gates(&mut rng, weights, gates, shape.output_size(), true, gate_count),
                hr: (shape.proj_size > 0).then(|| projection(&mut rng, weights, shape.proj_size, shape.hidden_size, false)),
            }
        })
        .collect();
    Rnn::new(shape, cells).unwrap()
}

/// The bits of each float.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}
