//! Every kernel path this CPU supports against the scalar reference on whole recurrent layers:
//! LSTM (with projection), GRU and Elman stacks, bidirectional, with and without variable lengths,
//! int8 (symmetric and with weight zero points, with and without bias) and float16 weights, hidden
//! sizes around the vector widths and the sigmoid's SLEEF/glibc split, batches around the GEMMs'
//! row tiles, single steps, and steps split between threads. On aarch64 this runs under QEMU in CI
//! (`.ci/aarch64-tests`).

mod common;

use common::{all_paths, bits, simd_paths, stack, stack_of, Rng, Weights};
use ferroq::error::Error;
use ferroq::kernels::{scalar, Kernels};
use ferroq::rnn::{CellKind, Rnn, RnnShape, SequenceInput};
use ferroq::threads::{num_threads, set_num_threads, PARALLEL_THRESHOLD_MACS, SPLIT_STEP_MACS};

/// Asserts that `kernels` gives `reference`'s bits on `input`.
fn assert_same_sequence(rnn: &Rnn, kernels: &Kernels, input: &SequenceInput<'_>, reference: &Kernels, what: &str) {
    let want = rnn.forward(reference, input, true).unwrap();
    let got = rnn.forward(kernels, input, true).unwrap();
    let what = format!("{what} on {}", kernels.isa.name());
    assert_eq!(bits(&got.y), bits(&want.y), "{what}: y");
    assert_eq!(bits(&got.h_n), bits(&want.h_n), "{what}: h_n");
    assert_eq!(got.c_n.as_deref().map(bits), want.c_n.as_deref().map(bits), "{what}: c_n");
}

#[test]
fn sequences_are_bit_identical_on_every_path() {
    let paths = simd_paths();
    let kinds = [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh, CellKind::RnnRelu];
    // Past 256 units the LSTM and GRU kernels work in chunks: 300 (GRU) and 513 (LSTM) cross them.
    for (i, hidden) in [1usize, 7, 8, 16, 31, 33, 37, 40, 64, 70, 300, 529, 260, 513].into_iter().enumerate() {
        for weights in [Weights::Int8, Weights::Asymmetric, Weights::Fp16, Weights::Fp16NoBias] {
            let kind = kinds[i % 4];
            let proj_size = if kind == CellKind::Lstm && hidden > 4 && i % 2 == 0 { 3 } else { 0 };
            let shape = RnnShape { kind, input_size: 5, hidden_size: hidden, proj_size, num_layers: 2, bidirectional: i % 3 == 0 };
            let rnn = stack(shape, weights, i as u64);
            let (steps, batch) = (5, 3);
            let x = Rng(100 + i as u64).floats(steps * batch * 5, 4.0);
            let lengths = [5, 2, 4];
            let lengths = (i % 2 == 0).then_some(&lengths[..]);
            let input = SequenceInput { x: &x, steps, batch, batch_first: false, h0: None, c0: None, lengths };
            for kernels in &paths {
                assert_same_sequence(&rnn, kernels, &input, &scalar::KERNELS, &format!("{kind:?} hidden {hidden} {weights:?}"));
            }
        }
    }
}

/// Batches around the tile heights of the AMX GEMM (at least 3 rows, strips of 16 and 32 rows)
/// and of the other paths' row tiles: full and shrinking batches (the lengths make the running
/// rows pass through the neighbouring counts), `K` not a multiple of the tile depth, `N` with and
/// without a partial last panel of 16 columns.
#[test]
fn tile_sized_batches_are_bit_identical_on_every_path() {
    let paths = simd_paths();
    let kinds = [(CellKind::Lstm, 40), (CellKind::Gru, 44), (CellKind::RnnTanh, 48), (CellKind::Lstm, 70)];
    for (i, &(kind, hidden)) in kinds.iter().enumerate() {
        let weights = if i % 2 == 0 { Weights::Int8 } else { Weights::Asymmetric };
        let shape = RnnShape { kind, input_size: 70, hidden_size: hidden, proj_size: 0, num_layers: 1, bidirectional: i == 1 };
        let rnn = stack(shape, weights, 400 + i as u64);
        for batch in [3usize, 16, 17, 33, 64] {
            let steps = 4;
            let x = Rng(500 + batch as u64).floats(steps * batch * 70, 3.0);
            let lengths: Vec<usize> = (0..batch).map(|b| if b % 3 == 0 { 1 + b % 4 } else { steps }).collect();
            for lengths in [None, Some(&lengths[..])] {
                let input = SequenceInput { x: &x, steps, batch, batch_first: false, h0: None, c0: None, lengths };
                let what = format!("{kind:?} hidden {hidden} batch {batch} lengths {}", lengths.is_some());
                for kernels in &paths {
                    assert_same_sequence(&rnn, kernels, &input, &scalar::KERNELS, &what);
                }
            }
        }
    }
}

#[test]
fn a_step_equals_a_one_step_sequence_on_every_path() {
    for (i, kind) in [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh, CellKind::RnnRelu].into_iter().enumerate() {
        let shape = RnnShape { kind, input_size: 6, hidden_size: 37, proj_size: 0, num_layers: 1, bidirectional: false };
        let rnn = stack(shape, Weights::Int8, 50 + i as u64);
        let batch = 2;
        let x = Rng(60).floats(batch * 6, 1.0);
        let h0 = Rng(61).floats(batch * 37, 1.0);
        let c0 = if kind == CellKind::Lstm { Rng(62).floats(batch * 37, 1.0) } else { Vec::new() };
        let input = SequenceInput { x: &x, steps: 1, batch, batch_first: false, h0: Some(&h0), c0: (!c0.is_empty()).then_some(&c0), lengths: None };
        let reference = rnn.forward(&scalar::KERNELS, &input, true).unwrap();
        for kernels in all_paths() {
            let (mut h, mut c) = (h0.clone(), c0.clone());
            rnn.step(&kernels, &x, batch, &mut h, &mut c, true).unwrap();
            assert_eq!(bits(&h), bits(&reference.h_n), "{kind:?} on {:?}", kernels.isa);
            assert_eq!(bits(&c), bits(&reference.c_n.clone().unwrap_or_default()), "{kind:?} on {:?}", kernels.isa);
        }
    }
}

#[test]
fn a_step_rejects_stacks_and_bad_shapes() {
    let scalar = &scalar::KERNELS;
    let shape = RnnShape { kind: CellKind::Gru, input_size: 2, hidden_size: 3, proj_size: 0, num_layers: 1, bidirectional: true };
    let rnn = stack(shape, Weights::Int8, 70);
    assert!(matches!(rnn.step(scalar, &[0.0; 2], 1, &mut [0.0; 3], &mut [], true), Err(Error::Value(_))));
    let rnn = stack(RnnShape { bidirectional: false, ..shape }, Weights::Int8, 71);
    assert!(matches!(rnn.step(scalar, &[0.0; 3], 1, &mut [0.0; 3], &mut [], true), Err(Error::Shape(_))));
    assert!(matches!(rnn.step(scalar, &[0.0; 2], 1, &mut [0.0; 3], &mut [0.0; 3], true), Err(Error::Shape(_))));
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
    let threads_before = num_threads();
    let paths = all_paths();
    for (i, &(kind, hidden, proj_size, weights, bidirectional)) in cases.iter().enumerate() {
        let shape = RnnShape { kind, input_size: 9, hidden_size: hidden, proj_size, num_layers: 2, bidirectional };
        let macs = 17 * kind.gates() * hidden * shape.output_size();
        assert!(macs >= PARALLEL_THRESHOLD_MACS, "case {i} would not be split");
        let rnn = stack(shape, weights, 200 + i as u64);
        let x = Rng(300 + i as u64).floats(steps * batch * 9, 3.0);
        let input = SequenceInput { x: &x, steps, batch, batch_first: true, h0: None, c0: None, lengths: Some(&lengths) };
        for kernels in &paths {
            set_num_threads(1).unwrap();
            let one = rnn.forward(kernels, &input, false).unwrap();
            set_num_threads(2).unwrap();
            let two = rnn.forward(kernels, &input, false).unwrap();
            let what = format!("{:?} {kind:?} hidden {hidden} proj {proj_size} {weights:?}", kernels.isa);
            assert_eq!(bits(&two.y), bits(&one.y), "{what}: y");
            assert_eq!(bits(&two.h_n), bits(&one.h_n), "{what}: h_n");
            assert_eq!(two.c_n.as_deref().map(bits), one.c_n.as_deref().map(bits), "{what}: c_n");
        }
    }
    set_num_threads(threads_before).unwrap();
}

/// Steps split between threads by hidden units (int8 `W_ih` and `W_hh` packed in gate blocks, no
/// projection, enough work per step) give the bits of one thread and of the same weights packed
/// in plain blocks, on every path, for 2 and 3 threads: each kind, asymmetric weights, gates of 2,
/// 3 and 4 blocks (uneven slices on 3 threads, or row shares for a batch that gives every thread
/// some), blocks of half a gate (640 units, and the small gates of 256, 320 and 384 units, whose
/// batch-1 steps split from `SPLIT_STEP_MACS`), both directions, two layers, `h0`/`c0`, lengths
/// that leave odd numbers of running rows (down to one), and batches of one.
#[test]
fn steps_split_by_hidden_units_are_bit_identical_to_one_thread_on_every_path() {
    let cases = [
        (CellKind::Lstm, 512, Weights::Int8, true, 21),
        (CellKind::Lstm, 1024, Weights::Asymmetric, false, 1),
        (CellKind::Gru, 640, Weights::Asymmetric, false, 9),
        (CellKind::RnnTanh, 768, Weights::Int8, false, 11),
        (CellKind::RnnRelu, 512, Weights::Asymmetric, true, 17),
        (CellKind::Gru, 512, Weights::Int8, false, 30),
        (CellKind::Lstm, 256, Weights::Int8, true, 1),
        (CellKind::Gru, 256, Weights::Asymmetric, false, 1),
        (CellKind::Lstm, 384, Weights::Asymmetric, false, 1),
        (CellKind::Gru, 320, Weights::Int8, true, 3),
    ];
    let steps = 3;
    let threads_before = num_threads();
    let paths = all_paths();
    for (i, &(kind, hidden, weights, bidirectional, batch)) in cases.iter().enumerate() {
        let shape = RnnShape { kind, input_size: 9, hidden_size: hidden, proj_size: 0, num_layers: 2, bidirectional };
        let macs = batch * kind.gates() * hidden * (hidden + 9);
        assert!(macs >= SPLIT_STEP_MACS, "case {i} would not be split");
        let (plain, gated) = (stack_of(shape, weights, 600 + i as u64, false), stack_of(shape, weights, 600 + i as u64, true));
        let x = Rng(700 + i as u64).floats(steps * batch * 9, 3.0);
        let states = 2 * shape.directions() * batch * hidden;
        let (h0, c0) = (Rng(800 + i as u64).floats(states, 1.0), Rng(900 + i as u64).floats(states, 2.0));
        let c0 = (kind == CellKind::Lstm).then_some(&c0[..]);
        let lengths: Vec<usize> = (0..batch).map(|b| if b % 4 == 1 { 1 + b % 3 } else { steps }).collect();
        for lengths in [None, Some(&lengths[..])] {
            let input = SequenceInput { x: &x, steps, batch, batch_first: false, h0: Some(&h0), c0, lengths };
            for kernels in &paths {
                set_num_threads(1).unwrap();
                let want = plain.forward(kernels, &input, true).unwrap();
                for threads in [1, 2, 3] {
                    set_num_threads(threads).unwrap();
                    let got = gated.forward(kernels, &input, true).unwrap();
                    let what = format!("{:?} {kind:?} hidden {hidden} {weights:?} {threads} threads lengths {}", kernels.isa, lengths.is_some());
                    assert_eq!(bits(&got.y), bits(&want.y), "{what}: y");
                    assert_eq!(bits(&got.h_n), bits(&want.h_n), "{what}: h_n");
                    assert_eq!(got.c_n.as_deref().map(bits), want.c_n.as_deref().map(bits), "{what}: c_n");
                }
            }
        }
    }
    set_num_threads(threads_before).unwrap();
}
