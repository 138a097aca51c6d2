//! The process's allocator policy, set once at start-up by `main`.

/// Keeps up to this much freed memory in the process instead of handing it back to the kernel.
const KEPT_FREED_BYTES: i32 = 256 << 20;

/// glibc hands freed blocks above its mmap threshold (128 KiB, rising to at most 32 MiB) and
/// free space above its trim threshold back to the kernel. A plain forward pass frees and
/// reuses a few buffers, but a capture keeps every output alive, so each capture of the same
/// model faulted all its pages in again: 13 000 minor faults per MobileNet v2 capture. With
/// both thresholds at 256 MiB, the next capture reuses the pages the last one freed (0
/// faults); the memory is reused, not leaked, and the peak is unchanged.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of glibc's tuning parameters; it is called before any
    // other thread exists, and a refused value (return 0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, KEPT_FREED_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_FREED_BYTES);
    }
}

/// Hands the allocator's free memory back to the kernel. Called when a model is replaced:
/// what the old one held (weights, kept outputs, a batch) sits in glibc's free lists, spread
/// over the arenas of every thread that touched it, and kept the app at 3 GB resident after a
/// burst of switches where 0.5 GB was live.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}
