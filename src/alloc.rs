//! Allocator settings, shared by the binary and the benchmark, which both
//! run on mimalloc (see `main.rs` for why): [`tune`], first thing in `main`.
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
//! fresh pages. Now only large objects leave at once: anything over
//! [`ARENA_MAX_OBJECT_KIB`] is mapped from the OS on its own and unmapped
//! when freed, and the rest keeps v3's one-second delay.
//!
//! The option caps whole pages, not objects, and every object of 84-512
//! KiB (a group commit's JSON arrays) lives in one of v3's 4 MiB large
//! pages, so each such page is mapped from the OS, faulted in as two zeroed
//! huge pages and unmapped when its last object goes: 210 `mmap` calls in
//! a 1.3 s drain. A limit of 4 MiB keeps those pages, but also keeps the
//! tracker's freed 2-4 MiB tables for a second: 358-421 B per tracked
//! transfer against 339-344 (thirtieth round, docs/perf-rounds.md), too
//! near the 430 B target, so the limit stays and the group commit keeps
//! its large objects few instead.
//!
//! SQLite is C and allocates from glibc's malloc, which hands a block of
//! 128 KiB or more its own mapping at first and gives the top of a thread's
//! heap back once 128 KiB of it are free. A group commit's `json_each`
//! turns a few hundred KiB of JSON text into a binary tree and copies its
//! values out, in fresh buffers each time: those were mapped, faulted in
//! zeroed and given back, statement after statement, 14,000 page faults in
//! a 1.3 s drain (4% of the bridge's samples). [`keep_c_heap`] keeps them.

use std::ffi::c_long;

/// mimalloc's `mi_option_arena_max_object_size` (KiB): index 45 of
/// `mi_option_t` in v3 (options are never renumbered; retired ones keep
/// their slot as `mi_option_deprecated_*`). `libmimalloc-sys` does not name
/// it.
const ARENA_MAX_OBJECT: libmimalloc_sys::mi_option_t = 45;
/// KiB: the tracker's tables from some tens of thousands of transfers up
/// are mappings of their own, returned to the OS when freed (and so are
/// v3's 4 MiB large pages, see the module docs).
const ARENA_MAX_OBJECT_KIB: c_long = 2048;

/// glibc's largest mapping threshold on 64-bit (`HEAP_MAX_SIZE / 2`): below
/// it every block comes from a heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const C_MMAP_THRESHOLD: i32 = 32 << 20;
/// Free bytes a glibc heap keeps at its top before it shrinks: far above
/// what SQLite's connections hold at once (their page caches, a group's
/// JSON), so their buffers are reused, not faulted in again.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const C_TRIM_THRESHOLD: i32 = 64 << 20;

/// Every allocator setting the process wants (see the module docs). Call
/// once, first thing in `main`, before any thread starts.
pub fn tune() {
    return_freed_memory_promptly();
    keep_c_heap();
}

/// Give large freed blocks back to the OS at once (see the module docs).
/// Harmless where mimalloc is not the global allocator (it only sets
/// mimalloc's option).
pub fn return_freed_memory_promptly() {
    // SAFETY: `mi_option_set` writes one entry of mimalloc's option table;
    // it is thread-safe and valid at any time, and mimalloc reads this one
    // at each large allocation.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_MAX_OBJECT, ARENA_MAX_OBJECT_KIB) }
}

/// Keep glibc's freed memory for reuse (SQLite's, see the module docs):
/// fixed thresholds, which also turn off glibc's own adjustment of them.
/// Off glibc there is nothing to set.
pub fn keep_c_heap() {
    // glibc's `mallopt` answers 1 even to a parameter it does not know, so
    // its answer proves nothing; the unit test checks what it does.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` sets a glibc malloc parameter; called before other
    // threads start, and glibc takes its arena lock for it in any case.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, C_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, C_TRIM_THRESHOLD);
    }
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

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_large_c_block_comes_from_the_heap() {
        // By default glibc maps an 8 MiB block on its own (the threshold
        // starts at 128 KiB; each test runs in a process of its own).
        keep_c_heap();
        // SAFETY: glibc's own allocation and statistics calls; the block
        // is freed before the test ends and never read.
        let (before, after) = unsafe {
            let before = libc::mallinfo2().hblks;
            let block = libc::malloc(8 << 20);
            assert!(!block.is_null());
            let after = libc::mallinfo2().hblks;
            libc::free(block);
            (before, after)
        };
        assert_eq!(after, before, "glibc mapped the block on its own");
    }
}
