//! Giving freed memory back to the operating system.

use pyo3::prelude::*;

/// Returns the memory the C allocator holds free back to the operating system (glibc's
/// `malloc_trim`; nothing elsewhere). Quantizing or loading a model frees large temporaries
/// (float copies, quantization intermediates) between long-lived allocations; glibc keeps such
/// holes resident, which can cost several times the model's own size. The GIL is released.
#[pyfunction]
pub fn release_free_memory(py: Python<'_>) {
    py.detach(trim);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: `malloc_trim` only takes the allocator's own locks and releases free pages; it is
    // safe to call at any time from any thread.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
