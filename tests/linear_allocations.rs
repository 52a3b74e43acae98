//! The Linear layers' call paths allocate nothing once a call of their size has run, on every
//! kernel path this CPU supports, with 1 thread and with 2 (the calling thread and the pool
//! thread alike): a counting global allocator (`common/counting.rs`) counts every thread's
//! allocations over a stream of calls.
//!
//! - The dynamic Linear as `PackedLinear.forward` calls it (this thread's quantized-input buffer,
//!   [`DynamicLinear::quantize_input_into`], then [`DynamicLinear::forward_quantized`]): one and
//!   several rows (the AMX path takes 3 and more), symmetric weights with bias and asymmetric ones
//!   without, a layer of several column blocks with a narrow last panel, products large enough to
//!   be split between threads (by column blocks for one row, by rows for several), and inputs of
//!   more than 128K elements, whose quantization is split between threads by rows.
//! - The static Linear ([`StaticLinear::forward`], quint8 in and out): per-tensor and per-channel
//!   weights, with and without bias and ReLU, in features that are and are not a multiple of 4,
//!   products split between threads, shares of several row blocks, and calls of fewer rows after
//!   more.
//!
//! The reused buffers give the same bits as fresh ones. The count covers every thread of the
//! process but the main one (the test harness's, which runs no ferroq code), so this binary holds
//! this one test alone.

#[path = "common/counting.rs"]
mod counting;
mod common;

use common::{all_paths, bits, Rng};
use counting::all_threads_allocations as allocations;
use ferroq::kernels::Kernels;
use ferroq::linear::{with_input_buffer, DynamicLinear, LinearScratch};
use ferroq::quant::QParams;
use ferroq::static_linear::{StaticLinear, StaticScratch};
use ferroq::threads::{set_num_threads, PARALLEL_THRESHOLD_MACS};

/// Input elements from which the dynamic Linear's input quantization is split between threads
/// (its cost, 32 multiply-accumulates an element, reaches [`PARALLEL_THRESHOLD_MACS`]).
const SPLIT_QUANTIZATION_ELEMENTS: usize = 128 * 1024;

#[test]
fn calls_allocate_nothing_after_the_first_on_any_thread() {
    let paths = all_paths();
    for threads in [1, 2] {
        set_num_threads(threads).unwrap();
        dynamic_calls_allocate_nothing(&paths, threads);
        static_calls_allocate_nothing(&paths, threads);
    }
}

/// A `n x k` dynamic layer: per-channel scales, zero points all 0 with a bias, or some non-zero
/// without.
fn dynamic_layer(rng: &mut Rng, n: usize, k: usize, asymmetric: bool) -> DynamicLinear {
    let weight: Vec<i8> = (0..n * k).map(|_| rng.byte() as i8).collect();
    let scales: Vec<f32> = (0..n).map(|j| 0.002 + j as f32 * 1e-6).collect();
    let zero_points: Vec<i32> = (0..n).map(|j| if asymmetric { (j % 5) as i32 - 2 } else { 0 }).collect();
    let bias = (!asymmetric).then(|| rng.floats(n, 1.0));
    DynamicLinear::new(&weight, n, k, &scales, &zero_points, bias).unwrap()
}

/// One dynamic call as `PackedLinear.forward` makes it.
fn dynamic_call(linear: &DynamicLinear, kernels: &Kernels, x: &[f32], rows: usize, out: &mut [f32]) {
    with_input_buffer(|xq| {
        linear.quantize_input_into(kernels, x, rows, true, xq).unwrap();
        linear.forward_quantized(kernels, xq, out).unwrap();
    });
}

fn dynamic_calls_allocate_nothing(paths: &[Kernels], threads: usize) {
    // (n, k, rows): small; three column blocks, the last with a narrow panel; split by column
    // blocks (one row of 2048 x 2048 products); split by rows; inputs of 160K and 150K elements
    // (quantized by all threads), with a product too small to split and one split by rows.
    let shapes =
        [(37, 11, 1), (37, 11, 3), (2100, 300, 1), (2100, 300, 5), (2048, 2048, 1), (1024, 1024, 4), (16, 1024, 160), (256, 300, 512)];
    assert_eq!(SPLIT_QUANTIZATION_ELEMENTS * 32, PARALLEL_THRESHOLD_MACS, "the large inputs below would not be split");
    assert!(shapes[6..].iter().all(|&(_, k, rows)| k * rows >= SPLIT_QUANTIZATION_ELEMENTS));
    let mut rng = Rng(7);
    for (n, k, rows) in shapes {
        for asymmetric in [false, true] {
            let linear = dynamic_layer(&mut rng, n, k, asymmetric);
            let xs: Vec<Vec<f32>> = (0..6).map(|_| rng.floats(rows * k, 2.0)).collect();
            for kernels in paths {
                let what = format!("dynamic {n} x {k}, {rows} rows, asymmetric {asymmetric} on {}, {threads} threads", kernels.isa.name());
                let mut out = vec![0f32; rows * n];
                dynamic_call(&linear, kernels, &xs[0], rows, &mut out); // grows the kept buffers
                let mut outs = vec![vec![0f32; rows * n]; xs.len() - 1];
                let count = allocations(|| {
                    for (x, out) in xs[1..].iter().zip(&mut outs) {
                        dynamic_call(&linear, kernels, x, rows, out);
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

/// How a static layer's weights are quantized.
#[derive(Clone, Copy, Debug)]
enum Scheme {
    /// One scale and zero point 0, with a bias.
    PerTensor,
    /// One scale and zero point per output feature, some non-zero, without a bias.
    PerChannel,
}

/// A `n x k` static layer of `scheme`.
fn static_layer(rng: &mut Rng, n: usize, k: usize, scheme: Scheme) -> StaticLinear {
    let weight: Vec<i8> = (0..n * k).map(|_| rng.byte() as i8).collect();
    let (scales, zero_points, bias, per_channel) = match scheme {
        Scheme::PerTensor => (vec![0.003], vec![0], Some(rng.floats(n, 2.0)), false),
        Scheme::PerChannel => {
            let scales: Vec<f32> = (0..n).map(|j| 0.002 + j as f32 * 1e-6).collect();
            (scales, (0..n).map(|j| (j % 5) as i32 - 2).collect(), None, true)
        }
    };
    StaticLinear::new(&weight, n, k, &scales, &zero_points, per_channel, bias).unwrap()
}

fn static_calls_allocate_nothing(paths: &[Kernels], threads: usize) {
    // (n, k, rows): small, in features not a multiple of 4; a BERT-base projection, one row and
    // a batch of 16 (split between threads); shares of several 64-row blocks.
    let shapes: [(usize, usize, usize); 5] = [(37, 11, 1), (37, 11, 3), (768, 768, 1), (768, 768, 16), (128, 257, 150)];
    let (input, output) = (QParams { scale: 0.05, zero_point: 3 }, QParams { scale: 0.4, zero_point: 120 });
    let mut rng = Rng(11);
    for (n, k, rows) in shapes {
        for (scheme, relu) in [(Scheme::PerTensor, false), (Scheme::PerChannel, true)] {
            let linear = static_layer(&mut rng, n, k, scheme);
            // Calls of all the rows, then of fewer rows (the buffers stay as grown).
            let calls: Vec<(usize, Vec<u8>)> =
                [rows, rows, rows.div_ceil(2), 1, rows].into_iter().map(|r| (r, (0..r * k).map(|_| rng.byte()).collect())).collect();
            for kernels in paths {
                let what = format!("static {n} x {k}, {rows} rows, {scheme:?} relu {relu} on {}, {threads} threads", kernels.isa.name());
                let forward = |x: &[u8], rows: usize, out: &mut [u8]| linear.forward(kernels, x, rows, input, output, relu, out).unwrap();
                let mut out = vec![0u8; rows * n];
                forward(&calls[0].1, rows, &mut out); // grows this thread's buffers
                let mut outs: Vec<Vec<u8>> = calls[1..].iter().map(|(rows, _)| vec![0u8; rows * n]).collect();
                let count = allocations(|| {
                    for ((rows, x), out) in calls[1..].iter().zip(&mut outs) {
                        forward(x, *rows, out);
                    }
                });
                assert_eq!(count, 0, "{what}: {} calls allocated {count} times", outs.len());
                for ((rows, x), got) in calls[1..].iter().zip(&outs) {
                    let mut want = vec![0u8; rows * n];
                    let mut fresh = StaticScratch::default();
                    linear.prepare(x, *rows, input, output, relu, &mut fresh).unwrap().run(kernels, &mut want).unwrap();
                    assert_eq!(got, &want, "{what}, a call of {rows} rows: reused buffers, other bytes than fresh ones");
                    assert!(got.iter().any(|&v| v != got[0]), "{what}: the call ran");
                }
            }
        }
    }
}
