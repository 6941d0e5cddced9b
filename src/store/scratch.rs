//! Throwaway PostgreSQL databases for tests and the benchmarks: each caller
//! gets a database of its own on a shared server, so runs never see each
//! other's rows, and the database goes with its guard, so runs leave none
//! behind.

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use super::StoreError;

/// A fresh, uniquely named database (`<prefix>_<uuid>`) on the server
/// `base_url` points at, dropped when this goes (`WITH (FORCE)`, so
/// connections still open do not keep it): a test or a benchmark leaves
/// nothing on the server, also when it fails. `base_url` names any database
/// the user may connect to (e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
pub struct ScratchDatabase {
    url: String,
    /// The server and the name, until the database is dropped.
    server: Option<(String, String)>,
}

impl ScratchDatabase {
    pub async fn create(base_url: &str, prefix: &str) -> Result<Self, StoreError> {
        let mut admin = PgConnection::connect(base_url).await?;
        let name = format!(
            "{}_{}",
            prefix
                .to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            uuid::Uuid::new_v4().simple()
        );
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await?;
        admin.close().await?;
        Ok(Self {
            url: with_database(base_url, &name),
            server: Some((base_url.to_owned(), name)),
        })
    }

    /// A database for one test, named `tbt_<TEST_RUN_ID>_<uuid>`: the
    /// prefix `.ci/run` sweeps afterwards, for a test killed before its
    /// guard went.
    pub async fn for_test(base_url: &str) -> Result<Self, StoreError> {
        let run = std::env::var("TEST_RUN_ID").unwrap_or_default();
        Self::create(base_url, &format!("tbt_{run}")).await
    }

    /// The URL that selects the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drop it now, from async code, and say whether that worked.
    pub async fn drop_now(mut self) -> Result<(), StoreError> {
        match self.server.take() {
            Some((base_url, name)) => drop_database(&base_url, &name).await,
            None => Ok(()),
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let Some((base_url, name)) = self.server.take() else {
            return;
        };
        // Drop cannot await, and blocking the caller's runtime on its own
        // future would stall it: drop from a thread with a runtime of its own.
        let dropping = name.clone();
        let result = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            // The timer needs the runtime: made inside it.
            let drop = async {
                tokio::time::timeout(DROP_TIMEOUT, drop_database(&base_url, &dropping)).await
            };
            match runtime.block_on(drop) {
                Ok(done) => done.map_err(|e| e.to_string()),
                Err(_) => Err(format!("timed out after {DROP_TIMEOUT:?}")),
            }
        })
        .join()
        .unwrap_or_else(|_| Err("the thread dropping it panicked".into()));
        if let Err(e) = result {
            tracing::warn!(database = %name, error = %e, "scratch database not dropped");
        }
    }
}

/// How long a [`ScratchDatabase`] going out of scope waits for the server.
const DROP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

async fn drop_database(base_url: &str, name: &str) -> Result<(), StoreError> {
    let mut admin = PgConnection::connect(base_url).await?;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    admin.execute(AssertSqlSafe(sql)).await?;
    admin.close().await?;
    Ok(())
}

/// `base_url` with its path (the database name) replaced by `name`.
fn with_database(base_url: &str, name: &str) -> String {
    let (head, query) = base_url
        .split_once('?')
        .map_or((base_url, None), |(h, q)| (h, Some(q)));
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let host_end = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &head[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdb::scratch_database;

    /// Whether the server `DATABASE_URL` names holds a database `name`.
    async fn exists(name: &str) -> bool {
        let mut admin = PgConnection::connect(&crate::store::testdb::database_url())
            .await
            .unwrap();
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        found == 1
    }

    /// A scratch database is gone once its guard goes, with a connection to
    /// it still open, or once it is dropped from async code.
    #[tokio::test]
    async fn a_scratch_database_leaves_nothing_on_the_server() {
        for explicit in [false, true] {
            let database = scratch_database().await;
            let name = database.server.clone().unwrap().1;
            assert!(exists(&name).await, "{name} was not created");
            let mut open = PgConnection::connect(database.url()).await.unwrap();
            sqlx::query("CREATE TABLE t (x int)")
                .execute(&mut open)
                .await
                .unwrap();
            if explicit {
                database.drop_now().await.unwrap();
            } else {
                drop(database);
            }
            assert!(!exists(&name).await, "{name} is still there");
        }
    }

    #[test]
    fn replaces_only_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "t1"),
            "postgresql://u:p@h/t1?sslmode=disable"
        );
    }
}
