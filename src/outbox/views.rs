//! What the API shows of a transfer's actions, and the reads behind it:
//! the transfer with its actions in one statement, or the actions alone.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row as _;

use crate::store::{Backend, Row, Store, StoreError, json_arrays, read_json_array};
use crate::transfer::{Action, ActionStatus, Transfer, TransferId};

/// What `GET /v1/transfers/{id}` shows per action.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionView {
    pub id: String,
    pub kind: String,
    #[schema(value_type = String)]
    pub status: ActionStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl ActionView {
    /// An action as its commit recorded it: pending, its first attempt
    /// counted when the commit claimed it for this instance's dispatcher
    /// (see `enqueue`).
    pub fn enqueued(action: &Action, claimed: bool) -> Self {
        Self {
            id: action.id.clone(),
            kind: action.kind.as_str().to_owned(),
            status: ActionStatus::Pending,
            attempts: u32::from(claimed),
            last_error: None,
        }
    }
}

/// On SQLite, the actions of the transfer `$id`, as a condition on the
/// actions table as `$t`: the range of the primary key that starts with
/// `<id>.` (action ids are `<transfer id>.<name>`, and SQLite compares text
/// byte by byte), which its index finds without a second index on
/// `transfer_id`; and the transfer id itself, since a transfer id may hold a
/// dot (`a.b.tracking` is in the range of `a`). PostgreSQL keeps its index
/// on `transfer_id`: under a database collation the range would not be a
/// prefix.
macro_rules! of_transfer {
    ($t:literal, $id:literal) => {
        concat!(
            $t,
            "id >= ",
            $id,
            " || '.' AND ",
            $t,
            "id < ",
            $id,
            " || '/' AND ",
            $t,
            "transfer_id = ",
            $id
        )
    };
}
pub(super) use of_transfer;

/// The columns [`view_from_row`] reads, from the actions table as `$t`.
macro_rules! action_columns {
    ($t:literal) => {
        concat!(
            $t,
            "id AS action_id, ",
            $t,
            "kind AS action_kind, ",
            $t,
            "status AS action_status, ",
            $t,
            "attempts AS action_attempts, ",
            $t,
            "last_error AS action_last_error"
        )
    };
}

/// The transfers `$where` picks (as `t`) with their actions (`action_*`
/// columns, see [`view_from_row`]) in one statement: a LEFT JOIN, so one row
/// per action, or one with none; each transfer's rows together, in the
/// actions' order.
///
/// On PostgreSQL the actions are a LATERAL subquery behind `OFFSET 0` (which
/// keeps the planner from flattening it into a plain join): each transfer's
/// actions are looked up in the `transfer_id` index, with statistics or
/// without. As a plain join, with no statistics yet (a new database, or a
/// table that grew faster than autovacuum analyses it) the planner hashed
/// the transfers and scanned the whole actions table for every read: 3-5 ms
/// a statement for 20 transfers beside 30,000 actions, about half of
/// PostgreSQL's time in a burst of 10,000 completions
/// (`pg_stat_statements`). `views_tests` holds it.
macro_rules! with_actions {
    (Sqlite, $where:literal) => {
        with_actions!(@join $where, "LEFT JOIN actions a ON ", of_transfer!("a.", "t.id"))
    };
    (Postgres, $where:literal) => {
        with_actions!(@join $where,
            "LEFT JOIN LATERAL (SELECT id, kind, status, attempts, last_error, created_at \
             FROM actions WHERE transfer_id = t.id OFFSET 0) a ON true")
    };
    // The statement, given how `t`'s action rows are joined (as `a`).
    (@join $where:literal, $($join:tt)+) => {
        concat!(
            "SELECT t.*, ",
            action_columns!("a."),
            " FROM (",
            crate::store::select!($where),
            ") t ",
            $($join)+,
            " ORDER BY t.id, a.created_at, a.id"
        )
    };
}

pub async fn for_transfer(
    store: &Store,
    transfer: &TransferId,
) -> Result<Vec<ActionView>, StoreError> {
    let sql = match store.backend() {
        Backend::Sqlite => concat!(
            "SELECT ",
            action_columns!(""),
            " FROM actions WHERE ",
            of_transfer!("", "$1"),
            " ORDER BY created_at, id"
        ),
        Backend::Postgres => concat!(
            "SELECT ",
            action_columns!(""),
            " FROM actions WHERE transfer_id = $1 ORDER BY created_at, id"
        ),
    };
    let rows = sqlx::query(sql)
        .bind(transfer.as_str())
        .fetch_all(store.reader())
        .await?;
    rows.iter().filter_map(view_from_row).collect()
}

/// The action of a row, if it has one (`action_*` columns; a LEFT JOIN
/// gives a transfer without actions one row with none).
fn view_from_row(row: &Row) -> Option<Result<ActionView, StoreError>> {
    let view = || {
        let Some(id) = row.try_get::<Option<String>, _>("action_id")? else {
            return Ok(None);
        };
        let stored = StoredAction {
            id,
            kind: row.try_get("action_kind")?,
            status: row.try_get("action_status")?,
            attempts: row.try_get("action_attempts")?,
            last_error: row.try_get("action_last_error")?,
        };
        Ok(Some(stored.into_view()))
    };
    view().transpose()
}

/// A transfer with its actions, as [`with_transfer`] reads it.
pub type Viewed = (Transfer, Vec<ActionView>);

/// A transfer and its actions in one statement (see `with_actions!`). The
/// API's single-transfer answers show both, and on SQLite each statement is
/// a round trip to a connection's worker thread.
pub async fn with_transfer(
    reader: &mut AnyConnection,
    backend: Backend,
    id: &TransferId,
) -> Result<Option<Viewed>, StoreError> {
    let sql = match backend {
        Backend::Sqlite => with_actions!(Sqlite, "WHERE id = $1"),
        Backend::Postgres => with_actions!(Postgres, "WHERE id = $1"),
    };
    let rows = sqlx::query(sql).bind(id.as_str()).fetch_all(reader).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let transfer = crate::store::transfer_from_row(first)?;
    let actions = rows
        .iter()
        .filter_map(view_from_row)
        .collect::<Result<_, _>>()?;
    Ok(Some((transfer, actions)))
}

/// [`with_transfers`] on PostgreSQL; `= ANY(ARRAY(...))` for the reason
/// `store::ending::fetch_many` gives.
const WITH_TRANSFERS_POSTGRES: &str = with_actions!(
    Postgres,
    "WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))"
);

/// Each transfer among `ids` that exists, with its actions, by id. On
/// PostgreSQL the statement of [`with_transfer`] for many at once (one per
/// JSON array, see `store::json_arrays`): rows come ordered by transfer, so
/// each transfer's rows are consecutive. On SQLite one row for them all
/// (see `with_transfers_sqlite`).
pub async fn with_transfers(
    reader: &mut AnyConnection,
    backend: Backend,
    ids: &[&str],
) -> Result<HashMap<String, Viewed>, StoreError> {
    if backend == Backend::Sqlite {
        return with_transfers_sqlite(reader, ids).await;
    }
    let mut found: HashMap<String, Viewed> = HashMap::with_capacity(ids.len());
    for array in json_arrays(backend, ids) {
        let rows = sqlx::query(WITH_TRANSFERS_POSTGRES)
            .bind(array)
            .fetch_all(&mut *reader)
            .await?;
        let mut current: Option<&mut Viewed> = None;
        for row in &rows {
            let id: &str = row.try_get("id")?;
            if current.as_ref().is_none_or(|(t, _)| t.id.as_str() != id) {
                let transfer = crate::store::transfer_from_row(row)?;
                let key = transfer.id.as_str().to_owned();
                current = Some(found.entry(key).or_insert((transfer, Vec::new())));
            }
            if let (Some((_, actions)), Some(view)) = (current.as_mut(), view_from_row(row)) {
                actions.push(view?);
            }
        }
    }
    Ok(found)
}

/// [`with_transfers`] on SQLite: one row, a JSON array of the transfers,
/// each with its actions (see `store::as_json_array`). Row by row, sqlx
/// hands each over in a turn of its own: a batch of 64 transfers was some
/// 200 rows.
async fn with_transfers_sqlite(
    reader: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, Viewed>, StoreError> {
    const SQL: &str = crate::store::as_json_array!(
        concat!(
            "'extra', (SELECT json_group_array(json_object('id', a.id, 'kind', a.kind, \
             'status', a.status, 'attempts', a.attempts, 'last_error', a.last_error) \
             ORDER BY a.created_at, a.id) FROM actions a WHERE ",
            of_transfer!("a.", "t.id"),
            "), "
        ),
        "t WHERE t.id IN (SELECT value FROM json_each($1))"
    );
    let read = read_json_array::<Vec<StoredAction>>(reader, SQL, ids).await?;
    Ok(read
        .into_iter()
        .map(|(transfer, actions)| {
            let actions = actions.into_iter().map(StoredAction::into_view).collect();
            (transfer.id.as_str().to_owned(), (transfer, actions))
        })
        .collect())
}

/// An action's stored columns, from a row or from [`with_transfers_sqlite`]'s
/// JSON: an [`ActionView`] is made from them in one place.
#[derive(serde::Deserialize)]
struct StoredAction {
    id: String,
    kind: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
}

impl StoredAction {
    fn into_view(self) -> ActionView {
        ActionView {
            id: self.id,
            kind: self.kind,
            status: ActionStatus::parse(&self.status),
            attempts: self.attempts.max(0) as u32,
            last_error: self.last_error,
        }
    }
}

#[cfg(test)]
#[path = "views_tests.rs"]
mod tests;
