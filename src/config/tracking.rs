//! `[upstream]` and `[polling]`: the upstream client, its request budget and
//! the poll policy.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub base_url: String,
    pub api_id: String,
    #[serde(serialize_with = "super::redact")]
    pub api_secret: SecretString,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Spike limit: no 1-second window sees more requests than this.
    pub rate_limit_per_s: u32,
    /// Requests per UTC day, creates and GETs together.
    pub daily_budget: u32,
    /// Part of the daily budget that only returned-call signals and creates
    /// may spend, so a caller who is back is never told "budget exhausted".
    pub signal_reserve: u32,
    /// Routine polls may run ahead of an even spread of the remaining budget
    /// over the rest of the day by at most this much of it.
    #[serde(with = "humantime_serde")]
    pub pacing_window: Duration,
    /// First retry after credentials are refused (401/403); doubles.
    #[serde(with = "humantime_serde")]
    pub auth_probe_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub auth_probe_max: Duration,
    /// Transfers due while the credentials have been refused for this long
    /// end FAILED ("auth refused") so integrators can fall back.
    #[serde(with = "humantime_serde")]
    pub auth_fail_after: Duration,
}

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
    #[serde(with = "humantime_serde")]
    pub safety_interval: Duration,
    /// Fixed policy: interval while ACTIVE. Adaptive: used only when the
    /// upstream gives no `expiresAt`, as the longest wait while ACTIVE.
    #[serde(with = "humantime_serde")]
    pub active_interval: Duration,
    /// Fixed policy: interval while ONGOING.
    #[serde(with = "humantime_serde")]
    pub ongoing_interval: Duration,
    /// Adaptive: the p95 detection lag (without a signal) to aim for.
    #[serde(with = "humantime_serde")]
    pub target_lag: Duration,
    /// Adaptive: intervals scale with hazard^-exponent.
    pub hazard_exponent: f64,
    /// Adaptive: the shortest interval.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Any policy: no ACTIVE or ONGOING transfer whose signals are not
    /// trusted goes unpolled longer than this, whatever `expiresAt` says.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Adaptive: poll this long after `phoneNumber.expiresAt` to see EXPIRED.
    #[serde(with = "humantime_serde")]
    pub expiry_margin: Duration,
    /// Every routine delay is scaled by a random factor in 1 ± jitter.
    pub jitter: f64,
    /// Adaptive prior on conversation length: log-normal median and sigma.
    #[serde(with = "humantime_serde")]
    pub prior_median: Duration,
    pub prior_sigma: f64,
    /// How many observed completions the prior is worth.
    pub prior_weight: f64,
    /// The learned distribution forgets with this horizon (completions).
    pub learn_window: u32,
    /// After a returned-call signal: re-poll this soon if still ONGOING,
    /// doubling, for at most `returned_window`.
    #[serde(with = "humantime_serde")]
    pub returned_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub returned_window: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    #[serde(with = "humantime_serde")]
    pub max_tracking_time: Duration,
    #[serde(with = "humantime_serde")]
    pub not_found_grace: Duration,
    pub max_in_flight: usize,
}

impl Config {
    /// `[upstream]` budget and `[polling]` adaptive keys.
    pub(super) fn validate_budget(&self) -> Result<(), ConfigError> {
        let (up, poll) = (&self.upstream, &self.polling);
        if up.signal_reserve >= up.daily_budget {
            return Err(ConfigError::invalid(
                "upstream.signal_reserve",
                "must be smaller than upstream.daily_budget",
            ));
        }
        super::nonzero_duration("upstream.auth_probe_initial", up.auth_probe_initial)?;
        super::nonzero_duration("upstream.pacing_window", up.pacing_window)?;
        super::nonzero_duration("polling.target_lag", poll.target_lag)?;
        super::nonzero_duration("polling.min_interval", poll.min_interval)?;
        super::nonzero_duration("polling.returned_interval", poll.returned_interval)?;
        super::nonzero_duration("polling.prior_median", poll.prior_median)?;
        if poll.max_interval < poll.min_interval {
            return Err(ConfigError::invalid(
                "polling.max_interval",
                "must not be shorter than polling.min_interval",
            ));
        }
        // The bound is a promise (no untrusted transfer goes unpolled longer),
        // so the p95 the policy aims for must fit inside it.
        if poll.target_lag > poll.max_interval {
            return Err(ConfigError::invalid(
                "polling.target_lag",
                "must not be longer than polling.max_interval",
            ));
        }
        if !(0.1..=1.0).contains(&poll.hazard_exponent) {
            return Err(ConfigError::invalid(
                "polling.hazard_exponent",
                "must be in [0.1, 1]",
            ));
        }
        if !(0.0..0.5).contains(&poll.jitter) {
            return Err(ConfigError::invalid(
                "polling.jitter",
                "must be in [0, 0.5)",
            ));
        }
        if !(poll.prior_sigma > 0.0 && poll.prior_weight > 0.0) {
            return Err(ConfigError::invalid(
                "polling.prior_sigma",
                "prior_sigma and prior_weight must be greater than 0",
            ));
        }
        if !(0.0..=1.0).contains(&poll.signal_trust) {
            return Err(ConfigError::invalid(
                "polling.signal_trust",
                "must be in [0, 1]",
            ));
        }
        super::nonzero_duration("polling.safety_interval", poll.safety_interval)?;
        super::positive("polling.learn_window", poll.learn_window)
    }
}
