//! SQL that registers transfers: the INSERT of new ones, and telling a
//! repeat of a stored one from a conflicting body.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use sqlx::Row as _;

use super::batch::changed_exactly;
use super::transfers::{as_inserted, as_json_array, columns, from_row, read_json_array, select};
use super::{Backend, Conn, StoreError, counted_json_arrays, json_arrays, now_text};
use crate::transfer::{Transfer, TransferId};

/// A registration as the API accepted it.
#[derive(Debug, Clone)]
pub struct NewTransfer {
    pub id: TransferId,
    pub callback_url: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Canonical JSON of the request; equal bodies mean an idempotent repeat.
    pub request_json: String,
    pub upstream_status: Option<String>,
    pub upstream: Option<Value>,
    /// See [`Transfer::integration`].
    pub integration: Option<String>,
    pub return_signal: Option<bool>,
}

pub enum Registered {
    Created(Transfer),
    /// Same id, same body: a safe retry.
    Identical(Transfer),
    /// Same id, different body.
    Conflict(Transfer),
}

/// The INSERT of new transfers on SQLite, rows from the JSON array `$1`,
/// stamped `$2`, owned by `$3`. `WHERE true` tells SQLite's parser the ON
/// CONFLICT is the upsert's.
macro_rules! insert_sqlite {
    () => {
        "INSERT INTO transfers (id, state, upstream_status, upstream_json, callback_url, \
         metadata_json, request_json, created_at, updated_at, integration, return_signal, owner) \
         SELECT json_extract(value, '$.id'), 'TRACKING', json_extract(value, '$.upstream_status'), \
         json_extract(value, '$.upstream_json'), json_extract(value, '$.callback_url'), \
         json_extract(value, '$.metadata_json'), json_extract(value, '$.request_json'), $2, $2, \
         json_extract(value, '$.integration'), json_extract(value, '$.return_signal'), $3 \
         FROM jsonb_each($1) WHERE true ON CONFLICT (id) DO NOTHING"
    };
}

/// [`insert_sqlite`] on PostgreSQL, with the rows it inserted.
const INSERT_POSTGRES: &str = concat!(
    "INSERT INTO transfers (id, state, upstream_status, upstream_json, callback_url, \
     metadata_json, request_json, created_at, updated_at, integration, return_signal, owner) \
     SELECT c.id, 'TRACKING', c.upstream_status, c.upstream_json, c.callback_url, \
     c.metadata_json, c.request_json, $2, $2, c.integration, c.return_signal, $3 \
     FROM json_to_recordset($1::json) AS c(id text, upstream_status text, upstream_json text, \
     callback_url text, metadata_json text, request_json text, integration text, \
     return_signal bigint) ON CONFLICT (id) DO NOTHING RETURNING ",
    columns!()
);

/// Behind [`insert_sqlite`] when every row is taken to be new: fail, and so
/// stop the statements after it and the COMMIT, unless it inserted `$1`.
const INSERTED_ALL_SQLITE: &str = changed_exactly!("a registration of the group was not new");

/// On SQLite, in a transaction of the store's own: insert every one of
/// `new`, taking each to be new, without a round trip of its own. The
/// INSERT and a check that it inserted every row go in front of the
/// transaction's next statement (see `Conn::with_next`), so a group of
/// registrations and their audit records is one hand-off to the writer
/// thread, not two. If one was not new (a repeat, or a conflicting body),
/// that statement fails and the transaction with it: the caller then
/// registers them with [`insert_many`] and [`repeat`], which tell the cases
/// apart. The transfers as the rows will hold them, by id.
///
/// `None` where this does not apply, and nothing was sent: outside such a
/// transaction (on PostgreSQL the INSERT would run now, and its rows tell
/// which were new anyway), or when an id is named twice.
pub async fn insert_taken_as_new(
    conn: &mut Conn,
    backend: Backend,
    new: &[&NewTransfer],
    owner: &str,
) -> Result<Option<HashMap<String, Transfer>>, StoreError> {
    if !conn.queues() {
        return Ok(None);
    }
    let mut transfers = HashMap::with_capacity(new.len());
    let now = now_text();
    for n in new {
        transfers.insert(n.id.as_str().to_owned(), as_inserted(n, owner, &now)?);
    }
    if transfers.len() < new.len() {
        return Ok(None);
    }
    if new.is_empty() {
        return Ok(Some(transfers));
    }
    let rows: Vec<NewRow<'_>> = new.iter().map(|n| NewRow::of(n)).collect();
    // Each array's INSERT checked on its own: `changes()` counts the
    // statement just before.
    for (array, count) in counted_json_arrays(backend, &rows) {
        let insert = sqlx::query(insert_sqlite!())
            .bind(array)
            .bind(&now)
            .bind(owner);
        conn.with_next(insert).await?;
        let all = sqlx::query(INSERTED_ALL_SQLITE).bind(count as i64);
        conn.with_next(all).await?;
    }
    Ok(Some(transfers))
}

/// Insert, or tell an identical repeat from a conflicting one.
/// A new transfer is owned by `owner`, the instance that received it.
pub async fn register(
    conn: &mut Conn,
    backend: Backend,
    new: &NewTransfer,
    owner: &str,
) -> Result<Registered, StoreError> {
    match insert_many(conn, backend, &[new], owner)
        .await?
        .remove(new.id.as_str())
    {
        Some(transfer) => Ok(Registered::Created(transfer)),
        None => repeat(conn, new).await,
    }
}

/// A registration whose id is already stored (see [`insert_many`]): an
/// identical repeat, or a conflicting body.
pub async fn repeat(conn: &mut Conn, new: &NewTransfer) -> Result<Registered, StoreError> {
    let row = sqlx::query(select!("WHERE id = $1"))
        .bind(new.id.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(judged(new, from_row(&row)?, row.try_get("request_json")?))
}

/// [`repeat`] for every one of `news` that is stored, in one statement, by
/// id: an IVR retrying a batch of calls sent a group of repeats, one read
/// each. Ids not stored are left out.
pub async fn repeats(
    conn: &mut Conn,
    backend: Backend,
    news: &[&NewTransfer],
) -> Result<HashMap<String, Registered>, StoreError> {
    if news.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = news.iter().map(|n| n.id.as_str()).collect();
    let stored = match backend {
        Backend::Sqlite => read_json_array::<String>(&mut *conn, REPEATS_SQLITE, &ids).await?,
        Backend::Postgres => stored_requests_postgres(conn, &ids).await?,
    };
    let by_id: HashMap<&str, &NewTransfer> = news.iter().map(|n| (n.id.as_str(), *n)).collect();
    let mut judged_all = HashMap::with_capacity(stored.len());
    for (transfer, request_json) in stored {
        if let Some(new) = by_id.get(transfer.id.as_str()) {
            let id = transfer.id.as_str().to_owned();
            judged_all.insert(id, judged(new, transfer, request_json));
        }
    }
    Ok(judged_all)
}

/// [`repeats`] on SQLite: the rows as one JSON array, each transfer with
/// the body it was registered with.
const REPEATS_SQLITE: &str = as_json_array!(
    "'extra', request_json, ",
    "WHERE id IN (SELECT value FROM json_each($1))"
);

/// [`repeats`] on PostgreSQL: each transfer among `ids` with the body it
/// was registered with.
async fn stored_requests_postgres(
    conn: &mut Conn,
    ids: &[&str],
) -> Result<Vec<(Transfer, String)>, StoreError> {
    let sql = select!("WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))");
    let mut stored = Vec::with_capacity(ids.len());
    for array in json_arrays(Backend::Postgres, ids) {
        for row in sqlx::query(sql).bind(array).fetch_all(&mut *conn).await? {
            stored.push((from_row(&row)?, row.try_get("request_json")?));
        }
    }
    Ok(stored)
}

/// A stored `transfer`, registered with `stored_request`, as `new` finds
/// it: an identical repeat, or a conflicting body.
fn judged(new: &NewTransfer, transfer: Transfer, stored_request: String) -> Registered {
    match stored_request == new.request_json {
        true => Registered::Identical(transfer),
        false => Registered::Conflict(transfer),
    }
}

/// A new transfer as [`insert_many`] sends it to the database.
#[derive(Serialize)]
struct NewRow<'a> {
    id: &'a str,
    upstream_status: Option<&'a str>,
    upstream_json: Option<String>,
    callback_url: Option<&'a str>,
    metadata_json: String,
    request_json: &'a str,
    integration: Option<&'a str>,
    return_signal: Option<i64>,
}

impl<'a> NewRow<'a> {
    fn of(new: &'a NewTransfer) -> Self {
        Self {
            id: new.id.as_str(),
            upstream_status: new.upstream_status.as_deref(),
            upstream_json: new.upstream.as_ref().map(Value::to_string),
            callback_url: new.callback_url.as_deref(),
            metadata_json: serde_json::to_string(&new.metadata).expect("string map serializes"),
            request_json: &new.request_json,
            integration: new.integration.as_deref(),
            return_signal: new.return_signal.map(i64::from),
        }
    }
}

/// Insert each of `new` that is not stored yet, owned by `owner`: one
/// statement however many (see `ending` for why). The rows it inserted, by
/// id; an id already stored, or named twice, is inserted once. Telling a
/// repeat from a conflicting body is left to [`repeat`], for the few that
/// were not new.
pub async fn insert_many(
    conn: &mut Conn,
    backend: Backend,
    new: &[&NewTransfer],
    owner: &str,
) -> Result<HashMap<String, Transfer>, StoreError> {
    if new.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = match backend {
        Backend::Sqlite => concat!(insert_sqlite!(), " RETURNING ", columns!()),
        Backend::Postgres => INSERT_POSTGRES,
    };
    let rows: Vec<NewRow<'_>> = new.iter().map(|n| NewRow::of(n)).collect();
    let (mut inserted, now) = (HashMap::with_capacity(new.len()), now_text());
    for array in json_arrays(backend, &rows) {
        let rows = sqlx::query(sql)
            .bind(array)
            .bind(&now)
            .bind(owner)
            .fetch_all(&mut *conn)
            .await?;
        for row in &rows {
            let transfer = from_row(row)?;
            inserted.insert(transfer.id.as_str().to_owned(), transfer);
        }
    }
    Ok(inserted)
}

#[cfg(test)]
#[path = "registration_tests.rs"]
mod tests;
