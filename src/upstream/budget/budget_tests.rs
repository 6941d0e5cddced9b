use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::BoxFuture;
use time::macros::datetime;

use super::*;
use crate::config::Config;

fn config(rate: u32, daily: u32, reserve: u32) -> UpstreamConfig {
    let mut config = Config::from_figment(Config::embedded()).unwrap().upstream;
    config.rate_limit_per_s = rate;
    config.daily_budget = daily;
    config.signal_reserve = reserve;
    config.pacing_window = Duration::from_secs(900);
    config
}

fn status(code: u16, retry_after: Option<u64>) -> Result<Fetched, UpstreamError> {
    Err(UpstreamError::Status {
        status: code,
        envelope: None,
        retry_after: retry_after.map(Duration::from_secs),
    })
}

/// Start `n` acquires at once; the offsets (from start) at which each got
/// through, in completion order.
async fn burst(budget: &Arc<Budget>, n: usize, priority: Priority) -> Vec<Duration> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget.acquire(priority).await;
                start.elapsed()
            })
        })
        .collect();
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.unwrap());
    }
    done.sort();
    done
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_every_request() {
    let budget = Budget::new(&config(1000, 10, 0));
    budget.observe(&status(429, Some(3)));
    let start = Instant::now();
    budget.acquire(Priority::Signal).await;
    assert!(start.elapsed() >= Duration::from_secs(3));
    assert_eq!(budget.remaining_today(), 9);
}

#[tokio::test(start_paused = true)]
async fn a_429_without_retry_after_backs_off_one_two_four() {
    let budget = Budget::new(&config(1000, 100, 0));
    let mut pauses = Vec::new();
    for _ in 0..4 {
        budget.observe(&status(429, None));
        pauses.push(budget.snapshot().paused_ms / 1000);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(pauses, [1, 2, 4, 4]);
    budget.observe(&status(404, None));
    budget.observe(&status(429, None));
    assert_eq!(
        budget.snapshot().paused_ms,
        1000,
        "a non-429 answer resets the steps"
    );
}

#[tokio::test(start_paused = true)]
async fn no_second_holds_more_than_the_spike_limit() {
    for limit in [10, 100, 1000] {
        let budget = Arc::new(Budget::new(&config(limit, 1_000_000, 0)));
        let done = burst(&budget, 3 * limit as usize + 7, Priority::Routine).await;
        let mut most = 0;
        for (i, at) in done.iter().enumerate() {
            let window = done[i..]
                .iter()
                .take_while(|t| **t - *at < Duration::from_secs(1));
            most = most.max(window.count());
        }
        assert!(most <= limit as usize, "{limit}/s: {most} in one second");
        // ...and the limit is used, not wasted: over 90% of it.
        assert!(
            most * 10 > limit as usize * 9,
            "{limit}/s: only {most} in one second"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn signals_overtake_waiting_routine_requests() {
    let budget = Arc::new(Budget::new(&config(10, 10_000, 0)));
    let routine = {
        let budget = budget.clone();
        tokio::spawn(async move { burst(&budget, 30, Priority::Routine).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    budget.acquire(Priority::Signal).await;
    // One spike period (102 ms), not the 2.5 s of routine requests queued ahead.
    assert!(
        start.elapsed() <= Duration::from_millis(210),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(routine.await.unwrap().len(), 30);
}

#[tokio::test(start_paused = true)]
async fn the_daily_budget_is_never_exceeded_and_resets_at_utc_midnight() {
    // A day-long pacing window: this test is about the cap, not the pace.
    let mut config = config(1000, 10, 3);
    config.pacing_window = Duration::from_secs(86_400);
    let clock = UtcClock::starting_at(datetime!(2030-01-01 23:00 UTC));
    let budget = Arc::new(Budget::with_clock(&config, clock));
    // Routine requests stop short of the signal reserve...
    let routine = burst(&budget, 9, Priority::Routine).await;
    assert!(routine[6] < Duration::from_secs(60), "{routine:?}");
    assert!(
        routine[7] >= Duration::from_secs(3590),
        "waited for the reset: {routine:?}"
    );
    // ...which signals spend, and then they wait for the reset too.
    let clock = UtcClock::starting_at(datetime!(2030-01-01 23:00 UTC));
    let budget = Arc::new(Budget::with_clock(&config, clock));
    let _ = burst(&budget, 7, Priority::Routine).await;
    let signals = burst(&budget, 4, Priority::Signal).await;
    assert!(signals[2] < Duration::from_secs(1), "{signals:?}");
    assert!(signals[3] >= Duration::from_secs(3590), "{signals:?}");
    assert_eq!(budget.snapshot().used_today, 1, "a new day after midnight");
}

/// Start `n` routine polls the way the tracker does: admitted by the pace,
/// waiting (in its wheel) when not. Offsets at which each got through.
async fn admitted(budget: &Budget, n: usize) -> Vec<Duration> {
    let start = Instant::now();
    let mut done = Vec::new();
    while done.len() < n {
        match budget.routine_wait() {
            None => {
                assert!(budget.admit_routine());
                budget.acquire(Priority::Routine).await;
                done.push(start.elapsed());
            }
            Some(until) => tokio::time::sleep_until(until).await,
        }
    }
    done
}

#[tokio::test(start_paused = true)]
async fn a_low_budget_spreads_routine_polls_instead_of_starving_them() {
    // Noon, 1000 left (100 reserved): 900 routine requests over 12 h is an
    // even pace of one per 48 s; the 15-minute window lets ~18 through at once.
    let clock = UtcClock::starting_at(datetime!(2030-01-01 12:00 UTC));
    let budget = Budget::with_clock(&config(1000, 1000, 100), clock);
    let done = admitted(&budget, 30).await;
    let immediate = done.iter().filter(|t| **t < Duration::from_secs(1)).count();
    assert_eq!(immediate, 18, "{done:?}");
    let gaps: Vec<u64> = done[18..]
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs())
        .collect();
    assert!(gaps.iter().all(|g| (47..=50).contains(g)), "{gaps:?}");
    assert!(budget.snapshot().pacing);
    assert!(budget.routine_wait().is_some());
    // A signal does not wait for the pace.
    let start = Instant::now();
    budget.acquire(Priority::Signal).await;
    assert!(start.elapsed() < Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn the_forecast_extrapolates_the_current_load() {
    let clock = UtcClock::starting_at(datetime!(2030-01-01 00:00 UTC));
    let budget = Budget::with_clock(&config(1000, 10_000, 0), clock);
    assert!(
        budget.snapshot().exhausted_at.is_none(),
        "idle: lasts all day"
    );
    // 2 requests/s for 20 minutes: ~7,600 left at 2/s is about an hour.
    for _ in 0..2400 {
        budget.acquire(Priority::Signal).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let snapshot = budget.snapshot();
    let left = snapshot.exhausted_in_s.expect("runs out before midnight");
    let expected = f64::from(snapshot.remaining) / 2.0;
    assert!((left / expected - 1.0).abs() < 0.1, "{left} vs {expected}");
}

#[tokio::test(start_paused = true)]
async fn share_spike_splits_the_rate_among_live_instances() {
    let budget = Arc::new(Budget::new(&config(40, 1_000_000, 0)));
    assert_eq!(budget.spike_share(), 40);
    budget.share_spike(4);
    assert_eq!(budget.spike_share(), 10);
    let done = burst(&budget, 35, Priority::Routine).await;
    let most = (0..done.len())
        .map(|i| {
            done[i..]
                .iter()
                .take_while(|t| **t - done[i] < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!((9..=10).contains(&most), "{most} in one second at 40/4");
    // Never below one request a second, however many instances live.
    budget.share_spike(1000);
    assert_eq!(budget.spike_share(), 1);
    // The same share again keeps the limiter (and its state) as it is.
    budget.share_spike(1000);
    budget.share_spike(1);
    assert_eq!(budget.spike_share(), 40);
}

/// Counts what it is asked for; fails while `failing` is set.
#[derive(Default)]
struct CountingLedger {
    inner: MemoryLedger,
    calls: std::sync::atomic::AtomicU32,
    /// What each reservation asked for.
    wants: std::sync::Mutex<Vec<u32>>,
    failing: std::sync::atomic::AtomicBool,
}

impl Ledger for CountingLedger {
    fn reserve(
        &self,
        day: Date,
        want: u32,
        cap: u32,
    ) -> futures::future::BoxFuture<'_, anyhow::Result<Grant>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.wants.lock().unwrap().push(want);
        if self.failing.load(Ordering::SeqCst) {
            return Box::pin(async { anyhow::bail!("database unreachable") });
        }
        self.inner.reserve(day, want, cap)
    }

    fn release(
        &self,
        day: Date,
        unused: u32,
    ) -> futures::future::BoxFuture<'_, anyhow::Result<()>> {
        self.inner.release(day, unused)
    }

    fn spent(&self, day: Date) -> futures::future::BoxFuture<'_, anyhow::Result<u32>> {
        self.inner.spent(day)
    }
}

#[tokio::test(start_paused = true)]
async fn requests_are_reserved_in_batches_and_the_unsent_part_goes_back() {
    let mut config = config(1000, 100, 0);
    config.budget_batch = 20;
    let ledger = Arc::new(CountingLedger::default());
    let budget = Arc::new(Budget::new(&config).with_ledger(ledger.clone()));
    burst(&budget, 45, Priority::Signal).await;
    // Two reservations for 45 requests, not 45 writes: the first 20 went
    // within 250 ms (the spike limit is 1,000/s), so the next asked for 40.
    assert_eq!(*ledger.wants.lock().unwrap(), [20, 40]);
    let snapshot = budget.snapshot();
    assert_eq!((snapshot.used_today, snapshot.remaining), (45, 55));
    let day = budget.lock().day;
    let spent = async || ledger.spent(day).await.unwrap();
    assert_eq!(spent().await, 60, "the held 15 count for everyone else");
    budget.release_unused().await;
    assert_eq!(spent().await, 45);
    assert_eq!(budget.snapshot().used_today, 45);
}

/// A burst at a high spike limit does not pay a store write per 20
/// requests: reservations double until one lasts a quarter of a second
/// (320 requests at 1,000/s), then stay there.
#[tokio::test(start_paused = true)]
async fn a_burst_reserves_in_growing_batches_until_each_lasts_a_while() {
    let mut config = config(1000, 1_000_000, 0);
    config.budget_batch = 20;
    let ledger = Arc::new(CountingLedger::default());
    let budget = Arc::new(Budget::new(&config).with_ledger(ledger.clone()));
    burst(&budget, 3000, Priority::Signal).await;
    let wants = ledger.wants.lock().unwrap().clone();
    let mut expected = vec![20, 40, 80, 160];
    expected.extend([320; 9]);
    assert_eq!(wants, expected, "150 at a fixed 20");
    assert_eq!(budget.snapshot().used_today, 3000);
}

#[tokio::test(start_paused = true)]
async fn without_a_reservation_no_request_leaves() {
    let ledger = Arc::new(CountingLedger::default());
    ledger.failing.store(true, Ordering::SeqCst);
    let budget = Arc::new(Budget::new(&config(1000, 100, 0)).with_ledger(ledger.clone()));
    let waiting = {
        let budget = budget.clone();
        tokio::spawn(async move { budget.acquire(Priority::Signal).await })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!waiting.is_finished(), "no request without a reservation");
    assert!(ledger.calls.load(Ordering::SeqCst) >= 2, "retried");
    ledger.failing.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("goes once the ledger answers")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn what_others_reserved_counts_as_spent() {
    // Another instance already reserved 90 of today's 100.
    let clock = UtcClock::starting_at(datetime!(2030-01-01 12:00 UTC));
    let ledger = Arc::new(MemoryLedger::default());
    ledger.reserve(clock.now().date(), 90, 100).await.unwrap();
    let budget = Arc::new(Budget::with_clock(&config(1000, 100, 0), clock).with_ledger(ledger));
    let done = burst(&budget, 11, Priority::Signal).await;
    assert!(done[9] < Duration::from_secs(1), "{done:?}");
    assert!(
        done[10] >= Duration::from_secs(11 * 3600),
        "the 11th waits for the reset"
    );
    assert_eq!(budget.snapshot().used_today, 1, "a new day");
}

/// A ledger whose store never answers (a stalled PostgreSQL).
struct Stalled;

impl Ledger for Stalled {
    fn reserve(&self, _: time::Date, _: u32, _: u32) -> BoxFuture<'_, anyhow::Result<Grant>> {
        Box::pin(std::future::pending())
    }
    fn release(&self, _: time::Date, _: u32) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(std::future::pending())
    }
    fn spent(&self, _: time::Date) -> BoxFuture<'_, anyhow::Result<u32>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_ledger_gives_a_request_with_a_deadline_up_at_its_deadline() {
    let budget = Budget::new(&config(50, 10_000, 100)).with_ledger(Arc::new(Stalled));
    let start = Instant::now();
    let by = start + Duration::from_secs(2);
    let until = budget
        .acquire_by(Priority::Signal, Some(by))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(until, by + LEDGER_RETRY);
}
