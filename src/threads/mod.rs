//! Intra-op threads: one operation may use `ferroq.set_num_threads(n)` threads (default: the
//! machine's cores, at most [`MAX_THREADS`]): the calling thread plus `n - 1` pool threads, started
//! at the first operation large enough to split. Work below a threshold runs on the calling
//! thread alone.
//!
//! Fork safety: a child process forked while a pool exists has none of its threads, so it never
//! uses the parent's pool; it keeps the thread count and starts its own pool when it first needs
//! one (see [`fork`]).

mod fork;
mod pool;

use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use pool::Pool;

/// Multiply-accumulates below which splitting costs more than it saves: handing a share to an
/// awake pool thread takes about a microsecond, while 4M int8 multiply-accumulates take about 10
/// on one AVX-512 VNNI core.
pub const PARALLEL_THRESHOLD_MACS: usize = 1 << 22;

/// Multiply-accumulates of a recurrent step (the whole batch, both projections) from which it is
/// split between threads by hidden units: far below [`PARALLEL_THRESHOLD_MACS`], since each
/// thread's part of the weights stays in its core's cache from step to step and the pool threads
/// spin between the steps, so that handing out a step costs well under a microsecond. (On 2 AMD
/// EPYC Zen 3 cores, AVX2, a batch-1 GRU step of 256 units and 16 inputs, about 200K, runs 1.3x
/// as fast on 2 threads as on 1.)
pub const SPLIT_STEP_MACS: usize = 1 << 17;

/// The most threads one operation may use. A share smaller than about [`PARALLEL_THRESHOLD_MACS`]
/// / 4 gains nothing from another thread, and each pool thread reserves a stack, so a count far
/// beyond the cores of the largest machines is a mistake; `set_num_threads` refuses it.
pub const MAX_THREADS: usize = 1024;

/// Row shares of parallel tasks are multiples of this (the tallest GEMM micro-kernel tile).
const TILE_ROWS: usize = 8;

/// The threads one operation may use: the caller, and a pool for the others (None for 1 thread,
/// or when the pool threads could not be started).
struct Threads {
    count: usize,
    helpers: Option<Pool>,
}

/// The thread setting and the pool that serves it.
struct Settings {
    /// The chosen number of threads, 0 until `set_num_threads` is called (the machine's cores).
    count: usize,
    /// The pool for `count` threads, started by the first operation that splits its work.
    threads: Option<Arc<Threads>>,
}

impl Settings {
    fn count(&self) -> usize {
        match self.count {
            0 => machine_cores(),
            n => n,
        }
    }
}

/// The cores this process may use (at most [`MAX_THREADS`]), asked of the system once: the
/// default thread count, read by every operation that may split its work.
fn machine_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS))
}

/// Held only for a few instructions at a time (never while threads start or stop), so the fork
/// handlers can take it without waiting for long.
static SETTINGS: RwLock<Settings> = RwLock::new(Settings { count: 0, threads: None });

fn read_settings() -> RwLockReadGuard<'static, Settings> {
    fork::register_handlers();
    SETTINGS.read().unwrap_or_else(|e| e.into_inner())
}

fn write_settings() -> RwLockWriteGuard<'static, Settings> {
    fork::register_handlers();
    SETTINGS.write().unwrap_or_else(|e| e.into_inner())
}

/// Sets the number of threads one operation may use: 1 to [`MAX_THREADS`]. The pool threads start
/// when an operation first needs them; the old pool's threads stop when the operations still using
/// it have finished.
pub fn set_num_threads(threads: usize) -> Result<()> {
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(Error::Value(format!(
            "set_num_threads expects a positive number of threads, at most {MAX_THREADS}, got {threads}"
        )));
    }
    let old = {
        let mut settings = write_settings();
        settings.count = threads;
        settings.threads.take()
    };
    drop(old); // outside the lock: the last owner of a pool waits for its threads to stop
    Ok(())
}

/// Starts the pool threads now, if they are not running (a model just loaded: its first call
/// then starts none).
pub fn start() {
    current();
}

/// The number of threads one operation may use.
pub fn num_threads() -> usize {
    read_settings().count()
}

/// The threads in use now, started if needed (a later `set_num_threads` does not disturb work
/// already running).
fn current() -> Arc<Threads> {
    if let Some(threads) = &read_settings().threads {
        return threads.clone();
    }
    let count = read_settings().count();
    // Started outside the lock; if another thread stored a pool meanwhile, this one is dropped.
    let helpers = if count > 1 { Pool::new(count - 1).ok() } else { None };
    let started = Arc::new(Threads { count, helpers });
    let mut settings = write_settings();
    match &settings.threads {
        Some(threads) => threads.clone(),
        None if settings.count() == count => {
            settings.threads = Some(started.clone());
            started
        }
        // `set_num_threads` changed the count meanwhile: this operation still uses `started`.
        None => started,
    }
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
    for_shares_from(out, row_len, unit, macs, PARALLEL_THRESHOLD_MACS, work)
}

/// [`for_shares`] split from `threshold` multiply-accumulates rather than
/// [`PARALLEL_THRESHOLD_MACS`]: for work whose caller knows that smaller shares pay (each thread's
/// part of the weights stays in its core's cache, and the pool threads are awake from the last
/// call, as in the steps of a recurrent layer split by hidden units).
pub fn for_shares_from<T, F>(out: &mut [T], row_len: usize, unit: usize, macs: usize, threshold: usize, work: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    in_shares(out, row_len, macs, threshold, |rows, threads| rows_per_share(rows, threads, unit), work);
}

/// Runs `work(first_row, rows_out)` over `out` in shares of `share_rows` rows each (the last may
/// be shorter), which the calling thread and the pool threads claim one at a time, or in one call
/// on the calling thread when the work (`macs` multiply-accumulates) is small. For work whose
/// shares cost the same whichever thread runs them (column blocks that each read only their own
/// weights): a thread that runs slower, woken late or sharing its core, then claims fewer shares
/// instead of holding up the call.
pub fn for_claimed_shares<T, F>(out: &mut [T], row_len: usize, share_rows: usize, macs: usize, work: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let share_rows = |rows: usize, _| share_rows.max(rows.div_ceil(pool::MAX_TASKS)).max(1);
    in_shares(out, row_len, macs, PARALLEL_THRESHOLD_MACS, share_rows, work);
}

/// The body of [`for_shares_from`] and [`for_claimed_shares`]: `share_rows(rows, threads)` rows
/// per share, one task each, when the work is worth splitting (`macs` reach `threshold`).
fn in_shares<T, F>(
    out: &mut [T],
    row_len: usize,
    macs: usize,
    threshold: usize,
    share_rows: impl FnOnce(usize, usize) -> usize,
    work: F,
)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let rows = out.len().div_ceil(row_len.max(1));
    let threads = worth_splitting(rows, macs, threshold).then(current);
    let Some((threads, helpers)) = threads.as_ref().and_then(|t| Some((t, t.helpers.as_ref()?))) else {
        work(0, out);
        return;
    };
    let share_rows = share_rows(rows, threads.count);
    // One share per task, cut from `out` by the task itself (nothing allocated).
    let (share_len, len) = (share_rows * row_len.max(1), out.len());
    let base = SharedMut(out.as_mut_ptr());
    helpers.run(len.div_ceil(share_len), &|i| {
        let start = i * share_len;
        let end = (start + share_len).min(len);
        // SAFETY: `Pool::run` runs each task index once, so the tasks' ranges `start..end` are
        // disjoint parts of `out` (`end <= len`), which this call borrows mutably until every task
        // has finished.
        let share = unsafe { std::slice::from_raw_parts_mut(base.ptr().add(start), end - start) };
        work(i * share_rows, share);
    });
}

/// A pointer to the start of a mutable slice whose disjoint parts several threads write (see
/// [`for_shares`]); its users say, where they read or write through it, why no two threads
/// touch the same element at once.
pub(crate) struct SharedMut<T>(*mut T);

// SAFETY: the pointer stands for a `&mut [T]` split into disjoint parts, one per thread, which is
// sound to send and share between threads exactly when `T: Send` (as for `&mut [T]` itself).
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as for `Send`: each thread only touches its own part.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The start of `values`, which the caller then borrows only through this pointer until the
    /// threads writing its parts are done.
    pub(crate) fn new(values: &mut [T]) -> Self {
        SharedMut(values.as_mut_ptr())
    }

    /// The pointer (a method, so that closures capture the whole `Sync` wrapper, not the field).
    pub(crate) fn ptr(&self) -> *mut T {
        self.0
    }
}

/// Runs `work(rows)` over the rows `0..rows` in the shares [`for_row_shares`] would make (one
/// call on the calling thread when `cost`, in multiply-accumulates, is small), at most
/// [`MAX_REDUCE_SHARES`] of them, and folds the shares' results with `merge` in row order.
/// Nothing is allocated: the results wait in an array on the stack.
pub fn reduce_row_shares<R, F, M>(rows: usize, cost: usize, work: F, merge: M) -> R
where
    R: Send,
    F: Fn(std::ops::Range<usize>) -> R + Sync,
    M: Fn(R, R) -> R,
{
    let threads = worth_splitting(rows, cost, PARALLEL_THRESHOLD_MACS).then(current);
    let Some((threads, helpers)) = threads.as_ref().and_then(|t| Some((t, t.helpers.as_ref()?))) else {
        return work(0..rows);
    };
    let rows_per_share = rows_per_share(rows, threads.count.min(MAX_REDUCE_SHARES), TILE_ROWS);
    let results: [Mutex<Option<R>>; MAX_REDUCE_SHARES] = std::array::from_fn(|_| Mutex::new(None));
    let shares = rows.div_ceil(rows_per_share);
    helpers.run(shares, &|i| {
        let share = i * rows_per_share..((i + 1) * rows_per_share).min(rows);
        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(work(share));
    });
    let mut results =
        results.into_iter().take(shares).map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every share ran"));
    let first = results.next().expect("at least one share");
    results.fold(first, merge)
}

/// The most shares [`reduce_row_shares`] splits its rows into (threads beyond it are not used),
/// so that their results fit in an array on the stack: a reduction is a light pass over memory
/// (an input's range), for which more threads gain little.
pub const MAX_REDUCE_SHARES: usize = 64;

/// Whether `rows` rows costing `macs` multiply-accumulates are worth splitting between threads,
/// from `threshold` of them (checked before the thread settings are even looked at: small calls
/// are the frequent ones).
fn worth_splitting(rows: usize, macs: usize, threshold: usize) -> bool {
    rows >= 2 && macs >= threshold
}

/// Rows per share when `rows` are split between `threads` threads, in multiples of `unit`.
fn rows_per_share(rows: usize, threads: usize, unit: usize) -> usize {
    rows.div_ceil(threads.min(pool::MAX_TASKS)).next_multiple_of(unit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_outside_the_range_are_refused_without_change() {
        let before = num_threads();
        for bad in [0, MAX_THREADS + 1, 1 << 40, 1 << 62, usize::MAX] {
            assert!(matches!(set_num_threads(bad), Err(Error::Value(_))), "{bad}");
        }
        assert_eq!(num_threads(), before);
        assert!((1..=MAX_THREADS).contains(&before));
    }
}
