//! `fork` handlers: a child process has only the thread that called `fork`, so the parent's pool
//! threads do not exist there. Waiting on them would hang, and joining them would fail; the child
//! must neither use nor stop that pool.
//!
//! Before the fork, the forking thread takes the settings' write lock (it is held only for a few
//! instructions at a time, so this waits briefly), so no other thread is inside it when the
//! process is copied. After the fork, the parent releases it; the child forgets its copy of the
//! pool (leaking it: nothing in it may be touched) and releases it, so the child keeps the thread
//! count and starts its own pool at its first parallel operation. The pool's own locks are never
//! used in the child, whatever state the fork caught them in.

use std::cell::RefCell;
use std::sync::RwLockWriteGuard;

use super::{Settings, SETTINGS};

thread_local! {
    /// The settings' write lock, from `prepare` to `parent` or `child` (all three run on the
    /// forking thread, and the child's only thread is its copy).
    static HELD: RefCell<Option<RwLockWriteGuard<'static, Settings>>> = const { RefCell::new(None) };
}

/// Registers the handlers once per process image (a child inherits them). Never called with the
/// settings' lock held: `fork` runs `prepare` under libc's own handler lock, which registration
/// also takes.
#[cfg(unix)]
pub(super) fn register_handlers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if REGISTERED.load(Ordering::Relaxed) || REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    extern "C" {
        fn pthread_atfork(
            prepare: Option<extern "C" fn()>,
            parent: Option<extern "C" fn()>,
            child: Option<extern "C" fn()>,
        ) -> std::ffi::c_int;
    }
    // SAFETY: `pthread_atfork` is POSIX with this C signature; the handlers are functions of this
    // library, which is never unloaded while the process runs, and they neither unwind nor
    // allocate (see their comments).
    unsafe {
        pthread_atfork(Some(prepare), Some(parent), Some(child));
    }
}

#[cfg(not(unix))]
pub(super) fn register_handlers() {}

/// Before `fork`: takes the settings' write lock.
#[cfg_attr(not(unix), allow(dead_code))]
extern "C" fn prepare() {
    let guard = SETTINGS.write().unwrap_or_else(|e| e.into_inner());
    HELD.with(|held| {
        if let Ok(mut held) = held.try_borrow_mut() {
            *held = Some(guard);
        }
    });
}

/// After `fork`, in the parent: releases the lock.
#[cfg_attr(not(unix), allow(dead_code))]
extern "C" fn parent() {
    HELD.with(|held| held.try_borrow_mut().ok().and_then(|mut held| held.take()));
}

/// After `fork`, in the child: forgets the parent's pool (its threads are not in this process,
/// and dropping it would wait for them) and releases the lock. Allocates nothing.
#[cfg_attr(not(unix), allow(dead_code))]
extern "C" fn child() {
    HELD.with(|held| {
        if let Some(mut settings) = held.try_borrow_mut().ok().and_then(|mut held| held.take()) {
            std::mem::forget(settings.threads.take());
        }
    });
}
