//! Writes that wait out a store outage (a full disk, PostgreSQL restarting)
//! instead of leaving their work to a slower path.
//!
//! Every write whose result is already known outside the store, such as a
//! completion the upstream reported or a confirm the broker sent, is
//! retried here on a short backoff: once the store takes writes again it
//! lands within a second. Left to the caller's own retry it would wait for
//! the poll backoff (up to `polling.backoff_max`, a minute by default, and
//! another upstream request) or for the outbox claim to lapse
//! (`outbox.claim_timeout`), while the caller is on the line.

use std::future::Future;

use tokio::time::Instant;

use super::StoreError;
use crate::backoff::Backoff;

/// From 100 ms, doubling up to 1 s.
const OUTAGE_RETRY: Backoff = Backoff::new(
    std::time::Duration::from_millis(100),
    std::time::Duration::from_secs(1),
);

/// Run `write` until it succeeds or fails for a reason other than the store
/// being unavailable, retrying while the store is unavailable until the next
/// attempt would start after `until` (never, when `None`). The first failure
/// is logged as a warning naming `what`, later ones at debug; each retry
/// counts in `bridge_store_outage_retries_total`.
pub async fn while_unavailable<T, Fut>(
    what: &'static str,
    until: Option<Instant>,
    mut write: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut delay = OUTAGE_RETRY.initial;
    let mut failures = 0u32;
    loop {
        let e = match write().await {
            Err(e) if e.is_unavailable() => e,
            other => {
                if failures > 0 && other.is_ok() {
                    tracing::info!(what, failures, "store write landed after the outage");
                }
                return other;
            }
        };
        if until.is_some_and(|until| Instant::now() + delay > until) {
            return Err(e);
        }
        match failures {
            0 => tracing::warn!(what, error = %e, "store unavailable; retrying the write"),
            _ => tracing::debug!(what, error = %e, failures, "store still unavailable"),
        }
        failures += 1;
        metrics::counter!("bridge_store_outage_retries_total", "what" => what).increment(1);
        tokio::time::sleep(delay).await;
        delay = OUTAGE_RETRY.next(delay);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    fn unavailable() -> StoreError {
        StoreError::Unavailable(sqlx::Error::PoolTimedOut)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_while_unavailable_then_returns_the_result() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result = while_unavailable("test", None, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=3 => Err(unavailable()),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 4);
        // 100 + 200 + 400 + 800 ms of backoff before the fifth attempt.
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_and_the_deadline_end_it() {
        let calls = AtomicU32::new(0);
        let bug = while_unavailable("test", None, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(StoreError::Corrupt("x".into()))
        });
        assert!(matches!(bug.await, Err(StoreError::Corrupt(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a bug is not retried");
        let until = Instant::now() + Duration::from_millis(350);
        let late = while_unavailable("test", Some(until), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(unavailable())
        });
        assert!(late.await.unwrap_err().is_unavailable());
        // Attempts at 0, 100 and 300 ms; the next would start at 700 ms.
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
