//! Durable state: an embedded SQLite database (sqlx), migrations compiled in.
//!
//! Functions that must share a transaction take `&mut SqliteConnection`, so
//! a state change and the outbox rows it causes commit together (see
//! `tracker::poll` and `api::transfers`).

mod transfers;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub use transfers::{ListPage, NewTransfer, Registered, fetch, finish, record_upstream, register};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
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

    /// Readiness: the database answers and accepts a write.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE transfers SET seq = seq WHERE 0")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn now_text() -> String {
    crate::transfer::clock::now_rfc3339()
}

pub(crate) fn parse_time(raw: &str) -> Result<time::OffsetDateTime, StoreError> {
    crate::transfer::clock::parse_rfc3339(raw)
        .ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {raw:?}")))
}
