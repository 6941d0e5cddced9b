//! The store's connection handle, and its write transactions.
//!
//! Transactions here are the store's own, not sqlx's: on SQLite sqlx's
//! `BEGIN` and `COMMIT` are each a round trip to the connection's worker
//! thread that also blocks that thread until the runtime has taken the
//! answer (a rendezvous), and every statement is one more round trip, two
//! wake-ups of threads that, on a small VM, often sit on different vCPUs.
//! Here the `BEGIN IMMEDIATE` travels in front of the transaction's first
//! statement, as one multi-statement query (SQLite runs them in order in
//! one hand-off, and stops at the first error). So do the statements whose
//! answers the caller does not wait for ([`Conn::with_next`]): they go in
//! front of the next statement, or with the COMMIT. A registration is one
//! hand-off; an ending, which must read its transfer first, two.
//! PostgreSQL's extended protocol takes one statement per query, so there
//! the transactions stay sqlx's, and a queued statement runs at once.
//!
//! A SQLite transaction dropped while open (an error's `?`) closes its
//! connection rather than returning it to the pool: closing rolls back,
//! and no later user can find itself inside it (sqlx's, on PostgreSQL,
//! queue a ROLLBACK as they always did). Paths that end a transaction on
//! purpose without a commit call [`Conn::rollback`], and so does a failed
//! COMMIT, and [`Conn::commit_if`] for a transaction whose statements
//! failed: a connection closed is a new one opened, its statements prepared
//! again, and a group commit that took a repeat registration for new (see
//! `lifecycle::group`) paid that on every repeat.

mod wrap;

use futures::future::{self, BoxFuture, FutureExt};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Either, Execute, Executor, SqlStr, Transaction};

use super::{Backend, StoreError};
use wrap::{Ahead, Unwrapped, Wrap, Wrapped};

type Step = Either<AnyQueryResult, AnyRow>;

/// A connection of either backend: what store functions take. Inside a
/// transaction (see [`Conn::begin`]) or not (see [`Conn::plain`]).
#[derive(Debug)]
pub struct Conn {
    inner: Inner,
    state: State,
    /// SQLite: statements that go in front of the next one.
    ahead: Vec<Ahead>,
}

#[derive(Debug)]
enum Inner {
    /// Outside a transaction, or in one of the store's own (SQLite).
    Pooled(PoolConnection<Any>),
    /// PostgreSQL: sqlx's transaction, as before the store had its own.
    Sqlx(Transaction<'static, Any>),
    /// Ended (committed or rolled back).
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No transaction of the store's own: each statement commits on its own,
    /// or sqlx's transaction holds them.
    Plain,
    /// SQLite: `BEGIN IMMEDIATE` goes with the next statement.
    Due,
    /// Open, or may be (the statement that carried the BEGIN failed).
    Open,
}

impl Conn {
    /// A connection used outside any transaction: each statement commits
    /// on its own.
    pub fn plain(conn: PoolConnection<Any>) -> Self {
        Self::new(Inner::Pooled(conn), State::Plain)
    }

    fn new(inner: Inner, state: State) -> Self {
        Self {
            inner,
            state,
            ahead: Vec::new(),
        }
    }

    /// Run `query` with the next statement: on SQLite inside a transaction
    /// of the store's own, it goes in front of it, in the same hand-off to
    /// the connection's worker thread (or with the COMMIT, when no statement
    /// comes), and its results are not seen; an error in it fails the
    /// statement it went with. Elsewhere it runs now. Its result when it
    /// ran now. For a statement whose result the caller can do without:
    /// SQL can check what it needs to (see `store::ending`).
    pub async fn with_next<'q>(
        &mut self,
        query: impl Execute<'q, Any> + 'q,
    ) -> Result<Option<AnyQueryResult>, StoreError> {
        if !self.queues() {
            return Ok(Some(self.execute(query).await?));
        }
        self.ahead.push(Ahead::new(query)?);
        Ok(None)
    }

    /// Whether [`Conn::with_next`] queues a statement rather than running it
    /// now: on SQLite, in a transaction of the store's own.
    pub fn queues(&self) -> bool {
        matches!(
            (&self.inner, self.state),
            (Inner::Pooled(_), State::Due | State::Open)
        )
    }

    /// Start a write transaction. On SQLite `BEGIN IMMEDIATE` takes the
    /// write lock up front, with the first statement: a deferred
    /// transaction that reads first cannot upgrade once another writer
    /// committed (SQLITE_BUSY_SNAPSHOT, which busy_timeout cannot wait
    /// out), while an immediate one simply waits its turn.
    pub(super) async fn begin(pool: &AnyPool, backend: Backend) -> Result<Self, StoreError> {
        Ok(match backend {
            Backend::Sqlite => Self::new(Inner::Pooled(pool.acquire().await?), State::Due),
            Backend::Postgres => Self::new(Inner::Sqlx(pool.begin().await?), State::Plain),
        })
    }

    /// Commit what the transaction wrote, with the statements still queued
    /// (see [`Conn::with_next`]). A transaction that ran no statement has
    /// nothing to commit. When the commit fails (a queued statement's check,
    /// a full disk), the transaction is rolled back on its connection.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.sqlx() {
            return Ok(tx.commit().await?);
        }
        let committed = match self.ahead.is_empty() {
            true => self.end("COMMIT").await,
            // The statements still queued go in front of the COMMIT (and the
            // BEGIN in front of them, when nothing was sent yet).
            false => self.execute("COMMIT").await.map(drop).map_err(Into::into),
        };
        match committed {
            Ok(()) => self.state = State::Plain,
            Err(_) => self.abandon().await,
        }
        committed
    }

    /// Commit when `written` holds what the transaction's statements gave,
    /// else roll back: for a transaction whose failure is an answer (a
    /// group that took its changes as given, see `lifecycle::group`), so
    /// the connection goes on, statements prepared, rather than closing.
    pub async fn commit_if<T>(self, written: Result<T, StoreError>) -> Result<T, StoreError> {
        match written {
            Ok(written) => self.commit().await.map(|()| written),
            Err(e) => {
                // Its own failure closes the connection (see `Drop`).
                let _ = self.rollback().await;
                Err(e)
            }
        }
    }

    /// End the transaction without its writes, or those of the statements
    /// still queued.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.sqlx() {
            return Ok(tx.rollback().await?);
        }
        self.ahead.clear();
        self.end("ROLLBACK").await
    }

    /// sqlx's transaction, taken out to end it.
    fn sqlx(&mut self) -> Option<Transaction<'static, Any>> {
        match std::mem::replace(&mut self.inner, Inner::Gone) {
            Inner::Sqlx(tx) => Some(tx),
            other => {
                self.inner = other;
                None
            }
        }
    }

    /// After a failed statement or COMMIT: a ROLLBACK on the same
    /// connection. Where SQLite already ended the transaction itself
    /// (SQLITE_FULL, SQLITE_IOERR) the ROLLBACK fails, the state stays open,
    /// and the drop closes the connection as before.
    async fn abandon(&mut self) {
        self.ahead.clear();
        let _ = self.end("ROLLBACK").await;
    }

    /// The end of a transaction of the store's own, with nothing queued.
    async fn end(&mut self, sql: &'static str) -> Result<(), StoreError> {
        if let (State::Open, Inner::Pooled(conn)) = (self.state, &mut self.inner) {
            // On failure the state stays open: the drop closes the connection.
            conn.execute(sql).await?;
        }
        self.state = State::Plain;
        Ok(())
    }

    fn raw(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Pooled(conn) => conn,
            Inner::Sqlx(tx) => tx,
            Inner::Gone => unreachable!("a connection is not used after its transaction ends"),
        }
    }

    /// Whether the next statement goes with something besides itself.
    fn wraps_next(&self) -> bool {
        self.state == State::Due || !self.ahead.is_empty()
    }

    /// What goes in front of the next statement: the BEGIN, and the
    /// statements queued.
    fn wrapping(&mut self) -> Wrap {
        let begin = (self.state == State::Due).then_some("BEGIN IMMEDIATE");
        if begin.is_some() {
            self.state = State::Open;
        }
        let ahead = std::mem::take(&mut self.ahead);
        Wrap { begin, ahead }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let (State::Open, Inner::Pooled(conn)) = (self.state, &mut self.inner) {
            conn.close_on_drop();
        }
    }
}

impl<'c> Executor<'c> for &'c mut Conn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Step, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let wrap = self.wrapping();
        let in_front = wrap.in_front();
        if in_front == 0 {
            return self.raw().fetch_many(query);
        }
        let query = match Wrapped::new(wrap, query) {
            Ok(query) => query,
            Err(e) => return stream::once(future::ready(Err(e))).boxed(),
        };
        Unwrapped::new(self.raw().fetch_many(query), in_front).boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if !self.wraps_next() {
            return self.raw().fetch_optional(query);
        }
        // Not the driver's `fetch_optional`: on SQLite it looks at the first
        // result only (here the BEGIN's or a queued statement's).
        let steps = self.fetch_many(query);
        async move {
            let rows = steps.try_filter_map(|step| future::ready(Ok(step.right())));
            let mut rows = std::pin::pin!(rows);
            let first = rows.try_next().await?;
            while rows.try_next().await?.is_some() {}
            Ok(first)
        }
        .boxed()
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.raw().prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.raw().describe(sql)
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
