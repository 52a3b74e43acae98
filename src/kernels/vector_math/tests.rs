//! Every SIMD path this CPU has against the scalar references, on special values and dense
//! sweeps.

use super::*;
use crate::activations::{glibc_expf, sleef_expf_u10, tanh as scalar_tanh};
use crate::kernels::simd::{load, store, Pair};
use crate::kernels::vector_math_paths;

/// Which element function to apply.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Function {
    SigmoidSleef,
    SigmoidGlibc,
    Tanh,
    /// [`tanh`] on [`Pair`]s of registers, as the recurrent steps run it.
    TanhPair,
    /// The exact algorithm of [`tanh`] alone, the fallback for ambiguous vectors.
    TanhExact,
    /// The fast path of [`tanh`] alone, without its check (not the scalar reference: only for
    /// finding the inputs the check must catch).
    TanhUnchecked,
}

impl Function {
    fn scalar(self, x: f32) -> f32 {
        match self {
            Function::SigmoidSleef => 1.0 / (sleef_expf_u10(0.0 - x) + 1.0),
            Function::SigmoidGlibc => 1.0 / (1.0 + glibc_expf(-x)),
            Function::Tanh | Function::TanhPair | Function::TanhExact | Function::TanhUnchecked => scalar_tanh(x),
        }
    }
}

/// `f` over `xs` in vectors of `LANES`, the last one partial: the body of each instruction
/// set's test entry point (see [`crate::kernels::vector_math_paths`]).
#[inline(always)]
pub(crate) fn apply<S: Simd>(s: S, f: Function, xs: &[f32]) -> Vec<f32> {
    match f {
        Function::TanhPair => apply_on(Pair(s), Function::Tanh, xs),
        _ => apply_on(s, f, xs),
    }
}

/// [`apply`] on the registers of `S`.
#[inline(always)]
fn apply_on<S: Simd>(s: S, f: Function, xs: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; xs.len()];
    for (x, y) in xs.chunks(S::LANES).zip(out.chunks_mut(S::LANES)) {
        let v = load(s, x);
        let r = match f {
            Function::SigmoidSleef => sigmoid_sleef(s, v),
            Function::SigmoidGlibc => sigmoid_glibc(s, v),
            Function::Tanh | Function::TanhPair => tanh(s, v),
            Function::TanhExact => tanh_exact(s, v),
            Function::TanhUnchecked => tanh_unchecked(s, v),
        };
        store(s, y, r);
    }
    out
}

/// [`tanh`] with the exact algorithm in every lane.
#[inline(always)]
fn tanh_exact<S: Simd>(s: S, x: S::F) -> S::F {
    let a = s.min(s.copysign(x, s.splat(0.0)), s.splat(tanh_f64::CLAMP as f32));
    let (lo, hi) = s.widen(a);
    let t = s.narrow(tanh_magnitude(s, lo), tanh_magnitude(s, hi));
    s.select(s.is_nan(x), x, s.copysign(t, x))
}

/// [`tanh`] with its fast path's result in every lane, ambiguous or not.
#[inline(always)]
fn tanh_unchecked<S: Simd>(s: S, x: S::F) -> S::F {
    let a = s.min(s.copysign(x, s.splat(0.0)), s.splat(tanh_f64::CLAMP as f32));
    let (lo, hi) = s.widen(a);
    let t = s.narrow(tanh_fast::magnitude(s, lo), tanh_fast::magnitude(s, hi));
    s.select(s.is_nan(x), x, s.copysign(t, x))
}

fn check(f: Function, xs: &[f32]) {
    let expected: Vec<u32> = xs.iter().map(|&x| f.scalar(x).to_bits()).collect();
    for (name, apply) in vector_math_paths() {
        let got = apply(f, xs);
        for ((&x, &want), got) in xs.iter().zip(&expected).zip(got) {
            let same = got.to_bits() == want || (got.is_nan() && f32::from_bits(want).is_nan());
            assert!(same, "{f:?} on {name}: x = {x:e} ({:#x}) gives {got:e}, scalar {:e}", x.to_bits(), f32::from_bits(want));
        }
    }
}

fn special_values() -> Vec<f32> {
    let mut xs = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::EPSILON,
        1e-30,
        88.0,
        88.72,
        89.0,
        100.0,
        100.5,
        103.0,
        103.5,
        104.0,
        104.5,
        9.0,
        9.1,
        16.0,
        17.0,
        0.5,
        1.0,
        f32::from_bits(0x42b1_7217),
        f32::from_bits(0x42b1_7218),
        f32::from_bits(0x42cf_f1b4),
        f32::from_bits(0x42cf_f1b5),
        f32::from_bits(0x42ce_8ecf),
        f32::from_bits(0x42ce_8ed0),
    ];
    xs.extend(xs.clone().iter().map(|x| -x));
    xs
}

#[test]
fn special_values_equal_the_scalar_references() {
    for f in [Function::SigmoidSleef, Function::SigmoidGlibc, Function::Tanh, Function::TanhPair, Function::TanhExact] {
        check(f, &special_values());
    }
}

#[test]
fn a_sweep_of_every_exponent_equals_the_scalar_references() {
    // Every 1009th float32 bit pattern, both signs, NaNs included: about 4.3 million values.
    let xs: Vec<f32> = (0..u32::MAX).step_by(1009).map(f32::from_bits).collect();
    for f in [Function::SigmoidSleef, Function::SigmoidGlibc, Function::Tanh, Function::TanhPair, Function::TanhExact] {
        check(f, &xs);
    }
}

#[test]
fn a_dense_sweep_of_the_gate_range_equals_the_scalar_references() {
    // Every 499th float32 in [-20, 20]: where the recurrences live (about 4.4 million values).
    let top = 20f32.to_bits();
    let xs: Vec<f32> = (0..top).step_by(499).flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)]).collect();
    for f in [Function::SigmoidSleef, Function::SigmoidGlibc, Function::Tanh, Function::TanhPair, Function::TanhExact] {
        check(f, &xs);
    }
}

#[test]
fn partial_vectors_equal_full_ones() {
    for len in 1..40 {
        let xs: Vec<f32> = (0..len).map(|i| (i as f32 - 17.0) * 0.37).collect();
        check(Function::Tanh, &xs);
        check(Function::TanhPair, &xs);
        check(Function::SigmoidGlibc, &xs);
    }
}

/// Whether two results are the same bits, or both NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// All 2^31 non-negative float32 bit patterns (NaNs and infinity included) and their negations,
/// through the scalar [`tanh`](crate::activations::tanh) and every path's vector tanh (single
/// registers and pairs), against libm's `(x as f64).tanh() as f32`. Two threads; about 290 s of
/// CPU in a release build on the Sapphire Rapids Xeon (AVX2 and AVX-512 paths). Also counts the inputs
/// where the fast path alone rounds differently, which the check must send to the exact one.
#[test]
#[ignore = "exhaustive: minutes in a release build (cargo test --release -- --ignored exhaustive)"]
fn exhaustive_tanh_equals_libm_on_every_float32() {
    const CHUNK: u32 = 1 << 22;
    const THREADS: u32 = 2;
    let chunks = (1u32 << 31) / CHUNK;
    let paths = vector_math_paths();
    let unchecked_misses: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let paths = &paths;
                scope.spawn(move || {
                    let mut misses = Vec::new();
                    for chunk in (thread..chunks).step_by(THREADS as usize) {
                        let xs: Vec<f32> = (chunk * CHUNK..(chunk + 1) * CHUNK).map(f32::from_bits).collect();
                        let want: Vec<f32> = xs.iter().map(|&x| (x as f64).tanh() as f32).collect();
                        for (&x, &w) in xs.iter().zip(&want) {
                            assert!(same(scalar_tanh(x), w), "scalar at {x:e} ({:#x})", x.to_bits());
                            assert!(same(scalar_tanh(-x), -w), "scalar at -{x:e} ({:#x})", x.to_bits());
                        }
                        let negated: Vec<f32> = xs.iter().map(|&x| -x).collect();
                        for (name, apply) in paths {
                            for f in [Function::Tanh, Function::TanhPair] {
                                for (xs, sign) in [(&xs, 1.0f32), (&negated, -1.0)] {
                                    for ((&x, &w), got) in xs.iter().zip(&want).zip(apply(f, xs)) {
                                        assert!(same(got, sign * w), "{f:?} on {name} at {x:e} ({:#x}): {got:e}", x.to_bits());
                                    }
                                }
                            }
                            for ((&x, &w), got) in xs.iter().zip(&want).zip(apply(Function::TanhUnchecked, &xs)) {
                                if !same(got, w) {
                                    misses.push(x.to_bits());
                                }
                            }
                        }
                    }
                    misses
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });
    let mut misses: Vec<u32> = unchecked_misses.concat();
    misses.sort_unstable();
    misses.dedup();
    println!("the fast path alone rounds {} inputs differently: {:x?}", misses.len(), &misses[..misses.len().min(40)]);
}
