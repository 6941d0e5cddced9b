//! The cluster's clock: leases, outbox claims and due times follow the
//! database's clock (see `transfer::clock`), measured at every renewal.

use crate::store::Store;
use crate::transfer::clock::set_shared_offset;

/// A clock this far (or more) from the database's is worth a warning: NTP
/// keeps machines within milliseconds.
const WARN_MS: i64 = 1_000;

/// Measure this machine's clock against the database's and follow the
/// database's from now on. Called before the lease is written.
pub(super) async fn follow_database(store: &Store) {
    let offset = match store.clock_offset().await {
        Ok(Some(offset)) => offset,
        Ok(None) => return,
        // The renewal that follows meets the same outage and says so.
        Err(e) => return tracing::debug!(error = %e, "cannot read the database's clock"),
    };
    let before = set_shared_offset(offset);
    metrics::gauge!("bridge_clock_offset_seconds").set(offset as f64 / 1000.0);
    if worth_a_warning(before, offset) {
        tracing::warn!(
            offset_ms = offset,
            "this machine's clock is off the database's: leases, outbox claims and due times follow the database's"
        );
    }
}

/// Warn when the clock is a second or more off, once per move of a second
/// or more (not at every renewal).
fn worth_a_warning(before: i64, offset: i64) -> bool {
    offset.abs() >= WARN_MS && (offset - before).abs() >= WARN_MS
}

#[cfg(test)]
mod tests {
    use super::worth_a_warning;
    use crate::store::{Backend, testdb};

    /// On PostgreSQL (the same machine here) the reading is within a few
    /// milliseconds: in milliseconds, not seconds or microseconds. SQLite
    /// has nothing to agree with.
    #[tokio::test]
    async fn the_database_clock_is_read_in_milliseconds_on_postgres_only() {
        for db in testdb::each().await {
            let offset = db.store.clock_offset().await.unwrap();
            match db.backend() {
                Backend::Sqlite => assert_eq!(offset, None),
                Backend::Postgres => {
                    let offset = offset.expect("a reading");
                    assert!(offset.abs() < 100, "{offset} ms");
                }
            }
        }
    }

    #[test]
    fn a_clock_a_second_off_is_reported_once_per_move() {
        assert!(!worth_a_warning(0, 999));
        assert!(worth_a_warning(0, -30_000));
        assert!(!worth_a_warning(-30_000, -30_004), "the same skew again");
        assert!(worth_a_warning(-30_000, -28_000), "it moved");
        assert!(!worth_a_warning(30_000, 0), "back in step");
    }
}
