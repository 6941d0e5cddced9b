//! What the budget looks like from outside: `/readyz` and the gauges.

use time::OffsetDateTime;

/// The budget as `/readyz` and the metrics show it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetSnapshot {
    pub daily_limit: u32,
    pub used_today: u32,
    pub remaining: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub resets_at: OffsetDateTime,
    pub resets_in_s: f64,
    /// Requests/s over the last few minutes.
    pub load_per_s: f64,
    /// The routine pace that would make the budget last until the reset.
    pub even_pace_per_s: f64,
    /// Routine polls are being spread (load above the even pace).
    pub pacing: bool,
    /// When the budget runs out at the current load; `None`: not before reset.
    #[serde(with = "time::serde::rfc3339::option")]
    pub exhausted_at: Option<OffsetDateTime>,
    pub exhausted_in_s: Option<f64>,
    /// Remaining 429 pause, in milliseconds.
    pub paused_ms: u64,
}

/// Publish the snapshot as gauges.
pub(super) fn publish(s: &BudgetSnapshot) {
    metrics::gauge!("bridge_upstream_budget_remaining").set(f64::from(s.remaining));
    metrics::gauge!("bridge_upstream_budget_load_per_second").set(s.load_per_s);
    metrics::gauge!("bridge_upstream_budget_even_pace_per_second").set(s.even_pace_per_s);
    metrics::gauge!("bridge_upstream_budget_pacing").set(f64::from(u8::from(s.pacing)));
    metrics::gauge!("bridge_upstream_budget_resets_in_seconds").set(s.resets_in_s);
    // +Inf: the budget lasts until the reset at the current load.
    let exhausted = s.exhausted_in_s.unwrap_or(f64::INFINITY);
    metrics::gauge!("bridge_upstream_budget_exhausted_in_seconds").set(exhausted);
}
