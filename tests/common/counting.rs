//! A counting global allocator for the tests that check a call allocates nothing: the system
//! allocator, counting the allocations (and reallocations) of the calling thread while
//! [`allocations`] runs, or of every thread while [`all_threads_allocations`] runs. A test binary
//! that wants it includes this file as a module of its own (`#[path = "common/counting.rs"] mod
//! counting;`), which installs it as that binary's allocator.
//!
//! [`allocations`] counts per thread, so the other tests of the binary, running in parallel, and
//! pool threads do not disturb it. [`all_threads_allocations`] counts pool threads too, so a
//! binary using it holds that one test alone.

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
    if COUNTING_ALL.load(Ordering::Relaxed) {
        COUNT_ALL.fetch_add(1, Ordering::Relaxed);
    }
    // `try_with`: the allocator also runs while a thread's locals are being destroyed.
    let _ = COUNT.try_with(|count| {
        if let Some(n) = count.get() {
            count.set(Some(n + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments; counting touches only
// a thread-local `Cell` without destructor and two atomics (no allocation, no reentrancy).
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

/// The allocations every thread of the process makes while `f` runs.
#[allow(dead_code)] // each test binary includes this file and uses one of the two counts
pub fn all_threads_allocations(f: impl FnOnce()) -> usize {
    COUNT_ALL.store(0, Ordering::SeqCst);
    COUNTING_ALL.store(true, Ordering::SeqCst);
    f();
    COUNTING_ALL.store(false, Ordering::SeqCst);
    COUNT_ALL.load(Ordering::SeqCst)
}
