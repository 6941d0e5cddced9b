//! `Retry-After` (RFC 9110 §10.2.3), as the upstream and webhook receivers
//! send it: one parser for both.

use std::time::{Duration, SystemTime};

/// A `Retry-After` value as of `now`: delay-seconds or an HTTP-date
/// (IMF-fixdate and the obsolete forms). A date in the past means "now"
/// (zero); a digit string too long for a `u64` saturates (each caller caps
/// what it takes); anything else is `None`.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}
