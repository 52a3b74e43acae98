//! The dynamic Linear's call path (what `PackedLinear.forward` runs: this thread's quantized-input
//! buffer, [`DynamicLinear::quantize_input_into`], then [`DynamicLinear::forward_quantized`])
//! allocates nothing once a call of its size has run, on every kernel path this CPU supports: a
//! counting global allocator (`common/counting.rs`) counts the calling thread's allocations over a
//! stream of calls. Cases: one and several rows (the AMX path takes 3 and more), symmetric weights
//! with bias and asymmetric ones without, a layer of several column blocks with a narrow last
//! panel, and products large enough to be split between threads (by column blocks for one row, by
//! rows for several). The reused buffers give the same bits as fresh ones.

#[path = "common/counting.rs"]
mod counting;
mod common;

use common::{all_paths, bits, Rng};
use counting::allocations;
use ferroq::kernels::Kernels;
use ferroq::linear::{with_input_buffer, DynamicLinear, LinearScratch};

/// A `n x k` layer: per-channel scales, zero points all 0 with a bias, or some non-zero without.
fn layer(rng: &mut Rng, n: usize, k: usize, asymmetric: bool) -> DynamicLinear {
    let weight: Vec<i8> = (0..n * k).map(|_| rng.byte() as i8).collect();
    let scales: Vec<f32> = (0..n).map(|j| 0.002 + j as f32 * 1e-6).collect();
    let zero_points: Vec<i32> = (0..n).map(|j| if asymmetric { (j % 5) as i32 - 2 } else { 0 }).collect();
    let bias = (!asymmetric).then(|| rng.floats(n, 1.0));
    DynamicLinear::new(&weight, n, k, &scales, &zero_points, bias).unwrap()
}

/// One call as `PackedLinear.forward` makes it.
fn call(linear: &DynamicLinear, kernels: &Kernels, x: &[f32], rows: usize, out: &mut [f32]) {
    with_input_buffer(|xq| {
        linear.quantize_input_into(kernels, x, rows, true, xq).unwrap();
        linear.forward_quantized(kernels, xq, out).unwrap();
    });
}

#[test]
fn calls_allocate_nothing_after_the_first() {
    let paths = all_paths();
    // (n, k, rows): small; three column blocks, the last with a narrow panel; split by column
    // blocks (one row of 2048 x 2048 products); split by rows.
    let shapes = [(37, 11, 1), (37, 11, 3), (2100, 300, 1), (2100, 300, 5), (2048, 2048, 1), (1024, 1024, 4)];
    let mut rng = Rng(7);
    for (n, k, rows) in shapes {
        for asymmetric in [false, true] {
            let linear = layer(&mut rng, n, k, asymmetric);
            let xs: Vec<Vec<f32>> = (0..6).map(|_| rng.floats(rows * k, 2.0)).collect();
            for kernels in &paths {
                let what = format!("{n} x {k}, {rows} rows, asymmetric {asymmetric} on {}", kernels.isa.name());
                let mut out = vec![0f32; rows * n];
                call(&linear, kernels, &xs[0], rows, &mut out); // grows this thread's buffers
                let mut outs = vec![vec![0f32; rows * n]; xs.len() - 1];
                let count = allocations(|| {
                    for (x, out) in xs[1..].iter().zip(&mut outs) {
                        call(&linear, kernels, x, rows, out);
                    }
                });
                assert_eq!(count, 0, "{what}: {} calls allocated {count} times", outs.len());
                for (x, got) in xs[1..].iter().zip(&outs) {
                    let xq = linear.quantize_input(kernels, x, rows, true).unwrap();
                    let mut want = vec![0f32; rows * n];
                    linear.forward_quantized_with(kernels, &xq, &mut want, &mut LinearScratch::default()).unwrap();
                    assert_eq!(bits(got), bits(&want), "{what}: reused buffers, other bits than fresh ones");
                    assert!(got.iter().any(|&v| v != 0.0), "{what}: the call ran");
                }
            }
        }
    }
}
