//! Sequence plumbing on small cases: shapes, lengths, directions, layers. float16 weights make
//! batch elements independent (nothing is quantized), so a sequence run inside a batch must
//! equal the same sequence run alone, bit for bit; int8 weights check what shares a scale.

mod common;

use common::{projection, stack, Rng, Weights};
use ferroq::error::Error;
use ferroq::kernels::scalar::KERNELS;
use ferroq::linear::DynamicLinear;
use ferroq::rnn::{CellKind, CellWeights, Projection, Rnn, RnnShape, SequenceInput, SequenceOutput};

/// A stack of `shape`: int8 weights (which share the activations' scale across a batch) or
/// float16 ones (which keep batch elements independent).
fn build(shape: RnnShape, seed: u64, quantized: bool) -> Rnn {
    stack(shape, if quantized { Weights::Int8 } else { Weights::Fp16 }, seed)
}

fn shape(kind: CellKind, num_layers: usize, bidirectional: bool) -> RnnShape {
    RnnShape { kind, input_size: 3, hidden_size: 4, proj_size: 0, num_layers, bidirectional }
}

fn run(rnn: &Rnn, x: &[f32], steps: usize, batch: usize, lengths: Option<&[usize]>) -> SequenceOutput {
    let input = SequenceInput { x, steps, batch, batch_first: false, h0: None, c0: None, lengths };
    rnn.forward(&KERNELS, &input, true).unwrap()
}

/// Rows `t` of element `b` of a time-major `(steps, batch, f)` tensor, for `t < len`.
fn element(x: &[f32], batch: usize, f: usize, b: usize, len: usize) -> Vec<f32> {
    (0..len).flat_map(|t| x[(t * batch + b) * f..(t * batch + b + 1) * f].to_vec()).collect()
}

#[test]
fn output_shapes() {
    for kind in [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh] {
        let rnn = build(shape(kind, 2, true), 1, true);
        let out = run(&rnn, &Rng(2).floats(5 * 3 * 3, 1.0), 5, 3, None);
        assert_eq!(out.y.len(), 5 * 3 * 2 * 4);
        assert_eq!(out.h_n.len(), 2 * 2 * 3 * 4);
        assert_eq!(out.c_n.map(|c| c.len()), (kind == CellKind::Lstm).then_some(2 * 2 * 3 * 4));
    }
}

#[test]
fn a_sequence_in_a_batch_equals_the_sequence_alone_with_float16_weights() {
    for kind in [CellKind::Lstm, CellKind::Gru, CellKind::RnnRelu] {
        let rnn = build(shape(kind, 2, true), 3, false);
        let (steps, batch, lengths) = (4, 3, [2usize, 4, 1]);
        let x = Rng(4).floats(steps * batch * 3, 1.0);
        let all = run(&rnn, &x, steps, batch, Some(&lengths));
        for (b, &len) in lengths.iter().enumerate() {
            let alone = run(&rnn, &element(&x, batch, 3, b, len), len, 1, None);
            assert_eq!(element(&all.y, batch, 8, b, len), alone.y, "{kind:?} element {b}");
            // Past the end: zeros.
            for t in len..steps {
                assert!(all.y[(t * batch + b) * 8..(t * batch + b + 1) * 8].iter().all(|&v| v == 0.0));
            }
            for slot in 0..4 {
                assert_eq!(all.h_n[(slot * batch + b) * 4..][..4], alone.h_n[slot * 4..][..4], "{kind:?} h_n {slot}");
            }
        }
    }
}

#[test]
fn the_reverse_direction_runs_backwards_and_is_time_aligned() {
    // A bidirectional layer whose two directions share weights: the reverse half of y at step
    // t equals the forward direction run on the time-reversed sequence, at step T-1-t.
    let mut rng = Rng(5);
    let s = shape(CellKind::Gru, 1, false);
    let weights = CellWeights { ih: projection(&mut rng, Weights::Fp16, 12, 3, true), hh: projection(&mut rng, Weights::Fp16, 12, 4, true), hr: None };
    let forward_only = Rnn::new(s, vec![weights.clone()]).unwrap();
    let both = Rnn::new(RnnShape { bidirectional: true, ..s }, vec![weights.clone(), weights]).unwrap();
    let (steps, batch) = (5, 2);
    let x = Rng(6).floats(steps * batch * 3, 1.0);
    let reversed: Vec<f32> = (0..steps).rev().flat_map(|t| x[t * batch * 3..(t + 1) * batch * 3].to_vec()).collect();
    let out = run(&both, &x, steps, batch, None);
    let fwd = run(&forward_only, &x, steps, batch, None);
    let rev = run(&forward_only, &reversed, steps, batch, None);
    for t in 0..steps {
        for b in 0..batch {
            let row = &out.y[(t * batch + b) * 8..(t * batch + b + 1) * 8];
            assert_eq!(row[..4], fwd.y[(t * batch + b) * 4..][..4]);
            assert_eq!(row[4..], rev.y[((steps - 1 - t) * batch + b) * 4..][..4]);
        }
    }
    // h_n: [forward final state, reverse final state (after step 0)].
    assert_eq!(out.h_n[..8], fwd.h_n[..]);
    assert_eq!(out.h_n[8..], rev.h_n[..]);
}

#[test]
fn h_n_is_the_state_at_each_sequences_last_valid_step() {
    let rnn = build(shape(CellKind::Lstm, 1, false), 7, true);
    let lengths = [3usize, 1, 2];
    let out = run(&rnn, &Rng(8).floats(3 * 3 * 3, 1.0), 3, 3, Some(&lengths));
    for (b, &len) in lengths.iter().enumerate() {
        assert_eq!(out.h_n[b * 4..(b + 1) * 4], out.y[((len - 1) * 3 + b) * 4..][..4]);
    }
}

#[test]
fn padding_never_enters_a_quantization_range() {
    let rnn = build(shape(CellKind::Lstm, 2, true), 9, true);
    let lengths = [2usize, 4];
    let mut x = Rng(10).floats(4 * 2 * 3, 1.0);
    let before = run(&rnn, &x, 4, 2, Some(&lengths));
    for t in 2..4 {
        x[(t * 2) * 3..(t * 2 + 1) * 3].fill(1e6);
    }
    assert_eq!(run(&rnn, &x, 4, 2, Some(&lengths)), before);
}

#[test]
fn layer_two_reads_layer_ones_output_quantized_as_one_tensor() {
    // Without lengths the padded output of layer 1 is exactly the next layer's input.
    let two = build(shape(CellKind::RnnTanh, 2, true), 11, true);
    let first = Rnn::new(shape(CellKind::RnnTanh, 1, true), two.cells()[..2].to_vec()).unwrap();
    let second_shape = RnnShape { input_size: 8, ..shape(CellKind::RnnTanh, 1, true) };
    let second = Rnn::new(second_shape, two.cells()[2..].to_vec()).unwrap();
    let x = Rng(12).floats(3 * 2 * 3, 1.0);
    let y1 = run(&first, &x, 3, 2, None);
    let y2 = run(&second, &y1.y, 3, 2, None);
    let both = run(&two, &x, 3, 2, None);
    assert_eq!(both.y, y2.y);
    assert_eq!(both.h_n, [y1.h_n, y2.h_n].concat());
}

#[test]
fn initial_states_and_empty_sequences() {
    let rnn = build(shape(CellKind::Lstm, 1, true), 13, true);
    let h0 = Rng(14).floats(2 * 2 * 4, 1.0);
    let c0 = Rng(15).floats(2 * 2 * 4, 1.0);
    let x = Rng(16).floats(3 * 2 * 3, 1.0);
    let input = SequenceInput { x: &x, steps: 3, batch: 2, batch_first: false, h0: Some(&h0), c0: Some(&c0), lengths: Some(&[0, 3]) };
    let out = rnn.forward(&KERNELS, &input, true).unwrap();
    // Element 0 never runs: zeros out, its initial states back.
    for slot in 0..2 {
        assert_eq!(out.h_n[slot * 8..slot * 8 + 4], h0[slot * 8..slot * 8 + 4]);
        assert_eq!(out.c_n.as_ref().unwrap()[slot * 8..slot * 8 + 4], c0[slot * 8..slot * 8 + 4]);
    }
    assert!((0..3).all(|t| out.y[t * 16..t * 16 + 8].iter().all(|&v| v == 0.0)));
    // And the initial state matters for element 1.
    let zero_state = rnn.forward(&KERNELS, &SequenceInput { h0: None, c0: None, ..input }, true).unwrap();
    assert_ne!(zero_state.y[8..16], out.y[8..16]);
}

#[test]
fn batch_first_is_a_transpose() {
    let rnn = build(shape(CellKind::Gru, 1, true), 17, true);
    let x = Rng(18).floats(4 * 2 * 3, 1.0);
    let time_major = run(&rnn, &x, 4, 2, Some(&[4, 3]));
    let transposed: Vec<f32> = (0..2).flat_map(|b| element(&x, 2, 3, b, 4)).collect();
    let input = SequenceInput { x: &transposed, steps: 4, batch: 2, batch_first: true, h0: None, c0: None, lengths: Some(&[4, 3]) };
    let batch_first = rnn.forward(&KERNELS, &input, true).unwrap();
    let back: Vec<f32> = (0..4)
        .flat_map(|t| (0..2).map(move |b| (t, b)))
        .flat_map(|(t, b)| batch_first.y[(b * 4 + t) * 8..][..8].to_vec())
        .collect();
    assert_eq!(back, time_major.y);
    assert_eq!(batch_first.h_n, time_major.h_n);
}

#[test]
fn projections_shrink_h_but_not_c() {
    let s = RnnShape { proj_size: 2, ..shape(CellKind::Lstm, 2, true) };
    let rnn = build(s, 19, true);
    let out = run(&rnn, &Rng(20).floats(3 * 2 * 3, 1.0), 3, 2, None);
    assert_eq!(out.y.len(), 3 * 2 * 2 * 2);
    assert_eq!(out.h_n.len(), 2 * 2 * 2 * 2);
    assert_eq!(out.c_n.unwrap().len(), 2 * 2 * 2 * 4);
    assert!(out.y.iter().all(|v| v.is_finite()) && out.y.iter().any(|&v| v != 0.0));
}

#[test]
fn an_empty_batch_gives_empty_outputs() {
    let rnn = build(shape(CellKind::Lstm, 2, true), 21, true);
    let out = run(&rnn, &[], 3, 0, None);
    assert!(out.y.is_empty() && out.h_n.is_empty() && out.c_n.unwrap().is_empty());
}

#[test]
fn bad_inputs_are_errors() {
    let rnn = build(shape(CellKind::Gru, 1, false), 22, true);
    let x = Rng(23).floats(6, 1.0);
    let input = SequenceInput { x: &x, steps: 2, batch: 1, batch_first: false, h0: None, c0: None, lengths: None };
    assert!(matches!(rnn.forward(&KERNELS, &SequenceInput { steps: 0, x: &[], ..input }, true), Err(Error::Shape(_))));
    assert!(matches!(rnn.forward(&KERNELS, &SequenceInput { steps: 3, ..input }, true), Err(Error::Shape(_))));
    assert!(matches!(rnn.forward(&KERNELS, &SequenceInput { h0: Some(&[0.0; 3]), ..input }, true), Err(Error::Shape(_))));
    assert!(matches!(rnn.forward(&KERNELS, &SequenceInput { c0: Some(&[0.0; 4]), ..input }, true), Err(Error::Value(_))));
    let nan = [f32::NAN; 6];
    assert!(matches!(rnn.forward(&KERNELS, &SequenceInput { x: &nan, ..input }, true), Err(Error::Value(_))));
}

#[test]
fn mismatched_weights_are_rejected() {
    let mut rng = Rng(24);
    let s = shape(CellKind::Lstm, 1, false);
    let wrong_rows = CellWeights { ih: projection(&mut rng, Weights::Int8, 12, 3, true), hh: projection(&mut rng, Weights::Int8, 16, 4, true), hr: None };
    assert!(matches!(Rnn::new(s, vec![wrong_rows]), Err(Error::Shape(_))));
    let missing_hr = CellWeights { ih: projection(&mut rng, Weights::Int8, 16, 3, true), hh: projection(&mut rng, Weights::Int8, 16, 2, true), hr: None };
    assert!(matches!(Rnn::new(RnnShape { proj_size: 2, ..s }, vec![missing_hr]), Err(Error::Shape(_))));
    assert!(matches!(Rnn::new(RnnShape { proj_size: 4, ..s }, vec![]), Err(Error::Value(_))));
    assert!(matches!(Rnn::new(s, vec![]), Err(Error::Shape(_))));
}

#[test]
fn an_overflowing_recurrence_is_a_clear_error() {
    // Huge weights and inputs: the first step's state is infinite, the second cannot quantize it.
    let big = |n: usize, k: usize| Projection::Int8(DynamicLinear::new(&vec![127; n * k], n, k, &[1e30], &[0], None).unwrap().into());
    let cell = CellWeights { ih: big(4, 3), hh: big(4, 4), hr: None };
    let rnn = Rnn::new(shape(CellKind::RnnRelu, 1, false), vec![cell]).unwrap();
    let x = vec![1e30f32; 3 * 3];
    let err = rnn.forward(&KERNELS, &SequenceInput { x: &x, steps: 3, batch: 1, batch_first: false, h0: None, c0: None, lengths: None }, true);
    assert!(matches!(err, Err(Error::Value(ref m)) if m.contains("at step 1")), "{err:?}");
}
