//! SQL for the `instances` lease table and for who owns which transfer.
//!
//! An instance renews one row for all of its transfers; a transfer names its
//! owner. Adoption moves TRACKING transfers from instances whose lease has
//! expired (or from no owner at all) to the caller, in batches that two
//! survivors can take side by side (`FOR UPDATE SKIP LOCKED` on PostgreSQL).

use super::transfers::{columns, from_row, select};
use super::{Backend, Conn, Store, StoreError};
use crate::transfer::clock::{local_unix_ms, now_unix_ms};
use crate::transfer::{Transfer, TransferId};

/// A clock reading whose round trip took longer says too little about
/// when the database read its clock: keep the last one.
const CLOCK_READ_MAX_RTT: std::time::Duration = std::time::Duration::from_millis(200);

/// NOTIFY channels (PostgreSQL): a transfer left TRACKING (payload: its
/// id), and a returned signal for another instance's transfer (payload:
/// [`signal_payload`]).
pub const CHANGED: &str = "bridge_changed";
pub const SIGNAL: &str = "bridge_signal";

/// A signal for `owner`'s transfer `id` on [`SIGNAL`]: `<owner> <id>`, and
/// ` held` when it is a held request's nudge. Neither id holds a space.
pub fn signal_payload(owner: &str, id: &TransferId, held: bool) -> String {
    match held {
        true => format!("{owner} {id} held"),
        false => format!("{owner} {id}"),
    }
}

/// What [`signal_payload`] wrote: owner, id, whether a nudge.
pub fn parse_signal(payload: &str) -> Option<(&str, TransferId, bool)> {
    let (owner, rest) = payload.split_once(' ')?;
    let (id, held) = match rest.split_once(' ') {
        None => (rest, false),
        Some((id, "held")) => (id, true),
        Some(_) => return None,
    };
    Some((owner, TransferId::parse(id).ok()?, held))
}

/// Tell every instance listening on `channel`, when the caller's transaction
/// commits (PostgreSQL only).
pub async fn notify(conn: &mut Conn, channel: &str, payload: &str) -> Result<(), StoreError> {
    // pg_notify returns void, a type the Any driver cannot decode: select
    // a plain integer around it.
    sqlx::query("SELECT 1 AS sent FROM (SELECT pg_notify($1, $2)) AS n")
        .bind(channel)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// [`notify`] once per payload, in one statement (a group commit's changes).
pub async fn notify_many(
    conn: &mut Conn,
    channel: &str,
    payloads: &[&str],
) -> Result<(), StoreError> {
    if payloads.is_empty() {
        return Ok(());
    }
    for array in super::json_arrays(super::Backend::Postgres, payloads) {
        sqlx::query(
            "SELECT 1 AS sent FROM (SELECT pg_notify($1, p) FROM json_array_elements_text($2::json) AS p) AS n",
        )
        .bind(channel)
        .bind(array)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Whether a renewal found the lease still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    Held,
    /// It had expired: others may have adopted this instance's transfers.
    Lost,
}

/// Hand up to `$3` TRACKING transfers owned by `$2` (a dead instance) or by
/// no one (`$2` NULL) to `$1`, unless `$2` came back to life meanwhile.
/// `$4` is now, in Unix milliseconds.
macro_rules! adopt_sql {
    ($owner:literal, $lock:literal) => {
        concat!(
            "UPDATE transfers SET owner = $1 WHERE seq IN ( \
               SELECT seq FROM transfers WHERE state = 'TRACKING' AND ",
            $owner,
            " AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = $2 AND i.expires_at > $4) \
               ORDER BY seq LIMIT $3",
            $lock,
            ") RETURNING ",
            columns!()
        )
    };
}

/// On SQLite, adoption from a dead instance, and of rows no one owned.
pub(super) const ADOPT_SQLITE: &str = adopt_sql!("owner = $2", "");
pub(super) const ADOPT_UNOWNED_SQLITE: &str = adopt_sql!("owner IS NULL", "");

/// Whether instance `$1` still holds a TRACKING transfer or a claimed action.
pub(super) const HOLDS: &str = "SELECT owner AS held FROM transfers WHERE owner = $1 AND state = 'TRACKING' \
     UNION ALL SELECT claimed_by AS held FROM actions WHERE status = 'pending' \
     AND claimed_by = $1 AND claimed_until IS NOT NULL LIMIT 1";

/// Lease rows older than `$1` whose instance holds nothing.
pub(super) const PRUNE: &str = "DELETE FROM instances WHERE expires_at < $1 AND NOT EXISTS ( \
       SELECT 1 FROM transfers t WHERE t.owner = instances.id AND t.state = 'TRACKING') \
     AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.claimed_by = instances.id \
       AND a.status = 'pending')";

/// Every TRACKING transfer to `$1` (SQLite: one instance owns them all).
pub(super) const OWN_ALL: &str = "UPDATE transfers SET owner = $1 WHERE state = 'TRACKING'";

impl Store {
    /// Take (or take back) this instance's lease until now + `ttl_ms`, for
    /// the run that started at `started` (its RFC 3339 start time, to the
    /// nanosecond). A run with the same `cluster.instance_id` still renewing
    /// finds its lease lost at its next renewal and stops.
    pub async fn join(&self, instance: &str, started: &str, ttl_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instances (id, expires_at, started_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, \
             started_at = excluded.started_at",
        )
        .bind(instance)
        .bind(now_unix_ms() + ttl_ms)
        .bind(started)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Extend the lease, one write for every transfer the instance owns.
    /// Lost when it expired, or when a later run took the same id.
    pub async fn renew(
        &self,
        instance: &str,
        started: &str,
        ttl_ms: i64,
    ) -> Result<Renewal, StoreError> {
        let now = now_unix_ms();
        let done = sqlx::query(
            "UPDATE instances SET expires_at = $2 WHERE id = $1 AND expires_at > $3 \
             AND started_at = $4",
        )
        .bind(instance)
        .bind(now + ttl_ms)
        .bind(now)
        .bind(started)
        .execute(self.pool())
        .await?;
        Ok(match done.rows_affected() {
            1 => Renewal::Held,
            _ => Renewal::Lost,
        })
    }

    /// Give the lease up at a clean stop, so the others adopt at once;
    /// unless a later run with the same id holds it now.
    pub async fn leave(&self, instance: &str, started: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE instances SET expires_at = 0 WHERE id = $1 AND started_at = $2")
            .bind(instance)
            .bind(started)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// How far the database's clock is ahead of this machine's, in
    /// milliseconds, taking the reading as made halfway through its round
    /// trip. `None` on SQLite (one instance: nothing to agree with), or
    /// when the round trip was too slow to say.
    pub async fn clock_offset(&self) -> Result<Option<i64>, StoreError> {
        if self.backend() == Backend::Sqlite {
            return Ok(None);
        }
        let (sent, started) = (local_unix_ms(), std::time::Instant::now());
        let database: i64 = sqlx::query_scalar(
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now_ms",
        )
        .fetch_one(self.pool())
        .await?;
        let trip = started.elapsed();
        if trip > CLOCK_READ_MAX_RTT {
            return Ok(None);
        }
        Ok(Some(database - (sent + trip.as_millis() as i64 / 2)))
    }

    /// Instances whose lease is current, this one included.
    pub async fn live_instances(&self) -> Result<u32, StoreError> {
        let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE expires_at > $1")
            .bind(now_unix_ms())
            .fetch_one(self.pool())
            .await?;
        Ok(live.clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// Instances past their lease that still own TRACKING transfers or hold
    /// outbox claims: the ones there is something to adopt from.
    ///
    /// Every instance asks at every renewal, so this is the expired leases
    /// (mostly none), then one lookup per expired lease with its id bound as
    /// a value. As one correlated query (`EXISTS ... WHERE t.owner = i.id`),
    /// PostgreSQL planned the lookups from the owner column's statistics:
    /// where one live instance owns every transfer, it expected each expired
    /// lease to own two thirds of them, and scanned all of `transfers` and
    /// `actions` for each one (30-37 ms at 20,000 transfers, growing with the
    /// tables). An unnamed statement (`persistent(false)`) is planned for the
    /// id it carries, which the statistics know owns nothing: index lookups.
    pub async fn dead_instances(&self) -> Result<Vec<String>, StoreError> {
        let expired: Vec<String> =
            sqlx::query_scalar("SELECT id FROM instances WHERE expires_at <= $1 ORDER BY id")
                .bind(now_unix_ms())
                .fetch_all(self.pool())
                .await?;
        let mut dead = Vec::new();
        for id in expired {
            let holds = sqlx::query(HOLDS)
                .bind(&id)
                .persistent(false)
                .fetch_optional(self.pool())
                .await?;
            if holds.is_some() {
                dead.push(id);
            }
        }
        Ok(dead)
    }

    /// Forget lease rows dead for a day that own nothing any more: every
    /// start with a generated id adds one.
    pub async fn prune_instances(&self) -> Result<u64, StoreError> {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        let done = sqlx::query(PRUNE)
            .bind(now_unix_ms() - DAY_MS)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Void the outbox claims of a dead instance: its deliveries are due again
    /// now, for whichever dispatcher claims them first, same ids.
    pub async fn release_claims_of(&self, instance: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE actions SET claimed_until = NULL, claimed_by = NULL \
             WHERE claimed_by = $1 AND status = 'pending'",
        )
        .bind(instance)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

/// Adopt up to `limit` TRACKING transfers of `from`, a dead instance
/// (`None`: rows that never had an owner). Two survivors adopting from
/// the same instance split its transfers between them.
pub async fn adopt_from(
    conn: &mut Conn,
    backend: Backend,
    me: &str,
    from: Option<&str>,
    limit: u32,
) -> Result<Vec<Adopted>, StoreError> {
    let sql = match (backend, from.is_some()) {
        (Backend::Sqlite, true) => ADOPT_SQLITE,
        (Backend::Sqlite, false) => ADOPT_UNOWNED_SQLITE,
        (Backend::Postgres, true) => adopt_sql!("owner = $2", " FOR UPDATE SKIP LOCKED"),
        (Backend::Postgres, false) => {
            adopt_sql!(
                "owner IS NULL AND $2::text IS NULL",
                " FOR UPDATE SKIP LOCKED"
            )
        }
    };
    let rows = sqlx::query(sql)
        .bind(me)
        .bind(from)
        .bind(i64::from(limit))
        .bind(now_unix_ms())
        .fetch_all(conn)
        .await?;
    adopted(&rows, from)
}

/// The TRACKING transfers `me` owns: a run that keeps its predecessor's
/// `cluster.instance_id` resumes them, as nobody else adopts from a lease
/// that is live again.
pub async fn owned_by(conn: &mut Conn, me: &str) -> Result<Vec<Adopted>, StoreError> {
    let rows = sqlx::query(select!(
        "WHERE state = 'TRACKING' AND owner = $1 ORDER BY seq"
    ))
    .bind(me)
    .fetch_all(conn)
    .await?;
    adopted(&rows, Some(me))
}

/// On SQLite one instance owns everything: at start it takes every
/// TRACKING transfer, whoever the last run was.
pub async fn adopt_all(conn: &mut Conn, me: &str) -> Result<Vec<Adopted>, StoreError> {
    let rows = sqlx::query(select!("WHERE state = 'TRACKING' ORDER BY seq"))
        .fetch_all(&mut *conn)
        .await?;
    sqlx::query(OWN_ALL).bind(me).execute(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let transfer = from_row(row)?;
            let from = transfer.owner.clone();
            Ok(Adopted { transfer, from })
        })
        .collect()
}

/// Adopt one transfer now, if `from` (its owner) is still dead: a
/// returned signal for it must not wait for the next adoption round.
pub async fn adopt_one(
    conn: &mut Conn,
    me: &str,
    id: &TransferId,
    from: Option<&str>,
) -> Result<Option<Adopted>, StoreError> {
    let sql = concat!(
        "UPDATE transfers SET owner = $1 WHERE id = $3 AND state = 'TRACKING' \
         AND (owner = $2 OR (owner IS NULL AND $2 IS NULL)) \
         AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = $2 AND i.expires_at > $4) \
         RETURNING ",
        columns!()
    );
    let rows = sqlx::query(sql)
        .bind(me)
        .bind(from)
        .bind(id.as_str())
        .bind(now_unix_ms())
        .fetch_all(conn)
        .await?;
    Ok(adopted(&rows, from)?.pop())
}

fn adopted(rows: &[super::Row], from: Option<&str>) -> Result<Vec<Adopted>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(Adopted {
                transfer: from_row(row)?,
                from: from.map(str::to_owned),
            })
        })
        .collect()
}

/// A transfer this instance now owns, and who owned it before.
#[derive(Debug, Clone)]
pub struct Adopted {
    pub transfer: Transfer,
    pub from: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_payload_reads_back_as_written_and_nothing_else_reads() {
        let id = TransferId::parse("ct-1.a_b").unwrap();
        for held in [false, true] {
            let payload = signal_payload("bridge-a", &id, held);
            assert_eq!(parse_signal(&payload), Some(("bridge-a", id.clone(), held)));
        }
        for bad in [
            "",
            "bridge-a",
            "bridge-a ct-1 later",
            "bridge-a ct 1 held",
            "a b/c",
        ] {
            assert_eq!(parse_signal(bad), None, "{bad:?}");
        }
    }
}
