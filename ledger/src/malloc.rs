//! Process-wide allocator policy for the ledger's binaries.
//!
//! glibc raises its mmap threshold to the size of every large block freed (up to 32 MiB),
//! so after the first snapshot or large sled page write, blocks of hundreds of KiB come from
//! the heap arenas instead of `mmap`, and their freed space stays in the process. Measured
//! with `cargo run -p stockpile-ledger --example memory` (110k acquires, 8 submitters): the
//! arenas held 284 MiB of free memory beside 230 MiB in use (RSS 483 MiB); with the
//! threshold fixed, 23 MiB free and RSS 230 MiB at the same throughput.

/// Blocks at least this large are `mmap`ed and returned to the OS when freed; fixing it (any
/// `mallopt` of it does) turns off the dynamic raise. Above the largest append request
/// (`service::config::APPEND_REQUEST_BYTES_MAX`, 768 KiB), so a request's buffers come from
/// the arenas and are reused: at glibc's starting value, 128 KiB, every request of 100
/// commands (~130 KiB) was mapped and unmapped, and batched appends over NATS ran ~10 %
/// slower (PERFORMANCE.md, "Allocator"). Snapshots, the blocks this was fixed for, are now
/// streamed to their file, not built in memory.
pub const MMAP_THRESHOLD_BYTES: i32 = 1 << 20;

/// Makes large freed blocks go back to the OS. Call once at start, before other threads.
pub fn return_large_frees_to_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the C allocator; it is thread-safe in glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}
