//! Allocator settings, shared by the binary and the benchmark, which both
//! run on mimalloc (see `main.rs` for why).
//!
//! mimalloc v3 holds memory it has freed for a second (`purge_delay`,
//! 1000 ms; v2 used 10 ms) before it gives the pages back to the OS. The
//! tracker's map and timer wheel double as transfers arrive, and each
//! doubling frees the old table (9 MB at 65k tracked): for that second the
//! process holds the old table beside the new one. At 100k tracked that
//! was 310-503 B of RSS per transfer, depending on whether the last
//! doubling fell inside the second; with 10 ms, 289-360 B (README,
//! "Throughput and CPU").

/// mimalloc's `mi_option_purge_delay`: index 15 of `mi_option_t` in v2 and
/// v3 alike (options are never renumbered; retired ones keep their slot as
/// `mi_option_deprecated_*`). `libmimalloc-sys` does not name it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// Milliseconds: short enough that a doubling's old table is gone before
/// the next one, long enough that pages freed and reused within a burst
/// stay mapped (no madvise per request).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Give freed pages back to the OS within [`PURGE_DELAY_MS`]. Call once,
/// first thing in `main`; harmless where mimalloc is not the global
/// allocator (it only sets mimalloc's option).
pub fn return_freed_memory_promptly() {
    // SAFETY: `mi_option_set` writes one entry of mimalloc's option table;
    // it is thread-safe and valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
}

/// The current purge delay, milliseconds.
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads one entry of mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_the_purge_delay() {
        // v3's documented default for this slot is 1000 ms (MIMALLOC_PURGE_DELAY
        // overrides it); a wrong index would read some other option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                purge_delay_ms(),
                1000,
                "index {PURGE_DELAY} is not purge_delay"
            );
        }
        return_freed_memory_promptly();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
