//! Leaning on returned-call signals: when the PBX tells the bridge about
//! (nearly) every call that comes back, routine polls only guard against a
//! lost signal, so they can be rare. The share is learned per integration
//! (bearer token) from its completions, so a broken signal integration
//! brings normal polling back by itself, and one PBX that signals never
//! makes the bridge lean on signals for another that does not. A
//! registration's `returnSignal` decides for its own transfer.
//!
//! Untrusted transfers are polled at least every `max_interval`, whatever
//! the inner policy and the jitter say: that is the worst-case lag.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::{PollingConfig, TrustSignals};
use super::integrations::{IntegrationId, Integrations};
use super::policy::{Completion, PollPolicy};
use super::state::TrackState;

/// Completions remembered per integration (one bit each).
const WINDOW: u32 = 100;
/// Fewer completions than this say nothing yet.
const MIN_SEEN: u32 = 20;

/// Wraps a policy; routine delays become `safety_interval` while trusted.
pub struct SignalAware {
    inner: Box<dyn PollPolicy>,
    mode: TrustSignals,
    threshold: f64,
    safety: Duration,
    max: Duration,
    integrations: Arc<Integrations>,
    /// Indexed by [`IntegrationId`].
    recent: Mutex<Vec<Recent>>,
}

/// The last `WINDOW` completions, newest in bit 0: 1 = had a signal.
#[derive(Debug, Default, Clone)]
struct Recent {
    bits: u128,
    seen: u32,
}

impl Recent {
    fn push(&mut self, signalled: bool) {
        let mask = (1u128 << WINDOW) - 1;
        self.bits = ((self.bits << 1) | u128::from(signalled)) & mask;
        self.seen = (self.seen + 1).min(WINDOW);
    }

    fn share(&self) -> Option<f64> {
        (self.seen >= MIN_SEEN).then(|| f64::from(self.bits.count_ones()) / f64::from(self.seen))
    }
}

impl SignalAware {
    pub fn new(
        inner: Box<dyn PollPolicy>,
        cfg: &PollingConfig,
        integrations: Arc<Integrations>,
    ) -> Self {
        Self {
            inner,
            mode: cfg.trust_signals,
            threshold: cfg.signal_trust,
            safety: cfg.safety_interval,
            max: cfg.max_interval,
            integrations,
            recent: Mutex::new(Vec::new()),
        }
    }

    /// Whether routine polls of this transfer may be a mere safety net.
    pub fn trusted(&self, state: &TrackState) -> bool {
        if let Some(promised) = state.return_signal {
            return promised;
        }
        match self.mode {
            TrustSignals::Always => true,
            TrustSignals::Never => false,
            TrustSignals::Auto => self
                .share(state.integration)
                .is_some_and(|s| s >= self.threshold),
        }
    }

    fn share(&self, integration: IntegrationId) -> Option<f64> {
        self.lock().get(integration.index()).and_then(Recent::share)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Recent>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PollPolicy for SignalAware {
    fn next_delay(&self, state: &TrackState) -> Duration {
        if self.trusted(state) {
            return self.safety;
        }
        self.inner.next_delay(state).min(self.max)
    }

    /// Trusted signals make even the first look a safety-net poll: the
    /// signal is what will say the call is back. (A wrong id then fails at
    /// that first poll, `safety_interval` later.)
    fn first_delay(&self, state: &TrackState) -> Duration {
        if self.trusted(state) {
            return self.safety;
        }
        self.inner.first_delay(state).min(self.max)
    }

    fn observe_completion(&self, completion: &Completion) {
        let index = completion.integration.index();
        let share = {
            let mut recent = self.lock();
            if recent.len() <= index {
                recent.resize(index + 1, Recent::default());
            }
            recent[index].push(completion.signalled);
            recent[index].share()
        };
        if let Some(share) = share {
            let name = self.integrations.name(completion.integration);
            metrics::gauge!("bridge_signal_share", "integration" => name.to_string()).set(share);
        }
        self.inner.observe_completion(completion);
    }

    fn ceiling(&self, state: &TrackState) -> Duration {
        match self.trusted(state) {
            true => Duration::MAX,
            false => self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::tracker::FixedPolicy;
    use crate::transfer::TransferId;

    fn done(signalled: bool) -> Completion {
        from(IntegrationId::SHARED, signalled)
    }

    fn from(integration: IntegrationId, signalled: bool) -> Completion {
        Completion {
            length: Some(Duration::from_secs(60)),
            signalled,
            lag: None,
            integration,
        }
    }

    #[test]
    fn trust_follows_the_share_of_signalled_completions() {
        let mut cfg = Config::from_figment(Config::embedded()).unwrap().polling;
        cfg.ongoing_interval = Duration::from_secs(5);
        cfg.signal_trust = 0.9;
        let policy = SignalAware::new(
            Box::new(FixedPolicy::from_config(&cfg)),
            &cfg,
            Integrations::new(),
        );
        let mut state = TrackState::new(
            TransferId::parse("t").unwrap(),
            time::OffsetDateTime::now_utc(),
        );
        state.phase = crate::tracker::Phase::Ongoing;
        for _ in 0..MIN_SEEN - 1 {
            policy.observe_completion(&done(true));
        }
        assert_eq!(
            policy.next_delay(&state),
            Duration::from_secs(5),
            "too few to say"
        );
        policy.observe_completion(&done(true));
        assert_eq!(policy.next_delay(&state), cfg.safety_interval);
        // The PBX integration breaks: a few unsignalled completions later
        // (20 of 23 = 0.87 < 0.9), normal polling is back.
        for _ in 0..3 {
            policy.observe_completion(&done(false));
        }
        assert_eq!(policy.next_delay(&state), Duration::from_secs(5));
    }

    fn policy(cfg: &PollingConfig, integrations: Arc<Integrations>) -> SignalAware {
        SignalAware::new(Box::new(FixedPolicy::from_config(cfg)), cfg, integrations)
    }

    fn ongoing(integration: IntegrationId) -> TrackState {
        let id = TransferId::parse("t").unwrap();
        let mut state = TrackState::new(id, time::OffsetDateTime::now_utc());
        state.phase = crate::tracker::Phase::Ongoing;
        state.integration = integration;
        state
    }

    #[test]
    fn trust_is_learned_per_integration() {
        let mut cfg = Config::from_figment(Config::embedded()).unwrap().polling;
        cfg.ongoing_interval = Duration::from_secs(5);
        let integrations = Integrations::new();
        let (loud, quiet) = (
            integrations.id(Some("tok-loud")),
            integrations.id(Some("tok-quiet")),
        );
        let policy = policy(&cfg, integrations);
        for _ in 0..WINDOW {
            policy.observe_completion(&from(loud, true));
            policy.observe_completion(&from(quiet, false));
        }
        assert_eq!(policy.next_delay(&ongoing(loud)), cfg.safety_interval);
        assert_eq!(policy.next_delay(&ongoing(quiet)), Duration::from_secs(5));
        let never_seen = ongoing(IntegrationId::SHARED);
        assert_eq!(policy.next_delay(&never_seen), Duration::from_secs(5));
        assert_eq!(policy.ceiling(&ongoing(quiet)), cfg.max_interval);
        assert_eq!(policy.ceiling(&ongoing(loud)), Duration::MAX);
    }

    #[test]
    fn a_registration_decides_for_itself_and_untrusted_delays_are_capped() {
        let mut cfg = Config::from_figment(Config::embedded()).unwrap().polling;
        cfg.trust_signals = TrustSignals::Always;
        cfg.ongoing_interval = Duration::from_secs(600);
        let policy = policy(&cfg, Integrations::new());
        let mut state = ongoing(IntegrationId::SHARED);
        state.return_signal = Some(false);
        assert!(!policy.trusted(&state));
        assert_eq!(policy.next_delay(&state), cfg.max_interval);
        assert_eq!(policy.first_delay(&state), cfg.max_interval);
        cfg.trust_signals = TrustSignals::Never;
        let policy = self::policy(&cfg, Integrations::new());
        state.return_signal = Some(true);
        assert_eq!(policy.next_delay(&state), cfg.safety_interval);
    }
}
