//! The process's allocator: jemalloc, for Rust and, through its unprefixed `malloc` family, for
//! libtorch's tensors and GDAL too.
//!
//! glibc serves every block above its mmap threshold (32 MiB at most) with a fresh `mmap` and
//! unmaps it on free, so each large activation of each step was faulted in page by page and
//! zeroed by the kernel again. jemalloc keeping its freed pages (no decay) reuses them instead.
//! Measured on the 2-core EPYC (2 threads, one run each, 2026-12-01):
//!
//! | | glibc | glibc, heap only, never trimmed | jemalloc, no decay |
//! |---|---|---|---|
//! | ClearSCD training step, 4 × 256² | 4,639 ms, 3.2 GiB peak | 2,612 ms, 5.1 GiB | 2,665 ms, 3.2 GiB |
//! | `bench --scene 4096`, FC-Siam-diff | 56.5 s (40 s system) | 34.3 s (1.1 s) | 34.3 s (2.0 s) |
//!
//! jemalloc's default decay (10 s) returns pages too soon for this pattern (sys time as glibc's).
//! `MALLOC_CONF` in the environment still overrides these settings.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (the unprefixed build reads the symbol `malloc_conf`).
#[unsafe(no_mangle)]
pub static malloc_conf: &[u8; 36] = b"dirty_decay_ms:-1,muzzy_decay_ms:-1\0";
