//! When to poll next: the policy seam, the fixed policy, failure backoff.

use std::sync::Arc;
use std::time::Duration;

use super::adaptive::AdaptivePolicy;
use super::config::{PolicyKind, PollingConfig};
use super::integrations::{IntegrationId, Integrations};
use super::learned::Learned;
use super::signals::SignalAware;
use super::state::{Phase, TrackState};
use crate::backoff::Backoff;

/// Chooses the delay before the next GET of a transfer.
pub trait PollPolicy: Send + Sync + 'static {
    /// Delay after a successful poll that did not end tracking.
    fn next_delay(&self, state: &TrackState) -> Duration;

    /// Delay before the first poll of a newly tracked transfer: at once when
    /// its status is unknown, so a wrong id or an expired number shows early.
    fn first_delay(&self, state: &TrackState) -> Duration {
        match state.phase {
            Phase::Unknown => Duration::ZERO,
            _ => self.next_delay(state),
        }
    }

    /// A transfer completed, so a policy can learn from it.
    fn observe_completion(&self, _completion: &Completion) {}

    /// The longest a routine delay of this transfer may be, jitter included.
    fn ceiling(&self, _state: &TrackState) -> Duration {
        Duration::MAX
    }
}

/// What a completed transfer teaches a policy.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// How long the agent had the call (upstream `completedAt` minus
    /// `callReceivedAt`), when the upstream said both.
    pub length: Option<Duration>,
    /// A returned-call signal arrived before the bridge saw it complete.
    pub signalled: bool,
    /// How late a routine poll found it (`None` when a signal did).
    pub lag: Option<Duration>,
    /// Who registered it: signal trust is learned per integration.
    pub integration: IntegrationId,
}

/// The policy `polling.policy` names, leaning on signals per
/// `polling.trust_signals`.
/// What it learns stays in this process.
pub fn from_config(cfg: &PollingConfig, integrations: Arc<Integrations>) -> Arc<dyn PollPolicy> {
    let inner: Box<dyn PollPolicy> = match cfg.policy {
        PolicyKind::Adaptive => Box::new(AdaptivePolicy::from_config(cfg)),
        PolicyKind::Fixed => Box::new(FixedPolicy::from_config(cfg)),
    };
    Arc::new(SignalAware::new(inner, cfg, integrations))
}

/// [`from_config`], with the conversation lengths the adaptive policy
/// learns shared through `learned` (see [`Learned::sync`]).
pub fn sharing_policy(
    cfg: &PollingConfig,
    integrations: Arc<Integrations>,
    learned: &Learned,
) -> Arc<dyn PollPolicy> {
    let inner: Box<dyn PollPolicy> = match cfg.policy {
        PolicyKind::Adaptive => Box::new(AdaptivePolicy::sharing(cfg, learned)),
        PolicyKind::Fixed => Box::new(FixedPolicy::from_config(cfg)),
    };
    Arc::new(SignalAware::new(inner, cfg, integrations))
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

/// Delay after `failures` consecutive failures: `backoff_initial` doubling
/// to `backoff_max`, which from the 250 ms default is the vendor's 5xx
/// guidance (250, 500, 1000 ms) continued.
pub fn backoff(cfg: &PollingConfig, failures: u32) -> Duration {
    Backoff::new(cfg.backoff_initial, cfg.backoff_max).delay(failures)
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
