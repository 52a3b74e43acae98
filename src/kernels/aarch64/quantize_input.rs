//! The quantization of a dynamic layer's input on NEON: the range of the input and its
//! quantization to uint8, 16 floats per step.

use std::arch::aarch64::*;

use super::neon::Neon;
use crate::kernels::Range;
use crate::quant::quantize_value;

/// Floats per step: four vectors.
const STEP: usize = 16;

/// See [`Kernels::range`](crate::kernels::Kernels::range).
///
/// `fminnm`/`fmaxnm` are the instructions `f32::min`/`f32::max` compile to on aarch64, and on
/// numbers they are a true minimum and maximum (with `-0.0 < +0.0`), so the order of the
/// comparisons cannot change the result: it is the scalar kernel's, bit for bit. An element is not
/// finite exactly when its magnitude bits reach the exponent's all-ones pattern, `0x7f80_0000`.
#[inline(always)]
pub(super) fn range(_: Neon, x: &[f32]) -> Range {
    let Some(&first) = x.first() else {
        return Range::Finite { min: 0.0, max: 0.0 };
    };
    let mut steps = x.chunks_exact(STEP);
    // SAFETY: the token proves NEON; each load reads 4 of the 16 floats of its step.
    let (min, max, magnitude) = unsafe {
        let mut min = [vdupq_n_f32(first); 4];
        let mut max = min;
        let mut magnitude = [vdupq_n_u32(0); 4];
        let abs_mask = vdupq_n_u32(0x7fff_ffff);
        for step in &mut steps {
            for (i, ((min, max), magnitude)) in min.iter_mut().zip(&mut max).zip(&mut magnitude).enumerate() {
                let v = vld1q_f32(step.as_ptr().add(4 * i));
                *min = vminnmq_f32(*min, v);
                *max = vmaxnmq_f32(*max, v);
                *magnitude = vmaxq_u32(*magnitude, vandq_u32(vreinterpretq_u32_f32(v), abs_mask));
            }
        }
        (
            vminnmvq_f32(vminnmq_f32(vminnmq_f32(min[0], min[1]), vminnmq_f32(min[2], min[3]))),
            vmaxnmvq_f32(vmaxnmq_f32(vmaxnmq_f32(max[0], max[1]), vmaxnmq_f32(max[2], max[3]))),
            vmaxvq_u32(vmaxq_u32(vmaxq_u32(magnitude[0], magnitude[1]), vmaxq_u32(magnitude[2], magnitude[3]))),
        )
    };
    if magnitude >= 0x7f80_0000 {
        return Range::NonFinite;
    }
    let (mut min, mut max) = (min, max);
    for &v in steps.remainder() {
        if !v.is_finite() {
            return Range::NonFinite;
        }
        min = min.min(v);
        max = max.max(v);
    }
    Range::Finite { min, max }
}

/// See [`Kernels::quantize_u8`](crate::kernels::Kernels::quantize_u8).
///
/// The float operations of [`quantize_value`] in its order: multiply, round half to even
/// (`frintn`), add the zero point, clamp, so every input gives the scalar byte, huge ones included.
/// A NaN (which callers reject before quantizing) clamps to 0 (`fmaxnm` returns the number), as
/// `NaN as i32` is 0. The clamped lanes are integers in `0..=255`: converting and narrowing them is
/// exact.
#[inline(always)]
pub(super) fn quantize_u8(_: Neon, x: &[f32], inv_scale: f32, zero_point: i32, out: &mut [u8]) {
    let len = x.len().min(out.len());
    let (x, out) = (&x[..len], &mut out[..len]);
    let mut src = x.chunks_exact(STEP);
    let mut dst = out.chunks_exact_mut(STEP);
    // SAFETY: the token proves NEON; each load reads 4 of the 16 floats of `src`, the store writes
    // the 16 bytes of `dst`.
    unsafe {
        let inv = vdupq_n_f32(inv_scale);
        let zp = vdupq_n_f32(zero_point as f32);
        let (lo, hi) = (vdupq_n_f32(0.0), vdupq_n_f32(255.0));
        for (src, dst) in (&mut src).zip(&mut dst) {
            let q: [uint32x4_t; 4] = std::array::from_fn(|i| {
                let v = vld1q_f32(src.as_ptr().add(4 * i));
                let shifted = vaddq_f32(vrndnq_f32(vmulq_f32(v, inv)), zp);
                vcvtq_u32_f32(vminnmq_f32(vmaxnmq_f32(shifted, lo), hi))
            });
            let low = vcombine_u16(vmovn_u32(q[0]), vmovn_u32(q[1]));
            let high = vcombine_u16(vmovn_u32(q[2]), vmovn_u32(q[3]));
            vst1q_u8(dst.as_mut_ptr(), vcombine_u8(vmovn_u16(low), vmovn_u16(high)));
        }
    }
    for (o, &v) in dst.into_remainder().iter_mut().zip(src.remainder()) {
        *o = quantize_value(v, inv_scale, zero_point, 0, 255) as u8;
    }
}
