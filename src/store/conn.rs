//! The store's connection handle, and its write transactions.
//!
//! Transactions here are the store's own, not sqlx's: on SQLite sqlx's
//! `BEGIN` and `COMMIT` are each a round trip to the connection's worker
//! thread that also blocks that thread until the runtime has taken the
//! answer (a rendezvous), and every statement is one more round trip. A
//! signalled transfer commits twice (its registration, its ending), and
//! the writer thread slept and woke about thirteen times for it. Here the
//! `BEGIN IMMEDIATE` travels in front of the transaction's first statement,
//! as one multi-statement query (SQLite runs them in order in one hand-off,
//! and stops at the first error), and the `COMMIT` behind its last one when
//! the caller says which that is ([`Conn::commit_with_next`]); otherwise
//! it is an ordinary statement. PostgreSQL's extended protocol takes one
//! statement per query, so there the transactions stay sqlx's.
//!
//! A SQLite transaction dropped while open (an error's `?`) closes its
//! connection rather than returning it to the pool: closing rolls back,
//! and no later user can find itself inside it (sqlx's, on PostgreSQL,
//! queue a ROLLBACK as they always did). Paths that end a transaction on
//! purpose without a commit call [`Conn::rollback`].

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::future::{self, BoxFuture, FutureExt};
use futures::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::{
    Any, AnyConnection, AnyPool, AssertSqlSafe, Either, Execute, Executor, SqlSafeStr, SqlStr,
    Transaction,
};

use super::{Backend, StoreError};

type Step = Either<AnyQueryResult, AnyRow>;

/// A connection of either backend: what store functions take. Inside a
/// transaction (see [`Conn::begin`]) or not (see [`Conn::plain`]).
#[derive(Debug)]
pub struct Conn {
    inner: Inner,
    state: State,
    /// The next statement carries the COMMIT.
    commit_next: bool,
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
    /// SQLite: the COMMIT went with a statement; it ran if that statement
    /// succeeded.
    Sent,
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
            commit_next: false,
        }
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

    /// The next statement is the transaction's last: on SQLite the COMMIT
    /// goes with it, and a statement after it fails. The caller still calls
    /// [`Conn::commit`], which then has nothing left to send (and sends the
    /// COMMIT itself when no statement came). On PostgreSQL, nothing.
    pub fn commit_with_next(&mut self) {
        self.commit_next = matches!(self.state, State::Due | State::Open);
    }

    /// Commit what the transaction wrote. A transaction that ran no
    /// statement has nothing to commit.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.sqlx() {
            return Ok(tx.commit().await?);
        }
        self.end("COMMIT").await
    }

    /// End the transaction without its writes.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        debug_assert!(
            self.state != State::Sent,
            "rollback after the COMMIT was sent"
        );
        if let Some(tx) = self.sqlx() {
            return Ok(tx.rollback().await?);
        }
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

    /// The end of a transaction of the store's own.
    async fn end(&mut self, sql: &'static str) -> Result<(), StoreError> {
        self.commit_next = false;
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

    /// Whether the next statement goes through [`Conn::wrapping`]'s checks
    /// with something besides itself, or is refused.
    fn wraps_next(&self) -> bool {
        matches!(self.state, State::Due | State::Sent) || self.commit_next
    }

    /// What goes with the next statement: the BEGIN in front, the COMMIT
    /// behind. An error for a statement after the COMMIT was sent.
    fn wrapping(&mut self) -> Result<Wrap, sqlx::Error> {
        let begin = match self.state {
            State::Sent => {
                let e = "a statement after its transaction's COMMIT";
                return Err(sqlx::Error::Protocol(e.into()));
            }
            State::Due => Some("BEGIN IMMEDIATE"),
            State::Plain | State::Open => None,
        };
        if begin.is_some() {
            self.state = State::Open;
        }
        let commit = std::mem::take(&mut self.commit_next);
        if commit {
            self.state = State::Sent;
        }
        Ok(Wrap { begin, commit })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let (State::Open | State::Sent, Inner::Pooled(conn)) = (self.state, &mut self.inner) {
            conn.close_on_drop();
        }
    }
}

/// What a statement carries besides itself.
#[derive(Clone, Copy)]
struct Wrap {
    begin: Option<&'static str>,
    commit: bool,
}

impl Wrap {
    fn any(self) -> bool {
        self.begin.is_some() || self.commit
    }
}

/// A statement with the transaction's `BEGIN` in front of it or its
/// `COMMIT` behind it.
struct Wrapped {
    sql: SqlStr,
    arguments: Option<AnyArguments>,
    persistent: bool,
}

impl Wrapped {
    fn new<'q>(wrap: Wrap, mut query: impl Execute<'q, Any>) -> Result<Self, sqlx::Error> {
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        let persistent = query.persistent();
        let sql = query.sql();
        let begin = wrap.begin.map(|b| format!("{b}; ")).unwrap_or_default();
        let commit = if wrap.commit { "; COMMIT" } else { "" };
        let sql = format!("{begin}{}{commit}", sql.as_str());
        Ok(Self {
            sql: AssertSqlSafe(sql).into_sql_str(),
            arguments,
            persistent,
        })
    }
}

impl Execute<'_, Any> for Wrapped {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&AnyStatement> {
        None
    }

    fn take_arguments(&mut self) -> Result<Option<AnyArguments>, BoxDynError> {
        Ok(self.arguments.take())
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// The caller's results of a wrapped statement: without the BEGIN's result
/// (the first) and the COMMIT's (the last), whose counts of changed rows
/// are whatever an earlier statement left (`sqlite3_changes`).
struct Unwrapped<'e> {
    inner: BoxStream<'e, Result<Step, sqlx::Error>>,
    skip_first: bool,
    /// With a COMMIT behind: the latest statement result, passed on once
    /// another follows it.
    held: Option<Option<AnyQueryResult>>,
}

impl Stream for Unwrapped<'_> {
    type Item = Result<Step, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let step = ready!(self.inner.poll_next_unpin(cx));
            let Some(Ok(Either::Left(result))) = step else {
                return Poll::Ready(step);
            };
            if std::mem::take(&mut self.skip_first) {
                continue;
            }
            let Some(held) = self.held.as_mut() else {
                return Poll::Ready(Some(Ok(Either::Left(result))));
            };
            if let Some(earlier) = held.replace(result) {
                return Poll::Ready(Some(Ok(Either::Left(earlier))));
            }
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
        let wrap = match self.wrapping() {
            Ok(wrap) if wrap.any() => wrap,
            Ok(_) => return self.raw().fetch_many(query),
            Err(e) => return stream::once(future::ready(Err(e))).boxed(),
        };
        let query = match Wrapped::new(wrap, query) {
            Ok(query) => query,
            Err(e) => return stream::once(future::ready(Err(e))).boxed(),
        };
        let inner = self.raw().fetch_many(query);
        let skip_first = wrap.begin.is_some();
        let held = wrap.commit.then_some(None);
        Unwrapped {
            inner,
            skip_first,
            held,
        }
        .boxed()
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
        // result only (here the BEGIN's), and it stops at the first row,
        // before a COMMIT behind.
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
