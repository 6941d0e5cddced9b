//! Stores for unit tests: one of each backend, each in a database of its own
//! (a temp SQLite file; a scratch database on the PostgreSQL server that
//! `DATABASE_URL` names). Without `DATABASE_URL` the tests fail and say so:
//! a store test never passes by skipping a backend.

use super::{Backend, NewTransfer, ScratchDatabase, Store};
use crate::transfer::TransferId;

/// Text that JSON escapes (quotes, backslashes, control characters, line
/// breaks) or that is not ASCII: what every statement that takes its rows as
/// one JSON array must give back as it was written.
pub const TRICKY: &str =
    "quote \" backslash \\ slash / tab \t ctrl \u{1} line\nbreak \u{2028} é 漢字 😀 \\u0041";

/// A SIP instruction with [`TRICKY`] in its text.
pub fn tricky_sip() -> crate::sip::SipInstruction {
    crate::sip::SipInstruction {
        method: crate::sip::Method::Refer,
        request_uri: "sip:agent@pbx.example.com".into(),
        headers: vec![("X-Note".into(), TRICKY.into())],
        message: format!("REFER sip:agent@pbx.example.com SIP/2.0\r\nX-Note: {TRICKY}\r\n\r\n"),
        dropped: vec![TRICKY.into()],
        target: "sip:agent@pbx.example.com".into(),
    }
}

/// A plain registration of `id`: no callback, metadata, upstream
/// resource or integration.
pub fn plain(id: &str) -> NewTransfer {
    NewTransfer {
        id: TransferId::parse(id).unwrap(),
        callback_url: None,
        metadata: Default::default(),
        request_json: "sha256:x".into(),
        upstream_status: None,
        upstream: None,
        integration: None,
        return_signal: None,
    }
}

/// A store and what keeps its database alive for the test: its SQLite
/// file's directory, or its PostgreSQL database, dropped when the test ends
/// (declared after the store, so they go after it).
pub struct TestStore {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    _database: Option<ScratchDatabase>,
}

impl TestStore {
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}

/// On SQLite, a mark on the store's one writer connection: a temporary
/// table lives and dies with its connection. [`writer_kept`] then says
/// whether the writer is still the connection it was. PostgreSQL's pool
/// holds sixteen, so there nothing is marked.
pub async fn mark_writer(store: &Store) {
    if store.backend() == Backend::Sqlite {
        let mut plain = store.writer().await.unwrap();
        sqlx::query("CREATE TEMP TABLE writer_mark (x INTEGER)")
            .execute(&mut plain)
            .await
            .unwrap();
    }
}

/// See [`mark_writer`]; always true on PostgreSQL.
pub async fn writer_kept(store: &Store) -> bool {
    if store.backend() != Backend::Sqlite {
        return true;
    }
    let mut plain = store.writer().await.unwrap();
    let mark = sqlx::query("SELECT count(*) FROM temp.writer_mark");
    mark.execute(&mut plain).await.is_ok()
}

/// The PostgreSQL server the tests use.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: the store tests run on PostgreSQL as well as SQLite; \
         point it at a server, e.g. postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// A database of the test's own on the server `DATABASE_URL` names, named
/// `tbt_<TEST_RUN_ID>_<uuid>` and dropped when it goes.
pub async fn scratch_database() -> ScratchDatabase {
    ScratchDatabase::for_test(&database_url())
        .await
        .unwrap_or_else(|e| panic!("cannot create a scratch database at DATABASE_URL: {e}"))
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    TestStore {
        store: Store::connect(&url).await.unwrap(),
        _dir: Some(dir),
        _database: None,
    }
}

pub async fn postgres() -> TestStore {
    let database = scratch_database().await;
    TestStore {
        store: Store::connect(database.url()).await.unwrap(),
        _dir: None,
        _database: Some(database),
    }
}

/// One store per backend, SQLite first.
pub async fn each() -> [TestStore; 2] {
    [sqlite().await, postgres().await]
}

/// A PostgreSQL store holding `n` TRACKING transfers with three actions
/// each, and no statistics on either table: autovacuum is off for them and
/// nothing ran ANALYZE, as in a new database or one that grew faster than
/// autovacuum analyses it. Ids are `plan<i>`, 1 to `n`.
pub async fn postgres_unanalysed(n: i64) -> TestStore {
    let db = postgres().await;
    let pool = db.store.pool();
    for sql in [
        "ALTER TABLE transfers SET (autovacuum_enabled = false)",
        "ALTER TABLE actions SET (autovacuum_enabled = false)",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO transfers (id, state, request_json, created_at, updated_at, upstream_json) \
         SELECT 'plan' || g, 'TRACKING', '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', \
         '{}' FROM generate_series(1, $1) AS g",
    )
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO actions (id, transfer_id, kind, target_json, body, status, next_attempt_at, \
         created_at, name) SELECT t.id || '.' || a.name, t.id, 'amqp', '{}', repeat('b', 800), \
         'delivered', 0, t.created_at, a.name FROM transfers AS t, \
         (VALUES ('tracking'), ('agent'), ('completed')) AS a(name)",
    )
    .execute(pool)
    .await
    .unwrap();
    db
}

/// Run `check` twice on `store`'s database: before the planner has any
/// statistics, then after `ANALYZE` (as autovacuum would gather them in
/// time); `check` is told which.
pub async fn without_and_with_statistics(store: &Store, mut check: impl AsyncFnMut(&'static str)) {
    check("no statistics").await;
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
    check("analysed").await;
}

/// The plan the store's backend makes for `sql` with `binds` (all text; on
/// SQLite, parameters left out are NULL), one line per step: PostgreSQL's
/// `EXPLAIN`, SQLite's `EXPLAIN QUERY PLAN` (its `detail` column).
pub async fn plan(store: &Store, sql: &str, binds: &[&str]) -> String {
    let (explain, column) = match store.backend() {
        Backend::Postgres => (format!("EXPLAIN {sql}"), 0),
        Backend::Sqlite => (format!("EXPLAIN QUERY PLAN {sql}"), 3),
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
    for bind in binds {
        query = query.bind(*bind);
    }
    let rows = query.fetch_all(store.pool()).await.unwrap();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, column))
        .collect();
    lines.join("\n")
}
