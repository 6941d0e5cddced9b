//! A write transaction as plain statements on a pooled connection.
//!
//! Not sqlx's `Transaction`: on SQLite its `BEGIN`, `COMMIT` and `ROLLBACK`
//! are rendezvous hand-offs (sqlx-sqlite's worker thread sends the result
//! and then blocks until the async side acknowledges it), so each one puts
//! the worker thread to sleep and wakes it twice, where a statement wakes it
//! once. With two transactions per signalled transfer that was a quarter of
//! the worker thread's sleeps. Here `BEGIN` and `COMMIT` are statements like
//! any other; on PostgreSQL both ways are the same simple queries.
//!
//! sqlx does not know these transactions, so this type owns the clean-up a
//! `Transaction` would do: dropped before `commit` (an early return, an
//! error's `?`, a cancelled future), it rolls back on a task of its own
//! before the connection goes back to the pool, and closes the connection
//! instead when even that fails.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};

use super::StoreError;

pub struct Tx {
    /// `None` once committed or handed to the rollback task.
    conn: Option<PoolConnection<Any>>,
}

impl Tx {
    /// `begin` is the backend's `BEGIN` statement.
    pub(super) async fn begin(pool: &AnyPool, begin: &'static str) -> Result<Self, StoreError> {
        let mut tx = Self {
            conn: Some(pool.acquire().await?),
        };
        // Even a BEGIN that fails (or is cancelled) leaves the connection
        // to `Drop`, which rolls back whatever it may have opened.
        tx.execute(begin).await?;
        Ok(tx)
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.execute("COMMIT").await?;
        // Committed: the connection goes back to the pool as it is.
        self.conn.take();
        Ok(())
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn
            .as_ref()
            .expect("a live transaction has its connection")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn
            .as_mut()
            .expect("a live transaction has its connection")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to roll back on: closing the connection rolls back.
            conn.close_on_drop();
            return;
        };
        runtime.spawn(async move {
            // SQLite has already rolled back by itself after SQLITE_FULL or
            // SQLITE_IOERR, and then ROLLBACK fails; any failure closes the
            // connection, so none goes back to the pool inside a transaction.
            if let Err(e) = conn.execute("ROLLBACK").await {
                tracing::debug!(error = %e, "rollback failed; closing the store connection");
                conn.close_on_drop();
            }
        });
    }
}

#[cfg(test)]
#[path = "tx_tests.rs"]
mod tests;
