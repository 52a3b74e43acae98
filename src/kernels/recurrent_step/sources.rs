//! How the element-wise kernels read their inputs: [`Width`] (a full block of `LANES` units or a
//! row's partial tail), [`Source`] (a [`Projected`](super::Projected) checked once against
//! its shape, then read through raw pointers: floats as they are, int8 accumulators dequantized
//! on the fly), and the macros that instantiate a kernel per combination of source kinds and per
//! block width.

use super::super::projected::Accumulators;
use super::super::simd::Simd;

/// The lanes one block covers: all `LANES` (inside a row) or the first few (a row's tail).
pub(super) trait Width: Copy {
    /// Loads the block's floats from `p`.
    ///
    /// # Safety
    /// `p` must be valid for reading the block's lanes.
    unsafe fn load<S: Simd>(self, s: S, p: *const f32) -> S::F;
    /// Loads the block's int32 from `p`.
    ///
    /// # Safety
    /// `p` must be valid for reading the block's lanes.
    unsafe fn load_i32<S: Simd>(self, s: S, p: *const i32) -> S::I;
    /// Stores the block's lanes of `v` to `p`.
    ///
    /// # Safety
    /// `p` must be valid for writing the block's lanes.
    unsafe fn store<S: Simd>(self, s: S, p: *mut f32, v: S::F);
}

/// All `LANES` lanes.
#[derive(Clone, Copy)]
pub(super) struct Full;

impl Width for Full {
    #[inline(always)]
    unsafe fn load<S: Simd>(self, s: S, p: *const f32) -> S::F {
        // SAFETY: the caller provides `LANES` readable floats.
        unsafe { s.load(p) }
    }

    #[inline(always)]
    unsafe fn load_i32<S: Simd>(self, s: S, p: *const i32) -> S::I {
        // SAFETY: the caller provides `LANES` readable int32.
        unsafe { s.load_i32(p) }
    }

    #[inline(always)]
    unsafe fn store<S: Simd>(self, s: S, p: *mut f32, v: S::F) {
        // SAFETY: the caller provides `LANES` writable floats.
        unsafe { s.store(p, v) }
    }
}

/// The first `.0 < LANES` lanes (the others load as zero and are never stored).
#[derive(Clone, Copy)]
pub(super) struct Tail(pub(super) usize);

impl Width for Tail {
    #[inline(always)]
    unsafe fn load<S: Simd>(self, s: S, p: *const f32) -> S::F {
        // SAFETY: the caller provides `self.0 < LANES` readable floats.
        unsafe { s.load_partial(p, self.0) }
    }

    #[inline(always)]
    unsafe fn load_i32<S: Simd>(self, s: S, p: *const i32) -> S::I {
        // SAFETY: the caller provides `self.0 < LANES` readable int32.
        unsafe { s.load_i32_partial(p, self.0) }
    }

    #[inline(always)]
    unsafe fn store<S: Simd>(self, s: S, p: *mut f32, v: S::F) {
        // SAFETY: the caller provides `self.0 < LANES` writable floats.
        unsafe { s.store_partial(p, self.0, v) }
    }
}

/// A [`Projected`](super::Projected) read through raw pointers, checked on construction to
/// hold `rows x columns`.
///
/// A read is split in two: [`Source::columns`], what depends on the columns alone (for int8
/// accumulators, the zero-point offsets, multipliers and bias of the dequantization), and
/// [`Source::load_row`], the per-row rest. A kernel that reads the same columns of several rows
/// computes the first once per block of units instead of once per row; either way each value
/// goes through the same operations, so the bits do not depend on the split.
pub(super) trait Source: Copy {
    /// The per-column terms of a block of columns, for [`Source::load_row`].
    type Columns<S: Simd>: Copy;

    /// The terms of columns `col..` (the block's lanes).
    ///
    /// # Safety
    /// The block's lanes from `col` on must lie within `columns`.
    unsafe fn columns<S: Simd, W: Width>(self, s: S, w: W, col: usize) -> Self::Columns<S>;

    /// Row `r`'s values at the columns `terms` were made for (`col..`), as floats.
    ///
    /// # Safety
    /// `r < rows`, `terms` from [`Source::columns`] for `col` and the same width.
    unsafe fn load_row<S: Simd, W: Width>(self, s: S, w: W, terms: Self::Columns<S>, r: usize, col: usize) -> S::F;

    /// Row `r`'s values at columns `col..` (the block's lanes), as floats.
    ///
    /// # Safety
    /// `r < rows`, and the block's lanes from `col` on must lie within `columns`.
    #[inline(always)]
    unsafe fn load<S: Simd, W: Width>(self, s: S, w: W, r: usize, col: usize) -> S::F {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.load_row(s, w, self.columns(s, w, col), r, col) }
    }
}

/// Final floats.
#[derive(Clone, Copy)]
pub(super) struct FloatSource {
    values: *const f32,
    columns: usize,
}

impl Source for FloatSource {
    type Columns<S: Simd> = ();

    #[inline(always)]
    unsafe fn columns<S: Simd, W: Width>(self, _: S, _: W, _: usize) {}

    #[inline(always)]
    unsafe fn load_row<S: Simd, W: Width>(self, s: S, w: W, _: (), r: usize, col: usize) -> S::F {
        // SAFETY: in bounds by the caller's promise and the construction check.
        unsafe { w.load(s, self.values.add(r * self.columns + col)) }
    }
}

/// int32 accumulators, dequantized lane for lane as `Projected::row_into` does: the wrapping
/// correction, conversion to float, then one FMA with `s_x * s_w` and the bias.
#[derive(Clone, Copy)]
pub(super) struct Int8Source {
    acc: *const i32,
    columns: usize,
    col_offsets: *const i32,
    scales: *const f32,
    bias: *const f32,
    x_zero_point: i32,
    x_scale: f32,
}

/// The column terms of an [`Int8Source`]: `x_zero_point * col_offsets` (wrapping), the
/// multipliers `x_scale * scales` and the bias.
#[derive(Clone, Copy)]
pub(super) struct Int8Columns<S: Simd> {
    offsets: S::I,
    multipliers: S::F,
    bias: S::F,
}

impl Source for Int8Source {
    type Columns<S: Simd> = Int8Columns<S>;

    #[inline(always)]
    unsafe fn columns<S: Simd, W: Width>(self, s: S, w: W, col: usize) -> Int8Columns<S> {
        // SAFETY: in bounds by the caller's promise and the construction check (the per-column
        // arrays hold `columns` entries).
        unsafe {
            Int8Columns {
                offsets: s.mul_i32(s.splat_i32(self.x_zero_point), w.load_i32(s, self.col_offsets.add(col))),
                multipliers: s.mul(s.splat(self.x_scale), w.load(s, self.scales.add(col))),
                bias: w.load(s, self.bias.add(col)),
            }
        }
    }

    #[inline(always)]
    unsafe fn load_row<S: Simd, W: Width>(self, s: S, w: W, terms: Int8Columns<S>, r: usize, col: usize) -> S::F {
        // SAFETY: in bounds by the caller's promise and the construction check.
        unsafe {
            let corr = s.sub_i32(w.load_i32(s, self.acc.add(r * self.columns + col)), terms.offsets);
            s.fmadd(s.i32_to_f32(corr), terms.multipliers, terms.bias)
        }
    }
}

/// Runs `$body` with `$h` and `$i` bound to [`Source`]s for the `Projected` `$hg` and `$ig`,
/// one instantiation per combination of kinds, after checking that both hold `$rows` rows of
/// `$columns` columns.
macro_rules! with_sources {
    ($hg:expr, $ig:expr, $rows:expr, $columns:expr, |$h:ident, $i:ident| $body:expr) => {{
        let (hg, ig, rows, columns): (&Projected<'_>, &Projected<'_>, usize, usize) = ($hg, $ig, $rows, $columns);
        assert!(hg.covers(rows, columns) && ig.covers(rows, columns), "gates do not hold {rows} rows of {columns}");
        match (hg, ig) {
            (Projected::Float(h), Projected::Float(i)) => {
                let ($h, $i) = (float_source(h, columns), float_source(i, columns));
                $body
            }
            (Projected::Float(h), Projected::Int8(i)) => {
                let ($h, $i) = (float_source(h, columns), int8_source(i, columns));
                $body
            }
            (Projected::Int8(h), Projected::Float(i)) => {
                let ($h, $i) = (int8_source(h, columns), float_source(i, columns));
                $body
            }
            (Projected::Int8(h), Projected::Int8(i)) => {
                let ($h, $i) = (int8_source(h, columns), int8_source(i, columns));
                $body
            }
        }
    }};
}

/// The source of checked float gates.
#[inline(always)]
pub(super) fn float_source(values: &[f32], columns: usize) -> FloatSource {
    FloatSource { values: values.as_ptr(), columns }
}

/// The source of checked int8 accumulators.
#[inline(always)]
pub(super) fn int8_source(a: &Accumulators<'_>, columns: usize) -> Int8Source {
    Int8Source {
        acc: a.acc.as_ptr(),
        columns,
        col_offsets: a.col_offsets.as_ptr(),
        scales: a.scales.as_ptr(),
        bias: a.bias.as_ptr(),
        x_zero_point: a.x_zero_point,
        x_scale: a.x_scale,
    }
}

/// Calls `$block` (a function taking the token, a [`Width`], then `$args`, starting with the
/// unit offset `j`) for every block of `$hidden` units: full ones, then the partial tail.
///
/// Soundness: `$block` may rely on its lanes from `j` on lying within `$hidden`.
macro_rules! for_blocks {
    ($s:expr, $hidden:expr, $block:ident($($args:expr),*)) => {{
        let (s, hidden) = ($s, $hidden);
        let full = hidden - hidden % LANES_OF(s);
        for j in (0..full).step_by(LANES_OF(s)) {
            // SAFETY: `j + LANES <= full <= hidden`.
            unsafe { $block(s, Full, j, $($args),*) }
        }
        if full < hidden {
            // SAFETY: the tail's `hidden - full < LANES` lanes end at `hidden`.
            unsafe { $block(s, Tail(hidden - full), full, $($args),*) }
        }
    }};
}

/// `S::LANES` of a token value (for [`for_blocks`]).
#[allow(non_snake_case)]
#[inline(always)]
pub(super) fn LANES_OF<S: Simd>(_: S) -> usize {
    S::LANES
}

/// Gate `g`'s pre-activation `hg + ig` for row `r`, units from `j`.
///
/// # Safety
/// As [`Source::load`] for columns `g * hidden + j..`.
#[inline(always)]
pub(super) unsafe fn gate<S: Simd, W: Width>(s: S, w: W, hg: impl Source, ig: impl Source, r: usize, col: usize) -> S::F {
    // SAFETY: the caller's promise.
    unsafe { s.add(hg.load(s, w, r, col), ig.load(s, w, r, col)) }
}

/// The column terms of both sources of one gate's block of units (see [`Source::columns`]).
pub(super) struct GateColumns<S: Simd, H: Source, I: Source> {
    hg: H::Columns<S>,
    ig: I::Columns<S>,
    col: usize,
}

impl<S: Simd, H: Source, I: Source> Clone for GateColumns<S, H, I> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: Simd, H: Source, I: Source> Copy for GateColumns<S, H, I> {}

/// The column terms of `hg` and `ig` at columns `col..`.
///
/// # Safety
/// As [`Source::columns`] for both sources.
#[inline(always)]
pub(super) unsafe fn gate_columns<S: Simd, W: Width, H: Source, I: Source>(s: S, w: W, hg: H, ig: I, col: usize) -> GateColumns<S, H, I> {
    // SAFETY: the caller's promise.
    unsafe { GateColumns { hg: hg.columns(s, w, col), ig: ig.columns(s, w, col), col } }
}

/// [`gate`] for row `r` with the columns' terms computed beforehand by [`gate_columns`].
///
/// # Safety
/// `r < rows`; `terms` from [`gate_columns`] with the same sources and width.
#[inline(always)]
pub(super) unsafe fn gate_row<S: Simd, W: Width, H: Source, I: Source>(s: S, w: W, hg: H, ig: I, terms: GateColumns<S, H, I>, r: usize) -> S::F {
    // SAFETY: the caller's promise.
    unsafe { s.add(hg.load_row(s, w, terms.hg, r, terms.col), ig.load_row(s, w, terms.ig, r, terms.col)) }
}

pub(super) use {for_blocks, with_sources};
