//! The NEON token's [`Simd`] operations against the Rust expressions the trait names, lane by
//! lane, on special values: the operations the recurrent steps and the vector-math tests do not
//! reach (or reach only on ordinary values) are checked here, NaN and zero rules included.

use std::arch::aarch64::*;

use super::neon::Neon;
use crate::kernels::simd::Simd;

/// The token (every aarch64 CPU has NEON).
fn neon() -> Neon {
    Neon::detect().expect("every aarch64 CPU has NEON")
}

fn f32s(v: float32x4_t) -> [f32; 4] {
    // SAFETY: both types are 16 bytes, and every bit pattern is valid for both.
    unsafe { std::mem::transmute(v) }
}

fn i32s(v: int32x4_t) -> [i32; 4] {
    // SAFETY: as `f32s`.
    unsafe { std::mem::transmute(v) }
}

fn i64s(v: int32x4_t) -> [i64; 2] {
    // SAFETY: as `f32s`.
    unsafe { std::mem::transmute(v) }
}

fn f64s(v: float64x2_t) -> [f64; 2] {
    // SAFETY: as `f32s`.
    unsafe { std::mem::transmute(v) }
}

fn u32s(v: uint32x4_t) -> [u32; 4] {
    // SAFETY: as `f32s`.
    unsafe { std::mem::transmute(v) }
}

fn i64_vector(lanes: [i64; 2]) -> int32x4_t {
    // SAFETY: NEON (every aarch64 CPU); `lanes` holds 2 int64.
    unsafe { vreinterpretq_s32_s64(vld1q_s64(lanes.as_ptr())) }
}

fn vector(lanes: [f32; 4]) -> float32x4_t {
    // SAFETY: `lanes` holds 4 floats.
    unsafe { neon().load(lanes.as_ptr()) }
}

/// Special float32 values: zeros, infinities, quiet and signalling NaNs of both signs,
/// subnormals, halfway cases and the int32 range's edges.
fn specials() -> Vec<f32> {
    let mut xs = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        3.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        f32::from_bits(0x007f_ffff),
        2147483648.0,
        -2147483648.0,
        2147483520.0,
        8388608.5f32.next_down(),
        f32::from_bits(0x7fc0_0000),
        f32::from_bits(0xffc0_0000),
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xff80_1234),
    ];
    xs.extend((0..64).map(|i| (i as f32 - 32.0) * 0.37));
    xs
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits()
}

/// Every pair of [`specials`], four pairs per vector operation.
fn for_pairs(check: impl Fn([f32; 4], [f32; 4])) {
    let xs = specials();
    let pairs: Vec<(f32, f32)> = xs.iter().flat_map(|&a| xs.iter().map(move |&b| (a, b))).collect();
    for chunk in pairs.chunks_exact(4) {
        check(std::array::from_fn(|i| chunk[i].0), std::array::from_fn(|i| chunk[i].1));
    }
}

#[test]
fn min_and_max_follow_the_x86_rules_for_nans_and_zeros() {
    let s = neon();
    for_pairs(|a, b| {
        let (min, max) = (f32s(s.min(vector(a), vector(b))), f32s(s.max(vector(a), vector(b))));
        for i in 0..4 {
            let (x, y) = (a[i], b[i]);
            assert!(same(min[i], if x < y { x } else { y }), "min({x:?}, {y:?}) = {:?}", min[i]);
            assert!(same(max[i], if x > y { x } else { y }), "max({x:?}, {y:?}) = {:?}", max[i]);
        }
    });
}

#[test]
fn float_operations_round_once_like_rust() {
    let s = neon();
    for_pairs(|a, b| {
        let (va, vb) = (vector(a), vector(b));
        let c = [0.1f32, -3.0, 1e-40, f32::from_bits(0x7fc0_0000)];
        let results = [
            (f32s(s.add(va, vb)), std::array::from_fn::<f32, 4, _>(|i| a[i] + b[i])),
            (f32s(s.sub(va, vb)), std::array::from_fn(|i| a[i] - b[i])),
            (f32s(s.mul(va, vb)), std::array::from_fn(|i| a[i] * b[i])),
            (f32s(s.div(va, vb)), std::array::from_fn(|i| a[i] / b[i])),
            (f32s(s.fmadd(va, vb, vector(c))), std::array::from_fn(|i| a[i].mul_add(b[i], c[i]))),
        ];
        for (got, want) in results {
            for (g, w) in got.into_iter().zip(want) {
                assert!(same(g, w) || (g.is_nan() && w.is_nan()), "{a:?} op {b:?}: {g:?}, want {w:?}");
            }
        }
        let signs = f32s(s.copysign(va, vb));
        let negated = f32s(s.neg(va));
        for i in 0..4 {
            assert!(same(signs[i], a[i].copysign(b[i])), "copysign({:?}, {:?})", a[i], b[i]);
            assert!(same(negated[i], -a[i]), "neg({:?})", a[i]);
        }
    });
}

#[test]
fn comparisons_and_selects_are_false_on_nans() {
    let s = neon();
    for_pairs(|a, b| {
        let (va, vb) = (vector(a), vector(b));
        let lt = u32s(s.lt(va, vb));
        let nan = u32s(s.is_nan(va));
        let picked = f32s(s.select(s.lt(va, vb), va, vb));
        for i in 0..4 {
            assert_eq!(lt[i] == u32::MAX, a[i] < b[i], "{:?} < {:?}", a[i], b[i]);
            assert_eq!(nan[i] == u32::MAX, a[i].is_nan(), "is_nan({:?})", a[i]);
            assert!(same(picked[i], if a[i] < b[i] { a[i] } else { b[i] }));
        }
    });
}

#[test]
fn rounding_and_conversions_match_rust() {
    let s = neon();
    for chunk in specials().chunks_exact(4) {
        let a: [f32; 4] = chunk.try_into().unwrap();
        let rounded = f32s(s.round_even(vector(a)));
        let ints = i32s(s.round_to_i32(vector(a)));
        let (lo, hi) = s.widen(vector(a));
        let narrowed = f32s(s.narrow(lo, hi));
        let wide = [f64s(lo), f64s(hi)].concat();
        for i in 0..4 {
            let want = a[i].round_ties_even();
            assert!(same(rounded[i], want) || (rounded[i].is_nan() && want.is_nan()), "round_even({:?})", a[i]);
            if (-2147483648.0..2147483648.0).contains(&want) {
                assert_eq!(ints[i], want as i32, "round_to_i32({:?})", a[i]);
            }
            assert!(wide[i] == a[i] as f64 || (wide[i].is_nan() && a[i].is_nan()), "widen({:?})", a[i]);
            assert!(same(narrowed[i], a[i]) || (narrowed[i].is_nan() && a[i].is_nan()), "narrow({:?})", a[i]);
        }
    }
    let big = [1.0f64 + f64::EPSILON, 1.0 + 2f64.powi(-24), -(1.0 + 3.0 * 2f64.powi(-24)), 1e300];
    // SAFETY: `big` holds 4 float64, two per half.
    let (lo, hi) = unsafe { (vld1q_f64(big.as_ptr()), vld1q_f64(big.as_ptr().add(2))) };
    let narrowed = f32s(s.narrow(lo, hi));
    for (n, b) in narrowed.into_iter().zip(big) {
        assert!(same(n, b as f32), "narrow({b:?}) = {n:?}");
    }
    let ints = [i32::MIN, -16_777_217, 16_777_217, i32::MAX];
    // SAFETY: `ints` holds 4 int32.
    let floats = f32s(s.i32_to_f32(unsafe { s.load_i32(ints.as_ptr()) }));
    for (f, i) in floats.into_iter().zip(ints) {
        assert!(same(f, i as f32), "{i} as f32 = {f:?}");
    }
}

#[test]
fn integer_lanes_wrap_and_shift_like_rust() {
    let s = neon();
    let a = [i32::MIN, -7, 5, i32::MAX];
    let b = [3, -1, i32::MIN, 65_537];
    // SAFETY: `a` and `b` hold 4 int32 each.
    let (va, vb) = unsafe { (s.load_i32(a.as_ptr()), s.load_i32(b.as_ptr())) };
    let (diff, prod, half) = (i32s(s.sub_i32(va, vb)), i32s(s.mul_i32(va, vb)), i32s(s.half_i32(va)));
    for i in 0..4 {
        assert_eq!(diff[i], a[i].wrapping_sub(b[i]));
        assert_eq!(prod[i], a[i].wrapping_mul(b[i]));
        assert_eq!(half[i], a[i] >> 1);
    }
    for q in -126..=127 {
        assert!(same(f32s(s.pow2i(s.splat_i32(q)))[0], 2f32.powi(q)), "pow2i({q})");
    }
    let wide = [i64::MAX, -3];
    let sum = i64s(s.add_i64(s.splat_i64(wide[0]), i64_vector(wide)));
    assert_eq!(sum, [wide[0].wrapping_add(wide[0]), wide[0].wrapping_add(wide[1])]);
    assert_eq!(i64s(s.shl_i64::<47>(s.splat_i64(-3))), [-3i64 << 47; 2]);
    let x = [1.5f64, -0.0];
    // SAFETY: `x` holds 2 float64.
    let d = unsafe { vld1q_f64(x.as_ptr()) };
    assert_eq!(i64s(s.to_bits_d(d)), x.map(|v| v.to_bits() as i64));
    assert_eq!(f64s(s.d_from_bits(s.to_bits_d(d))).map(f64::to_bits), x.map(f64::to_bits));
}

#[test]
fn lookup32_reads_the_entry_of_the_low_five_bits() {
    let s = neon();
    let table: [u64; 32] = std::array::from_fn(|i| 0x0123_4567_89ab_cdef_u64.rotate_left(i as u32 * 3) ^ i as u64);
    for (low, high) in [(0i64, 31i64), (32, -1), (i64::MIN + 5, 1 << 40 | 17)] {
        let got = i64s(s.lookup32(&table, i64_vector([low, high])));
        assert_eq!(got, [table[(low & 31) as usize] as i64, table[(high & 31) as usize] as i64]);
    }
}

#[test]
fn partial_loads_and_stores_touch_only_their_lanes() {
    let s = neon();
    let src = [1.0f32, 2.0, 3.0, 4.0];
    let ints = [1i32, 2, 3, 4];
    let halves = [0x3c00u16, 0x4000, 0x4200, 0x4400];
    for len in 0..4 {
        let mut want = [0.0f32; 4];
        want[..len].copy_from_slice(&src[..len]);
        // SAFETY: each source holds `4 > len` elements.
        let (f, i, h) = unsafe {
            (s.load_partial(src.as_ptr(), len), s.load_i32_partial(ints.as_ptr(), len), s.load_f16_partial(halves.as_ptr(), len))
        };
        assert_eq!(f32s(f), want);
        assert_eq!(i32s(i), want.map(|v| v as i32));
        assert_eq!(f32s(h), want);
        let mut out = [-9.0f32; 5];
        // SAFETY: `out` holds 5 floats.
        unsafe { s.store_partial(out.as_mut_ptr(), len, vector(src)) };
        assert_eq!(out[..len], src[..len]);
        assert!(out[len..].iter().all(|&v| v == -9.0), "store_partial({len}) wrote {out:?}");
    }
}

#[test]
fn float16_loads_widen_every_value_like_the_half_crate() {
    let s = neon();
    let bits: Vec<u16> = (0..=u16::MAX).collect();
    for chunk in bits.chunks_exact(4) {
        // SAFETY: `chunk` holds 4 u16.
        let got = f32s(unsafe { s.load_f16(chunk.as_ptr()) });
        for (g, &b) in got.into_iter().zip(chunk) {
            assert!(same(g, half::f16::from_bits(b).to_f32()), "binary16 {b:#06x} gives {g:?}");
        }
    }
}

#[test]
fn byte_stores_write_four_bytes_in_lane_order() {
    let s = neon();
    for base in (0..256).step_by(4) {
        let lanes: [f32; 4] = std::array::from_fn(|i| (255 - base - i) as f32);
        let mut out = [0xaau8; 6];
        // SAFETY: `out` holds at least 4 bytes.
        unsafe { s.store_u8(out.as_mut_ptr().add(1), vector(lanes)) };
        assert_eq!(out, [0xaa, lanes[0] as u8, lanes[1] as u8, lanes[2] as u8, lanes[3] as u8, 0xaa]);
    }
}
