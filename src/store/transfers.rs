//! SQL for the `transfers` table.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row as _;

use super::registration::NewTransfer;
use super::{Backend, Conn, Row, Store, StoreError, parse_time};
use crate::transfer::{BridgeState, Transfer, TransferId};

pub struct ListPage {
    pub items: Vec<Transfer>,
    /// Pass back as `cursor` to continue; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// Every column `from_row` reads, as a literal (SELECT and RETURNING lists).
macro_rules! columns {
    () => {
        "seq, id, state, upstream_status, upstream_json, callback_url, metadata_json, \
         polls, reason, created_at, updated_at, request_json, sip_json, integration, \
         return_signal, owner"
    };
}

/// `SELECT <every column> FROM transfers <rest>`, as a literal so sqlx can
/// see the SQL is static.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            $crate::store::columns!(),
            " FROM transfers ",
            $rest
        )
    };
}

pub(crate) use {columns, select};

impl Store {
    pub async fn get(&self, id: &TransferId) -> Result<Option<Transfer>, StoreError> {
        let mut conn = Conn::plain(self.reader().acquire().await?);
        fetch(&mut conn, id).await
    }

    /// Which of `ids` are no longer TRACKING (or gone).
    pub async fn not_tracking(&self, ids: &[TransferId]) -> Result<Vec<TransferId>, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT id FROM transfers WHERE state = 'TRACKING' \
                 AND id IN (SELECT value FROM json_each($1))"
            }
            Backend::Postgres => {
                "SELECT id FROM transfers WHERE state = 'TRACKING' \
                 AND id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))"
            }
        };
        let texts: Vec<&str> = ids.iter().map(TransferId::as_str).collect();
        let mut tracking = std::collections::HashSet::new();
        for array in super::json_arrays(self.backend(), &texts) {
            let rows: Vec<String> = sqlx::query_scalar(sql)
                .bind(array)
                .fetch_all(self.reader())
                .await?;
            tracking.extend(rows);
        }
        Ok(ids
            .iter()
            .filter(|id| !tracking.contains(id.as_str()))
            .cloned()
            .collect())
    }

    /// Every transfer still being tracked, for resuming after a restart.
    pub async fn tracking(&self) -> Result<Vec<Transfer>, StoreError> {
        let rows = sqlx::query(select!("WHERE state = 'TRACKING' ORDER BY seq"))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn list(
        &self,
        state: Option<BridgeState>,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<ListPage, StoreError> {
        let rows = sqlx::query(select!(
            "WHERE ($1 IS NULL OR state = $1) AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(state.map(BridgeState::as_str))
        .bind(cursor.unwrap_or(0))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.reader())
        .await?;
        let more = rows.len() > limit as usize;
        let rows = &rows[..rows.len().min(limit as usize)];
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(last.try_get::<i64, _>("seq")?),
            _ => None,
        };
        let items = rows.iter().map(from_row).collect::<Result<_, _>>()?;
        Ok(ListPage { items, next_cursor })
    }
}

pub async fn fetch(conn: &mut Conn, id: &TransferId) -> Result<Option<Transfer>, StoreError> {
    let row = sqlx::query(select!("WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) fn from_row(row: &Row) -> Result<Transfer, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("transfer {id}: {what}"));
    let upstream: Option<String> = row.try_get("upstream_json")?;
    let metadata: String = row.try_get("metadata_json")?;
    let sip: Option<String> = row.try_get("sip_json")?;
    let stored = Stored {
        extra: (),
        state: row.try_get("state")?,
        upstream_status: row.try_get("upstream_status")?,
        upstream: upstream
            .map(|u| serde_json::from_str(&u))
            .transpose()
            .map_err(|_| corrupt("upstream_json"))?,
        callback_url: row.try_get("callback_url")?,
        metadata: serde_json::from_str(&metadata).map_err(|_| corrupt("metadata_json"))?,
        polls: row.try_get("polls")?,
        reason: row.try_get("reason")?,
        sip: sip
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|_| corrupt("sip_json"))?,
        integration: row.try_get("integration")?,
        return_signal: row.try_get("return_signal")?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    };
    Ok(stored.into_transfer()?.0)
}

/// On SQLite, every transfer of a set as one JSON array, in one row.
/// sqlx hands a statement's rows over one at a time (a bounded channel from
/// the connection's worker thread): a read of a few hundred rows took
/// several turns of a busy runtime while the writer connection was held.
/// One row is one turn. Stored JSON columns are nested as JSON (`json()`),
/// so each is parsed once, straight into its type.
macro_rules! as_json_array {
    ($rest:literal) => {
        $crate::store::as_json_array!("", $rest)
    };
    // `$extra`: members to add to each transfer's object (`'extra', <expr>, `).
    ($extra:expr, $rest:literal) => {
        concat!(
            "SELECT json_group_array(json_object(",
            $extra,
            "'id', id, 'state', state, \
             'upstream_status', upstream_status, 'upstream', json(upstream_json), \
             'callback_url', callback_url, 'metadata', json(metadata_json), 'polls', polls, \
             'reason', reason, 'sip', json(sip_json), 'integration', integration, \
             'return_signal', return_signal, 'owner', owner, 'created_at', created_at, \
             'updated_at', updated_at)) FROM transfers ",
            $rest
        )
    };
}

pub(crate) use as_json_array;

/// A transfer as [`as_json_array`] writes it, and what the statement added
/// to it as `extra` (nothing: `()`); [`from_row`] fills one from a row, so
/// a [`Transfer`] is made from stored columns in one place.
#[derive(serde::Deserialize)]
struct Stored<X> {
    #[serde(default)]
    extra: X,
    id: String,
    state: String,
    upstream_status: Option<String>,
    upstream: Option<Value>,
    callback_url: Option<String>,
    metadata: BTreeMap<String, String>,
    polls: i64,
    reason: Option<String>,
    sip: Option<crate::sip::SipInstruction>,
    integration: Option<String>,
    return_signal: Option<i64>,
    owner: Option<String>,
    created_at: String,
    updated_at: String,
}

/// On SQLite, the transfers among `ids` that `sql` (an [`as_json_array`]
/// statement taking the ids as a JSON array in `$1`) reads, each with its
/// `extra`: one statement, one row, however many ids (SQLite binds text of
/// any length).
pub(crate) async fn read_json_array<'c, X>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    sql: &'static str,
    ids: &[&str],
) -> Result<Vec<(Transfer, X)>, StoreError>
where
    X: serde::de::DeserializeOwned + Default,
{
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(ids).expect("ids serialize");
    let all: String = sqlx::query_scalar(sql)
        .bind(ids)
        .fetch_one(executor)
        .await?;
    let stored: Vec<Stored<X>> = serde_json::from_str(&all)
        .map_err(|e| StoreError::Corrupt(format!("transfers as JSON: {e}")))?;
    stored.into_iter().map(Stored::into_transfer).collect()
}

/// The transfer [`registration`](super::registration) inserts for `new`,
/// owned by `owner`, stamped `now`: what a read of its row gives.
pub(super) fn as_inserted(
    new: &NewTransfer,
    owner: &str,
    now: &str,
) -> Result<Transfer, StoreError> {
    let stored = Stored {
        extra: (),
        id: new.id.as_str().to_owned(),
        state: BridgeState::Tracking.as_str().to_owned(),
        upstream_status: new.upstream_status.clone(),
        upstream: new.upstream.clone(),
        callback_url: new.callback_url.clone(),
        metadata: new.metadata.clone(),
        polls: 0,
        reason: None,
        sip: None,
        integration: new.integration.clone(),
        return_signal: new.return_signal.map(i64::from),
        owner: Some(owner.to_owned()),
        created_at: now.to_owned(),
        updated_at: now.to_owned(),
    };
    Ok(stored.into_transfer()?.0)
}

impl<X> Stored<X> {
    fn into_transfer(self) -> Result<(Transfer, X), StoreError> {
        let id = self.id;
        let corrupt = |what: &str| StoreError::Corrupt(format!("transfer {id}: {what}"));
        let transfer = Transfer {
            id: TransferId::parse(&id).map_err(|e| corrupt(&e.to_string()))?,
            state: BridgeState::parse(&self.state).ok_or_else(|| corrupt("unknown state"))?,
            upstream_status: self.upstream_status,
            upstream: self.upstream,
            callback_url: self.callback_url,
            metadata: self.metadata,
            polls: self.polls.clamp(0, u32::MAX as i64) as u32,
            reason: self.reason,
            sip: self.sip,
            integration: self.integration,
            return_signal: self.return_signal.map(|v| v != 0),
            owner: self.owner,
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
        };
        Ok((transfer, self.extra))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{register, testdb};
    use crate::transfer::TransferId;

    /// What a LISTEN catch-up asks: of these ids, which left TRACKING or
    /// were never there.
    #[tokio::test]
    async fn not_tracking_names_the_ended_and_the_unknown() {
        for db in testdb::each().await {
            let backend = db.backend();
            let mut tx = db.store.begin().await.unwrap();
            for id in ["t1", "t2"] {
                register(&mut tx, backend, &testdb::plain(id), "i1")
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            sqlx::query("UPDATE transfers SET state = 'COMPLETED' WHERE id = 't2'")
                .execute(db.store.pool())
                .await
                .unwrap();
            let ids: Vec<TransferId> = ["t1", "t2", "t3"]
                .iter()
                .map(|id| TransferId::parse(id).unwrap())
                .collect();
            let ended = db.store.not_tracking(&ids).await.unwrap();
            assert_eq!(ended, &ids[1..], "{backend:?}");
        }
    }
}
