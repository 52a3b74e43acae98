//! Recurrent steps split between 2 threads by hidden units allocate nothing once warmed up, on
//! every kernel path this CPU supports, on the calling thread and on the pool threads alike: the
//! counting global allocator (`common/counting.rs`) counts every thread's allocations while a
//! stream of single steps large enough to be split runs (LSTM, GRU, Elman tanh and relu; int8
//! weights packed in gate blocks, symmetric and asymmetric), and whole sequences (bidirectional,
//! with lengths) must allocate as often for many steps as for few. (The quantization of a wide
//! layer input, once per layer, is split between threads by rows when large; it allocates nothing
//! either.)
//!
//! The count covers every thread of the process but the main one (the test harness's, which runs
//! no ferroq code), so this binary holds this one test alone.

#[path = "common/counting.rs"]
mod counting;
mod common;

use common::{all_paths, stack_of, Rng, Weights};
use counting::all_threads_allocations as allocations;
use ferroq::kernels::Kernels;
use ferroq::rnn::{CellKind, RnnShape, SequenceInput};
use ferroq::threads::{set_num_threads, PARALLEL_THRESHOLD_MACS};

/// Batch rows of every step: with the hidden sizes below, each step is split.
const BATCH: usize = 16;

/// Each kind with a hidden size whose gates are packed in at least two blocks (see
/// `gate_block_width`), so that its steps split by hidden units at [`BATCH`] rows.
const KINDS: [(CellKind, usize); 4] = [(CellKind::Lstm, 512), (CellKind::Gru, 512), (CellKind::RnnTanh, 512), (CellKind::RnnRelu, 512)];

const WEIGHTS: [Weights; 2] = [Weights::Int8, Weights::Asymmetric];

/// Multiply-accumulates of one step of [`BATCH`] rows (both projections).
fn step_macs(kind: CellKind, hidden: usize, input: usize) -> usize {
    BATCH * kind.gates() * hidden * (hidden + input)
}

#[test]
fn split_steps_allocate_nothing_after_the_first_on_any_thread() {
    set_num_threads(2).unwrap();
    let paths = all_paths();
    for (i, ((kind, hidden), weights)) in KINDS.into_iter().flat_map(|k| WEIGHTS.map(|w| (k, w))).enumerate() {
        assert!(step_macs(kind, hidden, 11) >= PARALLEL_THRESHOLD_MACS, "{kind:?} steps would not be split");
        let shape = RnnShape { kind, input_size: 11, hidden_size: hidden, proj_size: 0, num_layers: 1, bidirectional: false };
        let rnn = stack_of(shape, weights, 1 + i as u64, true);
        let mut rng = Rng(100 + i as u64);
        let xs: Vec<Vec<f32>> = (0..6).map(|_| rng.floats(BATCH * 11, 1.0)).collect();
        for kernels in &paths {
            let mut h = vec![0.0f32; BATCH * hidden];
            let mut c = if kind == CellKind::Lstm { vec![0.0f32; BATCH * hidden] } else { Vec::new() };
            let (warm_up, stream) = xs.split_at(2);
            for x in warm_up {
                rnn.step(kernels, x, BATCH, &mut h, &mut c, true).unwrap();
            }
            let count = allocations(|| {
                for x in stream {
                    rnn.step(kernels, x, BATCH, &mut h, &mut c, true).unwrap();
                }
            });
            let what = format!("{kind:?} {weights:?} hidden {hidden} on {}", kernels.isa.name());
            assert_eq!(count, 0, "{what}: {} steps allocated {count} times", stream.len());
            assert!(h.iter().all(|v| v.is_finite()) && h.iter().any(|&v| v != 0.0), "{what}: the steps ran");
        }
    }
    sequences_allocate_as_often_for_many_split_steps_as_for_few(&paths);
}

/// Whole sequences of split steps: bidirectional, with and without lengths.
fn sequences_allocate_as_often_for_many_split_steps_as_for_few(paths: &[Kernels]) {
    // Each kind once, with the weights in turn (the streams above cover every combination).
    for (i, (kind, hidden)) in KINDS.into_iter().enumerate() {
        let weights = WEIGHTS[i % WEIGHTS.len()];
        let shape = RnnShape { kind, input_size: 7, hidden_size: hidden, proj_size: 0, num_layers: 1, bidirectional: true };
        assert!(step_macs(kind, hidden, 7) >= PARALLEL_THRESHOLD_MACS, "{kind:?} steps would not be split");
        let rnn = stack_of(shape, weights, 50 + i as u64, true);
        let x = Rng(200 + i as u64).floats(6 * BATCH * 7, 1.0);
        for kernels in paths {
            for with_lengths in [false, true] {
                let run = |steps: usize| {
                    let lengths: Vec<usize> = (0..BATCH).map(|b| if b % 3 == 0 { steps.div_ceil(2) } else { steps }).collect();
                    let input = SequenceInput {
                        x: &x[..steps * BATCH * 7],
                        steps,
                        batch: BATCH,
                        batch_first: false,
                        h0: None,
                        c0: None,
                        lengths: with_lengths.then_some(&lengths[..]),
                    };
                    rnn.forward(kernels, &input, false).unwrap()
                };
                // Warm up both lengths (the kept buffers grow to the longer one's needs).
                run(2);
                run(6);
                let few = allocations(|| drop(run(2)));
                let many = allocations(|| drop(run(6)));
                let what = format!("{kind:?} {weights:?} lengths {with_lengths} on {}", kernels.isa.name());
                assert!(few > 0, "{what}: a sequence's outputs are allocated");
                assert_eq!(many, few, "{what}: 6 steps allocated {many} times, 2 steps {few} times");
            }
        }
    }
}
