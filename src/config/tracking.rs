//! Checks across `[upstream]` and `[polling]` (each section's struct lives
//! with its module: `upstream::UpstreamConfig`, `tracker::PollingConfig`).

use super::Config;
use crate::settings::{ConfigError, nonzero_duration, positive};

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
        positive("upstream.budget_batch", up.budget_batch)?;
        nonzero_duration("upstream.auth_probe_initial", up.auth_probe_initial)?;
        nonzero_duration("upstream.pacing_window", up.pacing_window)?;
        nonzero_duration("polling.target_lag", poll.target_lag)?;
        nonzero_duration("polling.min_interval", poll.min_interval)?;
        nonzero_duration("polling.returned_interval", poll.returned_interval)?;
        nonzero_duration("polling.prior_median", poll.prior_median)?;
        nonzero_duration("polling.learn_sync_interval", poll.learn_sync_interval)?;
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
        nonzero_duration("polling.safety_interval", poll.safety_interval)?;
        positive("polling.learn_window", poll.learn_window)
    }
}
