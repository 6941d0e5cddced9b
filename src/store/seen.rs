//! What the upstream said about transfers still TRACKING, for a set of them
//! in one statement: the group committer writes every status change of a
//! group together (see `lifecycle::group`), as it does the endings.

use std::collections::HashMap;

use serde::Serialize;

use super::batch::{Span, blob_batches, ids_of_rows, text_of};
use super::{Backend, Conn, StoreError, json_arrays, now_text};
use crate::transfer::TransferId;

/// One transfer's latest upstream status, as [`record_upstream`] writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub id: TransferId,
    pub status: String,
    /// The raw body as the store keeps it (JSON text).
    pub raw: String,
    /// Upstream GETs so far.
    pub polls: u32,
}

impl Upstream {
    pub fn new(id: &TransferId, status: &str, raw: &str, polls: u32) -> Self {
        Self {
            id: id.clone(),
            status: status.to_owned(),
            raw: raw.to_owned(),
            polls,
        }
    }
}

/// [`record_upstream`] on PostgreSQL; the ids come as an array too, for the
/// reason `ending::END_MANY_POSTGRES` gives.
pub(super) const RECORD_UPSTREAM_POSTGRES: &str = concat!(
    "UPDATE transfers AS t SET upstream_status = c.status, upstream_json = c.raw, \
     polls = c.polls, updated_at = $2 \
     FROM json_to_recordset($1::json) AS c(id text, status text, raw text, polls bigint) \
     WHERE t.id = c.id AND ",
    ids_of_rows!()
);

/// Record each row's status without changing the bridge state: one
/// statement per array of rows. A transfer named twice gets the later row
/// (an UPDATE joined to two rows for one target takes either). In a SQLite
/// transaction of the store's own it goes with the next statement or the
/// COMMIT (see `Conn::with_next`).
pub async fn record_upstream<'a>(
    conn: &mut Conn,
    backend: Backend,
    rows: impl IntoIterator<Item = &'a Upstream>,
) -> Result<(), StoreError> {
    let now = now_text();
    let rows = latest(rows);
    if backend == Backend::Sqlite {
        for (array, texts, _) in sqlite_batches(&rows) {
            let update = sqlx::query(RECORD_UPSTREAM_SQLITE).bind(array).bind(&now);
            conn.with_next(update.bind(texts)).await?;
        }
        return Ok(());
    }
    for array in json_arrays(backend, &rows) {
        let update = sqlx::query(RECORD_UPSTREAM_POSTGRES).bind(array).bind(&now);
        conn.with_next(update).await?;
    }
    Ok(())
}

/// [`record_upstream`] on SQLite: the body in the BLOB `$3`, named by its
/// span, as `ending::END_MANY_SQLITE` takes its texts.
const RECORD_UPSTREAM_SQLITE: &str = concat!(
    "UPDATE transfers SET upstream_status = json_extract(c.value, '$.status'), upstream_json = ",
    text_of!("$3", "r"),
    ", polls = json_extract(c.value, '$.polls'), updated_at = $2 \
     FROM jsonb_each($1) AS c WHERE transfers.id = json_extract(c.value, '$.id')"
);

/// An [`Upstream`] as [`RECORD_UPSTREAM_SQLITE`] takes it.
#[derive(Serialize)]
struct SqliteRow<'a> {
    id: &'a str,
    status: &'a str,
    polls: u32,
    /// The raw body's span.
    r: Span,
}

/// `rows` as (array, BLOB, rows) for [`RECORD_UPSTREAM_SQLITE`].
fn sqlite_batches<'a>(rows: &'a [&'a Upstream]) -> Vec<(String, Vec<u8>, usize)> {
    let texts = |row: &&Upstream, blob: &mut Vec<u8>| {
        blob.extend_from_slice(row.raw.as_bytes());
        [Some(row.raw.len())]
    };
    let row = |row: &'a &'a Upstream, [r]: [Span; 1]| SqliteRow {
        id: row.id.as_str(),
        status: &row.status,
        polls: row.polls,
        r,
    };
    blob_batches(rows, texts, row)
}

/// The last row of each transfer, in first-seen order.
fn latest<'a>(rows: impl IntoIterator<Item = &'a Upstream>) -> Vec<&'a Upstream> {
    let mut at: HashMap<&TransferId, usize> = HashMap::new();
    let mut kept: Vec<&Upstream> = Vec::new();
    for row in rows {
        match at.get(&row.id) {
            Some(&i) => kept[i] = row,
            None => {
                at.insert(&row.id, kept.len());
                kept.push(row);
            }
        }
    }
    kept
}
