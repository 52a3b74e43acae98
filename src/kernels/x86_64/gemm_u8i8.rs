//! The u8 x s8 -> i32 GEMM over packed weights, shared by every x86 path: the paths differ only
//! in the dot-product step on one 16-column panel ([`Int8Dot`]) and in their tile shapes.
//!
//! Loop order: groups of `NP` panels outside, strips of `MR` rows inside, the whole `K` innermost
//! in one register tile of `MR x NP` panel accumulators. A panel group of weights (`NP x 16 x K`
//! bytes) comes from memory once and from cache for every further strip of rows; a strip reads 4
//! activation bytes per row and k-group, broadcast across the panels.

use crate::pack::{Block, PackedWeights, K_GROUP, PANEL_WIDTH};

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
    /// The accumulators, in column order.
    fn to_array(self, acc: Self::Acc) -> [i32; PANEL_WIDTH];
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
    a: &[u8],
    lda: usize,
    rows: usize,
    b: &PackedWeights,
    out: &mut [i32],
    ldo: usize,
) {
    if rows == 0 {
        return;
    }
    let (n, k_padded) = (b.n(), b.k_padded());
    let a_end = (rows - 1).checked_mul(lda).and_then(|start| start.checked_add(k_padded));
    assert!(a_end.is_some_and(|end| end <= a.len()), "gemm_u8i8: a has {} bytes, too few for {rows} rows", a.len());
    if n == 0 {
        return;
    }
    assert!(rows == 1 || ldo >= n, "gemm_u8i8: ldo ({ldo}) must be at least n ({n})");
    assert!(out.len() >= (rows - 1) * ldo + n, "gemm_u8i8: out has {} elements, too few for {rows} rows", out.len());
    let job = Job { a, lda, rows, b };
    let mut p0 = 0;
    while p0 < b.n_panels() {
        let width = [NP, 4, 2, 1].into_iter().find(|&w| w <= b.n_panels() - p0).unwrap_or(1);
        let mut r0 = 0;
        while r0 < rows {
            let left = rows - r0;
            let height =
                if left >= MR { MR } else { [1, 2, 4].into_iter().find(|&h| h >= left && h < MR).unwrap_or(MR) };
            let dst = Tile { out: &mut *out, ldo, n, r0, rows: height.min(left), p0 };
            match height {
                h if h == MR => panels::<D, MR, NP>(d, &job, width, dst),
                4 => panels::<D, 4, NP>(d, &job, width, dst),
                2 => panels::<D, 2, NP>(d, &job, width, dst),
                _ => panels::<D, 1, NP>(d, &job, width, dst),
            }
            r0 += height;
        }
        p0 += width;
    }
}

/// The operands of one product, checked against each other by [`gemm`].
struct Job<'a> {
    a: &'a [u8],
    lda: usize,
    rows: usize,
    b: &'a PackedWeights,
}

/// One tile `MR` rows high and `width` (`NP`, 4, 2 or 1) panels wide, computed and stored.
#[inline(always)]
fn panels<D: Int8Dot, const MR: usize, const NP: usize>(d: D, job: &Job<'_>, width: usize, dst: Tile<'_>) {
    let k_padded = job.b.k_padded();
    let strip: [&[[u8; K_GROUP]]; MR] = std::array::from_fn(|i| {
        let r = (dst.r0 + i).min(job.rows - 1);
        job.a[r * job.lda..r * job.lda + k_padded].as_chunks::<K_GROUP>().0
    });
    let (b, p0) = (job.b, dst.p0);
    match width {
        w if w == NP => dst.store(d, &tile::<D, MR, NP>(d, &strip, b, p0)),
        4 => dst.store(d, &tile::<D, MR, 4>(d, &strip, b, p0)),
        2 => dst.store(d, &tile::<D, MR, 2>(d, &strip, b, p0)),
        _ => dst.store(d, &tile::<D, MR, 1>(d, &strip, b, p0)),
    }
}

/// The `MR x NP` accumulators of rows `a` and panels `p0..p0 + NP` over the whole `K`.
#[inline(always)]
fn tile<D: Int8Dot, const MR: usize, const NP: usize>(
    d: D,
    a: &[&[[u8; K_GROUP]]; MR],
    b: &PackedWeights,
    p0: usize,
) -> [[D::Acc; NP]; MR] {
    let k_groups = b.k_groups();
    let a: [&[[u8; K_GROUP]]; MR] = a.map(|row| &row[..k_groups]);
    let w: [&[Block]; NP] = std::array::from_fn(|p| &b.panel(p0 + p)[..k_groups]);
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

/// Where a tile goes: output rows `r0..r0 + rows` (of stride `ldo`), panels from `p0`, cut at
/// column `n`.
struct Tile<'a> {
    out: &'a mut [i32],
    ldo: usize,
    n: usize,
    r0: usize,
    rows: usize,
    p0: usize,
}

impl Tile<'_> {
    /// Writes the first `rows` rows of `acc`, each panel cut at column `n`.
    #[inline(always)]
    fn store<D: Int8Dot, const MR: usize, const NP: usize>(self, d: D, acc: &[[D::Acc; NP]; MR]) {
        for (r, acc_row) in acc.iter().enumerate().take(self.rows) {
            let out_row = &mut self.out[(self.r0 + r) * self.ldo..];
            for (p, &panel) in acc_row.iter().enumerate() {
                let n0 = (self.p0 + p) * PANEL_WIDTH;
                let width = PANEL_WIDTH.min(self.n - n0);
                out_row[n0..n0 + width].copy_from_slice(&d.to_array(panel)[..width]);
            }
        }
    }
}
