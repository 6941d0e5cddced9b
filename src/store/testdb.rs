//! Stores for unit tests: one of each backend, each in a database of its own
//! (a temp SQLite file; a scratch database on the PostgreSQL server that
//! `DATABASE_URL` names). Without `DATABASE_URL` the tests fail and say so:
//! a store test never passes by skipping a backend.

use super::{Backend, NewTransfer, Store, scratch_database};
use crate::transfer::TransferId;

/// Text that JSON escapes (quotes, backslashes, control characters, line
/// breaks) or that is not ASCII: what every statement that takes its rows as
/// one JSON array must give back as it was written.
pub const TRICKY: &str =
    "quote \" backslash \\ slash / tab \t ctrl \u{1} line\nbreak \u{2028} é 漢字 😀 \\u0041";

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

/// A store and what keeps its database alive for the test.
pub struct TestStore {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}

/// The PostgreSQL server the tests use.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: the store tests run on PostgreSQL as well as SQLite; \
         point it at a server, e.g. postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// Scratch database names start with this, so a run can drop its own.
pub fn scratch_prefix() -> String {
    format!("tbt_{}", std::env::var("TEST_RUN_ID").unwrap_or_default())
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    TestStore {
        store: Store::connect(&url).await.unwrap(),
        _dir: Some(dir),
    }
}

pub async fn postgres() -> TestStore {
    let url = scratch_database(&database_url(), &scratch_prefix())
        .await
        .unwrap_or_else(|e| panic!("cannot create a scratch database at DATABASE_URL: {e}"));
    TestStore {
        store: Store::connect(&url).await.unwrap(),
        _dir: None,
    }
}

/// One store per backend, SQLite first.
pub async fn each() -> [TestStore; 2] {
    [sqlite().await, postgres().await]
}
