//! The quantization of a dynamic layer's input, generic over [`Simd`]: the range of the input and
//! its quantization to uint8.

use super::simd::Simd;
use crate::kernels::Range;
use crate::quant::quantize_value;

/// Vectors per step of the range loop: independent loads reduced as a tree, so the loop-carried
/// chains advance once per `UNROLL` vectors.
const UNROLL: usize = 4;

/// See [`Kernels::range`](crate::kernels::Kernels::range).
///
/// Min and max of finite floats are exact in any order, and [`Range::finite`] settles the sign of a
/// zero bound, which the order and the instruction set's `min` would otherwise choose. A lane of `x - x` is `0.0` for every finite `x`
/// and NaN for NaN and infinities, so their sum is NaN exactly when some element is not finite.
#[inline(always)]
pub(crate) fn range<S: Simd>(s: S, x: &[f32]) -> Range {
    let Some(&first) = x.first() else {
        return Range::Finite { min: 0.0, max: 0.0 };
    };
    let lanes = S::LANES;
    let (mut min, mut max, mut not_finite) = (s.splat(first), s.splat(first), s.splat(0.0));
    let mut steps = x.chunks_exact(UNROLL * lanes);
    for step in &mut steps {
        // SAFETY: `step` holds `UNROLL * LANES` floats, so each of the `UNROLL` loads is in bounds.
        let v: [S::F; UNROLL] = std::array::from_fn(|i| unsafe { s.load(step.as_ptr().add(i * lanes)) });
        let lo = s.min(s.min(v[0], v[1]), s.min(v[2], v[3]));
        let hi = s.max(s.max(v[0], v[1]), s.max(v[2], v[3]));
        let d: [S::F; UNROLL] = v.map(|v| s.sub(v, v));
        min = s.min(min, lo);
        max = s.max(max, hi);
        not_finite = s.add(not_finite, s.add(s.add(d[0], d[1]), s.add(d[2], d[3])));
    }
    let mut vectors = steps.remainder().chunks_exact(lanes);
    for chunk in &mut vectors {
        // SAFETY: `chunk` holds `LANES` floats.
        let v = unsafe { s.load(chunk.as_ptr()) };
        min = s.min(min, v);
        max = s.max(max, v);
        not_finite = s.add(not_finite, s.sub(v, v));
    }
    if lanes_of(s, not_finite)[..lanes].iter().any(|d| d.is_nan()) {
        return Range::NonFinite;
    }
    let mut lo = lanes_of(s, min)[..lanes].iter().fold(first, |m, &v| m.min(v));
    let mut hi = lanes_of(s, max)[..lanes].iter().fold(first, |m, &v| m.max(v));
    for &v in vectors.remainder() {
        if !v.is_finite() {
            return Range::NonFinite;
        }
        lo = lo.min(v);
        hi = hi.max(v);
    }
    Range::finite(lo, hi)
}

/// The lanes of `v` in the first `LANES` elements (at most 16: a single register), zeros after.
#[inline(always)]
fn lanes_of<S: Simd>(s: S, v: S::F) -> [f32; 16] {
    const { assert!(S::LANES <= 16) };
    let mut lanes = [0.0; 16];
    // SAFETY: `lanes` has room for `LANES <= 16` floats.
    unsafe { s.store(lanes.as_mut_ptr(), v) };
    lanes
}

/// See [`Kernels::quantize_u8`](crate::kernels::Kernels::quantize_u8).
///
/// The same float operations as [`quantize_value`] in the same order (multiply, round half to even,
/// add the zero point, clamp), so every input, huge or NaN included, gives the scalar byte: the
/// clamp happens in float before the conversion, and `max(NaN, 0.0)` is `0.0` as `NaN as i32` is 0.
#[inline(always)]
pub(crate) fn quantize_u8<S: Simd>(s: S, x: &[f32], inv_scale: f32, zero_point: i32, out: &mut [u8]) {
    let len = x.len().min(out.len());
    let (x, out) = (&x[..len], &mut out[..len]);
    let inv = s.splat(inv_scale);
    let zp = s.splat(zero_point as f32);
    let (lo, hi) = (s.splat(0.0), s.splat(255.0));
    let mut src = x.chunks_exact(S::LANES);
    let mut dst = out.chunks_exact_mut(S::LANES);
    for (src, dst) in (&mut src).zip(&mut dst) {
        // SAFETY: `src` holds `LANES` floats.
        let v = unsafe { s.load(src.as_ptr()) };
        let q = s.min(s.max(s.add(s.round_even(s.mul(v, inv)), zp), lo), hi);
        // SAFETY: `dst` holds `LANES` bytes.
        unsafe { s.store_u8(dst.as_mut_ptr(), q) };
    }
    for (o, &v) in dst.into_remainder().iter_mut().zip(src.remainder()) {
        *o = quantize_value(v, inv_scale, zero_point, 0, 255) as u8;
    }
}
