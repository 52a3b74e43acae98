//! The AMX path: the int8 GEMM on Intel's tile unit (`tdpbusd`, Sapphire Rapids and later), every
//! other kernel the AVX-512 VNNI one.
//!
//! The packed weights are already in AMX's B-tile layout: a tile of 16 rows x 64 bytes is 16
//! consecutive k-groups of one panel (each row one 64-byte [`Block`]: 4 bytes of each of the 16
//! columns), 1 KiB contiguous, stride 64. An A tile is 16 activation rows x 64 bytes (16 k-groups),
//! stride `lda`; a C tile is 16 rows x 16 int32 columns. `tdpbusd` adds the exact u8 x s8 products
//! to wrapping int32 lanes, as `vpdpbusd` does: the sums equal the scalar ones bit for bit.
//!
//! Blocking: strips of up to 32 rows (two A tiles) x pairs of panels (two B tiles), four C tiles
//! accumulating over the whole `K`, 64 bytes of `K` per step; the strips in groups whose
//! activations fit in L1, each group's strips under every panel pair in turn. `K` past the last
//! whole step (fewer than 16 k-groups) is copied into zero-padded buffers so that every tile keeps
//! one shape; a strip of fewer than 32 rows gets tiles with fewer rows (a second configuration, at
//! most two per call). Products with fewer than [`MIN_ROWS`] rows, and the last panel when `n` is not a multiple
//! of 16, go to the AVX-512 kernels.
//!
//! # Tile state and soundness
//! The tile registers (`tmm0`-`tmm7`) cannot be named as `asm!` clobbers. That is sound here because
//! nothing else uses them: the compiler never allocates them (this build enables no AMX target
//! feature and has no tile types), and the tile state lives entirely inside one kernel call on one
//! thread: configured (`ldtilecfg`, which also zeroes every tile) at its start, released
//! (`tilerelease`) at its end, also when unwinding ([`Tiles`]), with no foreign code called in
//! between. The configuration is per thread, so every call on every pool thread configures its own.
//! The operating system saves and restores the tile state across context switches and signals.

use std::arch::asm;

use super::avx512vnni::{self, Avx512};
use super::{amx_detect, gemm_u8i8};
use crate::kernels::int8_job::Job;
use crate::kernels::{dequantize, entry_points, gemm_on_each_block, DequantizedOut, Epilogue, Int8Blocks, Int8Operands, Isa, Kernels};
use crate::pack::{Block, K_GROUP, PANEL_WIDTH};

/// Proof that the CPU has AMX-TILE and AMX-INT8, that this process may use the tile state, and
/// that the CPU has everything [`Avx512`] proves.
#[derive(Clone, Copy, Debug)]
pub(super) struct Amx(Avx512);

impl Amx {
    /// The token, if this CPU and process can run the tiles (see `amx_detect`).
    pub(super) fn detect() -> Option<Self> {
        Avx512::detect().filter(|_| amx_detect::tiles_usable()).map(Amx)
    }

    /// The token, without checking.
    ///
    /// # Safety
    /// [`Amx::detect`] must have returned a token in this process.
    unsafe fn assume_supported() -> Self {
        // SAFETY: the caller guarantees what `detect` checked, AVX-512 included.
        Amx(unsafe { Avx512::assume_supported() })
    }
}

/// The AMX table: the AVX-512 VNNI one with the tile GEMMs.
pub(super) fn table(t: Amx) -> Kernels {
    Kernels { isa: Isa::Amx, gemm_u8i8, gemm_u8i8_blocks, gemm_u8i8_dequantize, ..avx512vnni::table(t.0) }
}

entry_points! {
    Amx, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
    fn gemm_u8i8(operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) = gemm;
    fn gemm_u8i8_blocks(operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) = gemm_blocks;
    fn gemm_u8i8_dequantize(operands: Int8Operands<'_>, store: DequantizedOut<'_>) = gemm_dequantize;
}

/// Products with fewer rows go to the AVX-512 kernels: a tile product costs about the same with
/// 1 row as with 16, and reading the weights bounds both paths. Measured on a Sapphire Rapids
/// core (K x N of 768 x 768, 512 x 2048, 256 x 1024), AMX time against AVX-512 time: 0.88-1.03x
/// as fast at 1 row, 0.91-1.16x at 2, 1.2-1.33x at 3, 2-4x from 6 rows on.
const MIN_ROWS: usize = 3;
/// Rows of an A or C tile.
const TILE_ROWS: usize = 16;
/// Bytes of one tile row: 16 k-groups of an A row, one [`Block`] of B, 16 int32 of C.
const TILE_ROW_BYTES: usize = 64;
/// K-groups per step: one A tile row, the rows of one B tile.
const STEP_GROUPS: usize = TILE_ROW_BYTES / K_GROUP;
/// Rows per strip: two A tiles.
const STRIP_ROWS: usize = 2 * TILE_ROWS;

const _: () = assert!(size_of::<Block>() == TILE_ROW_BYTES && PANEL_WIDTH * size_of::<i32>() == TILE_ROW_BYTES);

/// The tile registers: four accumulators (rows 0-15 or 16-31 of the strip x panel 0 or 1), two
/// activation tiles, two weight tiles.
const C00: u8 = 0;
const C01: u8 = 1;
const C10: u8 = 2;
const C11: u8 = 3;
const A0: u8 = 4;
const A1: u8 = 5;
const B0: u8 = 6;
const B1: u8 = 7;

gemm_on_each_block!(Amx);

/// See [`Kernels::gemm_u8i8`].
#[inline(always)]
fn gemm(t: Amx, operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    let Int8Operands { rows, b, .. } = operands;
    let full_panels = b.n() / PANEL_WIDTH;
    if rows < MIN_ROWS || full_panels == 0 {
        // Through the AVX-512 table's entry point, not inlined: one copy of its tiles, not two.
        return (avx512vnni::table(t.0).gemm_u8i8)(operands, out, ldo);
    }
    let Some(job) = Job::new(operands) else {
        return;
    };
    job.check_out(out.len(), ldo, "gemm_u8i8");
    drive(&job, full_panels, &mut Raw { out, ldo });
    if full_panels < b.n_panels() {
        gemm_u8i8::gemm_from_panel::<_, 8, 1>(t.0, operands, full_panels, out, ldo);
    }
}

/// See [`Kernels::gemm_u8i8_dequantize`]: each C tile goes through a 1 KiB buffer to the AVX-512
/// epilogue, row by row.
#[inline(always)]
fn gemm_dequantize(t: Amx, operands: Int8Operands<'_>, store: DequantizedOut<'_>) {
    let Int8Operands { rows, b, .. } = operands;
    let full_panels = b.n() / PANEL_WIDTH;
    if rows < MIN_ROWS || full_panels == 0 {
        // Through the AVX-512 table's entry point, not inlined: one copy of its tiles, not two.
        return (avx512vnni::table(t.0).gemm_u8i8_dequantize)(operands, store);
    }
    let DequantizedOut { row_sums, epilogue: params, out, ldo } = store;
    let Some(job) = Job::new(operands) else {
        return;
    };
    let n = b.n();
    job.check_out(out.len(), ldo, "gemm_u8i8_dequantize");
    assert!(row_sums.len() >= rows, "gemm_u8i8_dequantize: {} row sums for {rows} rows", row_sums.len());
    let columns = [params.col_offsets.len(), params.w_zero_points.len(), params.multipliers.len()];
    assert!(
        columns.into_iter().chain(params.bias.map(<[f32]>::len)).all(|len| len >= n),
        "gemm_u8i8_dequantize: fewer column parameters than {n} columns"
    );
    let mut o = Dequantized { t: t.0, out, ldo, row_sums, params, acc: AccTile([[0; PANEL_WIDTH]; TILE_ROWS]) };
    drive(&job, full_panels, &mut o);
    if full_panels < b.n_panels() {
        let store = DequantizedOut { row_sums, epilogue: params, out, ldo };
        gemm_u8i8::gemm_dequantize_from_panel::<_, 8, 1>(t.0, operands, full_panels, store);
    }
}

/// Panels `0..full_panels` of the product, every row, each C tile handed to `o`: strips of 32
/// rows first, then the strip of the remaining rows, each set of strips under its own tile
/// configuration. The strips go in groups of [`group_rows`] rows; in each group, panel pairs
/// outside, strips inside: a pair of weight panels is read from memory once and from cache for
/// the group's other strips, and the group's activations stay in L1 while the pairs pass.
#[inline(always)]
fn drive<O: TileStore>(job: &Job<'_>, full_panels: usize, o: &mut O) {
    let whole = job.rows - job.rows % STRIP_ROWS;
    let group = group_rows(job.b.k_padded());
    let tiles = Tiles;
    let mut tail = KTail::new();
    for (start, end) in [(0, whole), (whole, job.rows)] {
        if start == end {
            continue;
        }
        let height = (end - start).min(STRIP_ROWS);
        tiles.configure(height);
        for g0 in (start..end).step_by(group) {
            for p in (0..full_panels).step_by(2) {
                let two_panels = p + 1 < full_panels;
                for r0 in (g0..end.min(g0 + group)).step_by(STRIP_ROWS) {
                    // SAFETY: `tiles` was just configured for strips of `height` rows, and rows
                    // `r0..r0 + height` and panels `p..p + 1 + two_panels` exist (see `block`).
                    unsafe {
                        match (height > TILE_ROWS, two_panels) {
                            (true, true) => block::<true, true, O>(job, r0, p, &mut tail, o),
                            (true, false) => block::<true, false, O>(job, r0, p, &mut tail, o),
                            (false, true) => block::<false, true, O>(job, r0, p, &mut tail, o),
                            (false, false) => block::<false, false, O>(job, r0, p, &mut tail, o),
                        }
                    }
                }
            }
        }
    }
}

/// Activation bytes of one group of strips (see [`drive`]): about two thirds of a 48 KiB L1 data
/// cache, the rest for the weight tiles streaming through.
const GROUP_BYTES: usize = 32 << 10;

/// Rows per group of strips for rows of `k_padded` bytes: the whole strips whose activations fit
/// in [`GROUP_BYTES`], at least one strip. Measured on a Sapphire Rapids core against one group
/// of all rows (every panel pair passing over every strip): kernel calls of 512-1280 rows (K of
/// 256-1024, 1024-column blocks) 1.2-1.65x as fast, the 64-row calls of a recurrent layer the
/// same.
fn group_rows(k_padded: usize) -> usize {
    (GROUP_BYTES / k_padded.max(1) / STRIP_ROWS).max(1) * STRIP_ROWS
}

/// One strip of rows from `r0` (32 rows when `TWO_ROWS`, else the configured height of at most
/// 16) x panel `p` (and `p + 1` when `TWO_PANELS`) over the whole `K`, stored through `o`.
///
/// # Safety
/// The tiles are configured ([`Tiles::configure`]) for this strip's height; its rows lie within
/// `job.rows` and its panels within the full panels of `job.b`.
#[inline(always)]
unsafe fn block<const TWO_ROWS: bool, const TWO_PANELS: bool, O: TileStore>(
    job: &Job<'_>,
    r0: usize,
    p: usize,
    tail: &mut KTail,
    o: &mut O,
) {
    let b = job.b;
    let steps = b.k_groups() / STEP_GROUPS;
    let tail_groups = b.k_groups() % STEP_GROUPS;
    let w0 = b.panel(p);
    let w1 = if TWO_PANELS { b.panel(p + 1) } else { w0 };
    let a0 = job.a[r0 * job.lda..].as_ptr();
    let a1 = if TWO_ROWS { job.a[(r0 + TILE_ROWS) * job.lda..].as_ptr() } else { a0 };
    // SAFETY: for every tile instruction below, the process may use the tiles (the `Amx` token);
    // they are configured for this strip (the caller). Loads of A read the configured rows (those
    // of the strip, all below `job.rows`) x 64 bytes from byte `step * 64 <= k_padded - 64` of a
    // row: within `a` (checked by [`Job::new`]). Loads of B read 16 blocks of one panel from block
    // `step * 16 <= k_groups - 16`: within the panel.
    unsafe {
        tile_zero::<C00>();
        if TWO_PANELS {
            tile_zero::<C01>();
        }
        if TWO_ROWS {
            tile_zero::<C10>();
            if TWO_PANELS {
                tile_zero::<C11>();
            }
        }
        for step in 0..steps {
            let (a_at, w_at) = (step * TILE_ROW_BYTES, step * STEP_GROUPS);
            multiply::<TWO_ROWS, TWO_PANELS>(
                (a0.add(a_at), a1.add(a_at), job.lda),
                (w0[w_at..].as_ptr().cast(), w1[w_at..].as_ptr().cast()),
            );
        }
    }
    if tail_groups > 0 {
        let rows = (job.rows - r0).min(STRIP_ROWS);
        let from = steps * TILE_ROW_BYTES;
        let len = tail_groups * K_GROUP;
        for (i, row) in tail.a.iter_mut().enumerate().take(rows) {
            let start = (r0 + i) * job.lda + from;
            row[..len].copy_from_slice(&job.a[start..start + len]);
        }
        tail.b[0][..tail_groups].copy_from_slice(&w0[steps * STEP_GROUPS..]);
        if TWO_PANELS {
            tail.b[1][..tail_groups].copy_from_slice(&w1[steps * STEP_GROUPS..]);
        }
        let a = tail.a.as_ptr().cast::<u8>();
        // SAFETY: as above; the A buffer holds 32 rows of 64 bytes (the first `rows` written, past
        // `len` zeros), each B buffer 16 blocks (past `tail_groups` zeros, so the bytes of A there
        // add nothing).
        unsafe {
            multiply::<TWO_ROWS, TWO_PANELS>(
                (a, a.add(TILE_ROWS * TILE_ROW_BYTES), TILE_ROW_BYTES),
                (tail.b[0].as_ptr().cast(), tail.b[1].as_ptr().cast()),
            );
        }
    }
    let rows0 = (job.rows - r0).min(TILE_ROWS);
    let rows1 = job.rows.saturating_sub(r0 + TILE_ROWS).min(TILE_ROWS);
    // SAFETY: the C tiles hold the products of the strip's rows (`rows0` from `r0`, `rows1` from
    // `r0 + 16`), as configured, and the panels are full ones.
    unsafe {
        o.store::<C00>(r0, rows0, p);
        if TWO_PANELS {
            o.store::<C01>(r0, rows0, p + 1);
        }
        if TWO_ROWS {
            o.store::<C10>(r0 + TILE_ROWS, rows1, p);
            if TWO_PANELS {
                o.store::<C11>(r0 + TILE_ROWS, rows1, p + 1);
            }
        }
    }
}

/// One step of 16 k-groups: loads the A tiles (`a0`, `a1`, stride `lda`) and the B tiles (`w0`,
/// `w1`, stride 64), and adds their products to the C tiles.
///
/// # Safety
/// The tiles are configured; the A tiles' configured rows x 64 bytes are readable at the stride
/// (`a1` only when `TWO_ROWS`), and 1 KiB at `w0` (and at `w1` when `TWO_PANELS`).
#[inline(always)]
unsafe fn multiply<const TWO_ROWS: bool, const TWO_PANELS: bool>(
    (a0, a1, lda): (*const u8, *const u8, usize),
    (w0, w1): (*const u8, *const u8),
) {
    // SAFETY: the caller's guarantees, instruction by instruction.
    unsafe {
        tile_load::<A0>(a0, lda);
        tile_load::<B0>(w0, TILE_ROW_BYTES);
        tile_dot::<C00, A0, B0>();
        if TWO_PANELS {
            tile_load::<B1>(w1, TILE_ROW_BYTES);
            tile_dot::<C01, A0, B1>();
        }
        if TWO_ROWS {
            tile_load::<A1>(a1, lda);
            tile_dot::<C10, A1, B0>();
            if TWO_PANELS {
                tile_dot::<C11, A1, B1>();
            }
        }
    }
}

/// The last `k_groups % 16` k-groups of a strip, zero-padded to whole tiles.
struct KTail {
    a: [[u8; TILE_ROW_BYTES]; STRIP_ROWS],
    b: [[Block; STEP_GROUPS]; 2],
}

impl KTail {
    fn new() -> Self {
        KTail { a: [[0; TILE_ROW_BYTES]; STRIP_ROWS], b: [[Block([0; TILE_ROW_BYTES]); STEP_GROUPS]; 2] }
    }
}

/// What becomes of each C tile.
trait TileStore {
    /// Stores C tile `T`: rows `r0..r0 + rows` of the product (its configured rows), the columns of
    /// full panel `p`.
    ///
    /// # Safety
    /// The tiles are configured and tile `T` has `rows` rows.
    unsafe fn store<const T: u8>(&mut self, r0: usize, rows: usize, p: usize);
}

/// The raw int32 products, rows of stride `ldo`, checked by [`Job::check_out`].
struct Raw<'a> {
    out: &'a mut [i32],
    ldo: usize,
}

impl TileStore for Raw<'_> {
    /// Straight from the tile to `out`.
    #[inline(always)]
    unsafe fn store<const T: u8>(&mut self, r0: usize, rows: usize, p: usize) {
        let start = r0 * self.ldo + p * PANEL_WIDTH;
        assert!(start + (rows - 1) * self.ldo + PANEL_WIDTH <= self.out.len());
        // SAFETY: the caller's guarantees; `tilestored` writes `rows` rows of 16 int32 at stride
        // `ldo` from `start`, all within `out` (asserted).
        unsafe { tile_store::<T>(self.out.as_mut_ptr().add(start).cast(), self.ldo * size_of::<i32>()) };
    }
}

/// One C tile as `tilestored` writes it: 16 rows of 16 int32.
#[repr(C, align(64))]
struct AccTile([[i32; PANEL_WIDTH]; TILE_ROWS]);

/// Dequantized floats, rows of stride `ldo` (checked), through [`AccTile`] and the AVX-512
/// epilogue (so each value is the scalar epilogue's, bit for bit).
struct Dequantized<'a> {
    t: Avx512,
    out: &'a mut [f32],
    ldo: usize,
    row_sums: &'a [i32],
    params: &'a Epilogue<'a>,
    acc: AccTile,
}

impl TileStore for Dequantized<'_> {
    #[inline(always)]
    unsafe fn store<const T: u8>(&mut self, r0: usize, rows: usize, p: usize) {
        // SAFETY: the caller's guarantees; `tilestored` writes `rows <= 16` rows of 64 bytes into
        // the 1 KiB buffer.
        unsafe { tile_store::<T>(self.acc.0.as_mut_ptr().cast(), TILE_ROW_BYTES) };
        let n0 = p * PANEL_WIDTH;
        for (r, acc) in self.acc.0.iter().enumerate().take(rows) {
            let start = (r0 + r) * self.ldo + n0;
            let out = &mut self.out[start..start + PANEL_WIDTH];
            dequantize::dequantize_span(self.t, acc, self.row_sums[r0 + r], self.params, n0, out);
        }
    }
}

/// The `ldtilecfg` operand (palette 1): bytes per row and rows of each tile register.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

const _: () = assert!(size_of::<TileConfig>() == 64);

/// The tile state of one kernel call on the current thread; released when dropped.
struct Tiles;

impl Tiles {
    /// Configures the tiles for strips of `height <= 32` rows (zeroing them all): C and A tiles
    /// of the first 16 rows and, when `height > 16`, of the other `height - 16`; B tiles of 16
    /// k-groups. Unused tiles stay unconfigured.
    #[inline(always)]
    fn configure(&self, height: usize) {
        debug_assert!((1..=STRIP_ROWS).contains(&height));
        let mut cfg = TileConfig { palette: 1, start_row: 0, reserved: [0; 14], bytes_per_row: [0; 16], rows: [0; 16] };
        let first = height.min(TILE_ROWS);
        let second = height - first;
        for (tile, rows) in [(C00, first), (C01, first), (A0, first), (C10, second), (C11, second), (A1, second)]
            .into_iter()
            .chain([(B0, STEP_GROUPS), (B1, STEP_GROUPS)])
        {
            cfg.rows[tile as usize] = rows as u8;
            cfg.bytes_per_row[tile as usize] = if rows > 0 { TILE_ROW_BYTES as u16 } else { 0 };
        }
        // SAFETY: a `Tiles` exists only inside the kernels, reached through a table built from an
        // `Amx` token (this process may use the tiles); the configuration is a valid palette-1 one
        // (at most 16 rows of at most 64 bytes per tile).
        unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly, preserves_flags)) };
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: as in `configure`; `tilerelease` returns the tiles to their initial state.
        unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
    }
}

/// `tilezero tmm{T}`.
///
/// # Safety
/// Tile `T` is configured.
#[inline(always)]
unsafe fn tile_zero<const T: u8>() {
    // SAFETY: the caller's guarantee; no memory is touched.
    unsafe { asm!("tilezero tmm{t}", t = const T, options(nostack, nomem, preserves_flags)) };
}

/// `tileloadd tmm{T}, [p + stride]`: the configured rows of tile `T`, one every `stride` bytes.
///
/// # Safety
/// Tile `T` is configured, and its rows x bytes per row are readable from `p` at `stride`.
#[inline(always)]
unsafe fn tile_load<const T: u8>(p: *const u8, stride: usize) {
    // SAFETY: the caller's guarantee.
    unsafe { asm!("tileloadd tmm{t}, [{p} + {s}*1]", t = const T, p = in(reg) p, s = in(reg) stride, options(nostack, readonly, preserves_flags)) };
}

/// `tilestored [p + stride], tmm{T}`.
///
/// # Safety
/// Tile `T` is configured, and its rows x bytes per row are writable at `p` at `stride`.
#[inline(always)]
unsafe fn tile_store<const T: u8>(p: *mut u8, stride: usize) {
    // SAFETY: the caller's guarantee.
    unsafe { asm!("tilestored [{p} + {s}*1], tmm{t}", t = const T, p = in(reg) p, s = in(reg) stride, options(nostack, preserves_flags)) };
}

/// `tdpbusd tmm{C}, tmm{A}, tmm{B}`: `C[m][n] += Σ_k Σ_i A[m][4k + i] * B[k][4n + i]`, u8 x s8, exact
/// products added to wrapping int32.
///
/// # Safety
/// The three tiles are configured with matching shapes.
#[inline(always)]
unsafe fn tile_dot<const C: u8, const A: u8, const B: u8>() {
    // SAFETY: the caller's guarantee; no memory is touched.
    unsafe { asm!("tdpbusd tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B, options(nostack, nomem, preserves_flags)) };
}
