//! Every instruction-set path against the scalar reference: whole sequences and single steps give
//! the same bits, including what the Python modules never produce (asymmetric weight zero
//! points, projections without bias) and hidden sizes around the vector widths and the
//! sigmoid's SLEEF/glibc split.

use super::*;
use crate::dispatch::{kernels_for, supported_isas};
use crate::kernels::Isa;
use crate::error::Error;
use crate::linear::{DynamicLinear, Fp16Linear};

/// Deterministic values in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// How a projection's weights are built.
#[derive(Clone, Copy, Debug)]
enum Weights {
    /// Symmetric per-tensor int8, with bias.
    Int8,
    /// Per-channel int8 with nonzero zero points, without bias.
    Asymmetric,
    Fp16,
}

fn projection(rng: &mut Lcg, weights: Weights, n: usize, k: usize, bias: bool) -> Projection {
    let w: Vec<i8> = rng.vec(n * k).iter().map(|&v| (v * 127.0) as i8).collect();
    let bias = bias.then(|| rng.vec(n).iter().map(|v| v * 2.0).collect());
    match weights {
        Weights::Int8 => Projection::Int8(DynamicLinear::new(&w, n, k, &[0.02], &[0], bias).unwrap().into()),
        Weights::Asymmetric => {
            let scales: Vec<f32> = (0..n).map(|i| 0.01 + 0.001 * (i % 7) as f32).collect();
            let zero_points: Vec<i32> = (0..n).map(|i| (i % 5) as i32 - 2).collect();
            Projection::Int8(DynamicLinear::new(&w, n, k, &scales, &zero_points, None).unwrap().into())
        }
        Weights::Fp16 => {
            let bits: Vec<u16> = rng.vec(n * k).iter().map(|&v| half::f16::from_f32(v * 0.7).to_bits()).collect();
            Projection::Fp16(Fp16Linear::new(&bits, n, k, bias).unwrap().into())
        }
    }
}

fn build(shape: RnnShape, weights: Weights, seed: u64) -> Rnn {
    let mut rng = Lcg(seed);
    let rows = shape.kind.gates() * shape.hidden_size;
    let cells = (0..shape.num_layers * shape.directions())
        .map(|index| {
            let input = if index < shape.directions() { shape.input_size } else { shape.directions() * shape.output_size() };
            CellWeights {
                ih: projection(&mut rng, weights, rows, input, true),
                hh: projection(&mut rng, weights, rows, shape.output_size(), true),
                hr: (shape.proj_size > 0).then(|| projection(&mut rng, weights, shape.proj_size, shape.hidden_size, false)),
            }
        })
        .collect();
    Rnn::new(shape, cells).unwrap()
}

/// Every supported path but scalar, with its kernels.
fn simd_paths() -> Vec<(Isa, crate::kernels::Kernels)> {
    supported_isas().into_iter().filter(|&isa| isa != Isa::Scalar).filter_map(|isa| Some((isa, kernels_for(isa)?))).collect()
}

#[test]
fn sequences_are_bit_identical_on_every_path() {
    let scalar = kernels_for(Isa::Scalar).unwrap();
    let kinds = [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh, CellKind::RnnRelu];
    // Past 256 units the LSTM and GRU kernels work in chunks: 300 (GRU) and 513 (LSTM) cross them.
    for (i, hidden) in [1usize, 7, 8, 16, 31, 33, 40, 64, 70, 300, 529, 260, 513].into_iter().enumerate() {
        for weights in [Weights::Int8, Weights::Asymmetric, Weights::Fp16] {
            let kind = kinds[i % 4];
            let proj_size = if kind == CellKind::Lstm && hidden > 4 && i % 2 == 0 { 3 } else { 0 };
            let shape = RnnShape { kind, input_size: 5, hidden_size: hidden, proj_size, num_layers: 2, bidirectional: i % 3 == 0 };
            let rnn = build(shape, weights, i as u64);
            let (steps, batch) = (5, 3);
            let x: Vec<f32> = Lcg(100 + i as u64).vec(steps * batch * 5).iter().map(|v| v * 4.0).collect();
            let lengths = [5, 2, 4];
            let input = SequenceInput { x: &x, steps, batch, batch_first: false, h0: None, c0: None, lengths: Some(&lengths) };
            let reference = rnn.forward(&scalar, &input, true).unwrap();
            for (isa, kernels) in simd_paths() {
                let out = rnn.forward(&kernels, &input, true).unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let what = format!("{isa:?} {kind:?} hidden {hidden} {weights:?}");
                assert_eq!(bits(&out.y), bits(&reference.y), "{what}: y");
                assert_eq!(bits(&out.h_n), bits(&reference.h_n), "{what}: h_n");
                assert_eq!(out.c_n.map(|c| bits(&c)), reference.c_n.as_deref().map(bits), "{what}: c_n");
            }
        }
    }
}

/// Batches around the tile heights of the AMX GEMM (at least 3 rows, strips of 16 and 32 rows)
/// and of the other paths' row tiles, on every path against scalar: full and shrinking batches (the
/// lengths make the running rows pass through the neighbouring counts), `K` not a multiple of the
/// tile depth, `N` with and without a partial last panel of 16 columns.
#[test]
fn tile_sized_batches_are_bit_identical_on_every_path() {
    let scalar = kernels_for(Isa::Scalar).unwrap();
    let kinds = [(CellKind::Lstm, 40), (CellKind::Gru, 44), (CellKind::RnnTanh, 48), (CellKind::Lstm, 70)];
    for (i, &(kind, hidden)) in kinds.iter().enumerate() {
        let weights = if i % 2 == 0 { Weights::Int8 } else { Weights::Asymmetric };
        let shape = RnnShape { kind, input_size: 70, hidden_size: hidden, proj_size: 0, num_layers: 1, bidirectional: i == 1 };
        let rnn = build(shape, weights, 400 + i as u64);
        for batch in [3usize, 16, 17, 33, 64] {
            let steps = 4;
            let x: Vec<f32> = Lcg(500 + batch as u64).vec(steps * batch * 70).iter().map(|v| v * 3.0).collect();
            let lengths: Vec<usize> = (0..batch).map(|b| if b % 3 == 0 { 1 + b % 4 } else { steps }).collect();
            for lengths in [None, Some(&lengths[..])] {
                let input = SequenceInput { x: &x, steps, batch, batch_first: false, h0: None, c0: None, lengths };
                let reference = rnn.forward(&scalar, &input, true).unwrap();
                for (isa, kernels) in simd_paths() {
                    let out = rnn.forward(&kernels, &input, true).unwrap();
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    let what = format!("{isa:?} {kind:?} hidden {hidden} batch {batch} lengths {}", lengths.is_some());
                    assert_eq!(bits(&out.y), bits(&reference.y), "{what}: y");
                    assert_eq!(bits(&out.h_n), bits(&reference.h_n), "{what}: h_n");
                    assert_eq!(out.c_n.map(|c| bits(&c)), reference.c_n.as_deref().map(bits), "{what}: c_n");
                }
            }
        }
    }
}

#[test]
fn a_step_equals_a_one_step_sequence_on_every_path() {
    let scalar = kernels_for(Isa::Scalar).unwrap();
    for (i, kind) in [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh].into_iter().enumerate() {
        let shape = RnnShape { kind, input_size: 6, hidden_size: 37, proj_size: 0, num_layers: 1, bidirectional: false };
        let rnn = build(shape, Weights::Int8, 50 + i as u64);
        let batch = 2;
        let x = Lcg(60).vec(batch * 6);
        let h0 = Lcg(61).vec(batch * 37);
        let c0 = if kind == CellKind::Lstm { Lcg(62).vec(batch * 37) } else { Vec::new() };
        let input = SequenceInput { x: &x, steps: 1, batch, batch_first: false, h0: Some(&h0), c0: (!c0.is_empty()).then_some(&c0), lengths: None };
        let reference = rnn.forward(&scalar, &input, true).unwrap();
        for (_, kernels) in simd_paths().into_iter().chain([(Isa::Scalar, scalar)]) {
            let (mut h, mut c) = (h0.clone(), c0.clone());
            rnn.step(&kernels, &x, batch, &mut h, &mut c, true).unwrap();
            assert_eq!(h, reference.h_n, "{kind:?} on {:?}", kernels.isa);
            assert_eq!(c, reference.c_n.clone().unwrap_or_default(), "{kind:?} on {:?}", kernels.isa);
        }
    }
}

#[test]
fn a_step_rejects_stacks_and_bad_shapes() {
    let scalar = kernels_for(Isa::Scalar).unwrap();
    let shape = RnnShape { kind: CellKind::Gru, input_size: 2, hidden_size: 3, proj_size: 0, num_layers: 1, bidirectional: true };
    let rnn = build(shape, Weights::Int8, 70);
    assert!(matches!(rnn.step(&scalar, &[0.0; 2], 1, &mut [0.0; 3], &mut [], true), Err(Error::Value(_))));
    let rnn = build(RnnShape { bidirectional: false, ..shape }, Weights::Int8, 71);
    assert!(matches!(rnn.step(&scalar, &[0.0; 3], 1, &mut [0.0; 3], &mut [], true), Err(Error::Shape(_))));
    assert!(matches!(rnn.step(&scalar, &[0.0; 2], 1, &mut [0.0; 3], &mut [0.0; 3], true), Err(Error::Shape(_))));
}

/// Steps large enough to be split between threads (at least 16 running rows and
/// `PARALLEL_THRESHOLD_MACS` in the hidden projection) give on 2 threads the bits of 1, on every
/// path: each kind, float16 and asymmetric weights, a projection, both directions, and lengths
/// that leave an odd number of running rows (an uneven last share).
#[test]
fn split_steps_are_bit_identical_to_one_thread_on_every_path() {
    let cases = [
        (CellKind::Lstm, 256, 0, Weights::Int8, true),
        (CellKind::Lstm, 320, 200, Weights::Asymmetric, false),
        (CellKind::Gru, 300, 0, Weights::Int8, true),
        (CellKind::Gru, 300, 0, Weights::Fp16, false),
        (CellKind::Lstm, 256, 0, Weights::Fp16, false),
        (CellKind::RnnTanh, 500, 0, Weights::Int8, false),
        (CellKind::RnnRelu, 500, 0, Weights::Asymmetric, true),
    ];
    let (steps, batch) = (3, 21);
    let lengths: Vec<usize> = (0..batch).map(|b| if b < 17 { 3 } else { 1 + b % 2 }).collect();
    let threads_before = crate::threads::num_threads();
    for (i, &(kind, hidden, proj_size, weights, bidirectional)) in cases.iter().enumerate() {
        let shape = RnnShape { kind, input_size: 9, hidden_size: hidden, proj_size, num_layers: 2, bidirectional };
        let macs = 17 * kind.gates() * hidden * shape.output_size();
        assert!(macs >= crate::threads::PARALLEL_THRESHOLD_MACS, "case {i} would not be split");
        let rnn = build(shape, weights, 200 + i as u64);
        let x: Vec<f32> = Lcg(300 + i as u64).vec(steps * batch * 9).iter().map(|v| v * 3.0).collect();
        let input = SequenceInput { x: &x, steps, batch, batch_first: true, h0: None, c0: None, lengths: Some(&lengths) };
        for isa in supported_isas() {
            let kernels = kernels_for(isa).unwrap();
            crate::threads::set_num_threads(1).unwrap();
            let one = rnn.forward(&kernels, &input, false).unwrap();
            crate::threads::set_num_threads(2).unwrap();
            let two = rnn.forward(&kernels, &input, false).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let what = format!("{isa:?} {kind:?} hidden {hidden} proj {proj_size} {weights:?}");
            assert_eq!(bits(&two.y), bits(&one.y), "{what}: y");
            assert_eq!(bits(&two.h_n), bits(&one.h_n), "{what}: h_n");
            assert_eq!(two.c_n.map(|c| bits(&c)), one.c_n.as_deref().map(bits), "{what}: c_n");
        }
    }
    crate::threads::set_num_threads(threads_before).unwrap();
}
