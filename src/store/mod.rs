//! Durable state: an embedded SQLite database (sqlx), migrations compiled in.
//!
//! Functions that must share a transaction take `&mut SqliteConnection`, so
//! a state change and the outbox rows it causes commit together (see
//! `lifecycle`, their one caller).

mod transfers;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool, Transaction};

pub use transfers::{ListPage, NewTransfer, Registered, fetch, finish, record_upstream, register};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// The disk is full or failing (SQLITE_FULL, SQLITE_IOERR): a condition
    /// of the machine that passes, not a bug, so the API answers 503.
    #[error("storage unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_storage_fault(&e) {
            Self::Unavailable(e)
        } else {
            Self::Db(e)
        }
    }
}

impl StoreError {
    /// True while the disk cannot take writes; callers retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// SQLite's primary result codes for a full or failing disk (the low byte of
/// the extended code sqlx reports): <https://sqlite.org/rescode.html>.
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;

/// Whether `e` is a storage fault rather than a query or data problem.
pub fn is_storage_fault(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    let primary = db
        .code()
        .and_then(|code| code.parse::<i64>().ok())
        .map(|code| code & 0xff);
    matches!(primary, Some(SQLITE_IOERR | SQLITE_FULL))
}

pub type Tx = Transaction<'static, Sqlite>;

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating file and directory if missing) and migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            // WAL lets the API read while the tracker writes; FULL makes every
            // committed state change and outbox row survive a power loss.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = Path::new(options.get_filename()).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .after_release(|conn, _| Box::pin(reusable(conn)))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock up front:
    /// a deferred transaction that reads first cannot upgrade once another
    /// writer committed (SQLITE_BUSY_SNAPSHOT, which busy_timeout cannot wait
    /// out), while an immediate one simply waits its turn.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Decide whether a connection going back to the pool can be reused.
///
/// A transaction dropped without COMMIT or ROLLBACK (an error path's `?`, or
/// a COMMIT that failed) queues a ROLLBACK on the connection; the ping waits
/// for it. When SQLite already rolled the transaction back itself (it does on
/// SQLITE_FULL and SQLITE_IOERR), that ROLLBACK fails and sqlx still counts
/// the transaction as open, so every later `BEGIN` on the connection would
/// fail. Such a connection is closed instead; the pool opens a fresh one.
async fn reusable(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
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
