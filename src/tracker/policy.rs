//! When to poll next: the seam where budget-aware policies slot in.

use std::time::Duration;

use super::state::{Phase, TrackState};
use crate::config::PollingConfig;

/// Chooses the delay before the next GET of a transfer.
pub trait PollPolicy: Send + Sync + 'static {
    /// Delay after a successful poll that did not end tracking.
    fn next_delay(&self, state: &TrackState) -> Duration;

    /// Called when a transfer completes, so a policy can learn durations.
    fn observe_completion(&self, _state: &TrackState) {}
}

/// One interval per upstream status, straight from `[polling]`.
#[derive(Debug, Clone)]
pub struct FixedPolicy {
    pub active: Duration,
    pub ongoing: Duration,
}

impl FixedPolicy {
    pub fn from_config(cfg: &PollingConfig) -> Self {
        Self {
            active: cfg.active_interval,
            ongoing: cfg.ongoing_interval,
        }
    }
}

impl PollPolicy for FixedPolicy {
    fn next_delay(&self, state: &TrackState) -> Duration {
        match state.phase {
            Phase::Ongoing => self.ongoing,
            Phase::Unknown | Phase::Active => self.active,
        }
    }
}

/// Exponential backoff after consecutive failures: `initial * 2^(n-1)`, capped.
pub fn backoff(cfg: &PollingConfig, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    cfg.backoff_initial
        .saturating_mul(factor)
        .min(cfg.backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Format;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut cfg: crate::config::Config = figment::Figment::from(
            figment::providers::Toml::string(crate::config::DEFAULTS_TOML),
        )
        .extract()
        .unwrap();
        cfg.polling.backoff_initial = Duration::from_millis(250);
        cfg.polling.backoff_max = Duration::from_secs(1);
        let steps: Vec<_> = (1..=5)
            .map(|n| backoff(&cfg.polling, n).as_millis())
            .collect();
        assert_eq!(steps, [250, 500, 1000, 1000, 1000]);
    }
}
