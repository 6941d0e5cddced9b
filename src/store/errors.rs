//! The store's errors, and which of them are a passing condition of the
//! machine (a full disk, a database that is restarting) rather than a bug.

use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// The disk is full or failing (SQLITE_FULL, SQLITE_IOERR), or
    /// PostgreSQL is out of resources or unreachable: a condition that
    /// passes, not a bug, so the API answers 503.
    #[error("storage unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store.url must start with sqlite: or postgres://")]
    Url,
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
    /// True while the database cannot take writes; callers retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// SQLite's primary result codes for a full or failing disk (the low byte of
/// the extended code sqlx reports): <https://sqlite.org/rescode.html>.
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;

/// PostgreSQL SQLSTATE classes that pass: connection exceptions (08),
/// insufficient resources (53, e.g. disk full) and operator intervention
/// (57, e.g. a restart): <https://www.postgresql.org/docs/current/errcodes-appendix.html>.
const PG_PASSING_CLASSES: [&str; 3] = ["08", "53", "57"];

/// Whether `e` is a storage fault rather than a query or data problem.
pub fn is_storage_fault(e: &sqlx::Error) -> bool {
    match e {
        // The database could not be reached in time: PostgreSQL down or
        // restarting, or every connection busy.
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                // A server or proxy may send an error without a SQLSTATE.
                let class = pg.code().get(..2).unwrap_or_default();
                return PG_PASSING_CLASSES.contains(&class);
            }
            if db.try_downcast_ref::<SqliteError>().is_some() {
                let primary = db
                    .code()
                    .and_then(|code| code.parse::<i64>().ok())
                    .map(|code| code & 0xff);
                return matches!(primary, Some(SQLITE_IOERR | SQLITE_FULL));
            }
            false
        }
        _ => false,
    }
}
