//! Whether this process may run AMX-INT8 instructions: the CPU has them, the operating system
//! saves their state, and (on Linux) the process was granted that state.
//!
//! Three checks, all needed:
//! - CPUID leaf 7 (sub-leaf 0) EDX bit 24 (AMX-TILE) and bit 25 (AMX-INT8);
//! - XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA), read with `xgetbv` once CPUID leaf 1 ECX bit 27
//!   (OSXSAVE) says the register exists: the kernel manages the tile state;
//! - Linux only lets a process touch the 8 KiB tile data after asking for it,
//!   `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; before that, the first tile
//!   instruction kills the process with `SIGILL`. The permission is process-wide (every thread,
//!   those of the intra-op pool included, may then use the tiles) and a forked child inherits it,
//!   so it is requested once per process. Other systems: no AMX (this build does not know how they
//!   grant it).
//!
//! When any check fails, the `amx` path is simply unavailable.

use std::arch::asm;
use std::arch::x86_64::{CpuidResult, __cpuid_count};
use std::sync::OnceLock;

/// True once this process may run `ldtilecfg`, `tileloadd` and `tdpbusd`. Asked once; the
/// answer (and the permission) stays for the process and its forked children.
pub(super) fn tiles_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| cpu_has_amx_int8() && os_saves_tile_state() && request_tile_permission())
}

/// CPUID: AMX-TILE and AMX-INT8.
fn cpu_has_amx_int8() -> bool {
    if cpuid(0, 0).eax < 7 {
        return false;
    }
    let edx = cpuid(7, 0).edx;
    edx & (1 << 24) != 0 && edx & (1 << 25) != 0
}

/// XCR0 has the tile configuration and tile data bits: the OS saves and restores them.
fn os_saves_tile_state() -> bool {
    let osxsave = cpuid(1, 0).ecx & (1 << 27) != 0;
    if !osxsave {
        return false;
    }
    let (low, _high): (u32, u32);
    // SAFETY: OSXSAVE is set, so `xgetbv` with ECX = 0 (XCR0) is a valid instruction here; it
    // only writes EAX and EDX.
    unsafe { asm!("xgetbv", in("ecx") 0u32, out("eax") low, out("edx") _high, options(nomem, nostack, preserves_flags)) };
    low & (1 << 17) != 0 && low & (1 << 18) != 0
}

/// `cpuid` with `leaf` (at most the highest leaf leaf 0 reports, or 0 or 1) and `sub_leaf`.
fn cpuid(leaf: u32, sub_leaf: u32) -> CpuidResult {
    // SAFETY: `cpuid` exists on every x86-64 CPU and only reads registers (the function is an
    // `unsafe fn` in older Rust releases, a safe one in newer).
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid_count(leaf, sub_leaf)
    }
}

/// Asks Linux for the tile data state; true when granted.
#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    use std::ffi::c_long;
    extern "C" {
        fn syscall(number: c_long, ...) -> c_long;
    }
    /// `SYS_arch_prctl` on x86-64.
    const SYS_ARCH_PRCTL: c_long = 158;
    /// `ARCH_REQ_XCOMP_PERM` (asm/prctl.h).
    const ARCH_REQ_XCOMP_PERM: c_long = 0x1023;
    /// `XFEATURE_XTILEDATA` (the state component of XCR0 bit 18).
    const XFEATURE_XTILEDATA: c_long = 18;
    // SAFETY: `syscall` is libc's, with this C signature; `arch_prctl(ARCH_REQ_XCOMP_PERM, n)`
    // takes a plain integer, touches no memory of ours, and fails cleanly (returns -1) on a kernel
    // that does not know it.
    unsafe { syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

/// Not on Linux: no AMX.
#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}
