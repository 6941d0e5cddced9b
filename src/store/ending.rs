//! SQL that ends transfers in sets: the group committer's few statements.
//!
//! A burst of completions commits in groups of up to a few hundred, and on
//! SQLite every statement is a round trip to the connection's worker thread.
//! So a group is one read of every transfer it touches, one UPDATE for every
//! ending, one INSERT for every action: three statements whatever its size.
//! Rows travel as one JSON array: the statement text is the same for any
//! group size (prepared once per connection), and sqlx's Any driver binds no
//! arrays. On SQLite their long texts (reason, upstream body, SIP
//! instruction) travel beside it, in one BLOB (`store::blob_batches`).
//!
//! On SQLite the rows are walked with `jsonb_each`, not `json_each`: each
//! row then comes out as the binary JSON that the array was parsed into,
//! and every `json_extract` of it is a lookup. With `json_each` each row
//! came out as text, rendered from that binary form and parsed back by the
//! first `json_extract`: two conversions of every row.

use std::collections::HashMap;

use serde::Serialize;

use super::batch::{Span, blob_batches, changed_exactly, ids_of_rows, text_of};
use super::transfers::{as_json_array, from_row, read_json_array, select};
use super::{Backend, Conn, StoreError, json_arrays};
use crate::sip::SipInstruction;
use crate::transfer::{BridgeState, Transfer, TransferId};

/// One transfer leaving TRACKING, as [`end_many`] writes it.
#[derive(Debug, Serialize)]
pub struct Ending<'a> {
    pub id: &'a str,
    pub state: &'static str,
    pub reason: Option<String>,
    /// Upstream GETs so far; `None` keeps the stored count.
    pub polls: Option<u32>,
    /// What the upstream said last (`None` keeps what is stored).
    pub upstream_status: Option<&'a str>,
    pub upstream_json: Option<&'a str>,
    pub sip_json: Option<String>,
    /// Set by [`Ending::expecting`]: the row must still carry this stamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_updated_at: Option<String>,
    /// With `expect_updated_at`: the row's owner, which changes unstamped.
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_owner: Option<String>,
}

impl<'a> Ending<'a> {
    pub fn new(id: &'a TransferId, state: BridgeState, reason: Option<String>) -> Self {
        Self {
            id: id.as_str(),
            state: state.as_str(),
            reason,
            polls: None,
            upstream_status: None,
            upstream_json: None,
            sip_json: None,
            expect_updated_at: None,
            expect_owner: None,
        }
    }

    /// End the row only if it still is `known` (its stamp and owner, which
    /// every other change of a transfer moves), for an ending planned from
    /// a transfer read earlier, not under the write lock. A row that moved
    /// meanwhile is not ended, and the group's check fails it.
    pub fn expecting(mut self, known: &Transfer) -> Self {
        self.expect_updated_at = Some(crate::transfer::clock::format_rfc3339(known.updated_at));
        self.expect_owner = known.owner.clone();
        self
    }

    /// Record what the upstream said in the same write.
    /// `raw` is the body's JSON text (`Fetched::text`).
    pub fn seen(mut self, status: &'a str, raw: &'a str) -> Self {
        self.upstream_status = Some(status);
        self.upstream_json = Some(raw);
        self
    }

    pub fn sip(mut self, sip: Option<&SipInstruction>) -> Self {
        self.sip_json = sip.map(|s| serde_json::to_string(s).expect("instructions serialize"));
        self
    }
}

/// Every transfer among `ids` that exists, by id. On PostgreSQL the rows are
/// locked until the transaction ends (another instance's change waits), so
/// what is read here is what [`end_many`] changes; SQLite's writer already
/// holds the database's one write lock.
///
/// On PostgreSQL the ids are `= ANY(ARRAY(...))`, not `IN (SELECT ...)`:
/// the planner takes a set-returning function for 100 rows, and with 20,000
/// transfers `EXPLAIN` showed `IN` as a hash semi join over a sequential
/// scan of the whole table, for every group, growing with the table. An
/// array is looked up in the id index.
///
/// On SQLite the set comes back as one row, a JSON array (see
/// `transfers::as_json_array`): a group commit holds the writer connection
/// while it reads, and a few hundred rows took several runtime turns.
pub async fn fetch_many(
    conn: &mut Conn,
    backend: Backend,
    ids: &[&str],
) -> Result<HashMap<String, Transfer>, StoreError> {
    if backend == Backend::Sqlite {
        return fetch_many_sqlite(conn, ids).await;
    }
    let sql =
        select!("WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json))) FOR UPDATE");
    let mut found = HashMap::with_capacity(ids.len());
    for array in json_arrays(backend, ids) {
        let rows = sqlx::query(sql).bind(array).fetch_all(&mut *conn).await?;
        for row in &rows {
            let transfer = from_row(row)?;
            found.insert(transfer.id.as_str().to_owned(), transfer);
        }
    }
    Ok(found)
}

/// [`fetch_many`] on SQLite: the whole set in one row.
async fn fetch_many_sqlite(
    conn: &mut Conn,
    ids: &[&str],
) -> Result<HashMap<String, Transfer>, StoreError> {
    let sql = as_json_array!("WHERE id IN (SELECT value FROM json_each($1))");
    let read = read_json_array::<()>(conn, sql, ids).await?;
    Ok(read
        .into_iter()
        .map(|(transfer, ())| (transfer.id.as_str().to_owned(), transfer))
        .collect())
}

/// [`end_many`] on SQLite: the short fields in the JSON array `$1`, the
/// reason, upstream body and SIP instruction in the BLOB `$3`, each named
/// by its span (`store::blob_batches`; a missing text's span is `null`,
/// and `substr` of it NULL). An ending [`Ending::expecting`] a row ends it
/// only if the row still carries the stamp and owner it was read with.
/// The unary `+` keeps the planner off the
/// `(state, seq)` index: led by it, it scanned every TRACKING transfer and
/// the whole group for each (10 ms of CPU per ending in a burst of 10,000),
/// where led by the group it looks each id up once.
const END_MANY_SQLITE: &str = concat!(
    "UPDATE transfers SET state = json_extract(c.value, '$.state'), reason = ",
    text_of!("$3", "r"),
    ", polls = COALESCE(json_extract(c.value, '$.polls'), polls), \
     upstream_status = COALESCE(json_extract(c.value, '$.upstream_status'), upstream_status), \
     upstream_json = COALESCE(",
    text_of!("$3", "u"),
    ", upstream_json), sip_json = ",
    text_of!("$3", "s"),
    ", updated_at = $2 \
     FROM jsonb_each($1) AS c \
     WHERE transfers.id = json_extract(c.value, '$.id') AND +transfers.state = 'TRACKING' \
     AND (json_extract(c.value, '$.expect_updated_at') IS NULL \
     OR (transfers.updated_at = json_extract(c.value, '$.expect_updated_at') \
     AND transfers.owner IS json_extract(c.value, '$.expect_owner')))"
);

/// An [`Ending`] as [`END_MANY_SQLITE`] takes it: its texts are in the BLOB.
#[derive(Serialize)]
struct SqliteEnding<'a> {
    id: &'a str,
    state: &'static str,
    polls: Option<u32>,
    upstream_status: Option<&'a str>,
    /// The spans of the reason, the upstream body and the SIP instruction.
    r: Span,
    u: Span,
    s: Span,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_updated_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_owner: Option<&'a str>,
}

/// `endings` as (array, BLOB, rows) for [`END_MANY_SQLITE`].
fn sqlite_batches<'a>(endings: &'a [Ending<'a>]) -> Vec<(String, Vec<u8>, usize)> {
    let texts = |e: &'a Ending<'a>, blob: &mut Vec<u8>| {
        [e.reason.as_deref(), e.upstream_json, e.sip_json.as_deref()].map(|text| {
            let text = text?;
            blob.extend_from_slice(text.as_bytes());
            Some(text.len())
        })
    };
    let row = |e: &'a Ending<'a>, [r, u, s]: [Span; 3]| SqliteEnding {
        id: e.id,
        state: e.state,
        polls: e.polls,
        upstream_status: e.upstream_status,
        r,
        u,
        s,
        expect_updated_at: e.expect_updated_at.as_deref(),
        expect_owner: e.expect_owner.as_deref(),
    };
    blob_batches(endings, texts, row)
}

/// [`end_many`] on PostgreSQL. The planner takes `json_to_recordset` for
/// 100 rows whatever the array holds, and reads the whole table when it
/// looks cheaper than 100 lookups: with statistics on a table of 10,000
/// transfers it hashed every row against the group (3-5 ms a statement of
/// 18 endings in a burst, `auto_explain`), and with none it read every
/// TRACKING row through the `(state, seq)` index. So the ids also come as
/// an array (`= ANY`, which it takes for 10 and looks up in the unique
/// index), and `t.state || ''` keeps the `(state, seq)` index out, as the
/// unary `+` does on SQLite (`store::plan_tests`).
pub(super) const END_MANY_POSTGRES: &str = concat!(
    "UPDATE transfers AS t SET state = c.state, reason = c.reason, \
     polls = COALESCE(c.polls, t.polls), \
     upstream_status = COALESCE(c.upstream_status, t.upstream_status), \
     upstream_json = COALESCE(c.upstream_json, t.upstream_json), \
     sip_json = c.sip_json, updated_at = $2 \
     FROM json_to_recordset($1::json) AS c(id text, state text, reason text, \
     polls bigint, upstream_status text, upstream_json text, sip_json text, \
     expect_updated_at text, expect_owner text) \
     WHERE t.id = c.id AND (t.state || '') = 'TRACKING' \
     AND (c.expect_updated_at IS NULL OR (t.updated_at = c.expect_updated_at \
     AND t.owner IS NOT DISTINCT FROM c.expect_owner)) AND ",
    ids_of_rows!()
);

/// On SQLite, behind [`END_MANY_SQLITE`]: fail, and so stop the statements
/// after it and the COMMIT, unless it ended `$1` transfers.
const ENDED_ALL_SQLITE: &str =
    changed_exactly!("a group of endings changed other rows than it read");

/// End every transfer in `endings`, a statement per JSON array, stamped
/// `updated_at = now`: each must still be TRACKING (the caller read it
/// under the write lock), or the transaction fails and nothing of it
/// commits.
///
/// On SQLite the UPDATE and its check go in front of the transaction's next
/// statement (see `Conn::with_next`): with the group's INSERT of its
/// actions and the COMMIT, one hand-off to the writer thread, not two.
pub async fn end_many(
    conn: &mut Conn,
    backend: Backend,
    endings: &[Ending<'_>],
    now: &str,
) -> Result<(), StoreError> {
    if endings.is_empty() {
        return Ok(());
    }
    if backend == Backend::Sqlite {
        // Each batch's UPDATE checked on its own: `changes()` counts the
        // statement just before.
        for (array, texts, rows) in sqlite_batches(endings) {
            let update = sqlx::query(END_MANY_SQLITE).bind(array).bind(now);
            conn.with_next(update.bind(texts)).await?;
            let all = sqlx::query(ENDED_ALL_SQLITE).bind(rows as i64);
            conn.with_next(all).await?;
        }
        return Ok(());
    }
    let (planned, mut ended) = (endings.len() as u64, 0);
    for array in json_arrays(backend, endings) {
        let done = sqlx::query(END_MANY_POSTGRES)
            .bind(array)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        ended += done.rows_affected();
    }
    if ended != planned {
        // The rows were read under the write lock: this is a bug, and
        // nothing of the group may commit.
        return Err(StoreError::Corrupt(format!(
            "{ended} of {planned} transfers ended"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "ending_tests.rs"]
mod tests;
