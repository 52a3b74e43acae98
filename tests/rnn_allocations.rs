//! Recurrent steps allocate nothing once warmed up, on every kernel path this CPU supports: a
//! counting global allocator (this test binary's own) counts the allocations of the calling
//! thread while a stream of single steps runs (LSTM, GRU, Elman tanh and relu; one and several
//! batch rows; int8 weights with and without bias, asymmetric ones, float16 ones), and whole
//! sequences (stacked, bidirectional, with lengths and an LSTM projection) must allocate as often
//! for many steps as for few: their outputs, never per step.
//!
//! The counts are per thread, so the other tests of this binary, running in parallel, do not
//! disturb them. The steps here are far below the size at which a step is split between threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferroq::linear::{DynamicLinear, Fp16Linear};
use ferroq::rnn::{CellKind, CellWeights, Projection, Rnn, RnnShape, SequenceInput};
use ferroq::kernels::Kernels;
use ferroq::{kernels_for, supported_isas, Isa};

/// The system allocator, counting the allocations (and reallocations) of threads that count.
struct Counting;

thread_local! {
    /// Allocations by this thread while counting; `None` when not counting.
    static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
}

fn note_allocation() {
    // `try_with`: the allocator also runs while a thread's locals are being destroyed.
    let _ = COUNT.try_with(|count| {
        if let Some(n) = count.get() {
            count.set(Some(n + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments; counting touches only
// a thread-local `Cell` without destructor (no allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's promises, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's promises, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's promises, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's promises, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    COUNT.set(Some(0));
    f();
    COUNT.replace(None).expect("counting")
}

/// A small deterministic generator (xorshift).
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

    fn floats(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.float()).collect()
    }
}

/// How a projection's weights are built.
#[derive(Clone, Copy, Debug)]
enum Weights {
    /// Symmetric per-channel int8 with bias.
    Int8,
    /// int8 with nonzero weight zero points, without bias.
    Asymmetric,
    /// float16 with bias.
    Fp16,
    /// float16 without bias.
    Fp16NoBias,
}

const WEIGHTS: [Weights; 4] = [Weights::Int8, Weights::Asymmetric, Weights::Fp16, Weights::Fp16NoBias];

fn projection(numbers: &mut Numbers, weights: Weights, rows: usize, cols: usize, bias: bool) -> Projection {
    match weights {
        Weights::Int8 | Weights::Asymmetric => {
            let weight: Vec<i8> = (0..rows * cols).map(|_| numbers.next() as i8).collect();
            let scales: Vec<f32> = (0..rows).map(|r| 0.002 + r as f32 * 1e-5).collect();
            let asymmetric = matches!(weights, Weights::Asymmetric);
            let zero_points: Vec<i32> = (0..rows).map(|r| if asymmetric { (r % 5) as i32 - 2 } else { 0 }).collect();
            let bias = (bias && !asymmetric).then(|| numbers.floats(rows));
            Projection::Int8(DynamicLinear::new(&weight, rows, cols, &scales, &zero_points, bias).unwrap().into())
        }
        Weights::Fp16 | Weights::Fp16NoBias => {
            let weight: Vec<u16> = (0..rows * cols).map(|_| half::f16::from_f32(numbers.float() * 0.3).to_bits()).collect();
            let bias = (bias && matches!(weights, Weights::Fp16)).then(|| numbers.floats(rows));
            Projection::Fp16(Fp16Linear::new(&weight, rows, cols, bias).unwrap().into())
        }
    }
}

fn stack(shape: RnnShape, weights: Weights, seed: u32) -> Rnn {
    let mut numbers = Numbers(seed);
    let gates = shape.kind.gates() * shape.hidden_size;
    let cells = (0..shape.num_layers * shape.directions())
        .map(|index| {
            let input = if index < shape.directions() { shape.input_size } else { shape.directions() * shape.output_size() };
            CellWeights {
                ih: projection(&mut numbers, weights, gates, input, true),
                hh: projection(&mut numbers, weights, gates, shape.output_size(), true),
                hr: (shape.proj_size > 0).then(|| projection(&mut numbers, weights, shape.proj_size, shape.hidden_size, false)),
            }
        })
        .collect();
    Rnn::new(shape, cells).unwrap()
}

/// Every path this CPU supports, scalar included, each forced through its own table.
fn paths() -> Vec<Kernels> {
    let isas = supported_isas();
    let skipped: Vec<&str> = Isa::ALL.iter().filter(|isa| !isas.contains(isa)).map(|isa| isa.name()).collect();
    eprintln!("allocations on paths {:?}; SKIPPED (not on this CPU): {skipped:?}", isas.iter().map(|i| i.name()).collect::<Vec<_>>());
    isas.into_iter().map(|isa| kernels_for(isa).expect("supported")).collect()
}

const KINDS: [CellKind; 4] = [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh, CellKind::RnnRelu];

#[test]
fn a_stream_of_single_steps_allocates_nothing_after_the_first() {
    let paths = paths();
    // 37 units: a partial vector block on every path; 300: the GRU kernels' chunks of 256 units.
    let cases = KINDS.into_iter().flat_map(|k| WEIGHTS.map(|w| (k, w, 37))).chain(WEIGHTS.map(|w| (CellKind::Gru, w, 300)));
    for (i, (kind, weights, hidden)) in cases.enumerate() {
        let shape = RnnShape { kind, input_size: 11, hidden_size: hidden, proj_size: 0, num_layers: 1, bidirectional: false };
        let rnn = stack(shape, weights, 1 + i as u32);
        for batch in [1, 3] {
            let mut numbers = Numbers(100 + i as u32);
            let xs: Vec<Vec<f32>> = (0..12).map(|_| numbers.floats(batch * 11)).collect();
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
    let paths = paths();
    let batch = 3;
    for (i, (kind, weights)) in KINDS.into_iter().flat_map(|k| WEIGHTS.map(|w| (k, w))).enumerate() {
        let proj_size = if kind == CellKind::Lstm && i % 2 == 0 { 5 } else { 0 };
        // 30 steps of 3 rows: more than one chunk of the input projection (64 rows).
        let shape = RnnShape { kind, input_size: 7, hidden_size: 13, proj_size, num_layers: 2, bidirectional: true };
        let rnn = stack(shape, weights, 50 + i as u32);
        let mut numbers = Numbers(200 + i as u32);
        let x = numbers.floats(30 * batch * 7);
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
                run(30);
                let few = allocations(|| drop(run(3)));
                let many = allocations(|| drop(run(30)));
                let what = format!("{kind:?} proj {proj_size} {weights:?} lengths {with_lengths} on {}", kernels.isa.name());
                assert!(few > 0, "{what}: a sequence's outputs are allocated");
                assert_eq!(many, few, "{what}: 30 steps allocated {many} times, 3 steps {few} times");
            }
        }
    }
}
