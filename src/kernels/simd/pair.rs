//! [`Simd`] on two registers at once: every operation is applied to both halves, one after the
//! other, so that the generic element functions emit two independent dependency chains
//! interleaved instruction by instruction. Their long latency chains (a float64 polynomial, a
//! division) then overlap within the out-of-order window instead of serializing.

use super::Simd;

/// Two vectors of `S`: `2 * S::LANES` lanes, the first register holding the first half.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pair<S>(pub S);

/// `[f(a[0], b[0]), f(a[1], b[1])]`.
macro_rules! both {
    ($s:expr, $f:ident($($a:expr),*)) => {
        [$s.$f($($a[0]),*), $s.$f($($a[1]),*)]
    };
}

impl<S: Simd> Simd for Pair<S> {
    const LANES: usize = 2 * S::LANES;
    const TANH_FAST_PATH: bool = S::TANH_FAST_PATH;
    type F = [S::F; 2];
    type I = [S::I; 2];
    type D = [S::D; 2];
    type M = [S::M; 2];

    #[inline(always)]
    fn splat(self, v: f32) -> Self::F {
        [self.0.splat(v); 2]
    }

    #[inline(always)]
    fn add(self, a: Self::F, b: Self::F) -> Self::F {
        both!(self.0, add(a, b))
    }

    #[inline(always)]
    fn sub(self, a: Self::F, b: Self::F) -> Self::F {
        both!(self.0, sub(a, b))
    }

    #[inline(always)]
    fn mul(self, a: Self::F, b: Self::F) -> Self::F {
        both!(self.0, mul(a, b))
    }

    #[inline(always)]
    fn div(self, a: Self::F, b: Self::F) -> Self::F {
        both!(self.0, div(a, b))
    }

    #[inline(always)]
    fn fmadd(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F {
        both!(self.0, fmadd(a, b, c))
    }

    #[inline(always)]
    fn min(self, a: Self::F, b: Self::F) -> Self::F {
        both!(self.0, min(a, b))
    }

    #[inline(always)]
    fn max(self, a: Self::F, b: Self::F) -> Self::F {
        both!(self.0, max(a, b))
    }

    #[inline(always)]
    fn round_even(self, a: Self::F) -> Self::F {
        both!(self.0, round_even(a))
    }

    #[inline(always)]
    fn neg(self, a: Self::F) -> Self::F {
        both!(self.0, neg(a))
    }

    #[inline(always)]
    fn lt(self, a: Self::F, b: Self::F) -> Self::M {
        both!(self.0, lt(a, b))
    }

    #[inline(always)]
    fn is_nan(self, a: Self::F) -> Self::M {
        both!(self.0, is_nan(a))
    }

    #[inline(always)]
    fn select(self, mask: Self::M, a: Self::F, b: Self::F) -> Self::F {
        both!(self.0, select(mask, a, b))
    }

    #[inline(always)]
    fn copysign(self, a: Self::F, sign: Self::F) -> Self::F {
        both!(self.0, copysign(a, sign))
    }

    #[inline(always)]
    fn round_to_i32(self, a: Self::F) -> Self::I {
        both!(self.0, round_to_i32(a))
    }

    #[inline(always)]
    fn i32_to_f32(self, a: Self::I) -> Self::F {
        both!(self.0, i32_to_f32(a))
    }

    #[inline(always)]
    fn pow2i(self, q: Self::I) -> Self::F {
        both!(self.0, pow2i(q))
    }

    #[inline(always)]
    fn half_i32(self, a: Self::I) -> Self::I {
        both!(self.0, half_i32(a))
    }

    #[inline(always)]
    fn splat_i32(self, v: i32) -> Self::I {
        [self.0.splat_i32(v); 2]
    }

    #[inline(always)]
    fn sub_i32(self, a: Self::I, b: Self::I) -> Self::I {
        both!(self.0, sub_i32(a, b))
    }

    #[inline(always)]
    fn mul_i32(self, a: Self::I, b: Self::I) -> Self::I {
        both!(self.0, mul_i32(a, b))
    }

    #[inline(always)]
    fn splat_d(self, v: f64) -> Self::D {
        [self.0.splat_d(v); 2]
    }

    #[inline(always)]
    fn widen(self, a: Self::F) -> (Self::D, Self::D) {
        let ((lo0, hi0), (lo1, hi1)) = (self.0.widen(a[0]), self.0.widen(a[1]));
        ([lo0, lo1], [hi0, hi1])
    }

    #[inline(always)]
    fn narrow(self, lo: Self::D, hi: Self::D) -> Self::F {
        both!(self.0, narrow(lo, hi))
    }

    #[inline(always)]
    fn add_d(self, a: Self::D, b: Self::D) -> Self::D {
        both!(self.0, add_d(a, b))
    }

    #[inline(always)]
    fn sub_d(self, a: Self::D, b: Self::D) -> Self::D {
        both!(self.0, sub_d(a, b))
    }

    #[inline(always)]
    fn mul_d(self, a: Self::D, b: Self::D) -> Self::D {
        both!(self.0, mul_d(a, b))
    }

    #[inline(always)]
    fn div_d(self, a: Self::D, b: Self::D) -> Self::D {
        both!(self.0, div_d(a, b))
    }

    #[inline(always)]
    fn fmadd_d(self, a: Self::D, b: Self::D, c: Self::D) -> Self::D {
        both!(self.0, fmadd_d(a, b, c))
    }

    #[inline(always)]
    fn neg_d(self, a: Self::D) -> Self::D {
        both!(self.0, neg_d(a))
    }

    #[inline(always)]
    fn to_bits_d(self, a: Self::D) -> Self::I {
        both!(self.0, to_bits_d(a))
    }

    #[inline(always)]
    fn d_from_bits(self, a: Self::I) -> Self::D {
        both!(self.0, d_from_bits(a))
    }

    #[inline(always)]
    fn splat_i64(self, v: i64) -> Self::I {
        [self.0.splat_i64(v); 2]
    }

    #[inline(always)]
    fn add_i64(self, a: Self::I, b: Self::I) -> Self::I {
        both!(self.0, add_i64(a, b))
    }

    #[inline(always)]
    fn shl_i64<const SHIFT: i32>(self, a: Self::I) -> Self::I {
        [self.0.shl_i64::<SHIFT>(a[0]), self.0.shl_i64::<SHIFT>(a[1])]
    }

    #[inline(always)]
    fn lookup32(self, table: &[u64; 32], a: Self::I) -> Self::I {
        [self.0.lookup32(table, a[0]), self.0.lookup32(table, a[1])]
    }

    #[inline(always)]
    fn lookup16(self, table: &[u64; 16], a: Self::I) -> Self::I {
        [self.0.lookup16(table, a[0]), self.0.lookup16(table, a[1])]
    }

    #[inline(always)]
    fn any_lt_i64(self, a: Self::I, b: Self::I) -> bool {
        self.0.any_lt_i64(a[0], b[0]) | self.0.any_lt_i64(a[1], b[1])
    }

    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> Self::F {
        // SAFETY: the caller provides `2 * S::LANES` readable floats.
        unsafe { [self.0.load(p), self.0.load(p.add(S::LANES))] }
    }

    #[inline(always)]
    unsafe fn load_partial(self, p: *const f32, len: usize) -> Self::F {
        // SAFETY: the caller provides `len < 2 * S::LANES` readable floats; each half reads only
        // its share of them.
        unsafe {
            if len < S::LANES {
                [self.0.load_partial(p, len), self.0.splat(0.0)]
            } else {
                [self.0.load(p), self.0.load_partial(p.add(S::LANES), len - S::LANES)]
            }
        }
    }

    #[inline(always)]
    unsafe fn load_i32(self, p: *const i32) -> Self::I {
        // SAFETY: the caller provides `2 * S::LANES` readable int32.
        unsafe { [self.0.load_i32(p), self.0.load_i32(p.add(S::LANES))] }
    }

    #[inline(always)]
    unsafe fn load_i32_partial(self, p: *const i32, len: usize) -> Self::I {
        // SAFETY: as `load_partial`.
        unsafe {
            if len < S::LANES {
                [self.0.load_i32_partial(p, len), self.0.splat_i32(0)]
            } else {
                [self.0.load_i32(p), self.0.load_i32_partial(p.add(S::LANES), len - S::LANES)]
            }
        }
    }

    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> Self::F {
        // SAFETY: the caller provides `2 * S::LANES` readable u16.
        unsafe { [self.0.load_f16(p), self.0.load_f16(p.add(S::LANES))] }
    }

    #[inline(always)]
    unsafe fn load_f16_partial(self, p: *const u16, len: usize) -> Self::F {
        // SAFETY: as `load_partial`.
        unsafe {
            if len < S::LANES {
                [self.0.load_f16_partial(p, len), self.0.splat(0.0)]
            } else {
                [self.0.load_f16(p), self.0.load_f16_partial(p.add(S::LANES), len - S::LANES)]
            }
        }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, a: Self::F) {
        // SAFETY: the caller provides `2 * S::LANES` writable floats.
        unsafe {
            self.0.store(p, a[0]);
            self.0.store(p.add(S::LANES), a[1]);
        }
    }

    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, len: usize, a: Self::F) {
        // SAFETY: the caller provides `len < 2 * S::LANES` writable floats; each half writes only
        // its share of them.
        unsafe {
            if len < S::LANES {
                self.0.store_partial(p, len, a[0]);
            } else {
                self.0.store(p, a[0]);
                self.0.store_partial(p.add(S::LANES), len - S::LANES, a[1]);
            }
        }
    }

    #[inline(always)]
    unsafe fn store_u8(self, p: *mut u8, a: Self::F) {
        // SAFETY: the caller provides `2 * S::LANES` writable bytes.
        unsafe {
            self.0.store_u8(p, a[0]);
            self.0.store_u8(p.add(S::LANES), a[1]);
        }
    }
}
