//! Where `serve` runs its threads: on a machine that gives it two CPUs, on
//! one of them (`runtime.one_cpu`).
//!
//! On two CPUs the bridge runs one async thread (see `main.rs`) beside
//! SQLite's connection threads and lapin's I/O thread, and nearly all it
//! does is hand work between them: every statement, publish and confirm
//! wakes one thread from another, and most of a signalled transfer's CPU is
//! those wake-ups (README, "Throughput and CPU"). A wake-up across the two
//! vCPUs of a VM is an interrupt between processors, which the hypervisor
//! delivers: on the project's 2-vCPU machine a futex round trip cost 37.6
//! us across vCPUs and 1.5 us within one (`benches/tools/host_costs.c`).
//! Kept on one CPU the bridge spent up to a fifth less CPU per signalled
//! transfer (1-10% at the medians of the last round's noisy pairs), and a
//! burst of 10,000 completions drained as fast. The broker, the
//! database and the rest of the machine keep both CPUs: the kernel moves
//! them off the bridge's when it is busy.
//!
//! The CPU is the one the kernel started the process on (it starts a new
//! program on an idle CPU where it has one), so two bridges started one
//! after the other on one machine tend to take different CPUs.

use serde::{Deserialize, Serialize};

/// `runtime.one_cpu`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OneCpu {
    /// One CPU when the bridge runs one async thread and may use two CPUs:
    /// the case measured. With more CPUs it runs more async threads, which
    /// one CPU would starve.
    #[default]
    Auto,
    /// Every CPU it may use, as the kernel sees fit. (To keep a bridge on
    /// one CPU elsewhere, start it so: `taskset -c 1`, or a one-CPU cpuset.)
    Off,
}

/// `runtime.sched_batch`: whether threads kept on one CPU run under Linux's
/// `SCHED_BATCH` policy (see [`batch_this_thread`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedBatch {
    /// `SCHED_BATCH` wherever `runtime.one_cpu` keeps the threads on one CPU.
    #[default]
    Auto,
    /// The kernel's default policy, always.
    Off,
}

/// The `[runtime]` section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    pub one_cpu: OneCpu,
    pub sched_batch: SchedBatch,
}

/// Where [`keep_on_one_cpu`] left the threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This thread, and every thread it starts from now on, runs on `cpu`.
    OneCpu { cpu: usize },
    /// Left to the kernel, for this reason.
    Free(String),
}

/// Whether `setting` asks for one CPU, for a bridge that runs one async
/// thread (`one_async_thread`) and may use `allowed` CPUs.
pub fn wants_one_cpu(setting: OneCpu, one_async_thread: bool, allowed: usize) -> bool {
    match setting {
        OneCpu::Off => false,
        OneCpu::Auto => one_async_thread && allowed == 2,
    }
}

/// Give the calling thread back every CPU the process could use before
/// [`keep_on_one_cpu`] kept it to one (nothing, if it did not). For tokio's
/// blocking pool (`main.rs` calls it as each of its threads starts): what
/// runs there is heavy work moved off the async thread (the adaptive
/// policy's calibration, milliseconds of maths), which on the async
/// thread's CPU would hold up the very requests it was moved away from: a
/// caller's instruction waited 3.6 ms behind one.
pub fn release_this_thread() {
    imp::release_this_thread();
}

/// Keep the calling thread, and so every thread it starts later (SQLite's
/// connection threads and lapin's I/O thread are started from the async
/// thread), on one CPU if `setting` asks for it. Call it on the async
/// thread before the store or the broker is opened. A refusal (a sandbox
/// that forbids it, say) leaves the threads free, and says why.
pub fn keep_on_one_cpu(setting: OneCpu, one_async_thread: bool) -> Placement {
    imp::keep_on_one_cpu(setting, one_async_thread)
}

/// Run the calling thread, and every thread it starts from then on, under
/// `SCHED_BATCH`: a thread of the bridge that another one wakes no longer
/// preempts the waker, and runs once the waker sleeps.
///
/// On one CPU nearly every hand-off went twice through the scheduler: a
/// SQLite connection thread wrote its answer, the async thread it woke
/// preempted it at once, and the SQLite thread ran again afterwards only to
/// go to sleep on its queue (`perf stat`: 52 context switches per
/// signalled transfer; `perf record -e sched:sched_switch`: the largest
/// groups, threads switched out still runnable just after a wake-up).
/// Under `SCHED_BATCH` the waker finishes and sleeps first: one switch per
/// hand-off (32 per transfer). The woken thread still runs as soon as the
/// CPU is free, and the kernel's tick still shares the CPU fairly, so a
/// caller waits no longer (README, "Throughput and CPU"). tokio's blocking
/// pool, started from the async thread, inherits the policy too, which
/// suits its heavy work: it never preempts the threads that serve requests.
pub fn batch_this_thread() -> std::io::Result<()> {
    imp::batch_this_thread()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::OnceLock;

    use rustix::thread::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity};

    use super::{OneCpu, Placement, wants_one_cpu};

    /// The CPUs allowed before the process was kept to one.
    static BEFORE: OnceLock<CpuSet> = OnceLock::new();

    pub fn batch_this_thread() -> std::io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 names the calling thread, and `param` outlives the
        // call, which only reads it. SCHED_BATCH needs no privilege.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        match rc {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    pub fn release_this_thread() {
        if let Some(all) = BEFORE.get() {
            // Best effort: a thread that stays on the one CPU still works.
            let _ = sched_setaffinity(None, all);
        }
    }

    pub fn keep_on_one_cpu(setting: OneCpu, one_async_thread: bool) -> Placement {
        let allowed = match sched_getaffinity(None) {
            Ok(set) => set,
            Err(e) => return Placement::Free(format!("cannot read the CPUs allowed: {e}")),
        };
        let count = allowed.count() as usize;
        if !wants_one_cpu(setting, one_async_thread, count) {
            let why = format!("runtime.one_cpu = {setting:?}, {count} CPUs allowed");
            return Placement::Free(why.to_lowercase());
        }
        on_this_cpu(&allowed)
    }

    /// Keep the calling thread on the CPU it runs on, or on the next one
    /// `allowed`.
    pub fn on_this_cpu(allowed: &CpuSet) -> Placement {
        let here = sched_getcpu();
        let Some(cpu) = (here..CpuSet::MAX_CPU)
            .chain(0..here)
            .find(|&cpu| allowed.is_set(cpu))
        else {
            return Placement::Free("no CPU is allowed".into());
        };
        let mut one = CpuSet::new();
        one.set(cpu);
        match sched_setaffinity(None, &one) {
            Ok(()) => {
                let _ = BEFORE.set(*allowed);
                Placement::OneCpu { cpu }
            }
            Err(e) => Placement::Free(format!("cannot keep to one CPU: {e}")),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{OneCpu, Placement};

    pub fn keep_on_one_cpu(_: OneCpu, _: bool) -> Placement {
        Placement::Free("thread placement is only set on Linux".into())
    }

    pub fn release_this_thread() {}

    pub fn batch_this_thread() -> std::io::Result<()> {
        Err(std::io::Error::other("SCHED_BATCH is only set on Linux"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_keeps_one_async_thread_on_one_of_two_cpus_only() {
        assert!(wants_one_cpu(OneCpu::Auto, true, 2));
        assert!(!wants_one_cpu(OneCpu::Auto, true, 1));
        assert!(!wants_one_cpu(OneCpu::Auto, false, 2));
        assert!(!wants_one_cpu(OneCpu::Auto, false, 8));
        assert!(!wants_one_cpu(OneCpu::Auto, true, 3));
        assert!(!wants_one_cpu(OneCpu::Off, true, 2));
    }

    #[test]
    fn the_setting_reads_as_written() {
        let read: RuntimeConfig = toml::from_str("one_cpu = \"off\"").unwrap();
        assert_eq!(read.one_cpu, OneCpu::Off);
        let default: RuntimeConfig = toml::from_str("").unwrap();
        assert_eq!(default.one_cpu, OneCpu::Auto);
        assert!(toml::from_str::<RuntimeConfig>("one_cpu = \"on\"").is_err());
        assert_eq!(default.sched_batch, SchedBatch::Auto);
        let read: RuntimeConfig = toml::from_str("sched_batch = \"off\"").unwrap();
        assert_eq!(read.sched_batch, SchedBatch::Off);
        assert!(toml::from_str::<RuntimeConfig>("sched_batch = true").is_err());
    }

    /// On a thread of its own: it and a thread it starts afterwards run
    /// under SCHED_BATCH; the test's own thread keeps its policy.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_batched_thread_and_the_threads_it_starts_run_under_sched_batch() {
        // SAFETY: pid 0 names the calling thread; nothing else is read.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let before = policy();
        let (own, child) = std::thread::spawn(move || {
            batch_this_thread().expect("SCHED_BATCH needs no privilege");
            (policy(), std::thread::spawn(policy).join().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!((own, child), (libc::SCHED_BATCH, libc::SCHED_BATCH));
        assert_eq!(policy(), before);
        assert_ne!(before, libc::SCHED_BATCH);
    }

    /// On a thread of its own, so the test runner's threads stay free: the
    /// thread and a thread it starts afterwards both run on the one CPU, and
    /// a thread it starts that is released runs on all of them again.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_kept_thread_and_the_threads_it_starts_share_one_cpu() {
        use rustix::thread::sched_getaffinity;
        let allowed = sched_getaffinity(None).unwrap();
        let placed = std::thread::spawn(move || {
            let placement = imp::on_this_cpu(&allowed);
            let own = sched_getaffinity(None).unwrap();
            let child = std::thread::spawn(|| sched_getaffinity(None).unwrap())
                .join()
                .unwrap();
            let released = std::thread::spawn(|| {
                release_this_thread();
                sched_getaffinity(None).unwrap()
            });
            (placement, own, child, released.join().unwrap())
        });
        let (placement, own, child, released) = placed.join().unwrap();
        let Placement::OneCpu { cpu } = placement else {
            panic!("{placement:?}");
        };
        assert!(allowed.is_set(cpu));
        for set in [own, child] {
            assert_eq!(set.count(), 1);
            assert!(set.is_set(cpu));
        }
        assert_eq!(sched_getaffinity(None).unwrap(), allowed);
        assert_eq!(released, allowed, "a released thread has every CPU back");
    }

    /// `auto` on this machine: one CPU exactly where two are allowed.
    #[cfg(target_os = "linux")]
    #[test]
    fn auto_acts_on_the_cpus_this_process_may_use() {
        let allowed = rustix::thread::sched_getaffinity(None).unwrap().count();
        let placement = std::thread::spawn(|| keep_on_one_cpu(OneCpu::Auto, true))
            .join()
            .unwrap();
        match allowed {
            2 => assert!(
                matches!(placement, Placement::OneCpu { .. }),
                "{placement:?}"
            ),
            _ => assert!(matches!(placement, Placement::Free(_)), "{placement:?}"),
        }
        let off = std::thread::spawn(|| keep_on_one_cpu(OneCpu::Off, true))
            .join()
            .unwrap();
        assert!(matches!(off, Placement::Free(_)), "{off:?}");
    }
}
