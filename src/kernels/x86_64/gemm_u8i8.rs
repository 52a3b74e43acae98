//! The u8 x s8 -> i32 GEMM over packed weights, shared by every x86 path: the paths differ only
//! in the dot-product step on one 16-column panel ([`Int8Dot`]) and in their tile shapes.
//!
//! Loop order: groups of `NP` panels outside, strips of `MR` rows inside, the whole `K` innermost
//! in one register tile of `MR x NP` panel accumulators. A panel group of weights (`NP x 16 x K`
//! bytes) comes from memory once and from cache for every further strip of rows; a strip reads 4
//! activation bytes per row and k-group, broadcast across the panels.
//!
//! A single row (batch 1, a recurrent step) is bound by reading the weights, not by the
//! arithmetic: it goes panel by panel ([`row_panel`]) or, in a tile 2 panels wide, two panels at a
//! time ([`row_panel_pair`]), so that the weights are read as one or two sequential streams (the
//! panels lie one after another), with interleaved k-groups in separate accumulators to keep the
//! dot products independent. Measured on Zen 5 (1 x 768 x 768, weights in L2): 2.8 us panel by
//! panel against 3.5 us for a 1 x 4-panel tile, whose four streams the prefetchers serve less well.
//!
//! The narrow last panel (the last `n % 16` columns, stored only as wide as they are) is widened
//! a chunk of k-groups at a time into full blocks on the stack
//! ([`PackedWeights::widen_narrow`]) and goes through the same steps; full panels never take
//! that path.
//!
//! A finished tile goes to a [`TileStore`]: stored as raw int32 ([`gemm`]), or dequantized straight
//! from the registers ([`gemm_dequantize`]), so the accumulators never round-trip through memory.

use crate::kernels::int8_job::Job;
use crate::kernels::simd::Simd;
use crate::kernels::{dequantize, DequantizedOut, Epilogue, Int8Operands};
use crate::pack::{Block, PackedWeights, K_GROUP, NARROW_CHUNK, PANEL_WIDTH};

/// One path's dot-product step: `acc[j] += Σ_{i<4} a[i] * w[j, i]` (u8 x s8, exact, int32
/// wrap-around only) for the 16 columns `j` of one panel k-group.
pub(super) trait Int8Dot: Copy {
    /// 4 activation bytes, prepared (broadcast) for [`Int8Dot::dot`].
    type A: Copy;
    /// One loaded panel k-group ([`Block`]).
    type W: Copy;
    /// The 16 int32 accumulators of one row and one panel.
    type Acc: Copy;

    /// Zero accumulators.
    fn zero(self) -> Self::Acc;
    /// Prepares 4 consecutive activation bytes of one row.
    fn broadcast(self, a: [u8; K_GROUP]) -> Self::A;
    /// Loads one block of weights.
    fn load(self, w: &Block) -> Self::W;
    /// One dot-product step.
    fn dot(self, acc: Self::Acc, a: Self::A, w: Self::W) -> Self::Acc;
    /// `a + b` lane by lane (wrapping).
    fn add(self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
    /// The accumulators, in column order.
    fn to_array(self, acc: Self::Acc) -> [i32; PANEL_WIDTH];
    /// The element-wise vector operations of the same path, for the dequantizing store; its
    /// `LANES` divides [`PANEL_WIDTH`].
    type S: Simd;
    /// The token of [`Int8Dot::S`].
    fn simd(self) -> Self::S;
    /// Lanes `i * LANES..(i + 1) * LANES` of the accumulators, for `i < PANEL_WIDTH / LANES`.
    fn piece(self, acc: Self::Acc, i: usize) -> <Self::S as Simd>::I;
}

/// See [`Kernels::gemm_u8i8`](crate::kernels::Kernels::gemm_u8i8), in tiles of `MR` rows x `NP`
/// panels. Leftover panels go in tiles 4, 2 or 1 panels wide; leftover rows in a tile 1, 2 or 4
/// rows high when that covers them, else `MR` high, its rows past the end repeating the last row
/// (their results are dropped).
///
/// # Panics
/// When `a` or `out` is too short for `rows` rows (as the scalar kernel does), or when `ldo < n`
/// with more than one row (the rows would overlap).
#[inline(always)]
pub(super) fn gemm<D: Int8Dot, const MR: usize, const NP: usize>(
    d: D,
    operands: Int8Operands<'_>,
    out: &mut [i32],
    ldo: usize,
) {
    gemm_from_panel::<D, MR, NP>(d, operands, 0, out, ldo);
}

/// [`gemm`] over the panels from `first_panel` on only (the columns from `first_panel *
/// PANEL_WIDTH`); the other columns of `out` are left alone.
#[inline(always)]
pub(super) fn gemm_from_panel<D: Int8Dot, const MR: usize, const NP: usize>(
    d: D,
    operands: Int8Operands<'_>,
    first_panel: usize,
    out: &mut [i32],
    ldo: usize,
) {
    if let Some(job) = Job::new(operands) {
        job.check_out(out.len(), ldo, "gemm_u8i8");
        drive::<D, _, MR, NP>(d, &job, first_panel, &mut Raw { out, ldo, n: job.b.n() });
    }
}

/// See [`Kernels::gemm_u8i8_dequantize`](crate::kernels::Kernels::gemm_u8i8_dequantize): the
/// tiles of [`gemm`], each dequantized from registers as it is stored ([`Dequantized`]).
///
/// # Panics
/// As [`gemm`], and when `row_sums` has fewer than `rows` elements or a column parameter fewer
/// than `n`.
#[inline(always)]
pub(super) fn gemm_dequantize<D: Int8Dot, const MR: usize, const NP: usize>(
    d: D,
    operands: Int8Operands<'_>,
    store: DequantizedOut<'_>,
) {
    gemm_dequantize_from_panel::<D, MR, NP>(d, operands, 0, store);
}

/// [`gemm_dequantize`] over the panels from `first_panel` on only (the columns from `first_panel
/// * PANEL_WIDTH`); the other columns of `out` are left alone.
#[inline(always)]
pub(super) fn gemm_dequantize_from_panel<D: Int8Dot, const MR: usize, const NP: usize>(
    d: D,
    operands: Int8Operands<'_>,
    first_panel: usize,
    store: DequantizedOut<'_>,
) {
    let Int8Operands { rows, b, .. } = operands;
    let DequantizedOut { row_sums, epilogue: params, out, ldo } = store;
    if let Some(job) = Job::new(operands) {
        let n = b.n();
        job.check_out(out.len(), ldo, "gemm_u8i8_dequantize");
        assert!(row_sums.len() >= rows, "gemm_u8i8_dequantize: {} row sums for {rows} rows", row_sums.len());
        let params = Epilogue {
            col_offsets: &params.col_offsets[..n],
            w_zero_points: &params.w_zero_points[..n],
            multipliers: &params.multipliers[..n],
            bias: params.bias.map(|b| &b[..n]),
            ..*params
        };
        // An OR over all of them (vectorizes, unlike an early-exit search).
        let zero_points = params.w_zero_points.iter().fold(0, |acc, &zp| acc | zp) != 0;
        drive::<D, _, MR, NP>(d, &job, first_panel, &mut Dequantized { out, ldo, row_sums, params, zero_points });
    }
}

/// The tile loops over checked operands and the panels from `first` on, each tile handed to `o`.
#[inline(always)]
fn drive<D: Int8Dot, O: TileStore<D>, const MR: usize, const NP: usize>(d: D, job: &Job<'_>, first: usize, o: &mut O) {
    let (rows, b) = (job.rows, job.b);
    let mut p0 = first;
    while p0 < b.n_panels() {
        // Full panels in groups (a single row: all of them in one call, which walks them in
        // groups itself); the narrow last panel, if any, alone.
        let full = b.full_panels().saturating_sub(p0);
        let width = match full {
            0 => 1,
            _ if rows == 1 => full,
            _ => [NP, 4, 2, 1].into_iter().find(|&w| w <= full).unwrap_or(1),
        };
        let mut r0 = 0;
        while r0 < rows {
            let left = rows - r0;
            let height =
                if left >= MR { MR } else { [1, 2, 4].into_iter().find(|&h| h >= left && h < MR).unwrap_or(MR) };
            let dst = Tile { r0, rows: height.min(left), p0 };
            match height {
                h if h == MR => panels::<D, O, MR, NP>(d, job, width, dst, o),
                4 => panels::<D, O, 4, NP>(d, job, width, dst, o),
                2 => panels::<D, O, 2, NP>(d, job, width, dst, o),
                _ => panels::<D, O, 1, NP>(d, job, width, dst, o),
            }
            r0 += height;
        }
        p0 += width;
    }
}

/// One tile `MR` rows high and `width` (`NP`, 4, 2 or 1; any number when `MR` is 1) panels wide,
/// computed and stored (the narrow panel: one panel wide, by [`narrow_tile`]).
#[inline(always)]
fn panels<D: Int8Dot, O: TileStore<D>, const MR: usize, const NP: usize>(
    d: D,
    job: &Job<'_>,
    width: usize,
    dst: Tile,
    o: &mut O,
) {
    let k_padded = job.b.k_padded();
    let strip: [&[[u8; K_GROUP]]; MR] = slices(|i| {
        let r = (dst.r0 + i).min(job.rows - 1);
        job.a[r * job.lda..r * job.lda + k_padded].as_chunks::<K_GROUP>().0
    });
    let (b, p0) = (job.b, dst.p0);
    if p0 == b.full_panels() {
        return o.store::<MR, 1>(d, dst, &narrow_tile::<D, MR>(d, &strip, b));
    }
    if MR == 1 {
        // Pairs of panels in a tile more than one panel wide, then panel by panel.
        let pairs = if NP == 1 { 0 } else { width / 2 };
        for p in (p0..p0 + 2 * pairs).step_by(2) {
            o.store::<1, 2>(d, Tile { p0: p, ..dst }, &[row_panel_pair(d, strip[0], [b.panel(p), b.panel(p + 1)])]);
        }
        for p in p0 + 2 * pairs..p0 + width {
            o.store::<1, 1>(d, Tile { p0: p, ..dst }, &[[row_panel(d, strip[0], b.panel(p))]]);
        }
        return;
    }
    match width {
        w if w == NP => o.store(d, dst, &tile::<D, MR, NP>(d, &strip, panel_group(b, p0))),
        4 => o.store(d, dst, &tile::<D, MR, 4>(d, &strip, panel_group(b, p0))),
        2 => o.store(d, dst, &tile::<D, MR, 2>(d, &strip, panel_group(b, p0))),
        _ => o.store(d, dst, &tile::<D, MR, 1>(d, &strip, panel_group(b, p0))),
    }
}

/// The full panels `p0..p0 + NP`.
#[inline(always)]
fn panel_group<const NP: usize>(b: &PackedWeights, p0: usize) -> [&[Block]; NP] {
    slices(|p| b.panel(p0 + p))
}

/// `[f(0), .., f(N - 1)]`, by a plain loop that is always inlined: `std::array::from_fn` and
/// `map` stayed out of line in the large kernel functions, a call per tile (per panel of a
/// batch-1 product, about 2% of a batch-1 LSTM step on a Zen 3 core).
#[inline(always)]
fn slices<'a, T, const N: usize>(f: impl Fn(usize) -> &'a [T]) -> [&'a [T]; N] {
    let mut out = [&[][..]; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = f(i);
    }
    out
}

/// The accumulators of rows `a` and the narrow panel, its k-groups widened a chunk at a time
/// ([`PackedWeights::widen_narrow`]) and each chunk's sums added (wrapping addition is
/// associative: the sum is the one a single pass would hold).
#[inline(always)]
fn narrow_tile<D: Int8Dot, const MR: usize>(d: D, a: &[&[[u8; K_GROUP]]; MR], b: &PackedWeights) -> [[D::Acc; 1]; MR] {
    let mut acc = [[d.zero()]; MR];
    let mut chunk = [Block::ZERO; NARROW_CHUNK];
    for g0 in (0..b.k_groups()).step_by(NARROW_CHUNK) {
        let w = b.widen_narrow(g0, &mut chunk);
        let a: [&[[u8; K_GROUP]]; MR] = slices(|r| &a[r][g0..g0 + w.len()]);
        let part = if MR == 1 { std::array::from_fn(|_| [row_panel(d, a[0], w)]) } else { tile::<D, MR, 1>(d, &a, [w]) };
        for (acc, part) in acc.iter_mut().zip(part) {
            acc[0] = d.add(acc[0], part[0]);
        }
    }
    acc
}

/// The `MR x NP` accumulators of rows `a` and the panels `w` (all of one length, at most that of
/// the rows), over the panels' k-groups.
#[inline(always)]
fn tile<D: Int8Dot, const MR: usize, const NP: usize>(
    d: D,
    a: &[&[[u8; K_GROUP]]; MR],
    w: [&[Block]; NP],
) -> [[D::Acc; NP]; MR] {
    let k_groups = w[0].len();
    let a: [&[[u8; K_GROUP]]; MR] = slices(|r| &a[r][..k_groups]);
    let w: [&[Block]; NP] = slices(|p| &w[p][..k_groups]);
    let mut acc = [[d.zero(); NP]; MR];
    for g in 0..k_groups {
        let wv: [D::W; NP] = std::array::from_fn(|p| d.load(&w[p][g]));
        for (acc_row, a_row) in acc.iter_mut().zip(&a) {
            let av = d.broadcast(a_row[g]);
            for (acc, &wv) in acc_row.iter_mut().zip(&wv) {
                *acc = d.dot(*acc, av, wv);
            }
        }
    }
    acc
}

/// One row times the panel `w` over its k-groups (at most as many as the row's): k-group `g` goes
/// to accumulator `g % 4` (the last `k_groups % 4` to the first), and the four are added at the
/// end (wrapping addition is associative, so the sum is the one a single accumulator would hold).
#[inline(always)]
fn row_panel<D: Int8Dot>(d: D, a: &[[u8; K_GROUP]], w: &[Block]) -> D::Acc {
    let a = &a[..w.len()];
    let mut acc = [d.zero(); 4];
    let (w4, w_rest) = w.as_chunks::<4>();
    let (a4, a_rest) = a.as_chunks::<4>();
    for (w, a) in w4.iter().zip(a4) {
        for i in 0..4 {
            acc[i] = d.dot(acc[i], d.broadcast(a[i]), d.load(&w[i]));
        }
    }
    for (w, &a) in w_rest.iter().zip(a_rest) {
        acc[0] = d.dot(acc[0], d.broadcast(a), d.load(w));
    }
    d.add(d.add(acc[0], acc[1]), d.add(acc[2], acc[3]))
}

/// One row times two panels `w` (of one length, at most the row's) over their k-groups, each
/// broadcast of the row used by both: k-group `g` goes to the panel's accumulator `g % 2` (the
/// last one, when their number is odd, to the first), and the two are added at the end (wrapping
/// addition is associative, so each sum is the one a single accumulator would hold). Two weight
/// streams of one row read faster than one, on a Sapphire Rapids core with the weights in L2: a
/// 1 x 256 x 1024 product in 1.65 us against 1.71 us panel by panel (a pure read of the weights
/// takes 1.41 us), a batch-1 LSTM (50 steps, 256 units) 7 % faster.
#[inline(always)]
fn row_panel_pair<D: Int8Dot>(d: D, a: &[[u8; K_GROUP]], w: [&[Block]; 2]) -> [D::Acc; 2] {
    let a = &a[..w[0].len()];
    let mut acc = [[d.zero(); 2]; 2];
    let ((w0, w0_rest), (w1, _)) = (w[0].as_chunks::<2>(), w[1][..w[0].len()].as_chunks::<2>());
    let (a2, a_rest) = a.as_chunks::<2>();
    for ((w0, w1), a) in w0.iter().zip(w1).zip(a2) {
        for i in 0..2 {
            let av = d.broadcast(a[i]);
            acc[0][i] = d.dot(acc[0][i], av, d.load(&w0[i]));
            acc[1][i] = d.dot(acc[1][i], av, d.load(&w1[i]));
        }
    }
    if let (Some(w0_last), Some(&a_last)) = (w0_rest.first(), a_rest.first()) {
        let av = d.broadcast(a_last);
        acc[0][0] = d.dot(acc[0][0], av, d.load(w0_last));
        acc[1][0] = d.dot(acc[1][0], av, d.load(&w[1][w[0].len() - 1]));
    }
    acc.map(|[even, odd]| d.add(even, odd))
}

/// Where a tile goes: output rows `r0..r0 + rows`, panels from `p0`.
#[derive(Clone, Copy)]
struct Tile {
    r0: usize,
    rows: usize,
    p0: usize,
}

/// What becomes of each computed tile.
trait TileStore<D: Int8Dot> {
    /// Stores the first `dst.rows` rows of `acc`, panels from `dst.p0`, cut at column `n`.
    fn store<const MR: usize, const NP: usize>(&mut self, d: D, dst: Tile, acc: &[[D::Acc; NP]; MR]);
}

/// The raw int32 accumulators, rows of stride `ldo`, cut at column `n`.
struct Raw<'a> {
    out: &'a mut [i32],
    ldo: usize,
    n: usize,
}

impl<D: Int8Dot> TileStore<D> for Raw<'_> {
    #[inline(always)]
    fn store<const MR: usize, const NP: usize>(&mut self, d: D, dst: Tile, acc: &[[D::Acc; NP]; MR]) {
        for (r, acc_row) in acc.iter().enumerate().take(dst.rows) {
            let out_row = &mut self.out[(dst.r0 + r) * self.ldo..];
            for (p, &panel) in acc_row.iter().enumerate() {
                let n0 = (dst.p0 + p) * PANEL_WIDTH;
                let values = d.to_array(panel);
                match out_row[n0..].first_chunk_mut::<PANEL_WIDTH>() {
                    // A whole panel: a fixed-size copy (vector stores, no call to memcpy).
                    Some(dst) if self.n - n0 >= PANEL_WIDTH => *dst = values,
                    _ => out_row[n0..self.n].copy_from_slice(&values[..self.n - n0]),
                }
            }
        }
    }
}

/// Dequantized floats, rows of stride `ldo`; the column parameters are exactly `n` long.
struct Dequantized<'a> {
    out: &'a mut [f32],
    ldo: usize,
    row_sums: &'a [i32],
    params: Epilogue<'a>,
    /// Whether any weight zero point is non-zero.
    zero_points: bool,
}

impl<D: Int8Dot> TileStore<D> for Dequantized<'_> {
    /// Per panel: the column parameters loaded once for the tile's rows, `x_zero_point *
    /// col_offsets` formed once (wrapping arithmetic is associative, so the sum is the scalar one),
    /// and the `row_sum * w_zero_points` term left out when every weight zero point is zero (it is
    /// then 0). A panel cut short at `n` goes through [`dequantize::dequantize_span`].
    #[inline(always)]
    fn store<const MR: usize, const NP: usize>(&mut self, d: D, dst: Tile, acc: &[[D::Acc; NP]; MR]) {
        let s = d.simd();
        let lanes = <D::S as Simd>::LANES;
        let n = self.params.multipliers.len();
        let x_zero_point = s.splat_i32(self.params.x_zero_point);
        for p in 0..NP {
            let n0 = (dst.p0 + p) * PANEL_WIDTH;
            if n - n0 < PANEL_WIDTH {
                for (r, acc_row) in acc.iter().enumerate().take(dst.rows) {
                    let row = dst.r0 + r;
                    let acc = d.to_array(acc_row[p]);
                    let out = &mut self.out[row * self.ldo + n0..row * self.ldo + n];
                    dequantize::dequantize_span(s, &acc[..n - n0], self.row_sums[row], &self.params, n0, out);
                }
                continue;
            }
            for i in 0..PANEL_WIDTH / lanes {
                let j = n0 + i * lanes;
                // SAFETY: `j + LANES <= n0 + PANEL_WIDTH <= n`, and every column parameter has `n`
                // elements (checked by `gemm_dequantize`).
                let (offset, zp, m, bias) = unsafe {
                    (
                        s.load_i32(self.params.col_offsets.as_ptr().add(j)),
                        s.load_i32(self.params.w_zero_points.as_ptr().add(j)),
                        s.load(self.params.multipliers.as_ptr().add(j)),
                        self.params.bias.map(|b| s.load(b.as_ptr().add(j))),
                    )
                };
                let x_offset = s.mul_i32(x_zero_point, offset);
                for (r, acc_row) in acc.iter().enumerate().take(dst.rows) {
                    let row = dst.r0 + r;
                    let mut corr = s.sub_i32(d.piece(acc_row[p], i), x_offset);
                    if self.zero_points {
                        corr = s.sub_i32(corr, s.mul_i32(s.splat_i32(self.row_sums[row]), zp));
                    }
                    let y = match bias {
                        Some(b) => s.fmadd(s.i32_to_f32(corr), m, b),
                        None => s.mul(s.i32_to_f32(corr), m),
                    };
                    let out = &mut self.out[row * self.ldo + j..row * self.ldo + j + lanes];
                    // SAFETY: `out` has `LANES` elements.
                    unsafe { s.store(out.as_mut_ptr(), y) };
                }
            }
        }
    }
}
