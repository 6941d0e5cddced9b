//! What the upstream said about transfers still TRACKING, for a set of them
//! in one statement: the group committer writes every status change of a
//! group together (see `lifecycle::group`), as it does the endings.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::batch::ids_of_rows;
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
    pub fn new(id: &TransferId, status: &str, raw: &Value, polls: u32) -> Self {
        Self {
            id: id.clone(),
            status: status.to_owned(),
            raw: raw.to_string(),
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
    let sql = match backend {
        Backend::Sqlite => {
            "UPDATE transfers SET upstream_status = json_extract(c.value, '$.status'), \
             upstream_json = json_extract(c.value, '$.raw'), \
             polls = json_extract(c.value, '$.polls'), updated_at = $2 \
             FROM jsonb_each($1) AS c WHERE transfers.id = json_extract(c.value, '$.id')"
        }
        Backend::Postgres => RECORD_UPSTREAM_POSTGRES,
    };
    let now = now_text();
    for array in json_arrays(backend, &latest(rows)) {
        let update = sqlx::query(sql).bind(array).bind(&now);
        conn.with_next(update).await?;
    }
    Ok(())
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
