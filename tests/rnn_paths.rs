//! Whole recurrent sequences on every kernel path this CPU supports: LSTM (with projection),
//! GRU and Elman stacks, bidirectional, with variable lengths, int8 and float16 weights, must
//! give the scalar reference's bits. On aarch64 this runs under QEMU in CI (`.ci/aarch64-tests`).

use ferroq::kernels::scalar;
use ferroq::linear::{DynamicLinear, Fp16Linear};
use ferroq::rnn::{CellKind, CellWeights, Projection, Rnn, RnnShape, SequenceInput};
use ferroq::{kernels_for, supported_isas, Isa};

/// A small deterministic generator (xorshift), so the test needs no random-number crate.
struct Numbers(u32);

impl Numbers {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    fn float(&mut self) -> f32 {
        (self.next() % 20001) as f32 / 10000.0 - 1.0
    }

    fn int8(&mut self) -> i8 {
        self.next() as i8
    }
}

fn projection(numbers: &mut Numbers, rows: usize, cols: usize, bias: bool, fp16: bool) -> Projection {
    let bias = bias.then(|| (0..rows).map(|_| numbers.float()).collect());
    if fp16 {
        let weight: Vec<u16> = (0..rows * cols).map(|_| half::f16::from_f32(numbers.float() * 0.3).to_bits()).collect();
        Projection::Fp16(Fp16Linear::new(&weight, rows, cols, bias).unwrap().into())
    } else {
        let weight: Vec<i8> = (0..rows * cols).map(|_| numbers.int8()).collect();
        let scales: Vec<f32> = (0..rows).map(|r| 0.002 + r as f32 * 1e-5).collect();
        Projection::Int8(DynamicLinear::new(&weight, rows, cols, &scales, &vec![0; rows], bias).unwrap().into())
    }
}

fn stack(kind: CellKind, proj_size: usize, fp16: bool, seed: u32) -> Rnn {
    let mut numbers = Numbers(seed);
    let shape = RnnShape { kind, input_size: 7, hidden_size: 37, proj_size, num_layers: 2, bidirectional: true };
    let gates = kind.gates() * shape.hidden_size;
    let mut cells = Vec::new();
    for layer in 0..shape.num_layers {
        for _ in 0..shape.directions() {
            let input = if layer == 0 { shape.input_size } else { shape.directions() * shape.output_size() };
            cells.push(CellWeights {
                ih: projection(&mut numbers, gates, input, true, fp16),
                hh: projection(&mut numbers, gates, shape.output_size(), layer == 0, fp16),
                hr: (proj_size > 0).then(|| projection(&mut numbers, proj_size, shape.hidden_size, false, fp16)),
            });
        }
    }
    Rnn::new(shape, cells).unwrap()
}

#[test]
fn every_path_runs_whole_sequences_bit_identically() {
    let isas = supported_isas();
    let skipped: Vec<&str> = Isa::ALL.iter().filter(|isa| !isas.contains(isa)).map(|isa| isa.name()).collect();
    eprintln!("recurrent sequences on paths {:?}; SKIPPED (not on this CPU): {skipped:?}", isas.iter().map(|i| i.name()).collect::<Vec<_>>());
    let (steps, batch) = (9, 3);
    let mut numbers = Numbers(99);
    let x: Vec<f32> = (0..steps * batch * 7).map(|_| numbers.float() * 2.0).collect();
    let lengths = [9usize, 4, 1];
    let configs = [
        (CellKind::Lstm, 0, false),
        (CellKind::Lstm, 5, false),
        (CellKind::Gru, 0, false),
        (CellKind::RnnTanh, 0, false),
        (CellKind::RnnRelu, 0, false),
        (CellKind::Lstm, 0, true),
        (CellKind::Gru, 0, true),
    ];
    for (i, (kind, proj_size, fp16)) in configs.into_iter().enumerate() {
        let rnn = stack(kind, proj_size, fp16, 7 + i as u32);
        for lengths in [None, Some(&lengths[..])] {
            let input = SequenceInput { x: &x, steps, batch, batch_first: false, h0: None, c0: None, lengths };
            let reference = rnn.forward(&scalar::KERNELS, &input, true).unwrap();
            for &isa in &isas {
                let out = rnn.forward(&kernels_for(isa).unwrap(), &input, true).unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let what = format!("{kind:?} proj={proj_size} fp16={fp16} lengths={} on {}", lengths.is_some(), isa.name());
                assert_eq!(bits(&out.y), bits(&reference.y), "y differs: {what}");
                assert_eq!(bits(&out.h_n), bits(&reference.h_n), "h_n differs: {what}");
                assert_eq!(out.c_n.as_deref().map(bits), reference.c_n.as_deref().map(bits), "c_n differs: {what}");
            }
        }
    }
}
