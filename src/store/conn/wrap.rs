//! One hand-off for several statements on SQLite: the statement a caller
//! runs, with what the transaction sends in front of it (its `BEGIN`, the
//! statements queued by [`Conn::with_next`]), as one multi-statement query.
//! SQLite runs them in order and stops at the first error; the caller sees
//! only its own statement's results.
//!
//! [`Conn::with_next`]: super::Conn::with_next

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::stream::{BoxStream, Stream, StreamExt};
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow, AnyStatement};
use sqlx::error::BoxDynError;
use sqlx::{Any, Arguments, AssertSqlSafe, Either, Execute, SqlSafeStr, SqlStr};

type Step = Either<AnyQueryResult, AnyRow>;

/// A statement queued to go in front of the next one.
pub(super) struct Ahead {
    pub sql: SqlStr,
    pub arguments: Option<AnyArguments>,
}

impl Ahead {
    pub fn new<'q>(mut query: impl Execute<'q, Any>) -> Result<Self, sqlx::Error> {
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        Ok(Self {
            sql: query.sql(),
            arguments,
        })
    }
}

impl std::fmt::Debug for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead")
            .field("sql", &self.sql.as_str())
            .finish()
    }
}

/// What goes in front of a statement.
pub(super) struct Wrap {
    pub begin: Option<&'static str>,
    pub ahead: Vec<Ahead>,
}

impl Wrap {
    /// How many statements go in front of the caller's.
    pub fn in_front(&self) -> usize {
        usize::from(self.begin.is_some()) + self.ahead.len()
    }
}

/// The caller's statement with what its [`Wrap`] carries, as one query.
pub(super) struct Wrapped {
    sql: SqlStr,
    arguments: Option<AnyArguments>,
    persistent: bool,
}

impl Wrapped {
    pub fn new<'q>(wrap: Wrap, query: impl Execute<'q, Any>) -> Result<Self, sqlx::Error> {
        let persistent = query.persistent();
        let own = Ahead::new(query)?;
        let mut sql = String::new();
        let mut arguments: Option<AnyArguments> = None;
        if let Some(begin) = wrap.begin {
            sql.push_str(begin);
            sql.push_str("; ");
        }
        for statement in wrap.ahead.into_iter().chain([own]) {
            let before = arguments.as_ref().map_or(0, Arguments::len);
            push_shifted(&mut sql, statement.sql.as_str(), before);
            sql.push_str("; ");
            if let Some(more) = statement.arguments {
                let all = arguments.get_or_insert_with(AnyArguments::default);
                // sqlx's Any arguments are a list of values, public but
                // hidden from its docs; the driver binds `$N` to the Nth.
                all.values.0.extend(more.values.0);
            }
        }
        sql.truncate(sql.len() - 2);
        Ok(Self {
            sql: AssertSqlSafe(sql).into_sql_str(),
            arguments,
            persistent,
        })
    }
}

/// `sql` appended to `out` with each `$N` parameter outside quoted text
/// moved up by `by`: the statement's own parameters come after those of
/// the statements in front of it.
fn push_shifted(out: &mut String, sql: &str, by: usize) {
    let bytes = sql.as_bytes();
    let (mut quoted, mut copied, mut i) = (false, 0, 0);
    while by > 0 && i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'$' if !quoted => {
                let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit());
                let end = i + 1 + digits.count();
                if let Ok(n) = sql[i + 1..end].parse::<usize>() {
                    out.push_str(&sql[copied..=i]);
                    out.push_str(&(n + by).to_string());
                    (copied, i) = (end, end);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
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

/// The caller's results of a wrapped statement: without those of the
/// statements in front (the BEGIN's, those queued, rows included).
pub(super) struct Unwrapped<'e> {
    inner: BoxStream<'e, Result<Step, sqlx::Error>>,
    /// Results still to drop: one per statement in front.
    skip: usize,
}

impl<'e> Unwrapped<'e> {
    /// `in_front` as the statement's [`Wrap`] says.
    pub fn new(inner: BoxStream<'e, Result<Step, sqlx::Error>>, in_front: usize) -> Self {
        Self {
            inner,
            skip: in_front,
        }
    }
}

impl Stream for Unwrapped<'_> {
    type Item = Result<Step, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let step = ready!(self.inner.poll_next_unpin(cx));
            if self.skip == 0 {
                return Poll::Ready(step);
            }
            match step {
                Some(Ok(Either::Left(_))) => self.skip -= 1,
                Some(Ok(Either::Right(_))) => {}
                other => return Poll::Ready(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::push_shifted;

    fn shifted(sql: &str, by: usize) -> String {
        let mut out = String::new();
        push_shifted(&mut out, sql, by);
        out
    }

    #[test]
    fn parameters_move_up_and_quoted_text_stays() {
        let sql = "UPDATE t SET a = json_extract($1, '$.a'), b = $2 WHERE c = '$1' AND d = $12";
        assert_eq!(
            shifted(sql, 3),
            "UPDATE t SET a = json_extract($4, '$.a'), b = $5 WHERE c = '$1' AND d = $15"
        );
        assert_eq!(shifted(sql, 0), sql);
        assert_eq!(shifted("SELECT 'it''s $1', $1", 1), "SELECT 'it''s $1', $2");
        assert_eq!(shifted("SELECT $ x, $9, $", 1), "SELECT $ x, $10, $");
    }
}
