//! The one clock: wall time as the bridge stores and sends it.
//!
//! Events, the store and the upstream all speak RFC 3339 in UTC; the outbox
//! schedules in Unix milliseconds. Every conversion lives here.
//!
//! The Unix milliseconds are the cluster's clock: leases, outbox claims and
//! due times are written by one instance and compared by another, so on
//! PostgreSQL they follow the database server's clock (the cluster measures
//! this machine's offset from it at every lease renewal). One machine's
//! clock off by more than a lease would otherwise have the others adopt its
//! transfers and void its claims while it still polls and delivers them.
//! RFC 3339 times stay local: they are compared with the upstream's clock,
//! a webhook receiver's or a log's, never with another instance's.

use std::sync::atomic::{AtomicI64, Ordering};

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

/// The database's clock minus this machine's, in milliseconds: 0 until
/// measured, and always on SQLite (one instance, nothing to agree with).
static SHARED_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Now, Unix milliseconds on the cluster's clock (the outbox's due times,
/// claims and leases).
pub fn now_unix_ms() -> i64 {
    local_unix_ms() + SHARED_OFFSET_MS.load(Ordering::Relaxed)
}

/// Now, Unix milliseconds on this machine's clock.
pub fn local_unix_ms() -> i64 {
    (now().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Follow the database's clock from now on: it is `offset_ms` ahead of
/// this machine's. Returns the offset it replaces.
pub fn set_shared_offset(offset_ms: i64) -> i64 {
    SHARED_OFFSET_MS.swap(offset_ms, Ordering::Relaxed)
}
