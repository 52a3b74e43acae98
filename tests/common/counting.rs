//! A counting global allocator for the tests that check a call allocates nothing: the system
//! allocator, counting the allocations (and reallocations) of the calling thread while
//! [`allocations`] runs, or of every thread while [`all_threads_allocations`] runs. A test binary
//! that wants it includes this file as a module of its own (`#[path = "common/counting.rs"] mod
//! counting;`), which installs it as that binary's allocator.
//!
//! [`allocations`] counts per thread, so the other tests of the binary, running in parallel, and
//! pool threads do not disturb it. [`all_threads_allocations`] counts pool threads too, so a
//! binary using it holds that one test alone; it leaves out the process's main thread, the test
//! harness's, which runs no ferroq code (libtest runs each test on a thread of its own) but does
//! allocate now and then while it waits: 4 allocations within 5 calls of a few microseconds, in 5
//! of 80 runs of `linear_allocations` on a machine busy compiling (Linux; elsewhere the main
//! thread is counted too).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The system allocator, counting the allocations (and reallocations) of threads that count.
struct Counting;

thread_local! {
    /// Allocations by this thread while counting; `None` when not counting.
    static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Whether every thread's allocations are being counted, and their count.
static COUNTING_ALL: AtomicBool = AtomicBool::new(false);
static COUNT_ALL: AtomicUsize = AtomicUsize::new(0);

fn note_allocation() {
    if COUNTING_ALL.load(Ordering::Relaxed) && !on_main_thread() {
        COUNT_ALL.fetch_add(1, Ordering::Relaxed);
    }
    // `try_with`: the allocator also runs while a thread's locals are being destroyed.
    let _ = COUNT.try_with(|count| {
        if let Some(n) = count.get() {
            count.set(Some(n + 1));
        }
    });
}

/// Whether this is the process's main thread (its thread id is the process id), without
/// allocating.
#[cfg(target_os = "linux")]
fn on_main_thread() -> bool {
    extern "C" {
        fn gettid() -> i32;
    }
    // SAFETY: `gettid` takes no argument, cannot fail and touches no memory of ours (glibc 2.30
    // and later, musl 1.2.2 and later).
    let thread = unsafe { gettid() };
    u32::try_from(thread).is_ok_and(|id| id == std::process::id())
}

#[cfg(not(target_os = "linux"))]
fn on_main_thread() -> bool {
    false
}

// SAFETY: every method forwards to `System` with the caller's arguments; counting touches only
// a thread-local `Cell` without destructor and two atomics, and asks for the thread id (no
// allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's promises, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's promises, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's promises, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's promises, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The allocations `f` makes on this thread.
#[allow(dead_code)] // each test binary includes this file and uses one of the two counts
pub fn allocations(f: impl FnOnce()) -> usize {
    COUNT.set(Some(0));
    f();
    COUNT.replace(None).expect("counting")
}

/// The allocations every thread of the process but the main one (the test harness's) makes while
/// `f` runs.
#[allow(dead_code)] // each test binary includes this file and uses one of the two counts
pub fn all_threads_allocations(f: impl FnOnce()) -> usize {
    assert!(!on_main_thread(), "the count leaves out the main thread: run the test on a thread of its own");
    COUNT_ALL.store(0, Ordering::SeqCst);
    COUNTING_ALL.store(true, Ordering::SeqCst);
    f();
    COUNTING_ALL.store(false, Ordering::SeqCst);
    COUNT_ALL.load(Ordering::SeqCst)
}
