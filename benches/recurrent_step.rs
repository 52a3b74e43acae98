//! `cargo bench --bench recurrent_step`: the element-wise recurrent steps (LSTM, GRU, Elman tanh)
//! of every supported path on int8 accumulators, ids `{isa}/{cell} {rows}x{hidden}`, throughput in
//! hidden units (one unit of one row: for the LSTM, its four dequantized gates, three sigmoids, two
//! tanh and the state update).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferroq::kernels::{Accumulators, Nonlinearity, Projected};
use ferroq::{kernels_for, supported_isas};

/// `(rows, hidden)`: the LSTM(50, 16, 512) benchmark's steps, a batch-1 one and an odd width.
const SHAPES: [(usize, usize); 3] = [(16, 512), (1, 256), (4, 100)];

/// Pseudo-random int32 in `-bound..bound` (xorshift).
fn pseudo_random_i32(len: usize, seed: u32, bound: i32) -> Vec<i32> {
    let mut state = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % (2 * bound as u32)) as i32 - bound
        })
        .collect()
}

/// One projection's accumulators and per-column terms, `rows x columns`, with gate
/// pre-activations of a few units (the range a trained LSTM's gates see).
struct Case {
    acc: Vec<i32>,
    col_offsets: Vec<i32>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

impl Case {
    fn new(rows: usize, columns: usize, seed: u32) -> Case {
        Case {
            acc: pseudo_random_i32(rows * columns, seed, 60_000),
            col_offsets: pseudo_random_i32(columns, seed + 1, 3000),
            scales: pseudo_random_i32(columns, seed + 2, 100).iter().map(|&v| 2e-3 + v as f32 * 1e-5).collect(),
            bias: pseudo_random_i32(columns, seed + 3, 100).iter().map(|&v| v as f32 * 1e-3).collect(),
        }
    }

    fn projected(&self) -> Projected<'_> {
        Projected::Int8(Accumulators {
            acc: &self.acc,
            x_zero_point: 3,
            x_scale: 0.01,
            col_offsets: &self.col_offsets,
            scales: &self.scales,
            bias: &self.bias,
        })
    }
}

fn recurrent_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("recurrent_step");
    for isa in supported_isas() {
        let kernels = kernels_for(isa).expect("supported");
        for (rows, hidden) in SHAPES {
            group.throughput(Throughput::Elements((rows * hidden) as u64));
            let id = |cell: &str| BenchmarkId::new(isa.name(), format!("{cell} {rows}x{hidden}"));
            let state: Vec<f32> = pseudo_random_i32(rows * hidden, 9, 1000).iter().map(|&v| v as f32 * 1e-3).collect();
            let (hg, ig) = (Case::new(rows, 4 * hidden, 1), Case::new(rows, 4 * hidden, 5));
            let (mut cs, mut h) = (state.clone(), vec![0.0f32; rows * hidden]);
            group.bench_function(id("lstm"), |b| {
                b.iter(|| {
                    cs.copy_from_slice(&state);
                    (kernels.lstm)(&hg.projected(), &ig.projected(), &mut cs, &mut h, hidden)
                })
            });
            let (hg, ig) = (Case::new(rows, 3 * hidden, 1), Case::new(rows, 3 * hidden, 5));
            group.bench_function(id("gru"), |b| {
                b.iter(|| {
                    h.copy_from_slice(&state);
                    (kernels.gru)(&hg.projected(), &ig.projected(), &mut h, hidden)
                })
            });
            let (hg, ig) = (Case::new(rows, hidden, 1), Case::new(rows, hidden, 5));
            group.bench_function(id("elman"), |b| {
                b.iter(|| (kernels.elman)(Nonlinearity::Tanh, &hg.projected(), &ig.projected(), &mut h, hidden))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, recurrent_steps);
criterion_main!(benches);
