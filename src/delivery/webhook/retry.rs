//! Retry schedule and response classification.
//!
//! Follows the Standard Webhooks spec, "Deliverability and reliability"
//! (a multi-hour schedule with random jitter) and "Delivery success and
//! failure" (2xx success, 3xx failure, 410 stop, honour `Retry-After`).

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use crate::backoff::jitter;

/// Response header a receiver may set to ask us to give up on a message.
/// A project convention (not part of Standard Webhooks), in the spirit of
/// 410 Gone but scoped to one message rather than the endpoint.
pub const HEADER_DELIVERY: &str = "webhook-delivery";
/// The `webhook-delivery` value that stops retries of this message.
pub const ABORT_MESSAGE: &str = "abort-message";

/// When to attempt delivery, and how much to randomise it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay before attempt 1, 2, ... (`["0s", "5s", "5m"]` in TOML). Its
    /// length is the maximum number of attempts.
    #[serde(with = "duration_list")]
    pub schedule: Vec<Duration>,
    /// Random spread as a fraction of each delay (0.2 = ±20%), clamped to 0..=1.
    pub jitter: f64,
    /// Upper bound on a receiver's `Retry-After` hint.
    #[serde(with = "crate::settings::duration")]
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// The spec's example schedule, cut to eight attempts (~33h in total).
    fn default() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        let secs = [
            0,
            5,
            5 * MIN,
            30 * MIN,
            2 * HOUR,
            5 * HOUR,
            10 * HOUR,
            10 * HOUR,
        ];
        Self {
            schedule: secs.into_iter().map(Duration::from_secs).collect(),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(HOUR),
        }
    }
}

impl RetryPolicy {
    /// Total number of attempts the schedule allows.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.schedule.len()).unwrap_or(u32::MAX)
    }

    /// Delay before the 1-based `attempt`, or `None` once the schedule is
    /// exhausted (attempt 0 is treated as 1).
    ///
    /// The scheduled delay gets ±`jitter` (never negative) so that endpoints
    /// failing together do not get retried in lockstep. A `Retry-After` hint
    /// (RFC 9110 §10.2.3: how long to wait "before making a follow-up
    /// request") is honoured as a minimum, capped at `max_retry_after` so a
    /// hostile or buggy receiver cannot park a message indefinitely; the
    /// result is `max(jittered schedule, min(hint, max_retry_after))`.
    pub fn delay_before(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(attempt.max(1) - 1).ok()?;
        let scheduled = jitter(*self.schedule.get(index)?, self.jitter);
        let hint = retry_after.map_or(Duration::ZERO, |h| h.min(self.max_retry_after));
        Some(scheduled.max(hint))
    }
}

/// What to do with a message after one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver acknowledged it (2xx).
    Delivered,
    /// A failure worth retrying per the schedule.
    Retry {
        /// The receiver's `Retry-After`, when it sent one with 429/503.
        retry_after: Option<Duration>,
        /// Human-readable cause for logs and delivery records.
        reason: String,
    },
    /// A permanent failure: do not retry this message.
    Stop {
        /// Human-readable cause.
        reason: String,
    },
}

/// Classifies a response per the spec's suggested status handling.
///
/// 2xx → `Delivered`; `webhook-delivery: abort-message` on any non-2xx →
/// `Stop`; 410 → `Stop`; 3xx → `Retry` (redirects are never followed: the
/// spec treats them as failures, and following one would let a receiver
/// bounce us to an internal address); 429/503 → `Retry` with `Retry-After`;
/// everything else → `Retry`.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Verdict {
    // A 2xx was processed by the receiver, whatever else it says.
    if status.is_success() {
        return Verdict::Delivered;
    }
    if asks_to_abort(headers) {
        return Verdict::Stop {
            reason: format!("HTTP {status} with {HEADER_DELIVERY}: {ABORT_MESSAGE}"),
        };
    }
    if status == StatusCode::GONE {
        return Verdict::Stop {
            reason: format!("HTTP {status}: endpoint no longer accepts webhooks"),
        };
    }
    let (retry_after, reason) = if status.is_redirection() {
        (
            None,
            format!("HTTP {status}: redirect not followed; update the URL"),
        )
    } else if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        let hint = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        (hint, format!("HTTP {status}"))
    } else {
        (None, format!("HTTP {status}"))
    };
    Verdict::Retry {
        retry_after,
        reason,
    }
}

fn asks_to_abort(headers: &HeaderMap) -> bool {
    headers
        .get_all(HEADER_DELIVERY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.trim().eq_ignore_ascii_case(ABORT_MESSAGE))
}

pub use crate::retry_after::parse as parse_retry_after;

/// serde adapter: `Vec<Duration>` as a list of humantime strings, since
/// `humantime_serde` only handles single (and optional) values.
mod duration_list {
    use std::time::Duration;

    use humantime_serde::Serde;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(Serde::from))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let list = Vec::<Serde<Duration>>::deserialize(d)?;
        Ok(list.into_iter().map(Serde::into_inner).collect())
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
