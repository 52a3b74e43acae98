//! The kernel harness: every SIMD path this CPU supports against the scalar reference, bit for bit,
//! over ragged shapes, padded strides and extreme values.
//!
//! Integers are compared exactly and floats by their bits (two NaNs count as equal whatever their
//! payloads: the contract does not fix those). Paths this machine cannot run are reported on
//! stderr; set `FERROQ_REQUIRE_ISAS` (comma-separated names, e.g. `avx2,avxvnni,avx512vnni`) to make
//! a missing path an error, as on a CI machine known to have it.

mod common;

use common::{assert_same_floats, simd_paths, Rng};
use ferroq::kernels::{
    scalar, Accumulators, DequantizedOut, Epilogue, Int8Blocks, Int8Operands, Kernels, Nonlinearity, Projected, Range,
};
use ferroq::pack::PackedWeights;
use ferroq::quant::choose_qparams;
use ferroq::{kernels_for, Isa};

#[test]
fn tables_exist_exactly_where_the_cpu_has_the_instructions() {
    #[cfg(target_arch = "x86_64")]
    {
        let has = |features: &[&str]| {
            features.iter().all(|f| match *f {
                "avx2" => is_x86_feature_detected!("avx2"),
                "fma" => is_x86_feature_detected!("fma"),
                "f16c" => is_x86_feature_detected!("f16c"),
                "avxvnni" => is_x86_feature_detected!("avxvnni"),
                "avx512f" => is_x86_feature_detected!("avx512f"),
                "avx512bw" => is_x86_feature_detected!("avx512bw"),
                "avx512vl" => is_x86_feature_detected!("avx512vl"),
                "avx512vnni" => is_x86_feature_detected!("avx512vnni"),
                other => unreachable!("{other}"),
            })
        };
        let avx2 = has(&["avx2", "fma", "f16c"]);
        assert_eq!(kernels_for(Isa::Avx2).is_some(), avx2);
        assert_eq!(kernels_for(Isa::AvxVnni).is_some(), avx2 && has(&["avxvnni"]));
        let avx512 = has(&["avx512f", "avx512bw", "avx512vl", "avx512vnni"]);
        assert_eq!(kernels_for(Isa::Avx512Vnni).is_some(), avx2 && avx512);
        // AMX also needs the operating system's permission, which a test cannot predict; but
        // never without the CPU's AMX flags (Linux lists them only when it supports the tiles).
        if kernels_for(Isa::Amx).is_some() {
            assert!(avx2 && avx512);
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            assert!(["amx_tile", "amx_int8"].iter().all(|flag| cpuinfo.split_whitespace().any(|w| w == *flag)));
        }
    }
    for isa in Isa::ALL {
        if let Some(k) = kernels_for(isa) {
            assert_eq!(k.isa, isa);
        }
    }
    assert!(simd_paths().iter().all(|k| k.isa != Isa::Scalar));
}

// ---------------------------------------------------------------------------------------------
// gemm_u8i8

/// Every tile height of every path, and leftover strips of each kind.
const MS: [usize; 14] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 13, 16, 17, 33];
const KS: [usize; 21] = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1025];
const NS: [usize; 17] = [0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 127, 128, 129];

/// Value patterns for activations and weights.
#[derive(Clone, Copy, Debug)]
enum Values {
    Random,
    /// Activations below 128, as `reduce_range` produces.
    SevenBit,
    Zeros,
    /// 255 x -128: the largest products, all negative.
    MaxNegative,
    /// 255 x 127.
    MaxPositive,
    /// 127 x 127.
    Mid,
    /// Activations and weights drawn from the ends of their ranges.
    Extremes,
}

const PATTERNS: [Values; 7] = [
    Values::Random,
    Values::SevenBit,
    Values::Zeros,
    Values::MaxNegative,
    Values::MaxPositive,
    Values::Mid,
    Values::Extremes,
];

fn activation(rng: &mut Rng, values: Values) -> u8 {
    match values {
        Values::Random => rng.next() as u8,
        Values::SevenBit => rng.next() as u8 & 0x7f,
        Values::Zeros => 0,
        Values::MaxNegative | Values::MaxPositive => 255,
        Values::Mid => 127,
        Values::Extremes => rng.pick(&[0, 1, 127, 128, 254, 255]),
    }
}

fn weight(rng: &mut Rng, values: Values) -> i8 {
    match values {
        Values::Random | Values::SevenBit => rng.next() as i8,
        Values::Zeros => 0,
        Values::MaxNegative => -128,
        Values::MaxPositive | Values::Mid => 127,
        Values::Extremes => rng.pick(&[-128, -127, -1, 0, 1, 126, 127]),
    }
}

/// One product: `m` rows of `k` activations with row stride `lda` (zeros in `k..k_padded`, junk
/// after), output stride `ldo` (junk between rows, which must survive), and the parameters of its
/// dequantizing epilogue for `gemm_u8i8_dequantize`.
struct GemmCase {
    m: usize,
    lda: usize,
    ldo: usize,
    a: Vec<u8>,
    b: PackedWeights,
    row_sums: Vec<i32>,
    epilogue: OwnedEpilogue,
}

impl GemmCase {
    fn new(rng: &mut Rng, m: usize, k: usize, n: usize, values: Values, lda_extra: usize, ldo_extra: usize) -> Self {
        let w: Vec<i8> = (0..n * k).map(|_| weight(rng, values)).collect();
        let b = PackedWeights::pack(&w, n, k).unwrap();
        let lda = b.k_padded() + lda_extra;
        let mut a = vec![0u8; m * lda];
        for row in a.chunks_exact_mut(lda.max(1)).take(m) {
            row[..k].iter_mut().for_each(|x| *x = activation(rng, values));
            row[b.k_padded()..].iter_mut().for_each(|x| *x = rng.next() as u8);
        }
        // Row sums as the quantizer computes them, or anything when no weight zero point is used.
        let with_zero_points = rng.below(2) == 0;
        let row_sums = (0..m)
            .map(|r| match with_zero_points {
                true => a[r * lda..r * lda + k].iter().map(|&x| x as i32).sum(),
                false => rng.next() as i32,
            })
            .collect();
        let epilogue = OwnedEpilogue {
            x_zero_point: match rng.below(5) {
                4 => rng.next() as i32,
                i => [0, 1, 128, 255][i],
            },
            col_offsets: (0..n).map(|_| rng.next() as i32 >> rng.below(32)).collect(),
            w_zero_points: (0..n).map(|_| if with_zero_points { rng.below(256) as i32 - 128 } else { 0 }).collect(),
            multipliers: (0..n).map(|_| rng.uniform(1e-7, 1e-2)).collect(),
            bias: match rng.below(3) {
                0 => None,
                1 => Some((0..n).map(|_| rng.uniform(-5.0, 5.0)).collect()),
                _ => Some((0..n).map(|_| rng.finite_bits()).collect()),
            },
        };
        GemmCase { m, lda, ldo: n + ldo_extra, a, b, row_sums, epilogue }
    }

    /// `gemm_u8i8_dequantize` by `f` into an output of stride `ldo` prefilled with junk.
    fn run_dequantized(&self, f: GemmDequantize) -> Vec<f32> {
        let len = if self.m == 0 { 0 } else { (self.m - 1) * self.ldo + self.b.n() };
        let mut out: Vec<f32> = (0..len).map(|i| -(i as f32) - 0.5).collect();
        let operands = Int8Operands { a: &self.a, lda: self.lda, rows: self.m, b: &self.b };
        f(operands, DequantizedOut { row_sums: &self.row_sums, epilogue: &self.epilogue.params(), out: &mut out, ldo: self.ldo });
        out
    }

    /// The specification of `gemm_u8i8_dequantize`: scalar `gemm_u8i8`, then scalar `dequantize`
    /// row by row into the strided output (junk between rows left alone).
    fn dequantized_by_spec(&self) -> Vec<f32> {
        let n = self.b.n();
        let acc = self.run(scalar::gemm_u8i8);
        let mut out: Vec<f32> = (0..acc.len()).map(|i| -(i as f32) - 0.5).collect();
        for r in 0..self.m {
            let row = r * self.ldo..r * self.ldo + n;
            scalar::dequantize(&acc[row.clone()], &self.row_sums[r..r + 1], &self.epilogue.params(), &mut out[row]);
        }
        out
    }

    fn run(&self, f: fn(Int8Operands<'_>, &mut [i32], usize)) -> Vec<i32> {
        let len = if self.m == 0 { 0 } else { (self.m - 1) * self.ldo + self.b.n() };
        let mut out: Vec<i32> = (0..len).map(|i| 0x5eed_0000 + i as i32).collect();
        f(Int8Operands { a: &self.a, lda: self.lda, rows: self.m, b: &self.b }, &mut out, self.ldo);
        out
    }

    fn check(&self, paths: &[Kernels], what: &str) {
        let want = self.run(scalar::gemm_u8i8);
        for kernels in paths {
            let got = self.run(kernels.gemm_u8i8);
            if got != want {
                let i = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(0);
                panic!(
                    "{}: gemm_u8i8 {what} (m={} k={} n={} lda={} ldo={}) differs at {i}: {} vs scalar {}",
                    kernels.isa.name(),
                    self.m,
                    self.b.k(),
                    self.b.n(),
                    self.lda,
                    self.ldo,
                    got[i],
                    want[i]
                );
            }
        }
        self.check_dequantized(paths, what);
    }

    /// `gemm_u8i8_dequantize` on scalar and every path in `paths` against its specification.
    fn check_dequantized(&self, paths: &[Kernels], what: &str) {
        let want = self.dequantized_by_spec();
        let scalar_path: (&str, GemmDequantize) = ("scalar", scalar::gemm_u8i8_dequantize);
        let others = paths.iter().map(|k| (k.isa.name(), k.gemm_u8i8_dequantize));
        for (name, f) in std::iter::once(scalar_path).chain(others) {
            let what = format!(
                "{name}: gemm_u8i8_dequantize {what} (m={} k={} n={} lda={} ldo={}, bias {}, zero points {})",
                self.m,
                self.b.k(),
                self.b.n(),
                self.lda,
                self.ldo,
                self.epilogue.bias.is_some(),
                self.epilogue.w_zero_points.iter().any(|&z| z != 0),
            );
            assert_same_floats(&self.run_dequantized(f), &want, &what);
        }
    }
}

/// The signature of [`Kernels::gemm_u8i8_dequantize`].
type GemmDequantize = fn(Int8Operands<'_>, DequantizedOut<'_>);

#[test]
fn gemm_u8i8_matches_scalar_on_ragged_shapes() {
    let paths = simd_paths();
    let mut rng = Rng(1);
    let mut cases = 0;
    for (i, &m) in MS.iter().enumerate() {
        for (j, &k) in KS.iter().enumerate() {
            for (l, &n) in NS.iter().enumerate() {
                // A third of the grid, every (m, k), (k, n) and (m, n) pair still covered; the
                // largest products in release builds only.
                if (i + j + l) % 3 != 0 || (cfg!(debug_assertions) && m * k * n > 1 << 20) {
                    continue;
                }
                let values = PATTERNS[(i + 2 * j + 3 * l) % PATTERNS.len()];
                let case =
                    GemmCase::new(&mut rng, m, k, n, values, [0, 4, 13, 64][(j + l) % 4], [0, 1, 17][(i + l) % 3]);
                case.check(&paths, &format!("{values:?}"));
                cases += 1;
            }
        }
    }
    assert!(cases > 250, "only {cases} cases ran");
}

#[test]
fn gemm_u8i8_matches_scalar_on_every_value_pattern() {
    let paths = simd_paths();
    let mut rng = Rng(2);
    for values in PATTERNS {
        for (m, k, n) in [(1, 1025, 33), (5, 129, 129), (7, 64, 65), (17, 33, 48), (33, 31, 17), (2, 4, 1)] {
            GemmCase::new(&mut rng, m, k, n, values, 0, 0).check(&paths, &format!("{values:?}"));
            GemmCase::new(&mut rng, m, k, n, values, 9, 5).check(&paths, &format!("{values:?}, padded strides"));
        }
    }
}

/// Products of many rows: the AMX kernel runs its strips of 32 rows in groups (as many as fit
/// 32 KiB of activations: one strip at `k` 1025, three at 300), several groups per product, then
/// the strip of the remaining rows.
#[test]
fn gemm_u8i8_matches_scalar_over_groups_of_strips() {
    let paths = simd_paths();
    let mut rng = Rng(7);
    for (i, (m, k, n)) in [(100, 1025, 49), (230, 300, 40), (96, 100, 33)].into_iter().enumerate() {
        let values = PATTERNS[i % PATTERNS.len()];
        GemmCase::new(&mut rng, m, k, n, values, 0, 0).check(&paths, &format!("{values:?}"));
        GemmCase::new(&mut rng, m, k, n, values, 9, 5).check(&paths, &format!("{values:?}, padded strides"));
    }
}

/// Every width of the narrow last panel (`n % 16` columns, stored only as wide as its columns),
/// alone and after full panels, with `k` below one k-group, ragged, and over several of the chunks
/// the kernels widen it in.
#[test]
fn gemm_u8i8_matches_scalar_on_narrow_panels() {
    let paths = simd_paths();
    let mut rng = Rng(6);
    let ns = (1..=17).chain([31, 33, 47, 50]);
    for (i, n) in ns.enumerate() {
        for (j, k) in [1, 2, 3, 4, 5, 7, 64, 65, 200, 257].into_iter().enumerate() {
            for (l, m) in [1, 2, 3, 4, 5, 7, 8, 13].into_iter().enumerate() {
                let values = PATTERNS[(i + j + l) % PATTERNS.len()];
                let case = GemmCase::new(&mut rng, m, k, n, values, [0, 4, 9][(i + j) % 3], [0, 1, 3][(j + l) % 3]);
                // Scalar itself against the plain sum over the unpacked weights.
                let (w, got) = (case.b.unpack(), case.run(scalar::gemm_u8i8));
                for r in 0..m {
                    for (col, w_row) in w.chunks_exact(k).enumerate() {
                        let a_row = &case.a[r * case.lda..r * case.lda + k];
                        let want = a_row.iter().zip(w_row).fold(0i32, |s, (&x, &w)| s.wrapping_add(x as i32 * w as i32));
                        assert_eq!(got[r * case.ldo + col], want, "scalar: m={m} k={k} n={n} row {r} column {col}");
                    }
                }
                case.check(&paths, &format!("narrow panel, {values:?}"));
            }
        }
    }
}

#[test]
fn gemm_u8i8_mixes_seven_and_eight_bit_rows() {
    let paths = simd_paths();
    let mut rng = Rng(3);
    for bad_row in [0, 3, 6] {
        let mut case = GemmCase::new(&mut rng, 7, 77, 40, Values::SevenBit, 3, 2);
        case.a[bad_row * case.lda + 76] = 200;
        case.check(&paths, &format!("one 8-bit byte in row {bad_row}"));
    }
}

#[test]
fn gemm_u8i8_wraps_around_like_scalar() {
    // 255 * 127 * 70001 > i32::MAX: the int32 sums wrap.
    let paths = simd_paths();
    let mut rng = Rng(4);
    GemmCase::new(&mut rng, 2, 70_001, 17, Values::MaxPositive, 0, 0).check(&paths, "overflowing");
    GemmCase::new(&mut rng, 1, 70_001, 16, Values::MaxNegative, 0, 0).check(&paths, "overflowing");
}

/// A run of column blocks of one matrix in one call: on scalar and every path, the bits of scalar
/// `gemm_u8i8` on each block in turn (its columns after the blocks before it), with one and
/// several rows, blocks of full and narrow panels, a byte of 128 or more only at the end of the
/// last row (the 7-bit check must cover every row of every block), and the junk between output
/// rows left alone.
#[test]
fn gemm_u8i8_blocks_match_scalar_block_by_block() {
    let paths = simd_paths();
    let mut rng = Rng(8);
    let runs: [&[usize]; 6] = [&[128, 128, 128, 128], &[16], &[160, 160, 33], &[7], &[64, 48, 17], &[]];
    let mut cases = 0;
    for (i, widths) in runs.into_iter().enumerate() {
        for (j, (m, k)) in [(1, 256), (1, 65), (3, 100), (5, 256), (0, 8)].into_iter().enumerate() {
            for late_eight_bit in [false, true] {
                let values = if late_eight_bit { Values::SevenBit } else { PATTERNS[(i + j) % PATTERNS.len()] };
                let n: usize = widths.iter().sum();
                let blocks: Vec<PackedWeights> = widths
                    .iter()
                    .map(|&w| PackedWeights::pack(&(0..w * k).map(|_| weight(&mut rng, values)).collect::<Vec<_>>(), w, k).unwrap())
                    .collect();
                let (lda, ldo) = (k.next_multiple_of(4) + [0, 9][i % 2], n + [0, 3][j % 2]);
                let mut a = vec![0u8; m * lda];
                for row in a.chunks_exact_mut(lda) {
                    row[..k].iter_mut().for_each(|x| *x = activation(&mut rng, values));
                }
                if late_eight_bit && m > 0 {
                    a[(m - 1) * lda + k - 1] = 200;
                }
                let len = if m == 0 { 0 } else { (m - 1) * ldo + n };
                let junk = |i: usize| 0x5eed_0000 + i as i32;
                let mut want: Vec<i32> = (0..len).map(junk).collect();
                let mut column = 0;
                for b in blocks.iter().filter(|_| m > 0) {
                    scalar::gemm_u8i8(Int8Operands { a: &a, lda, rows: m, b }, &mut want[column..], ldo);
                    column += b.n();
                }
                let scalar_path: (&str, GemmBlocks) = ("scalar", scalar::gemm_u8i8_blocks);
                for (name, f) in std::iter::once(scalar_path).chain(paths.iter().map(|k| (k.isa.name(), k.gemm_u8i8_blocks))) {
                    let mut got: Vec<i32> = (0..len).map(junk).collect();
                    f(Int8Blocks { a: &a, lda, rows: m, blocks: &blocks }, &mut got, ldo);
                    assert_eq!(got, want, "{name}: gemm_u8i8_blocks {widths:?} m={m} k={k} {values:?} late 8-bit {late_eight_bit}");
                    cases += 1;
                }
            }
        }
    }
    assert!(cases >= 60, "only {cases} cases ran");
}

/// The signature of [`Kernels::gemm_u8i8_blocks`].
type GemmBlocks = fn(Int8Blocks<'_>, &mut [i32], usize);

#[test]
fn gemm_u8i8_large_products_match_scalar() {
    if cfg!(debug_assertions) {
        eprintln!("gemm_u8i8_large_products_match_scalar: release builds only");
        return;
    }
    let paths = simd_paths();
    let mut rng = Rng(5);
    for (m, k, n) in [(64, 1024, 1024), (67, 768, 200), (3, 4096, 512), (130, 300, 129)] {
        GemmCase::new(&mut rng, m, k, n, Values::Random, 0, 0).check(&paths, "large");
    }
}

// ---------------------------------------------------------------------------------------------
// range and quantize_u8

#[test]
fn range_matches_scalar() {
    let paths = simd_paths();
    let mut rng = Rng(6);
    let lengths: Vec<usize> = (0..=70).chain([127, 128, 129, 1000, 4099]).collect();
    for &len in &lengths {
        for trial in 0..8 {
            let mut x: Vec<f32> = match trial {
                0 => (0..len).map(|_| rng.uniform(-3.0, 3.0)).collect(),
                1 => (0..len).map(|_| rng.finite_bits()).collect(),
                2 => (0..len).map(|_| rng.pick(&[0.0, -0.0])).collect(),
                6 => (0..len).map(|_| rng.pick(&[0.0, -0.0, 1.5])).collect(),
                7 => (0..len).map(|_| rng.pick(&[0.0, -0.0, -2.0])).collect(),
                3 => (0..len).map(|_| rng.uniform(1.0, 2.0)).collect(),
                _ => (0..len).map(|_| rng.uniform(-1e30, -1e29)).collect(),
            };
            if trial == 5 && len > 0 {
                x[rng.below(len)] = f32::MAX;
                x[rng.below(len)] = f32::MIN;
            }
            check_range(&paths, &x);
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
            for at in [0, len / 2, len.saturating_sub(1)].into_iter().filter(|&at| at < len) {
                let mut x: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
                x[at] = bad;
                check_range(&paths, &x);
            }
        }
    }
}

fn range_bits(range: Range) -> Option<(u32, u32)> {
    match range {
        Range::Finite { min, max } => Some((min.to_bits(), max.to_bits())),
        Range::NonFinite => None,
    }
}

fn check_range(paths: &[Kernels], x: &[f32]) {
    let want = scalar::range(x);
    for kernels in paths {
        let got = (kernels.range)(x);
        // Bits, not `==`: a zero bound must be `+0.0` on every path.
        assert_eq!(range_bits(got), range_bits(want), "{}: range of {x:?}", kernels.isa.name());
        if let (Range::Finite { min: a, max: b }, Range::Finite { min: c, max: d }) = (got, want) {
            assert_eq!(choose_qparams(a, b, 0, 255, true).unwrap(), choose_qparams(c, d, 0, 255, true).unwrap());
            assert_eq!(choose_qparams(a, b, 0, 255, false).unwrap(), choose_qparams(c, d, 0, 255, false).unwrap());
        }
    }
}

#[test]
fn quantize_u8_matches_scalar() {
    let paths = simd_paths();
    let mut rng = Rng(7);
    let inv_scales = [1.0f32, 0.5, 2.0, 4.0, 1.0 / 0.1f32, 127.0 / 3.7, 1e-3, 3e7, 1e30, 1.0 / 0.002_148_548_6];
    let zero_points = [0, 1, 64, 127, 128, 254, 255, -3, 300];
    let specials = [
        0.0,
        -0.0,
        0.5,
        1.5,
        2.5,
        -0.5,
        -1.5,
        126.5,
        127.5,
        128.5,
        254.5,
        255.5,
        -127.5,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        1e-40,
        -1e-45,
        f32::MIN_POSITIVE,
        0.273_939_94,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    for len in 0..=70 {
        for trial in 0..8 {
            let inv_scale = inv_scales[(len + trial) % inv_scales.len()];
            let zero_point = zero_points[(2 * len + trial) % zero_points.len()];
            let x: Vec<f32> = (0..len)
                .map(|_| match trial % 4 {
                    0 => rng.uniform(-300.0, 300.0),
                    1 => rng.pick(&specials),
                    2 => (rng.below(600) as f32 - 300.0 + 0.5) / inv_scale,
                    _ => rng.finite_bits(),
                })
                .collect();
            let mut want = vec![0xaau8; len + 3];
            scalar::quantize_u8(&x, inv_scale, zero_point, &mut want[..len]);
            for kernels in paths.iter() {
                let mut got = vec![0xaau8; len + 3];
                (kernels.quantize_u8)(&x, inv_scale, zero_point, &mut got[..len]);
                assert_eq!(
                    got,
                    want,
                    "{}: quantize_u8 x={x:?} inv_scale={inv_scale} zp={zero_point}",
                    kernels.isa.name()
                );
            }
        }
    }
}

#[test]
fn quantize_u8_stops_at_the_shorter_slice() {
    let paths = simd_paths();
    let x: Vec<f32> = (0..40).map(|i| i as f32 * 3.3).collect();
    for (x_len, out_len) in [(40, 17), (17, 40), (0, 5), (33, 32)] {
        let mut want = vec![7u8; out_len];
        scalar::quantize_u8(&x[..x_len], 0.7, 3, &mut want);
        for kernels in &paths {
            let mut got = vec![7u8; out_len];
            (kernels.quantize_u8)(&x[..x_len], 0.7, 3, &mut got);
            assert_eq!(got, want, "{}", kernels.isa.name());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dequantize

/// Owned parameters of one epilogue.
struct OwnedEpilogue {
    x_zero_point: i32,
    col_offsets: Vec<i32>,
    w_zero_points: Vec<i32>,
    multipliers: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl OwnedEpilogue {
    fn params(&self) -> Epilogue<'_> {
        Epilogue {
            x_zero_point: self.x_zero_point,
            col_offsets: &self.col_offsets,
            w_zero_points: &self.w_zero_points,
            multipliers: &self.multipliers,
            bias: self.bias.as_deref(),
        }
    }
}

/// The dequantizing epilogue of `gemm_u8i8_dequantize` over every column count, with extreme
/// parameters: multipliers from tiny to huge (subnormal and overflowing products), wrapping
/// corrections, biases of any size.
#[test]
fn dequantize_matches_scalar() {
    let paths = simd_paths();
    let mut rng = Rng(8);
    for (case, &n) in NS.iter().cycle().take(4 * NS.len()).enumerate() {
        let rows = case % 6;
        let extreme = case % 4 == 3;
        let values = if extreme { Values::Extremes } else { Values::Random };
        let mut gemm = GemmCase::new(&mut rng, rows, [1, 7, 64, 300][case % 4], n, values, case % 3, case % 2);
        let int = |rng: &mut Rng, small: i32| {
            if extreme {
                rng.next() as i32
            } else {
                rng.below(2 * small as usize) as i32 - small
            }
        };
        let with_zero_points = case % 2 == 1;
        if with_zero_points {
            gemm.row_sums = (0..rows).map(|_| int(&mut rng, 1 << 15).abs()).collect();
        }
        gemm.epilogue = OwnedEpilogue {
            x_zero_point: if extreme { rng.next() as i32 } else { rng.below(256) as i32 },
            col_offsets: (0..n).map(|_| int(&mut rng, 1 << 16)).collect(),
            w_zero_points: (0..n).map(|_| if with_zero_points { int(&mut rng, 128) } else { 0 }).collect(),
            multipliers: (0..n)
                .map(|_| match case % 3 {
                    0 => rng.uniform(1e-6, 1e-3),
                    1 => rng.finite_bits().abs(),
                    _ => rng.pick(&[1.0, 1.0 + f32::EPSILON, 1e-40, 3e38, 0.1]),
                })
                .collect(),
            bias: match case % 3 {
                0 => None,
                1 => Some((0..n).map(|_| rng.uniform(-5.0, 5.0)).collect()),
                _ => Some((0..n).map(|_| rng.finite_bits()).collect()),
            },
        };
        gemm.check_dequantized(&paths, &format!("with extreme epilogue parameters (case {case})"));
    }
}

#[test]
fn dequantize_rounds_once_near_cancellation() {
    // (float)corr * m + b where the product nearly cancels the bias: a separate rounding of the
    // product would change the result, the fused one must not.
    let paths = simd_paths();
    let mut rng = Rng(9);
    for n in [1, 15, 16, 17, 33, 64] {
        let mut gemm = GemmCase::new(&mut rng, 2, 64, n, Values::Random, 0, 0);
        let acc = gemm.run(scalar::gemm_u8i8);
        let multipliers: Vec<f32> = (0..n).map(|_| rng.uniform(1e-4, 1e-2)).collect();
        let bias = (0..n).map(|j| -(acc[j] as f32 * multipliers[j])).collect();
        gemm.epilogue = OwnedEpilogue {
            x_zero_point: 0,
            col_offsets: vec![0; n],
            w_zero_points: vec![0; n],
            multipliers,
            bias: Some(bias),
        };
        gemm.check_dequantized(&paths, "near cancellation");
    }
}

// ---------------------------------------------------------------------------------------------
// gemm_f32_f16

/// Random finite binary16 bits, or one of a few extreme values.
fn f16_bits(rng: &mut Rng, extreme: bool) -> u16 {
    if extreme {
        return rng.pick(&[0x7bff, 0xfbff, 0x0001, 0x8001, 0x0400, 0x0000, 0x8000, 0x3c00, 0x3c01]);
    }
    let bits = rng.next() as u16;
    if bits & 0x7c00 == 0x7c00 {
        bits & 0xbfff
    } else {
        bits
    }
}

#[test]
fn gemm_f32_f16_matches_scalar() {
    let paths = simd_paths();
    let mut rng = Rng(10);
    let mut case = 0;
    for rows in [0, 1, 2, 3, 4, 5, 7, 8, 9] {
        for k in [0, 1, 2, 3, 7, 16, 33, 100] {
            for n in [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 47, 64, 65, 100, 129] {
                case += 1;
                if case % 2 == 0 {
                    continue;
                }
                let extreme = case % 5 == 0;
                let x: Vec<f32> = (0..rows * k)
                    .map(|_| {
                        if extreme {
                            rng.pick(&[1e30, -1e30, 1e-40, 0.0, -0.0, 65504.0])
                        } else {
                            rng.uniform(-2.0, 2.0)
                        }
                    })
                    .collect();
                let w: Vec<u16> = (0..k * n)
                    .map(|_| {
                        let extreme_weight = extreme && rng.below(2) == 0;
                        f16_bits(&mut rng, extreme_weight)
                    })
                    .collect();
                let bias: Option<Vec<f32>> = (case % 3 != 0).then(|| (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect());
                check_f16(&paths, &x, rows, k, &w, n, bias.as_deref());
            }
        }
    }
}

#[test]
fn gemm_f32_f16_matches_scalar_across_blocks_of_inputs() {
    let paths = simd_paths();
    let mut rng = Rng(11);
    let mut case = 0;
    for rows in [1, 3, 5] {
        for k in [511, 512, 513, 1024, 1025, 1537] {
            for n in [1, 7, 16, 31, 32, 33, 47, 64, 95, 100] {
                case += 1;
                let extreme = case % 4 == 0;
                let x: Vec<f32> = (0..rows * k)
                    .map(|_| if extreme { rng.pick(&[1e30, -1e-40, 0.0, -0.0, 3.0]) } else { rng.uniform(-2.0, 2.0) })
                    .collect();
                let w: Vec<u16> = (0..k * n)
                    .map(|_| {
                        let extreme_weight = extreme && rng.below(2) == 0;
                        f16_bits(&mut rng, extreme_weight)
                    })
                    .collect();
                let bias: Option<Vec<f32>> = (case % 3 != 0).then(|| (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect());
                check_f16(&paths, &x, rows, k, &w, n, bias.as_deref());
            }
        }
    }
}

/// Where the summation order shows: 2^24 plus ones, which each round back to 2^24 when added one
/// at a time. Inputs 2^24, then 513 ones, all weights 1.0, 33 columns. Column 32 (the one column
/// after the whole block of 32) sums the inputs 0..512 (2^24) and 512..514 (2.0) apart, then adds
/// them: 2^24 + 2. The other columns add every product in turn and stay at 2^24.
#[test]
fn gemm_f32_f16_sums_the_last_columns_in_blocks_of_512_inputs() {
    let all_paths = || std::iter::once(scalar::KERNELS).chain(simd_paths());
    let (k, n) = (514, 33);
    let mut x = vec![1.0f32; k];
    x[0] = 16_777_216.0;
    let w = vec![0x3c00u16; k * n];
    let mut want = vec![16_777_216.0f32; n];
    want[32] = 16_777_218.0;
    for kernels in all_paths() {
        let mut got = vec![0.75f32; n];
        (kernels.gemm_f32_f16)(&x, 1, k, &w, n, None, &mut got);
        assert_same_floats(&got, &want, &format!("{}: 2^24 + ones", kernels.isa.name()));
    }
}

/// Products that are all -0.0 sum to -0.0, as a first plain multiply gives, except in the last
/// `n % 32` columns past the first block of 512 inputs: there each later block starts from +0.0,
/// and -0.0 + +0.0 = +0.0. No inputs at all give +0.0. A bias of -0.0 keeps the sign.
#[test]
fn gemm_f32_f16_keeps_the_sign_of_zero_sums_as_fbgemm_does() {
    let all_paths = || std::iter::once(scalar::KERNELS).chain(simd_paths());
    let n = 33;
    for k in [0, 1, 512, 513] {
        let x = vec![0.0f32; 2 * k];
        let w = vec![0xbc00u16; k * n]; // -1.0
        let sum = |j: usize| if k == 0 || (k > 512 && j == 32) { 0.0f32 } else { -0.0 };
        let want: Vec<f32> = (0..2 * n).map(|i| sum(i % n)).collect();
        for kernels in all_paths() {
            for bias in [None, Some(vec![-0.0f32; n])] {
                let mut got = vec![0.75f32; 2 * n];
                (kernels.gemm_f32_f16)(&x, 2, k, &w, n, bias.as_deref(), &mut got);
                let what = format!("{}: signed zeros k={k} bias={}", kernels.isa.name(), bias.is_some());
                assert_same_floats(&got, &want, &what);
            }
        }
    }
}

#[test]
fn gemm_f32_f16_propagates_infinities_and_nan_like_scalar() {
    let paths = simd_paths();
    let (rows, k, n) = (3, 5, 19);
    let mut x = vec![1.0f32; rows * k];
    x[2] = f32::INFINITY;
    x[k + 1] = f32::NAN;
    x[2 * k] = f32::MAX;
    let w: Vec<u16> = (0..k * n).map(|i| [0x3c00, 0xbc00, 0x7bff, 0x0000][i % 4]).collect();
    check_f16(&paths, &x, rows, k, &w, n, Some(&vec![f32::NEG_INFINITY; n]));
    check_f16(&paths, &x, rows, k, &w, n, None);
}

#[test]
fn gemm_f32_f16_leaves_a_short_bias_to_scalar_semantics() {
    let paths = simd_paths();
    let (rows, k, n) = (2, 3, 20);
    let x: Vec<f32> = (0..rows * k).map(|i| i as f32 * 0.25).collect();
    let w: Vec<u16> = (0..k * n).map(|i| 0x3c00 + i as u16).collect();
    check_f16(&paths, &x, rows, k, &w, n, Some(&[1.0, 2.0, 3.0]));
}

fn check_f16(paths: &[Kernels], x: &[f32], rows: usize, k: usize, w: &[u16], n: usize, bias: Option<&[f32]>) {
    let mut want = vec![0.75f32; rows * n];
    scalar::gemm_f32_f16(x, rows, k, w, n, bias, &mut want);
    for kernels in paths {
        let mut got = vec![0.75f32; rows * n];
        (kernels.gemm_f32_f16)(x, rows, k, w, n, bias, &mut got);
        let what = format!("{}: gemm_f32_f16 rows={rows} k={k} n={n} bias={}", kernels.isa.name(), bias.is_some());
        assert_same_floats(&got, &want, &what);
    }
}

/// One projection's output for the recurrent-step kernels: floats (with NaN and infinities now
/// and then, as float16 weights let through), or int32 accumulators with their dequantization
/// terms (weight zero points already corrected, as the contract states).
struct ProjectedCase {
    floats: Vec<f32>,
    acc: Vec<i32>,
    col_offsets: Vec<i32>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

impl ProjectedCase {
    fn new(rng: &mut Rng, rows: usize, columns: usize) -> Self {
        let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 30.0, -30.0];
        let floats = (0..rows * columns)
            .map(|_| if rng.below(50) == 0 { rng.pick(&special) } else { rng.uniform(-6.0, 6.0) })
            .collect();
        ProjectedCase {
            floats,
            acc: (0..rows * columns).map(|_| rng.next() as i32 >> 12).collect(),
            col_offsets: (0..columns).map(|_| rng.next() as i32 >> 16).collect(),
            scales: (0..columns).map(|_| rng.uniform(1e-4, 3e-3)).collect(),
            bias: (0..columns).map(|_| rng.uniform(-1.0, 1.0)).collect(),
        }
    }

    fn projected(&self, int8: bool) -> Projected<'_> {
        if !int8 {
            return Projected::Float(&self.floats);
        }
        Projected::Int8(Accumulators {
            acc: &self.acc,
            x_zero_point: 37,
            x_scale: 0.0173,
            col_offsets: &self.col_offsets,
            scales: &self.scales,
            bias: &self.bias,
        })
    }
}

/// Runs `step` (one of the recurrent-step kernels, on `hg`, `ig` and a state) on every path and
/// on scalar, and compares the states they leave.
fn check_recurrent_step(
    what: &str,
    paths: &[Kernels],
    state: &[f32],
    step: impl Fn(&Kernels, &mut Vec<f32>, &mut Vec<f32>),
    second_state: &[f32],
) {
    let (mut want, mut want2) = (state.to_vec(), second_state.to_vec());
    step(&scalar::KERNELS, &mut want, &mut want2);
    for kernels in paths {
        let (mut got, mut got2) = (state.to_vec(), second_state.to_vec());
        step(kernels, &mut got, &mut got2);
        let what = format!("{what} on {}", kernels.isa.name());
        // The states are canonicalized: even a NaN must have the scalar bits.
        assert_eq!(common::bits(&got), common::bits(&want), "{what}");
        assert_eq!(common::bits(&got2), common::bits(&want2), "{what} (second output)");
    }
}

#[test]
fn recurrent_steps_match_scalar() {
    let paths = simd_paths();
    let mut rng = Rng(31);
    // Around every vector width, the pairs of registers, the sigmoid's split at 32 and the GRU
    // kernels' chunks of 256 units.
    for hidden in [1usize, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 65, 100, 257, 300] {
        // One row, and several sharing each block of units' dequantization terms.
        for rows in [1usize, 3, 9] {
            for (hg_int8, ig_int8) in [(false, false), (true, false), (false, true), (true, true)] {
                let kind = |gates: usize| format!("hidden {hidden} rows {rows} int8 {hg_int8}/{ig_int8} gates {gates}");
                let state = rng.floats(rows * hidden, 2.0);
                let (hg4, ig4) = (ProjectedCase::new(&mut rng, rows, 4 * hidden), ProjectedCase::new(&mut rng, rows, 4 * hidden));
                let (hg, ig) = (hg4.projected(hg_int8), ig4.projected(ig_int8));
                let lstm = |k: &Kernels, c: &mut Vec<f32>, h: &mut Vec<f32>| (k.lstm)(&hg, &ig, c, h, hidden);
                check_recurrent_step(&format!("lstm {}", kind(4)), &paths, &state, lstm, &vec![0.0; rows * hidden]);
                let (hg3, ig3) = (ProjectedCase::new(&mut rng, rows, 3 * hidden), ProjectedCase::new(&mut rng, rows, 3 * hidden));
                let (hg, ig) = (hg3.projected(hg_int8), ig3.projected(ig_int8));
                let gru = |k: &Kernels, h: &mut Vec<f32>, _: &mut Vec<f32>| (k.gru)(&hg, &ig, h, hidden);
                check_recurrent_step(&format!("gru {}", kind(3)), &paths, &state, gru, &[]);
                let (hg1, ig1) = (ProjectedCase::new(&mut rng, rows, hidden), ProjectedCase::new(&mut rng, rows, hidden));
                let (hg, ig) = (hg1.projected(hg_int8), ig1.projected(ig_int8));
                for nonlinearity in [Nonlinearity::Tanh, Nonlinearity::Relu] {
                    let elman = |k: &Kernels, h: &mut Vec<f32>, _: &mut Vec<f32>| (k.elman)(nonlinearity, &hg, &ig, h, hidden);
                    check_recurrent_step(&format!("elman {nonlinearity:?} {}", kind(1)), &paths, &state, elman, &[]);
                }
            }
        }
    }
}
