//! SQL for the `actions` table (the outbox).

use serde::Serialize;
use sqlx::Row as _;

use super::views::of_transfer;
use crate::store::{
    Backend, Conn, Pool, Row, Span, Store, StoreError, blob_batches, json_arrays, now_text, text_of,
};
use crate::transfer::TransferId;
use crate::transfer::{Action, ActionKind, Target};

/// An action handed to a dispatcher, with how many attempts it has had
/// (this one included).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub action: Action,
    pub attempts: u32,
}

use crate::transfer::clock::now_unix_ms as now_ms;

/// Insert in the caller's transaction, a statement per batch of rows
/// however many there are (a group commit enqueues hundreds; see
/// `store::ending`). A repeat of the same id is ignored: an action, once
/// recorded, keeps its id and body forever.
/// With `claim`, the rows are claimed for that instance from the start (see
/// `handoff`). In a SQLite transaction of the store's own the INSERT goes
/// with the next statement or the COMMIT (see `Conn::with_next`): nothing
/// in a transaction waits for its answer.
pub async fn enqueue(
    conn: &mut Conn,
    backend: Backend,
    actions: &[Action],
    claim: Option<&Claim>,
) -> Result<(), StoreError> {
    if actions.is_empty() {
        return Ok(());
    }
    let (now, created) = (now_ms(), now_text());
    let claimed = i64::from(claim.is_some());
    let (by, until) = (claim.map(|c| c.by.to_string()), claim.map(|c| c.until_ms));
    // Both backends' statements: the array `$1`, then the same four values.
    let statement = |sql, array| {
        sqlx::query(sql)
            .bind(array)
            .bind(now)
            .bind(&created)
            .bind(claimed)
            .bind(by.clone())
            .bind(until)
    };
    if backend == Backend::Sqlite {
        for (array, texts, _) in sqlite_batches(actions) {
            conn.with_next(statement(ENQUEUE_SQLITE, array).bind(texts))
                .await?;
        }
        return Ok(());
    }
    let rows: Vec<NewRow<'_>> = actions.iter().map(NewRow::of).collect();
    for array in json_arrays(backend, &rows) {
        conn.with_next(statement(ENQUEUE_POSTGRES, array)).await?;
    }
    Ok(())
}

/// `enqueue` on SQLite: each row's short fields in the JSON array `$1`, its
/// target and body side by side in the BLOB `$7`, each named by its span
/// (`store::blob_batches`). In a burst's drain that took serde_json's string
/// escaping from 3.5% to 2.0% of the bridge's CPU and SQLite's statements
/// from 27.9% to 25.8% (thirty-first round, docs/perf-rounds.md). `WHERE
/// true` tells SQLite's parser the ON CONFLICT is the upsert's.
const ENQUEUE_SQLITE: &str = concat!(
    "INSERT INTO actions (id, transfer_id, kind, target_json, body, \
     status, attempts, next_attempt_at, created_at, name, claimed_by, claimed_until) \
     SELECT json_extract(c.value, '$.id'), json_extract(c.value, '$.transfer_id'), \
     json_extract(c.value, '$.kind'), ",
    text_of!("$7", "t"),
    ", ",
    text_of!("$7", "b"),
    ", 'pending', $4, $2, $3, json_extract(c.value, '$.name'), $5, $6 \
     FROM jsonb_each($1) AS c WHERE true ON CONFLICT (id) DO NOTHING"
);

/// `enqueue` on PostgreSQL: every row whole in the JSON array `$1`.
const ENQUEUE_POSTGRES: &str = "INSERT INTO actions (id, transfer_id, kind, target_json, body, \
     status, attempts, next_attempt_at, created_at, name, claimed_by, claimed_until) \
     SELECT a.id, a.transfer_id, a.kind, a.target_json, a.body, 'pending', $4, $2, $3, \
     a.name, $5, $6 FROM json_to_recordset($1::json) AS a(id text, transfer_id text, kind text, \
     target_json text, body text, name text) ON CONFLICT (id) DO NOTHING";

/// An action as [`ENQUEUE_SQLITE`] takes it: its texts are in the BLOB.
#[derive(Serialize)]
struct SqliteRow<'a> {
    id: &'a str,
    transfer_id: &'a str,
    kind: &'a str,
    name: &'a str,
    /// The target's JSON.
    t: Span,
    b: Span,
}

/// `actions` as (array, BLOB, rows) for [`ENQUEUE_SQLITE`].
fn sqlite_batches<'a>(actions: &'a [Action]) -> Vec<(String, Vec<u8>, usize)> {
    let texts = |action: &Action, blob: &mut Vec<u8>| {
        let start = blob.len();
        serde_json::to_writer(&mut *blob, &action.target).expect("targets serialize");
        let target = blob.len() - start;
        blob.extend_from_slice(action.body.as_bytes());
        [Some(target), Some(action.body.len())]
    };
    let row = |action: &'a Action, [t, b]: [Span; 2]| SqliteRow {
        id: &action.id,
        transfer_id: action.transfer_id.as_str(),
        kind: action.kind.as_str(),
        name: &action.name,
        t,
        b,
    };
    blob_batches(actions, texts, row)
}

/// Rows claimed for `by` until `until_ms` (Unix ms), their first attempt
/// counted: what the claim statement would have written.
#[derive(Debug, Clone)]
pub struct Claim {
    pub by: std::sync::Arc<str>,
    pub until_ms: i64,
}

/// An action as `enqueue` sends it to the database.
#[derive(Serialize)]
struct NewRow<'a> {
    id: &'a str,
    transfer_id: &'a str,
    kind: &'a str,
    target_json: String,
    body: &'a str,
    name: &'a str,
}

impl<'a> NewRow<'a> {
    fn of(action: &'a Action) -> Self {
        Self {
            id: &action.id,
            transfer_id: action.transfer_id.as_str(),
            kind: action.kind.as_str(),
            target_json: serde_json::to_string(&action.target).expect("targets serialize"),
            body: &action.body,
            name: &action.name,
        }
    }
}

/// The claim statement, with the row-lock clause its backend takes.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE actions SET claimed_until = $2, claimed_by = $5, attempts = attempts + 1 WHERE id IN ( \
               SELECT id FROM actions WHERE status = 'pending' AND next_attempt_at <= $1 \
               AND (claimed_until IS NULL OR claimed_until <= $1) \
               AND ($4 OR kind = 'webhook') \
               ORDER BY next_attempt_at LIMIT $3",
            $lock,
            ") RETURNING id, transfer_id, name, kind, target_json, body, attempts"
        )
    };
}
/// Lease up to `limit` due actions to this dispatcher until `now + lease_ms`.
/// With `broker_open` false (no connection, or the broker blocks
/// publishing) only webhooks, the one kind that does not go through the
/// broker, are leased: broker actions stay pending, attempts untouched, for
/// an instance that can publish them, instead of cycling here through
/// claim, wait and retry. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets the
/// dispatchers of several instances claim side by side without waiting on
/// (or taking) each other's rows; SQLite has one writer at a time anyway.
pub async fn claim_due(
    store: &Store,
    instance: &str,
    lease_ms: i64,
    limit: u32,
    broker_open: bool,
) -> Result<Vec<Claimed>, StoreError> {
    let now = now_ms();
    let sql = match store.backend() {
        Backend::Sqlite => claim_sql!(""),
        Backend::Postgres => claim_sql!(" FOR UPDATE SKIP LOCKED"),
    };
    let rows = sqlx::query(sql)
        .bind(now)
        .bind(now + lease_ms)
        .bind(i64::from(limit))
        .bind(broker_open)
        .bind(instance)
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(claimed_from_row).collect()
}

/// Mark every action in `ids` delivered, in one statement (one commit):
/// the settler's batch of confirms (see `settle`). The ids travel as one
/// JSON array, so the statement text is the same for any batch size and is
/// prepared once per connection (sqlx's Any driver binds no arrays). On
/// PostgreSQL an array, as in `store::fetch_many`, keeps to the id index.
pub async fn mark_delivered_many(store: &Store, ids: &[String]) -> Result<u64, StoreError> {
    let sql = match store.backend() {
        Backend::Sqlite => {
            "UPDATE actions SET status = 'delivered', claimed_until = NULL, claimed_by = NULL, \
             last_error = NULL, delivered_at = $2 WHERE id IN (SELECT value FROM json_each($1))"
        }
        Backend::Postgres => {
            "UPDATE actions SET status = 'delivered', claimed_until = NULL, claimed_by = NULL, \
             last_error = NULL, delivered_at = $2 \
             WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))"
        }
    };
    let (mut marked, now) = (0, now_text());
    // Marks are idempotent: each array commits on its own.
    for array in json_arrays(store.backend(), ids) {
        let done = sqlx::query(sql)
            .bind(array)
            .bind(&now)
            .execute(store.pool())
            .await?;
        marked += done.rows_affected();
    }
    Ok(marked)
}

/// Record a failed attempt of `by`'s claim: due again in `delay_ms`.
/// False when the claim is no longer `by`'s (voided when its lease lapsed,
/// or taken by another instance since): that attempt's result stands.
pub async fn mark_retry(
    pool: &Pool,
    id: &str,
    by: &str,
    delay_ms: i64,
    error: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE actions SET claimed_until = NULL, claimed_by = NULL, next_attempt_at = $2, last_error = $3 \
         WHERE id = $1 AND claimed_by = $4 AND status = 'pending'",
    )
    .bind(id)
    .bind(now_ms() + delay_ms)
    .bind(error)
    .bind(by)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Give up on an action `by` holds the claim of; false as for [`mark_retry`].
pub async fn mark_failed(
    conn: &mut Conn,
    id: &str,
    by: &str,
    error: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE actions SET status = 'failed', claimed_until = NULL, claimed_by = NULL, last_error = $2 \
         WHERE id = $1 AND claimed_by = $3 AND status = 'pending'",
    )
    .bind(id)
    .bind(error)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// At start, claims of a dead process are void: on SQLite (one instance)
/// every claim, on PostgreSQL this instance's own. Other instances' claims
/// are theirs until they lapse or their owner is adopted from.
pub async fn release_claims(store: &Store, instance: &str) -> Result<u64, StoreError> {
    let sql = match store.backend() {
        Backend::Sqlite => {
            "UPDATE actions SET claimed_until = NULL, claimed_by = NULL \
             WHERE claimed_until IS NOT NULL AND $1 IS NOT NULL"
        }
        Backend::Postgres => {
            "UPDATE actions SET claimed_until = NULL, claimed_by = NULL WHERE claimed_by = $1"
        }
    };
    let done = sqlx::query(sql)
        .bind(instance)
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Give back this instance's claims of `ids`, unused: due again at once for
/// whoever claims next, and the attempt their claim counted taken back (no
/// attempt was made). For broker actions handed over while a resource alarm
/// blocks publishing (see `Dispatcher::held_back_while_blocked`).
pub async fn release_unused(
    store: &Store,
    instance: &str,
    ids: &[String],
) -> Result<u64, StoreError> {
    let sql = match store.backend() {
        Backend::Sqlite => {
            "UPDATE actions SET claimed_until = NULL, claimed_by = NULL, \
             attempts = MAX(attempts - 1, 0) \
             WHERE id IN (SELECT value FROM json_each($1)) AND claimed_by = $2"
        }
        Backend::Postgres => {
            "UPDATE actions SET claimed_until = NULL, claimed_by = NULL, \
             attempts = GREATEST(attempts - 1, 0) \
             WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json))) AND claimed_by = $2"
        }
    };
    let mut released = 0;
    for array in json_arrays(store.backend(), ids) {
        let done = sqlx::query(sql)
            .bind(array)
            .bind(instance)
            .execute(store.pool())
            .await?;
        released += done.rows_affected();
    }
    Ok(released)
}

/// Make every action of a transfer due again, same ids and bodies.
pub async fn redeliver(store: &Store, transfer: &TransferId) -> Result<u64, StoreError> {
    let sql = match store.backend() {
        Backend::Sqlite => concat!(
            "UPDATE actions SET status = 'pending', next_attempt_at = $2, claimed_until = NULL, claimed_by = NULL WHERE ",
            of_transfer!("", "$1")
        ),
        Backend::Postgres => {
            "UPDATE actions SET status = 'pending', next_attempt_at = $2, claimed_until = NULL, claimed_by = NULL \
             WHERE transfer_id = $1"
        }
    };
    let done = sqlx::query(sql)
        .bind(transfer.as_str())
        .bind(now_ms())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Count of actions not yet settled, for the demo and metrics.
pub async fn pending_count(pool: &Pool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM actions WHERE status = 'pending'")
            .fetch_one(pool)
            .await?,
    )
}

fn claimed_from_row(row: &Row) -> Result<Claimed, StoreError> {
    let id: String = row.try_get("id")?;
    let transfer: String = row.try_get("transfer_id")?;
    let target: String = row.try_get("target_json")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("action {id}: {what}"));
    let target: Target = serde_json::from_str(&target).map_err(|_| corrupt("target_json"))?;
    Ok(Claimed {
        action: Action {
            transfer_id: TransferId::parse(&transfer).map_err(|_| corrupt("transfer_id"))?,
            name: row.try_get("name")?,
            kind: ActionKind::parse(row.try_get("kind")?),
            target,
            body: row.try_get("body")?,
            id,
        },
        attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
    })
}

#[cfg(test)]
#[path = "repo_tests.rs"]
mod tests;
