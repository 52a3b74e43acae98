//! Recurrent steps allocate nothing once warmed up, on every kernel path this CPU supports: a
//! counting global allocator (`common/counting.rs`) counts the allocations of the calling
//! thread while a stream of single steps runs (LSTM, GRU, Elman tanh and relu; one and several
//! batch rows; int8 weights with and without bias, asymmetric ones, float16 ones), and whole
//! sequences (stacked, bidirectional, with lengths and an LSTM projection) must allocate as often
//! for many steps as for few: their outputs, never per step.
//!
//! The steps here are far below the size at which a step is split between threads.

#[path = "common/counting.rs"]
mod counting;
mod common;

use common::{all_paths, stack, Rng, Weights};
use counting::allocations;
use ferroq::rnn::{CellKind, RnnShape, SequenceInput};

const WEIGHTS: [Weights; 4] = [Weights::Int8, Weights::Asymmetric, Weights::Fp16, Weights::Fp16NoBias];

const KINDS: [CellKind; 4] = [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh, CellKind::RnnRelu];

#[test]
fn a_stream_of_single_steps_allocates_nothing_after_the_first() {
    let paths = all_paths();
    // 37 units: a partial vector block on every path; 300: the GRU kernels' chunks of 256 units.
    let cases = KINDS.into_iter().flat_map(|k| WEIGHTS.map(|w| (k, w, 37))).chain(WEIGHTS.map(|w| (CellKind::Gru, w, 300)));
    for (i, (kind, weights, hidden)) in cases.enumerate() {
        let shape = RnnShape { kind, input_size: 11, hidden_size: hidden, proj_size: 0, num_layers: 1, bidirectional: false };
        let rnn = stack(shape, weights, 1 + i as u64);
        for batch in [1, 3] {
            let mut rng = Rng(100 + i as u64);
            let xs: Vec<Vec<f32>> = (0..12).map(|_| rng.floats(batch * 11, 1.0)).collect();
            for kernels in &paths {
                let mut h = vec![0.0f32; batch * hidden];
                let mut c = if kind == CellKind::Lstm { vec![0.0f32; batch * hidden] } else { Vec::new() };
                let (warm_up, stream) = xs.split_at(2);
                for x in warm_up {
                    rnn.step(kernels, x, batch, &mut h, &mut c, true).unwrap();
                }
                let count = allocations(|| {
                    for x in stream {
                        rnn.step(kernels, x, batch, &mut h, &mut c, true).unwrap();
                    }
                });
                let what = format!("{kind:?} {weights:?} hidden {hidden} batch {batch} on {}", kernels.isa.name());
                assert_eq!(count, 0, "{what}: {} steps allocated {count} times", stream.len());
                assert!(h.iter().all(|v| v.is_finite()) && h.iter().any(|&v| v != 0.0), "{what}: the steps ran");
            }
        }
    }
}

#[test]
fn sequences_allocate_as_often_for_many_steps_as_for_few() {
    let paths = all_paths();
    let batch = 3;
    for (i, (kind, weights)) in KINDS.into_iter().flat_map(|k| WEIGHTS.map(|w| (k, w))).enumerate() {
        let proj_size = if kind == CellKind::Lstm && i % 2 == 0 { 5 } else { 0 };
        // 50 steps of 3 rows: more than one chunk of the input projection (128 rows).
        let shape = RnnShape { kind, input_size: 7, hidden_size: 13, proj_size, num_layers: 2, bidirectional: true };
        let rnn = stack(shape, weights, 50 + i as u64);
        let x = Rng(200 + i as u64).floats(50 * batch * 7, 1.0);
        for kernels in &paths {
            for with_lengths in [false, true] {
                let run = |steps: usize| {
                    let lengths = [steps, steps.div_ceil(2), 1];
                    let input = SequenceInput {
                        x: &x[..steps * batch * 7],
                        steps,
                        batch,
                        batch_first: false,
                        h0: None,
                        c0: None,
                        lengths: with_lengths.then_some(&lengths[..]),
                    };
                    rnn.forward(kernels, &input, false).unwrap()
                };
                // Warm up both lengths (the kept buffers grow to the longer one's needs).
                run(3);
                run(50);
                let few = allocations(|| drop(run(3)));
                let many = allocations(|| drop(run(50)));
                let what = format!("{kind:?} proj {proj_size} {weights:?} lengths {with_lengths} on {}", kernels.isa.name());
                assert!(few > 0, "{what}: a sequence's outputs are allocated");
                assert_eq!(many, few, "{what}: 50 steps allocated {many} times, 3 steps {few} times");
            }
        }
    }
}
