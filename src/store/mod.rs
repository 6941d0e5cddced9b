//! Durable state through sqlx's `Any` driver: an embedded SQLite file by
//! default, PostgreSQL when several instances share one database. One SQL
//! text serves both wherever the dialects agree; [`Backend`] picks the few
//! statements that differ. Migrations of the same meaning live per backend in
//! `migrations/sqlite` and `migrations/postgres`, compiled in.
//!
//! Functions that must share a transaction take `&mut Conn`, so a state
//! change and the outbox rows it causes commit together (see `lifecycle`,
//! their one caller).

mod batch;
mod budget;
mod conn;
mod ending;
mod errors;
mod instances;
mod outage;
mod registration;
mod scratch;
mod seen;
#[cfg(test)]
pub(crate) mod testdb;
mod transfers;

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

pub(crate) use batch::text_of;
pub use batch::{MAX_SQLITE_BYTES, Span, blob_batches, counted_json_arrays, json_arrays};
pub use budget::Reserved;
pub use conn::Conn;
pub use ending::{Ending, end_many, fetch_many};
pub use errors::{StoreError, is_storage_fault};
pub use instances::{
    Adopted, CHANGED, Renewal, SIGNAL, adopt_all, adopt_from, adopt_one, notify, notify_many,
    owned_by, parse_signal, signal_payload,
};
pub use outage::while_unavailable;
pub use registration::{
    NewTransfer, Registered, insert_many, insert_taken_as_new, register, repeat, repeats,
};
pub use scratch::ScratchDatabase;
pub use seen::{Upstream, record_upstream};
pub use transfers::{ListPage, fetch};
/// For SQL that reads a transfer beside rows of another module's table.
pub(crate) use transfers::{
    as_json_array, columns, from_row as transfer_from_row, read_json_array, select,
};

/// A row of either backend.
pub type Row = sqlx::any::AnyRow;
pub type Pool = AnyPool;

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a `store.url` names, if any.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// SQLite settings for every connection. WAL lets the API read while the
/// tracker writes; FULL makes every committed state change and outbox row
/// survive a power loss; writers queue for up to 10 s instead of failing.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

/// SQLite reader connections (each with its own worker thread, idle unless
/// used). A read holds its connection longer than the statement takes:
/// sqlx gives a connection back to the pool from a task it spawns when the
/// read is done, and under load that task waits its turn on the runtime
/// behind every other. In a burst of 10,000 `/returned` signals (64 in
/// flight, each reading its transfer), 8 connections were the bottleneck:
/// the last signal was answered at 3.4-3.8 s; with 32, at 2.5-3.0 s (three
/// alternating pairs; README, "Throughput and CPU"). WAL lets them all read
/// beside the one writer. Since then the single-transfer reads share
/// statements (`outbox::ViewReads`, at most 4 at once); the other reads
/// (a transfer alone, listings, readiness) still take a connection each.
const SQLITE_READERS: u32 = 32;

#[derive(Debug, Clone)]
pub struct Store {
    /// Every write goes through this pool. On SQLite it holds one
    /// connection: SQLite has one writer at a time anyway, and a second
    /// connection that asks for the lock is put to sleep by SQLite's busy
    /// handler in steps of up to 100 ms, while a task waiting for the pool
    /// is woken the moment the connection is free.
    pool: AnyPool,
    /// Reads that need no transaction (the API's views and listings); on
    /// SQLite separate connections, which WAL lets read beside the writer.
    reader: AnyPool,
    backend: Backend,
}

impl Store {
    /// Open and migrate. A SQLite file (and its directory) is created when
    /// missing; a PostgreSQL database must exist.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or(StoreError::Url)?;
        // No ping before each acquire on SQLite: a local file does not drop
        // connections, and on SQLite every ping is a round trip to the
        // connection's worker thread (two per API read, in a burst).
        let ping = backend == Backend::Postgres;
        let options = move || {
            AnyPoolOptions::new()
                .test_before_acquire(ping)
                .after_release(|conn, _| Box::pin(reusable(conn)))
        };
        let (pool, reader) = match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
                let sqlite = |max| {
                    options().max_connections(max).after_connect(|conn, _| {
                        Box::pin(async { conn.execute(SQLITE_PRAGMAS).await.map(drop) })
                    })
                };
                let pool = sqlite(1).connect(&url).await?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                (pool, sqlite(SQLITE_READERS).connect(&url).await?)
            }
            Backend::Postgres => {
                let pool = options().max_connections(16).connect(url).await?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            pool,
            reader,
            backend,
        })
    }

    /// For reads outside a transaction.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A write transaction (see [`Conn::begin`]).
    pub async fn begin(&self) -> Result<Conn, StoreError> {
        Conn::begin(&self.pool, self.backend).await
    }

    /// The write connection outside a transaction: each statement commits
    /// on its own.
    pub async fn writer(&self) -> Result<Conn, StoreError> {
        Ok(Conn::plain(self.pool.acquire().await?))
    }

    /// Readiness: the database answers and a one-row write commits. A write
    /// that is rolled back never touches the disk, so only a real commit
    /// notices a full disk, and notices when it has room again.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO store_probe (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(now_text())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.reader.close().await;
    }
}

/// The SQLite URL with `mode=rwc` (create when missing) unless it names a
/// mode, after creating the file's directory.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
        && path != ":memory:"
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(match query {
        q if q.split('&').any(|pair| pair.starts_with("mode=")) => url.to_owned(),
        "" => format!("{url}?mode=rwc"),
        _ => format!("{url}&mode=rwc"),
    })
}

/// Decide whether a connection going back to the pool can be reused.
///
/// The store's own transactions (SQLite's) close their connection when
/// dropped open (see [`Conn`]); this guards sqlx's (PostgreSQL's, and the
/// migrations'). A sqlx transaction dropped without COMMIT or ROLLBACK (an
/// error path's `?`, or a COMMIT that failed) queues a ROLLBACK on the
/// connection; the ping waits for it. When the database already rolled the
/// transaction back itself (SQLite does on SQLITE_FULL and SQLITE_IOERR),
/// that ROLLBACK fails and sqlx still counts the transaction as open, so
/// every later `BEGIN` on the connection would fail. Such a connection is
/// closed instead; the pool opens a fresh one.
async fn reusable(conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    // No transaction open, so no ROLLBACK queued: nothing to wait for (and
    // on SQLite no round trip to the connection's worker thread).
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("closing a store connection left inside a failed transaction");
        return Ok(false);
    }
    Ok(true)
}

pub(crate) fn now_text() -> String {
    crate::transfer::clock::now_rfc3339()
}

pub(crate) fn parse_time(raw: &str) -> Result<time::OffsetDateTime, StoreError> {
    crate::transfer::clock::parse_rfc3339(raw)
        .ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {raw:?}")))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "plan_tests.rs"]
mod plan_tests;
