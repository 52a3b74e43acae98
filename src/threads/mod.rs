//! Intra-op threads: one operation may use `ferroq.set_num_threads(n)` threads (default: the
//! machine's cores): the calling thread plus `n - 1` pool threads. Work below a threshold runs on
//! the calling thread alone.

mod pool;

use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::error::{Error, Result};
use pool::Pool;

/// Multiply-accumulates below which splitting costs more than it saves: handing a share to an
/// awake pool thread takes about a microsecond, while 4M int8 multiply-accumulates take about 10
/// on one AVX-512 VNNI core.
pub const PARALLEL_THRESHOLD_MACS: usize = 1 << 22;

/// Row shares of parallel tasks are multiples of this (the tallest GEMM micro-kernel tile).
const TILE_ROWS: usize = 8;

/// The threads one operation may use: the caller, and a pool for the others (None for 1 thread).
struct Threads {
    count: usize,
    helpers: Option<Pool>,
}

fn slot() -> &'static RwLock<Arc<Threads>> {
    static THREADS: OnceLock<RwLock<Arc<Threads>>> = OnceLock::new();
    THREADS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        RwLock::new(Arc::new(build(cores).expect("a thread pool of the machine's size can be built")))
    })
}

fn build(count: usize) -> Result<Threads> {
    let helpers = if count > 1 { Some(Pool::new(count - 1)?) } else { None };
    Ok(Threads { count, helpers })
}

/// Sets the number of threads one operation may use (at least 1).
pub fn set_num_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::Value("set_num_threads expects a positive number of threads, got 0".into()));
    }
    let threads = Arc::new(build(threads)?);
    *slot().write().unwrap_or_else(|e| e.into_inner()) = threads;
    Ok(())
}

/// The number of threads one operation may use.
pub fn num_threads() -> usize {
    current().count
}

/// The threads in use now (a later `set_num_threads` does not disturb work already running).
fn current() -> Arc<Threads> {
    slot().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `work(first_row, rows_out)` over `out`, a row-major matrix of `row_len`-element rows:
/// in one call on the calling thread when the work (`macs` multiply-accumulates) is small or only
/// one thread is allowed, else in one contiguous share of rows per thread (whole row tiles),
/// claimed by the calling thread and the pool threads (see [`pool`]).
pub fn for_row_shares<T, F>(out: &mut [T], row_len: usize, macs: usize, work: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    for_shares(out, row_len, TILE_ROWS, macs, work)
}

/// [`for_row_shares`] with shares a multiple of `unit` rows (`unit >= 1`). The last row may be
/// shorter than `row_len`.
pub fn for_shares<T, F>(out: &mut [T], row_len: usize, unit: usize, macs: usize, work: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let rows = out.len().div_ceil(row_len.max(1));
    let threads = worth_splitting(rows, macs).then(current);
    let Some((threads, helpers)) = threads.as_ref().and_then(|t| Some((t, t.helpers.as_ref()?))) else {
        work(0, out);
        return;
    };
    let rows_per_share = rows_per_share(rows, threads.count, unit);
    // One share per task; a task takes its own (the locks are never contended).
    let shares: Vec<Mutex<Option<&mut [T]>>> =
        out.chunks_mut(rows_per_share * row_len).map(|share| Mutex::new(Some(share))).collect();
    helpers.run(shares.len(), &|i| {
        let share = shares[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(share) = share {
            work(i * rows_per_share, share);
        }
    });
}

/// Runs `work(rows)` over the rows `0..rows` in the shares [`for_row_shares`] would make (one
/// call on the calling thread, allocating nothing, when `cost`, in multiply-accumulates, is
/// small), and folds the shares' results with `merge` in row order.
pub fn reduce_row_shares<R, F, M>(rows: usize, cost: usize, work: F, merge: M) -> R
where
    R: Send,
    F: Fn(std::ops::Range<usize>) -> R + Sync,
    M: Fn(R, R) -> R,
{
    let threads = worth_splitting(rows, cost).then(current);
    let Some((threads, helpers)) = threads.as_ref().and_then(|t| Some((t, t.helpers.as_ref()?))) else {
        return work(0..rows);
    };
    let rows_per_share = rows_per_share(rows, threads.count, TILE_ROWS);
    let results: Vec<Mutex<Option<R>>> = (0..rows.div_ceil(rows_per_share)).map(|_| Mutex::new(None)).collect();
    helpers.run(results.len(), &|i| {
        let share = i * rows_per_share..((i + 1) * rows_per_share).min(rows);
        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(work(share));
    });
    let mut results = results.into_iter().map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every share ran"));
    let first = results.next().expect("at least one share");
    results.fold(first, merge)
}

/// Whether `rows` rows costing `macs` multiply-accumulates are worth splitting between threads
/// (checked before the thread settings are even looked at: small calls are the frequent ones).
fn worth_splitting(rows: usize, macs: usize) -> bool {
    rows >= 2 && macs >= PARALLEL_THRESHOLD_MACS
}

/// Rows per share when `rows` are split between `threads` threads, in multiples of `unit`.
fn rows_per_share(rows: usize, threads: usize, unit: usize) -> usize {
    rows.div_ceil(threads.min(pool::MAX_TASKS)).next_multiple_of(unit.max(1))
}
