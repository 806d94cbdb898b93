//! The process's allocator: jemalloc, for Rust and, through its unprefixed `malloc` family, for
//! libtorch's tensors and GDAL too.
//!
//! glibc serves every block above its mmap threshold (32 MiB at most) with a fresh `mmap` and
//! unmaps it on free, so each large activation of each step was faulted in page by page and
//! zeroed by the kernel again. jemalloc keeping its freed pages (no decay) reuses them instead.
//! `changedet bench`, glibc build against this one, 3 alternating rounds (each a median of 5
//! runs), 2-core EPYC, 2 threads, 2026-12-01:
//!
//! | | training step | peak RSS | minor faults |
//! |---|---|---|---|
//! | ClearSCD, 4 × 256² | 4,000 → 2,238 ms | 3,182 → 3,195 MiB | 11.2 M → 0.80 M |
//! | ChangeCLIP RN50, 2 × 256² | 3,927 → 3,831 ms | 3,781 → 3,648 MiB | 2.0 M → 0.91 M |
//! | FC-Siam-diff, 4 × 256² | 944 → 797 ms | 1,307 → 1,031 MiB | 0.69 M → 0.24 M |
//!
//! Inference moved within the noise (ClearSCD 512²: 292 → 298 ms; ChangeCLIP 256²: 545 → 596 ms,
//! rounds overlapping; FC-Siam-diff 256²: 55 → 50 ms). `bench --scene 4096` (FC-Siam-diff):
//! 56 s → 34 s, system time 40 s → 2 s. jemalloc's default decay (10 s) returns pages too soon for
//! this pattern (system time as glibc's). `MALLOC_CONF` in the environment overrides these options.
//!
//! One difference needs a guard: where the kernel overcommits heuristically (the default),
//! jemalloc maps with `MAP_NORESERVE`, which skips the kernel's check, so an impossible request
//! (`bench --size 200000`: 1.9 TB) no longer fails at once as it did with glibc, and the process
//! fills the machine until the OOM killer ends it. `refuse_impossible_allocations` restores the
//! clean failure.

#[global_allocator]
static ALLOCATOR: MemsetZeroed = MemsetZeroed;

/// jemalloc, with zeroed blocks cleared by `memset`. jemalloc clears a recycled block by handing
/// its pages back to the kernel (`MADV_DONTNEED`), so every page of every `vec![0; n]` faulted
/// in again when first written: the scene reader's batches took 280,000 faults (0.77 s of system
/// time of its 1.0 s) on a 4096² `bench --scene`.
struct MemsetZeroed;

// SAFETY: every call is jemalloc's own, with the same layout; `alloc_zeroed` only writes zeros
// over the block `alloc` returned.
unsafe impl std::alloc::GlobalAlloc for MemsetZeroed {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe { tikv_jemallocator::Jemalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // Opaque, or LLVM folds `malloc` + `memset(0)` back into `calloc`.
        let block = std::hint::black_box(unsafe { tikv_jemallocator::Jemalloc.alloc(layout) });
        if !block.is_null() {
            unsafe { block.write_bytes(0, layout.size()) };
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: std::alloc::Layout) {
        unsafe { tikv_jemallocator::Jemalloc.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        unsafe { tikv_jemallocator::Jemalloc.realloc(block, layout, size) }
    }
}

/// jemalloc's options, read at its start (the unprefixed build reads the symbol `malloc_conf`):
/// freed pages are kept (no decay), and in one arena, so that every thread reuses them (with
/// its default of one arena per thread or so, ChangeCLIP's training peaked 8 % above glibc's).
#[unsafe(no_mangle)]
pub static malloc_conf: &[u8; 46] = b"narenas:1,dirty_decay_ms:-1,muzzy_decay_ms:-1\0";

/// Caps the process's private writable memory (`RLIMIT_DATA`, which counts `MAP_NORESERVE`
/// mappings too) at the machine's RAM + swap, so that an allocation that can never be served
/// fails (libtorch then reports "out of memory") instead of being overcommitted. Not on machines
/// with an NVIDIA driver, whose CUDA libraries map address space of their own; nor where the
/// limit is already lower.
pub fn refuse_impossible_allocations() {
    #[cfg(target_os = "linux")]
    {
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            return;
        }
        let Some(bytes) = memory_and_swap_bytes() else { return };
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit read and write the struct passed by reference only.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_DATA, &mut limit) == 0 && limit.rlim_cur > bytes {
                limit.rlim_cur = bytes.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_DATA, &limit);
            }
        }
    }
}

/// MemTotal + SwapTotal of `/proc/meminfo`, in bytes.
#[cfg(target_os = "linux")]
fn memory_and_swap_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| -> Option<u64> { info.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok() };
    Some((kib("MemTotal:")? + kib("SwapTotal:").unwrap_or(0)) * 1024)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// Minor page faults of this thread so far.
    fn minor_faults() -> i64 {
        // SAFETY: getrusage writes the zeroed struct passed by reference only.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) }, 0);
        usage.ru_minflt
    }

    /// A zeroed block made of freed memory is zero, and its pages stay mapped: jemalloc's own
    /// zeroing (or LLVM turning our `memset` back into `calloc`) faulted all 16,385 pages of
    /// this block in again.
    #[test]
    fn a_recycled_zeroed_block_is_zero_and_not_faulted_in_again() {
        const SIZE: usize = 64 << 20;
        drop(std::hint::black_box(vec![7u8; SIZE]));
        let before = minor_faults();
        let block = vec![0u8; SIZE];
        assert!(block.iter().all(|&b| b == 0));
        let faults = minor_faults() - before;
        assert!(faults < 100, "{faults} page faults for a recycled 64 MiB block");
    }
}
