//! `cargo bench`: the u8 x s8 GEMM of every supported path, ids `{isa}/{m}x{k}x{n}`, throughput in
//! multiply-accumulates (criterion reports elements/s; GOPS = 2 x that).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferroq::kernels::Int8Operands;
use ferroq::linear::DynamicLinear;
use ferroq::pack::PackedWeights;
use ferroq::{kernels_for, supported_isas};

/// Linear-like shapes, then the LSTMs' calls of one 256-unit gate block (the kernel's unit of
/// work in a recurrent layer with gates of at least 512 units): the per-step hidden projections of
/// LSTM(50, 16, 512) and LSTM(20, 64, 1024) (16 x 512 and 64 x 1024 rows x K), and a 64-row chunk
/// of the input projection (64 x 512).
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 768, 768),
    (1, 1024, 4096),
    (16, 768, 768),
    (32, 768, 3072),
    (128, 1024, 1024),
    (512, 1024, 1024),
    (16, 512, 256),
    (64, 512, 256),
    (64, 1024, 256),
];

fn pseudo_random_i8(len: usize, seed: u32) -> Vec<i8> {
    let mut state = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as i8
        })
        .collect()
}

fn gemm_u8i8(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_u8i8");
    for isa in supported_isas() {
        let kernels = kernels_for(isa).expect("supported");
        for (m, k, n) in SHAPES {
            let weights = PackedWeights::pack(&pseudo_random_i8(n * k, 1), n, k).unwrap();
            let a: Vec<u8> = pseudo_random_i8(m * weights.k_padded(), 2).iter().map(|&v| (v as u8) & 0x7f).collect();
            let mut out = vec![0i32; m * n];
            group.throughput(Throughput::Elements((m * k * n) as u64));
            group.bench_function(BenchmarkId::new(isa.name(), format!("{m}x{k}x{n}")), |b| {
                let operands = Int8Operands { a: &a, lda: weights.k_padded(), rows: m, b: &weights };
                b.iter(|| (kernels.gemm_u8i8)(operands, &mut out, n))
            });
        }
    }
    group.finish();
}

fn dynamic_linear(c: &mut Criterion) {
    let mut group = c.benchmark_group("dynamic_linear");
    for isa in supported_isas() {
        let kernels = kernels_for(isa).expect("supported");
        for (m, k, n) in SHAPES {
            let w = pseudo_random_i8(n * k, 3);
            let layer = DynamicLinear::new(&w, n, k, &[0.01], &[0], Some(vec![0.5; n])).unwrap();
            let x: Vec<f32> = pseudo_random_i8(m * k, 4).iter().map(|&v| v as f32 / 37.0).collect();
            let mut out = vec![0f32; m * n];
            group.throughput(Throughput::Elements((m * k * n) as u64));
            group.bench_function(BenchmarkId::new(isa.name(), format!("{m}x{k}x{n}")), |b| {
                b.iter(|| layer.forward(&kernels, &x, m, true, &mut out).unwrap())
            });
        }
    }
    group.finish();
}

/// This machine's `vpdpbusd zmm` ceiling, to read the GEMM figures against: 12 independent
/// accumulator chains (enough to cover the latency at 2 instructions per cycle) in inline assembly,
/// which the compiler cannot fold. Elements are multiply-accumulates (64 per instruction), so
/// GOPS = 2 x Gelem/s.
fn vnni_peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
        const ITERATIONS: u64 = 100_000;
        let mut group = c.benchmark_group("vnni_peak");
        group.throughput(Throughput::Elements(ITERATIONS * 12 * 64));
        // SAFETY: the CPU has AVX-512F and AVX-512 VNNI (checked above).
        group.bench_function("vpdpbusd_zmm", |b| b.iter(|| unsafe { dpbusd_chains(ITERATIONS) }));
        group.finish();
        return;
    }
    let _ = c;
    eprintln!("vnni_peak: this CPU has no AVX-512 VNNI; skipped");
}

/// `iterations` rounds of 12 independent `vpdpbusd zmm`.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512 VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn dpbusd_chains(iterations: u64) {
    // SAFETY: register-only instructions the caller guarantees; every register written is declared.
    unsafe {
        std::arch::asm!(
            "2:",
            "vpdpbusd zmm0, zmm12, zmm13",
            "vpdpbusd zmm1, zmm12, zmm13",
            "vpdpbusd zmm2, zmm12, zmm13",
            "vpdpbusd zmm3, zmm12, zmm13",
            "vpdpbusd zmm4, zmm12, zmm13",
            "vpdpbusd zmm5, zmm12, zmm13",
            "vpdpbusd zmm6, zmm12, zmm13",
            "vpdpbusd zmm7, zmm12, zmm13",
            "vpdpbusd zmm8, zmm12, zmm13",
            "vpdpbusd zmm9, zmm12, zmm13",
            "vpdpbusd zmm10, zmm12, zmm13",
            "vpdpbusd zmm11, zmm12, zmm13",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iterations => _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
            out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _,
            options(nostack, nomem),
        );
    }
}

/// This machine's ceiling for the AVX2 step of a 7-bit activation (what every dynamic layer's
/// `reduce_range` activations are): 6 independent rounds of `vpmaddubsw` (32 u8 x s8 products
/// added in pairs), `vpmaddwd` by ones (pairs again, to int32) and `vpaddd` into an accumulator,
/// in inline assembly on resident registers. Elements are multiply-accumulates (32 per round).
fn avx2_peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        const ITERATIONS: u64 = 100_000;
        let mut group = c.benchmark_group("avx2_peak");
        group.throughput(Throughput::Elements(ITERATIONS * 6 * 32));
        // SAFETY: the CPU has AVX2 (checked above).
        group.bench_function("vpmaddubsw_ymm", |b| b.iter(|| unsafe { maddubsw_chains(ITERATIONS) }));
        group.finish();
        return;
    }
    let _ = c;
    eprintln!("avx2_peak: this CPU has no AVX2; skipped");
}

/// `iterations` rounds of 6 independent `vpmaddubsw` + `vpmaddwd` + `vpaddd` steps.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn maddubsw_chains(iterations: u64) {
    // SAFETY: register-only instructions the caller guarantees; every register written is declared.
    unsafe {
        std::arch::asm!(
            "2:",
            "vpmaddubsw ymm6, ymm12, ymm13",
            "vpmaddubsw ymm7, ymm12, ymm13",
            "vpmaddubsw ymm8, ymm12, ymm13",
            "vpmaddubsw ymm9, ymm12, ymm13",
            "vpmaddubsw ymm10, ymm12, ymm13",
            "vpmaddubsw ymm11, ymm12, ymm13",
            "vpmaddwd ymm6, ymm6, ymm14",
            "vpmaddwd ymm7, ymm7, ymm14",
            "vpmaddwd ymm8, ymm8, ymm14",
            "vpmaddwd ymm9, ymm9, ymm14",
            "vpmaddwd ymm10, ymm10, ymm14",
            "vpmaddwd ymm11, ymm11, ymm14",
            "vpaddd ymm0, ymm0, ymm6",
            "vpaddd ymm1, ymm1, ymm7",
            "vpaddd ymm2, ymm2, ymm8",
            "vpaddd ymm3, ymm3, ymm9",
            "vpaddd ymm4, ymm4, ymm10",
            "vpaddd ymm5, ymm5, ymm11",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iterations => _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _,
            out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _,
            options(nostack, nomem),
        );
    }
}

/// This machine's `tdpbusd` ceiling: 4 independent accumulator tiles (16 x 16 int32, K of 64
/// bytes: 16 384 multiply-accumulates each) on resident A and B tiles, no memory traffic in the
/// loop. Elements are multiply-accumulates.
fn amx_peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    if supported_isas().iter().any(|isa| isa.name() == "amx") {
        const ITERATIONS: u64 = 10_000;
        let mut group = c.benchmark_group("amx_peak");
        group.throughput(Throughput::Elements(ITERATIONS * 4 * 16 * 16 * 64));
        // SAFETY: the `amx` path is supported: the CPU has AMX-INT8 and this process was granted the
        // tile state (by `supported_isas`).
        group.bench_function("tdpbusd", |b| b.iter(|| unsafe { tdpbusd_chains(ITERATIONS) }));
        group.finish();
        return;
    }
    let _ = c;
    eprintln!("amx_peak: this CPU or process cannot run AMX; skipped");
}

/// The `ldtilecfg` operand of [`tdpbusd_chains`]: tiles 0-7 of 16 rows x 64 bytes.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct FullTiles([u8; 64]);

/// `iterations` rounds of 4 independent `tdpbusd` (C tiles 0-3, A tiles 4-5, B tiles 6-7), the
/// tiles configured and zeroed first and released after.
///
/// # Safety
/// The CPU must have AMX-TILE and AMX-INT8, and the process the tile permission.
#[cfg(target_arch = "x86_64")]
unsafe fn tdpbusd_chains(iterations: u64) {
    let mut cfg = FullTiles([0; 64]);
    cfg.0[0] = 1;
    for tile in 0..8 {
        cfg.0[16 + 2 * tile] = 64;
        cfg.0[48 + tile] = 16;
    }
    // SAFETY: the caller's guarantees; a valid palette-1 configuration (which zeroes the tiles), tile
    // instructions on configured tiles only, and the tiles released at the end (the compiler never
    // uses the tile registers, so they need no clobbers).
    unsafe {
        std::arch::asm!(
            "ldtilecfg [{cfg}]",
            "2:",
            "tdpbusd tmm0, tmm4, tmm6",
            "tdpbusd tmm1, tmm4, tmm7",
            "tdpbusd tmm2, tmm5, tmm6",
            "tdpbusd tmm3, tmm5, tmm7",
            "dec {n}",
            "jnz 2b",
            "tilerelease",
            cfg = in(reg) &cfg,
            n = inout(reg) iterations => _,
            options(nostack, readonly),
        );
    }
}

criterion_group!(benches, vnni_peak, amx_peak, avx2_peak, gemm_u8i8, dynamic_linear);
criterion_main!(benches);
