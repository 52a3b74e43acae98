//! The intra-op thread pool: its size is `ferroq.set_num_threads(n)` (default: the machine's
//! cores). Work below a threshold runs on the calling thread.

use std::sync::{Arc, OnceLock, RwLock};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// Multiply-accumulates below which splitting costs more than it saves: waking a pool thread
/// takes microseconds, about what 8M int8 multiply-accumulates take on one AVX-512 VNNI core.
pub const PARALLEL_THRESHOLD_MACS: usize = 1 << 23;

fn pool_slot() -> &'static RwLock<Arc<ThreadPool>> {
    static POOL: OnceLock<RwLock<Arc<ThreadPool>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        RwLock::new(Arc::new(build(cores).expect("a thread pool of the machine's size can be built")))
    })
}

fn build(threads: usize) -> Result<ThreadPool> {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ferroq-{i}"))
        .build()
        .map_err(|e| Error::Value(format!("cannot start {threads} threads: {e}")))
}

/// Sets the number of threads one operation may use (at least 1).
pub fn set_num_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::Value("set_num_threads expects a positive number of threads, got 0".into()));
    }
    let pool = Arc::new(build(threads)?);
    *pool_slot().write().unwrap_or_else(|e| e.into_inner()) = pool;
    Ok(())
}

/// The number of threads one operation may use.
pub fn num_threads() -> usize {
    current_pool().current_num_threads()
}

/// The pool in use now (a later `set_num_threads` does not disturb work already running on it).
pub fn current_pool() -> Arc<ThreadPool> {
    pool_slot().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Row shares of parallel tasks are multiples of this (the tallest GEMM micro-kernel tile).
const TILE_ROWS: usize = 8;

/// Runs `work(first_row, rows_out)` over `out`, a row-major matrix of `row_len`-element rows:
/// in one call on the calling thread when the work (`macs` multiply-accumulates) is small or only
/// one thread is allowed, else in one contiguous share of rows per pool thread.
pub fn for_row_shares<T, F>(out: &mut [T], row_len: usize, macs: usize, work: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let rows = if row_len == 0 { 0 } else { out.len() / row_len };
    let pool = current_pool();
    let threads = pool.current_num_threads();
    if threads < 2 || rows < 2 || macs < PARALLEL_THRESHOLD_MACS {
        work(0, out);
        return;
    }
    let rows_per_task = rows.div_ceil(threads).next_multiple_of(TILE_ROWS);
    pool.install(|| {
        out.par_chunks_mut(rows_per_task * row_len)
            .enumerate()
            .for_each(|(i, share)| work(i * rows_per_task, share));
    });
}
