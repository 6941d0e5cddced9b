//! The one clock: wall time as the bridge stores and sends it.
//!
//! Events, the store and the upstream all speak RFC 3339 in UTC; the outbox
//! schedules in Unix milliseconds. Every conversion lives here.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Now, RFC 3339 in UTC (what events and the store carry).
pub fn now_rfc3339() -> String {
    format_rfc3339(now())
}

pub fn format_rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// RFC 3339 text, as the upstream and the store write it.
pub fn parse_rfc3339(raw: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(raw, &Rfc3339).ok()
}

/// Now, Unix milliseconds (the outbox's due times and leases).
pub fn now_unix_ms() -> i64 {
    (now().unix_timestamp_nanos() / 1_000_000) as i64
}
