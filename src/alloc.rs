//! Allocator settings, shared by the binary and the benchmark, which both
//! run on mimalloc (see `main.rs` for why).
//!
//! The tracker's map and timer wheel double as transfers arrive, and each
//! doubling frees the old table (9 MB at 65k tracked). mimalloc v3 holds
//! memory it has freed for a second (`purge_delay`) before it gives the
//! pages back to the OS, so for that second the process held the old table
//! beside the new one: at 100k tracked, 310-503 B of RSS per transfer,
//! depending on whether the last doubling fell inside the second.
//!
//! That was first fixed with a purge delay of 10 ms (289-360 B). But then
//! every page a burst freed went back to the OS within 10 ms and was faulted
//! in again, zeroed, moments later: in a 10,000-completion burst, page
//! faults were 8.7% of the bridge's samples, most of them mimalloc taking
//! fresh pages. Now only large objects leave at once: anything of
//! [`ARENA_MAX_OBJECT_KIB`] or more is mapped from the OS on its own and
//! unmapped when freed, and the rest keeps v3's one-second delay. At 100k
//! tracked: 308, 314 B per transfer (298, 345 B with the 10 ms delay beside
//! it); CPU per completion in the burst 4% lower at the median of six
//! pairs (README, "Throughput and CPU").

use std::ffi::c_long;

/// mimalloc's `mi_option_arena_max_object_size` (KiB): index 45 of
/// `mi_option_t` in v3 (options are never renumbered; retired ones keep
/// their slot as `mi_option_deprecated_*`). `libmimalloc-sys` does not name
/// it.
const ARENA_MAX_OBJECT: libmimalloc_sys::mi_option_t = 45;
/// KiB: the tracker's tables from some tens of thousands of transfers up
/// are mappings of their own, returned to the OS when freed; nothing a
/// request or a group commit allocated in the burst was that large.
const ARENA_MAX_OBJECT_KIB: c_long = 2048;

/// Give large freed blocks back to the OS at once (see the module docs).
/// Call once, first thing in `main`; harmless where mimalloc is not the
/// global allocator (it only sets mimalloc's option).
pub fn return_freed_memory_promptly() {
    // SAFETY: `mi_option_set` writes one entry of mimalloc's option table;
    // it is thread-safe and valid at any time, and mimalloc reads this one
    // at each large allocation.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_MAX_OBJECT, ARENA_MAX_OBJECT_KIB) }
}

/// The current largest object kept in mimalloc's arenas, KiB.
pub fn arena_max_object_kib() -> c_long {
    // SAFETY: reads one entry of mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_get(ARENA_MAX_OBJECT) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_the_arena_max_object_size() {
        // v3's documented default for this slot is 2 GiB, in KiB
        // (MIMALLOC_ARENA_MAX_OBJECT_SIZE overrides it); a wrong index
        // would read some other option.
        if std::env::var_os("MIMALLOC_ARENA_MAX_OBJECT_SIZE").is_none() {
            assert_eq!(
                arena_max_object_kib(),
                2 * 1024 * 1024,
                "index {ARENA_MAX_OBJECT} is not arena_max_object_size"
            );
        }
        return_freed_memory_promptly();
        assert_eq!(arena_max_object_kib(), ARENA_MAX_OBJECT_KIB);
    }
}
