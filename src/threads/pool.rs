//! A small pool of helper threads for one operation at a time, tuned for short parallel
//! sections: after a task a helper spins for [`SPIN`] before it parks, so back-to-back
//! operations (a model's layers, a loop of calls) find it awake instead of paying a wake-up,
//! which costs tens of microseconds on a virtual machine. A parked helper is woken by a condition
//! variable.
//!
//! Tasks are claimed, not assigned: the caller and the helpers take the next unclaimed task until
//! none is left, so a helper that is slow to wake (or loses its core for a while) leaves its task
//! to the others instead of holding up the operation, and two threads are never much slower than one.
//!
//! One operation holds the pool at a time; another thread that finds it busy runs its tasks
//! alone instead of waiting (it is never blocked behind someone else's work).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long an idle helper keeps polling for the next task before it parks.
const SPIN: Duration = Duration::from_micros(500);

/// Bits of the claims word (see [`Shared::claims`]) for the number of tasks and the next task.
const TASK_BITS: u32 = 12;
const TASK_MASK: u64 = (1 << TASK_BITS) - 1;
/// The most tasks one [`Pool::run`] takes.
pub(super) const MAX_TASKS: usize = TASK_MASK as usize;

/// The claims word of a job: its epoch, the next unclaimed task and the number of tasks.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Claims(u64);

impl Claims {
    fn new(epoch: u64, next: usize, tasks: usize) -> Claims {
        Claims(epoch << (2 * TASK_BITS) | (next as u64) << TASK_BITS | tasks as u64)
    }
    fn epoch(self) -> u64 {
        self.0 >> (2 * TASK_BITS)
    }
    fn next(self) -> usize {
        (self.0 >> TASK_BITS & TASK_MASK) as usize
    }
    fn tasks(self) -> usize {
        (self.0 & TASK_MASK) as usize
    }
}

/// What the caller and the helpers share.
struct Shared {
    /// The current job's [`Claims`]: a new epoch announces a job; a task is claimed by advancing
    /// `next` while the epoch is unchanged.
    claims: AtomicU64,
    /// The current job's task function, valid while any task claimed by a helper is unfinished.
    job: AtomicPtr<&'static (dyn Fn(usize) + Sync)>,
    /// Tasks of the current job finished by helpers.
    done: AtomicUsize,
    /// Set when a helper's task panicked; the caller reports it.
    panicked: AtomicBool,
    /// Helpers parked (or about to park) on `wake`.
    parked: AtomicUsize,
    /// Helpers that have started running (see [`Pool::new`]).
    started: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
}

impl Shared {
    /// Claims the next task of the job of `epoch`, if any is left.
    fn claim(&self, epoch: u64) -> Option<usize> {
        let mut current = Claims(self.claims.load(Ordering::Acquire));
        loop {
            if current.epoch() != epoch || current.next() >= current.tasks() {
                return None;
            }
            let claimed = Claims::new(epoch, current.next() + 1, current.tasks());
            match self.claims.compare_exchange_weak(current.0, claimed.0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(current.next()),
                Err(now) => current = Claims(now),
            }
        }
    }
}

/// `helpers` threads that run tasks for the thread calling [`Pool::run`].
pub(super) struct Pool {
    shared: Arc<Shared>,
    /// Held for the duration of one [`Pool::run`].
    busy: Mutex<()>,
    helpers: Vec<JoinHandle<()>>,
    /// The epoch of the last job.
    epoch: AtomicU64,
}

impl Pool {
    /// Starts `helpers` threads named `ferroq-1`, `ferroq-2`, ... and returns once they are
    /// running: a thread's start-up (which allocates) is over before any operation runs.
    pub(super) fn new(helpers: usize) -> Result<Pool> {
        let shared = Arc::new(Shared {
            claims: AtomicU64::new(Claims::new(0, 0, 0).0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            parked: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let mut pool =
            Pool { shared: shared.clone(), busy: Mutex::new(()), helpers: Vec::with_capacity(helpers), epoch: AtomicU64::new(0) };
        for index in 1..=helpers {
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ferroq-{index}"))
                .spawn(move || helper(&shared))
                .map_err(|e| Error::Value(format!("cannot start {helpers} threads: {e}")))?;
            pool.helpers.push(handle); // on error, Drop stops the ones already started
        }
        while shared.started.load(Ordering::Acquire) < helpers {
            std::thread::yield_now();
        }
        Ok(pool)
    }

    /// Runs `f(0)`, ..., `f(tasks - 1)` (at most [`MAX_TASKS`]), each once, on the calling thread
    /// and the helpers, and returns when all have finished. When another thread is using the pool,
    /// runs them all on the calling thread. A panic in any task is raised here.
    pub(super) fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        assert!(tasks <= MAX_TASKS, "{tasks} tasks, at most {MAX_TASKS}");
        let _busy = match self.busy.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return (0..tasks).for_each(f),
        };
        let shared = &*self.shared;
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        shared.panicked.store(false, Ordering::Relaxed);
        shared.done.store(0, Ordering::Relaxed);
        // SAFETY (of the lifetime erasure): a helper dereferences `job` only for a task it
        // claimed, until it counts that task in `done`, and `Finish` below does not let this
        // function return, or unwind, before every task claimed by a helper is counted.
        let job: &(dyn Fn(usize) + Sync) = f;
        let job: *const &(dyn Fn(usize) + Sync) = &job;
        shared.job.store(job.cast_mut().cast(), Ordering::Relaxed);
        shared.claims.store(Claims::new(epoch, 0, tasks).0, Ordering::SeqCst);
        if shared.parked.load(Ordering::SeqCst) > 0 {
            let _lock = shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        let mut finish = Finish { shared, epoch, mine: 0 };
        while let Some(task) = shared.claim(epoch) {
            finish.mine += 1;
            f(task);
        }
        drop(finish);
        if shared.panicked.load(Ordering::Relaxed) {
            panic!("a ferroq helper thread panicked (see the message above)");
        }
    }
}

/// The end of a job, also when a task of the caller's unwinds: closes the job to further
/// claims, then waits until every task a helper claimed is finished.
struct Finish<'a> {
    shared: &'a Shared,
    epoch: u64,
    /// Tasks the caller claimed.
    mine: usize,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let claims = Claims(self.shared.claims.load(Ordering::Acquire));
        let closed = Claims::new(self.epoch, claims.tasks(), claims.tasks());
        // Only the caller changes the epoch, so the word is this job's; claims race with us.
        let claimed = Claims(self.shared.claims.swap(closed.0, Ordering::AcqRel)).next();
        let by_helpers = claimed - self.mine;
        let mut spins = 0u32;
        while self.shared.done.load(Ordering::Acquire) != by_helpers {
            spins = spins.saturating_add(1);
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// A helper's life: wait for a new epoch (spinning, then parked), claim and run tasks, repeat.
fn helper(shared: &Shared) {
    shared.started.fetch_add(1, Ordering::Release);
    let mut seen = 0;
    while let Some(epoch) = wait_for_job(shared, seen) {
        seen = epoch;
        while let Some(task) = shared.claim(epoch) {
            // SAFETY: this task is claimed and not yet counted in `done`, so the caller of
            // `Pool::run` is still waiting and the job it published before the epoch (the
            // Acquire in `claim` sees that store) is alive.
            let job = unsafe { *shared.job.load(Ordering::Relaxed) };
            if catch_unwind(AssertUnwindSafe(|| job(task))).is_err() {
                shared.panicked.store(true, Ordering::Relaxed);
            }
            shared.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// The epoch of a job newer than `seen`, or None when the pool is shutting down.
fn wait_for_job(shared: &Shared, seen: u64) -> Option<u64> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let epoch = Claims(shared.claims.load(Ordering::Acquire)).epoch();
        if epoch != seen {
            return Some(epoch);
        }
        if shared.shutdown.load(Ordering::Relaxed) {
            return None;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(256) || start.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        let mut lock = shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
        shared.parked.fetch_add(1, Ordering::SeqCst);
        while Claims(shared.claims.load(Ordering::SeqCst)).epoch() == seen && !shared.shutdown.load(Ordering::SeqCst) {
            lock = shared.wake.wait(lock).unwrap_or_else(|e| e.into_inner());
        }
        shared.parked.fetch_sub(1, Ordering::SeqCst);
        drop(lock);
        spins = 0;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _lock = self.shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for handle in self.helpers.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once() {
        let pool = Pool::new(3).unwrap();
        for tasks in 1..=4 {
            let hits: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
            pool.run(tasks, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            let counts: Vec<usize> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
            let want: Vec<usize> = (0..4).map(|i| usize::from(i < tasks)).collect();
            assert_eq!(counts, want);
        }
    }

    #[test]
    fn parked_helpers_wake_up() {
        let pool = Pool::new(1).unwrap();
        std::thread::sleep(SPIN * 4);
        // Each task waits for the other to start: only a woken helper lets `run` finish.
        let started = AtomicUsize::new(0);
        pool.run(2, &|_| {
            started.fetch_add(1, Ordering::SeqCst);
            while started.load(Ordering::SeqCst) < 2 {
                std::hint::spin_loop();
            }
        });
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_task_panic_reaches_the_caller_and_the_pool_still_works() {
        let pool = Pool::new(1).unwrap();
        // The task that fails blocks until the other has started, so the caller and the helper
        // each run one: whichever fails, the panic comes out of `run`.
        let started = AtomicUsize::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.run(2, &|i| {
                started.fetch_add(1, Ordering::SeqCst);
                while started.load(Ordering::SeqCst) < 2 {
                    std::hint::spin_loop();
                }
                assert_eq!(i, 0, "task 1 fails");
            })
        }));
        assert!(result.is_err());
        let hit = AtomicUsize::new(0);
        pool.run(2, &|_| {
            hit.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hit.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn concurrent_callers_each_finish_their_tasks() {
        let pool = Pool::new(1).unwrap();
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        pool.run(2, &|_| {
                            total.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 200 * 2);
    }
}
