//! SQL for the deployment's shared request budget (`budget_days`) and for
//! the conversation lengths the poll policy learns (`learned_durations`).
//!
//! Instances reserve the day's requests in small batches with one atomic
//! upsert each, so the database sees one write per batch, not per request,
//! and concurrent reservers can never take the day's total past a cap.

use sqlx::Row as _;

use super::{Store, StoreError};
use crate::transfer::clock::now_unix_ms;

/// What a reservation got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// Requests granted to the caller (0 when the cap was already reached).
    pub granted: u32,
    /// The day's total reserved by everyone, this grant included.
    pub spent: u32,
}

/// Grant `min($2, $3 - spent)` and add it to the day's total, unless the
/// total already reached the cap `$3`. The right-hand sides read the row as
/// it was, so `last_grant` reports exactly what this statement added; the
/// row lock (PostgreSQL) or the write lock (SQLite) makes it atomic.
const RESERVE: &str = "\
INSERT INTO budget_days (day, spent, last_grant) \
  VALUES ($1, CASE WHEN $2 < $3 THEN $2 ELSE $3 END, CASE WHEN $2 < $3 THEN $2 ELSE $3 END) \
ON CONFLICT (day) DO UPDATE SET \
  spent = CASE WHEN budget_days.spent + $2 < $3 THEN budget_days.spent + $2 ELSE $3 END, \
  last_grant = CASE WHEN budget_days.spent + $2 < $3 THEN $2 ELSE $3 - budget_days.spent END \
WHERE budget_days.spent < $3 \
RETURNING spent, last_grant";

impl Store {
    /// Reserve up to `want` requests of `day` (UTC, `YYYY-MM-DD`) without
    /// taking the day's total past `cap`.
    pub async fn reserve_budget(
        &self,
        day: &str,
        want: u32,
        cap: u32,
    ) -> Result<Reserved, StoreError> {
        let row = sqlx::query(RESERVE)
            .bind(day)
            .bind(i64::from(want))
            .bind(i64::from(cap))
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok(Reserved {
                granted: 0,
                spent: self.budget_spent(day).await?,
            });
        };
        Ok(Reserved {
            granted: to_u32(row.try_get("last_grant")?),
            spent: to_u32(row.try_get("spent")?),
        })
    }

    /// Give back `unused` requests reserved from `day`.
    pub async fn release_budget(&self, day: &str, unused: u32) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE budget_days SET spent = CASE WHEN spent > $2 THEN spent - $2 ELSE 0 END \
             WHERE day = $1",
        )
        .bind(day)
        .bind(i64::from(unused))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The day's total reserved so far (0 before the first reservation).
    pub async fn budget_spent(&self, day: &str) -> Result<u32, StoreError> {
        let spent: Option<i64> = sqlx::query_scalar("SELECT spent FROM budget_days WHERE day = $1")
            .bind(day)
            .fetch_optional(self.pool())
            .await?;
        Ok(spent.map_or(0, to_u32))
    }

    /// Record conversation lengths (seconds) that `instance` observed.
    pub async fn record_durations(
        &self,
        instance: &str,
        seconds: &[f64],
    ) -> Result<(), StoreError> {
        // A few hundred rows per statement keeps the bind count far below
        // either backend's limit while still writing a batch in one go.
        for chunk in seconds.chunks(300) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, $2, ${})", i + 3))
                .collect();
            let sql = format!(
                "INSERT INTO learned_durations (instance, observed_at, seconds) VALUES {}",
                values.join(", ")
            );
            // Only numbered placeholders are formatted in; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(instance)
                .bind(now_unix_ms());
            for s in chunk {
                query = query.bind(*s);
            }
            query.execute(self.pool()).await?;
        }
        Ok(())
    }

    /// The latest `limit` recorded lengths, oldest first, with their `seq`.
    pub async fn recent_durations(&self, limit: u32) -> Result<Vec<(i64, f64)>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, seconds FROM learned_durations ORDER BY seq DESC LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
        let mut out = durations(&rows)?;
        out.reverse();
        Ok(out)
    }

    /// Lengths recorded after `after` by instances other than `except`,
    /// oldest first, at most `limit`.
    pub async fn durations_since(
        &self,
        after: i64,
        except: &str,
        limit: u32,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, seconds FROM learned_durations WHERE seq > $1 AND instance <> $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(except)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        durations(&rows)
    }

    /// Keep only about the latest `keep` lengths.
    pub async fn prune_durations(&self, keep: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM learned_durations \
             WHERE seq <= (SELECT MAX(seq) FROM learned_durations) - $1",
        )
        .bind(i64::from(keep))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

fn durations(rows: &[super::Row]) -> Result<Vec<(i64, f64)>, StoreError> {
    rows.iter()
        .map(|r| Ok((r.try_get("seq")?, r.try_get("seconds")?)))
        .collect()
}

/// Counts are never negative and a day's budget fits in u32.
fn to_u32(n: i64) -> u32 {
    n.clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
