//! The static Linear's requantizing epilogue ([`Kernels::requantize`]) on every SIMD path this CPU
//! supports against the scalar specification, byte for byte: every column count around the vector
//! widths, wrapping corrections, multipliers from subnormal to huge, biases that overflow to
//! infinity or cancel, ties of the rounding, products that are NaN, and ReLU floors.

mod common;

use common::{simd_paths, Rng};
use ferroq::kernels::Epilogue;
use ferroq::requantize::{requantize, Requantize};

/// Column counts: below, at and beyond the 4-, 8- and 16-lane vectors.
const NS: [usize; 14] = [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100];

/// One call's inputs, owned.
struct Case {
    rows: usize,
    acc: Vec<i32>,
    row_sums: Vec<i32>,
    x_zero_point: i32,
    col_offsets: Vec<i32>,
    w_zero_points: Vec<i32>,
    multipliers: Vec<f32>,
    bias: Option<Vec<f32>>,
    y_zero_point: i32,
    y_min: i32,
}

impl Case {
    /// `case` picks the kind of values: small ones that round near ties, or extreme ones.
    fn new(rng: &mut Rng, case: usize, n: usize) -> Case {
        let rows = 1 + case % 4;
        let extreme = case % 3 == 2;
        let int = |rng: &mut Rng, small: i32| if extreme { rng.next() as i32 } else { rng.below(2 * small as usize) as i32 - small };
        let y_zero_point = rng.below(256) as i32;
        Case {
            rows,
            acc: (0..rows * n).map(|_| int(rng, 1 << 12)).collect(),
            row_sums: (0..rows).map(|_| int(rng, 1 << 15).abs()).collect(),
            x_zero_point: if extreme { rng.next() as i32 } else { rng.below(256) as i32 },
            col_offsets: (0..n).map(|_| int(rng, 1 << 10)).collect(),
            w_zero_points: (0..n).map(|_| if case % 2 == 1 { int(rng, 128) } else { 0 }).collect(),
            multipliers: (0..n)
                .map(|_| match case % 3 {
                    // Halves and quarters: many products land exactly on a tie.
                    0 => rng.pick(&[0.5, 0.25, 0.125, 1.0, 0.75]),
                    1 => rng.uniform(1e-4, 0.1),
                    _ => {
                        let any = rng.finite_bits().abs();
                        rng.pick(&[any, 1e-40, 3e38, f32::MIN_POSITIVE, 0.0])
                    }
                })
                .collect(),
            bias: match case % 4 {
                0 => None,
                1 => Some((0..n).map(|_| rng.uniform(-300.0, 300.0).round() + rng.pick(&[0.0, 0.5, -0.5])).collect()),
                2 => Some(
                    (0..n)
                        .map(|_| {
                            let any = rng.finite_bits();
                            rng.pick(&[any, f32::INFINITY, f32::NEG_INFINITY, 1e30])
                        })
                        .collect(),
                ),
                _ => Some((0..n).map(|_| rng.uniform(-5.0, 5.0)).collect()),
            },
            y_zero_point,
            y_min: if case % 5 == 4 { y_zero_point } else { 0 },
        }
    }

    fn params(&self) -> Requantize<'_> {
        let terms = Epilogue {
            x_zero_point: self.x_zero_point,
            col_offsets: &self.col_offsets,
            w_zero_points: &self.w_zero_points,
            multipliers: &self.multipliers,
            bias: self.bias.as_deref(),
        };
        Requantize { terms, y_zero_point: self.y_zero_point, y_min: self.y_min }
    }
}

#[test]
fn requantize_matches_scalar() {
    let paths = simd_paths();
    let mut rng = Rng(21);
    for (case, &n) in NS.iter().cycle().take(12 * NS.len()).enumerate() {
        let c = Case::new(&mut rng, case, n);
        let params = c.params();
        let mut want = vec![0u8; c.rows * n];
        requantize(&c.acc, &c.row_sums, &params, &mut want);
        for kernels in &paths {
            let mut got = vec![0x5a; c.rows * n];
            (kernels.requantize)(&c.acc, &c.row_sums, &params, &mut got);
            assert_eq!(got, want, "{} case {case}, {n} columns", kernels.isa.name());
        }
    }
}

/// Every product on a tie, both signs, and values at the ends of the range: half to even, the
/// zero point added after rounding, the clamp at both ends (and at a ReLU floor).
#[test]
fn requantize_rounds_ties_to_even_and_clamps_like_scalar() {
    let paths = simd_paths();
    let n = 64;
    let acc: Vec<i32> = (0..n as i32).map(|j| 2 * j - 61).chain((0..n as i32).map(|j| 1000 * (j - 32))).collect();
    let row_sums = [0, 0];
    let zeros = vec![0; n];
    for (y_zero_point, y_min, bias) in [(0, 0, None), (128, 0, Some(0.5f32)), (255, 255, Some(-0.5)), (37, 37, Some(0.0))] {
        let multipliers = vec![0.5f32; n];
        let bias = bias.map(|b| vec![b; n]);
        let terms =
            Epilogue { x_zero_point: 0, col_offsets: &zeros, w_zero_points: &zeros, multipliers: &multipliers, bias: bias.as_deref() };
        let params = Requantize { terms, y_zero_point, y_min };
        let mut want = vec![0u8; 2 * n];
        requantize(&acc, &row_sums, &params, &mut want);
        for kernels in &paths {
            let mut got = vec![0u8; 2 * n];
            (kernels.requantize)(&acc, &row_sums, &params, &mut got);
            assert_eq!(got, want, "{} with zero point {y_zero_point}, floor {y_min}", kernels.isa.name());
        }
    }
}
