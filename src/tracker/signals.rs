//! Leaning on returned-call signals: when the PBX tells the bridge about
//! (nearly) every call that comes back, routine polls only guard against a
//! lost signal, so they can be rare. The share is learned from completions,
//! so a broken signal integration brings normal polling back by itself.

use std::sync::Mutex;
use std::time::Duration;

use super::policy::{Completion, PollPolicy};
use super::state::TrackState;
use crate::config::{PollingConfig, TrustSignals};

/// Completions remembered (one bit each).
const WINDOW: u32 = 100;
/// Fewer completions than this say nothing yet.
const MIN_SEEN: u32 = 20;

/// Wraps a policy; routine delays become `safety_interval` while trusted.
pub struct SignalAware {
    inner: Box<dyn PollPolicy>,
    mode: TrustSignals,
    threshold: f64,
    safety: Duration,
    recent: Mutex<Recent>,
}

/// The last `WINDOW` completions, newest in bit 0: 1 = had a signal.
#[derive(Debug, Default)]
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
    pub fn new(inner: Box<dyn PollPolicy>, cfg: &PollingConfig) -> Self {
        Self {
            inner,
            mode: cfg.trust_signals,
            threshold: cfg.signal_trust,
            safety: cfg.safety_interval,
            recent: Mutex::new(Recent::default()),
        }
    }

    pub fn trusted(&self) -> bool {
        match self.mode {
            TrustSignals::Always => true,
            TrustSignals::Never => false,
            TrustSignals::Auto => self.lock().share().is_some_and(|s| s >= self.threshold),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PollPolicy for SignalAware {
    fn next_delay(&self, state: &TrackState) -> Duration {
        if self.trusted() {
            return self.safety;
        }
        self.inner.next_delay(state)
    }

    /// Trusted signals make even the first look a safety-net poll: the
    /// signal is what will say the call is back. (A wrong id then fails at
    /// that first poll, `safety_interval` later.)
    fn first_delay(&self, state: &TrackState) -> Duration {
        if self.trusted() {
            return self.safety;
        }
        self.inner.first_delay(state)
    }

    fn observe_completion(&self, completion: &Completion) {
        let share = {
            let mut recent = self.lock();
            recent.push(completion.signalled);
            recent.share()
        };
        if let Some(share) = share {
            metrics::gauge!("bridge_signal_share").set(share);
        }
        self.inner.observe_completion(completion);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::tracker::FixedPolicy;
    use crate::transfer::TransferId;

    fn done(signalled: bool) -> Completion {
        Completion {
            length: Some(Duration::from_secs(60)),
            signalled,
            lag: None,
        }
    }

    #[test]
    fn trust_follows_the_share_of_signalled_completions() {
        let mut cfg = Config::from_figment(Config::embedded()).unwrap().polling;
        cfg.ongoing_interval = Duration::from_secs(5);
        cfg.signal_trust = 0.9;
        let policy = SignalAware::new(Box::new(FixedPolicy::from_config(&cfg)), &cfg);
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
}
