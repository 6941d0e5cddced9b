//! Checks across `[upstream]` and `[polling]` (each section's struct lives
//! with its module: `upstream::UpstreamConfig`, `tracker::PollingConfig`).

use super::Config;
use crate::settings::{ConfigError, nonzero_duration, positive};

impl Config {
    /// `[upstream]` (its URL, limits and budget) and `[polling]`.
    pub(super) fn validate_upstream(&self) -> Result<(), ConfigError> {
        let up = &self.upstream;
        let url = reqwest::Url::parse(&up.base_url)
            .map_err(|e| ConfigError::invalid("upstream.base_url", e.to_string()))?;
        let web = matches!(url.scheme(), "http" | "https");
        require(web, "upstream.base_url", "must be an http or https URL")?;
        positive("upstream.rate_limit_per_s", up.rate_limit_per_s)?;
        // The limiter's spacing is a whole number of nanoseconds per request.
        let rate = up.rate_limit_per_s <= 1_000_000;
        require(rate, "upstream.rate_limit_per_s", "must be at most 1000000")?;
        positive("upstream.daily_budget", up.daily_budget)?;
        nonzero_duration("upstream.timeout", up.timeout)?;
        self.validate_budget()?;
        self.validate_polling()
    }

    fn validate_budget(&self) -> Result<(), ConfigError> {
        let up = &self.upstream;
        require(
            up.signal_reserve < up.daily_budget,
            "upstream.signal_reserve",
            "must be smaller than upstream.daily_budget",
        )?;
        positive("upstream.budget_batch", up.budget_batch)?;
        nonzero_duration("upstream.auth_probe_initial", up.auth_probe_initial)?;
        nonzero_duration("upstream.pacing_window", up.pacing_window)
    }

    fn validate_polling(&self) -> Result<(), ConfigError> {
        let poll = &self.polling;
        nonzero_duration("polling.active_interval", poll.active_interval)?;
        nonzero_duration("polling.ongoing_interval", poll.ongoing_interval)?;
        nonzero_duration("polling.backoff_initial", poll.backoff_initial)?;
        positive("polling.max_in_flight", poll.max_in_flight as u32)?;
        nonzero_duration("polling.target_lag", poll.target_lag)?;
        nonzero_duration("polling.min_interval", poll.min_interval)?;
        nonzero_duration("polling.returned_interval", poll.returned_interval)?;
        nonzero_duration("polling.prior_median", poll.prior_median)?;
        nonzero_duration("polling.learn_sync_interval", poll.learn_sync_interval)?;
        let max = "polling.max_interval";
        require(
            poll.max_interval >= poll.min_interval,
            max,
            "must not be shorter than polling.min_interval",
        )?;
        // The bound is a promise (no untrusted transfer goes unpolled longer),
        // so the p95 the policy aims for must fit inside it.
        let lag = "polling.target_lag";
        require(
            poll.target_lag <= poll.max_interval,
            lag,
            "must not be longer than polling.max_interval",
        )?;
        let exponent = (0.1..=1.0).contains(&poll.hazard_exponent);
        require(exponent, "polling.hazard_exponent", "must be in [0.1, 1]")?;
        require(
            (0.0..0.5).contains(&poll.jitter),
            "polling.jitter",
            "must be in [0, 0.5)",
        )?;
        require(
            poll.prior_sigma > 0.0 && poll.prior_weight > 0.0,
            "polling.prior_sigma",
            "prior_sigma and prior_weight must be greater than 0",
        )?;
        let trust = (0.0..=1.0).contains(&poll.signal_trust);
        require(trust, "polling.signal_trust", "must be in [0, 1]")?;
        nonzero_duration("polling.safety_interval", poll.safety_interval)?;
        positive("polling.learn_window", poll.learn_window)
    }
}

/// `Ok` when `ok`, else the error for `key`.
fn require(ok: bool, key: &str, why: &str) -> Result<(), ConfigError> {
    match ok {
        true => Ok(()),
        false => Err(ConfigError::invalid(key, why)),
    }
}
