//! Throwaway PostgreSQL databases for tests and the benchmark: each caller
//! gets a database of its own on a shared server, so runs never see each
//! other's rows.

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use super::StoreError;

/// Create a fresh, uniquely named database on the server `base_url` points
/// at, and return the URL that selects it. `base_url` names any database the
/// user may connect to (e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
pub async fn scratch_database(base_url: &str, prefix: &str) -> Result<String, StoreError> {
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
    Ok(with_database(base_url, &name))
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
    use super::with_database;

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
