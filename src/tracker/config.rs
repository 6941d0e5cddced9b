//! `[polling]`: the poll policy and its bounds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which poll policy the tracker uses (`polling.policy`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// Intervals follow the learned completion hazard (see `tracker::adaptive`).
    Adaptive,
    /// `active_interval` / `ongoing_interval`, nothing else.
    Fixed,
}

/// Whether routine polling may lean on returned-call signals
/// (`polling.trust_signals`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TrustSignals {
    /// Lean on them while nearly every recent completion came with one.
    Auto,
    /// The PBX signals every call: routine polls are only a safety net.
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PollingConfig {
    pub policy: PolicyKind,
    pub trust_signals: TrustSignals,
    /// Auto: the share of recent completions that must have had a signal.
    pub signal_trust: f64,
    /// While signals are trusted, routine polls come this far apart.
    #[serde(with = "crate::settings::duration")]
    pub safety_interval: Duration,
    /// Fixed policy: interval while ACTIVE. Adaptive: used only when the
    /// upstream gives no `expiresAt`, as the longest wait while ACTIVE.
    #[serde(with = "crate::settings::duration")]
    pub active_interval: Duration,
    /// Fixed policy: interval while ONGOING.
    #[serde(with = "crate::settings::duration")]
    pub ongoing_interval: Duration,
    /// Adaptive: the p95 detection lag (without a signal) to aim for.
    #[serde(with = "crate::settings::duration")]
    pub target_lag: Duration,
    /// Adaptive: intervals scale with hazard^-exponent.
    pub hazard_exponent: f64,
    /// Adaptive: the shortest interval.
    #[serde(with = "crate::settings::duration")]
    pub min_interval: Duration,
    /// Any policy: no ACTIVE or ONGOING transfer whose signals are not
    /// trusted goes unpolled longer than this, whatever `expiresAt` says.
    #[serde(with = "crate::settings::duration")]
    pub max_interval: Duration,
    /// Adaptive: poll this long after `phoneNumber.expiresAt` to see EXPIRED.
    #[serde(with = "crate::settings::duration")]
    pub expiry_margin: Duration,
    /// Every routine delay is scaled by a random factor in 1 ± jitter.
    pub jitter: f64,
    /// Adaptive prior on conversation length: log-normal median and sigma.
    #[serde(with = "crate::settings::duration")]
    pub prior_median: Duration,
    pub prior_sigma: f64,
    /// How many observed completions the prior is worth.
    pub prior_weight: f64,
    /// The learned distribution forgets with this horizon (completions).
    pub learn_window: u32,
    /// Learned lengths are written to the store, and those other instances
    /// learned are read back, this often.
    #[serde(with = "crate::settings::duration")]
    pub learn_sync_interval: Duration,
    /// After a returned-call signal: re-poll this soon if still ONGOING,
    /// doubling, for at most `returned_window`.
    #[serde(with = "crate::settings::duration")]
    pub returned_interval: Duration,
    #[serde(with = "crate::settings::duration")]
    pub returned_window: Duration,
    #[serde(with = "crate::settings::duration")]
    pub backoff_initial: Duration,
    #[serde(with = "crate::settings::duration")]
    pub backoff_max: Duration,
    #[serde(with = "crate::settings::duration")]
    pub max_tracking_time: Duration,
    #[serde(with = "crate::settings::duration")]
    pub not_found_grace: Duration,
    pub max_in_flight: usize,
}
