//! What the budget looks like from outside: `/readyz` and the gauges.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::{Budget, Priority, State};

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

impl Budget {
    pub fn snapshot(&self) -> BudgetSnapshot {
        let mut state = self.lock();
        state.roll_day();
        self.snapshot_of(&state)
    }

    fn snapshot_of(&self, state: &State) -> BudgetSnapshot {
        let now = Instant::now();
        let (reset_at, resets_at) = state.clock.next_reset();
        let resets_in = reset_at.saturating_duration_since(now);
        let remaining = self.daily_limit.saturating_sub(state.used());
        let load = state.load.rate_at(now);
        let exhausted_in = Duration::from_secs_f64((f64::from(remaining) / load).min(1e9));
        let exhausted_in = (exhausted_in < resets_in).then_some(exhausted_in);
        BudgetSnapshot {
            daily_limit: self.daily_limit,
            used_today: state.used(),
            remaining,
            resets_at,
            resets_in_s: resets_in.as_secs_f64(),
            load_per_s: load,
            even_pace_per_s: self.even_pace(state, resets_in),
            pacing: state.pacer.is_pacing(),
            exhausted_at: exhausted_in.map(|d| state.clock.now() + d),
            exhausted_in_s: exhausted_in.map(|d| d.as_secs_f64()),
            paused_ms: state
                .paused_until
                .map_or(0, |u| u.saturating_duration_since(now).as_millis() as u64),
        }
    }

    /// Routine requests/s that spend what routine polls may still spend
    /// evenly until the reset: this instance's share of the deployment's.
    pub(super) fn even_pace(&self, state: &State, resets_in: Duration) -> f64 {
        let routine_left = self
            .limit_for(Priority::Routine)
            .saturating_sub(state.used());
        let live = f64::from(self.spike.live());
        f64::from(routine_left) / resets_in.as_secs_f64().max(1.0) / live
    }

    /// Set the budget gauges from a fresh snapshot. Called when `/metrics`
    /// is scraped rather than on every request: a snapshot does date
    /// arithmetic and six registry look-ups, which a 1 s poller paid per GET.
    pub fn publish_gauges(&self) {
        publish(&self.snapshot());
    }
}
