//! The adaptive poll policy: spend GETs where completion is likely.
//!
//! ACTIVE: wait for `phoneNumber.expiresAt` (+ a margin), then check for
//! EXPIRED; a call transferred meanwhile is ONGOING by then, with its start
//! (`callReceivedAt`) known, and the ONGOING schedule takes over.
//!
//! ONGOING: for a conversation of age t with completion hazard h(t), the
//! interval that minimises expected lag plus λ·expected GETs is proportional
//! to 1/sqrt(h(t)) (minimise ∫ S/Δ + λ·f·Δ/2 pointwise). The interval is
//! `scale / h(t)^k`, clamped, and never so long that a completion inside it
//! would wait longer than the interval at its own age. k is
//! `polling.hazard_exponent`: 0.5 is that mean-lag optimum; a p95 target
//! rewards flatter intervals, and 0.35 spent 1-4% fewer GETs at the same p95
//! in offline replays of log-normal calls learned online. `scale`
//! is chosen so the predicted p95 lag on the learned distribution is
//! `target_lag`, recalibrated as durations are learned, and corrected by the
//! lags actually measured (`feedback.rs`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::config::PollingConfig;
use super::crossing_point;
use super::durations::Durations;
use super::feedback::LagFeedback;
use super::learned::Learned;
use super::policy::{Completion, PollPolicy};
use super::recalibration::{Crossing, Gate};
use super::state::{Phase, TrackState};

/// Points checked ahead within one interval, and rounds of narrowing.
const LOOKAHEAD: usize = 8;
const REFINE: usize = 6;
/// The p95 the target refers to.
const QUANTILE: f64 = 0.95;
/// How close to the crossing the calibrated scale's logarithm is: 0.1%.
const TOLERANCE: f64 = 1e-3;

#[derive(Debug, Clone, Copy)]
struct Bounds {
    target_lag: f64,
    exponent: f64,
    min: f64,
    max: f64,
    expiry_margin: Duration,
    active_interval: Duration,
}

#[derive(Debug, Clone)]
struct Model {
    durations: Durations,
    /// What the model says meets the target...
    scale: f64,
    /// ...and what the measured lags say about the model.
    feedback: LagFeedback,
}

impl Model {
    fn scale(&self) -> f64 {
        self.scale * self.feedback.correction()
    }
}

pub struct AdaptivePolicy {
    bounds: Bounds,
    model: Arc<RwLock<Model>>,
    calibrating: Arc<Gate>,
    /// Where lengths learned here go, to be shared with other instances.
    shared: Option<Learned>,
}

impl AdaptivePolicy {
    pub fn from_config(cfg: &PollingConfig) -> Self {
        let bounds = Bounds {
            target_lag: cfg.target_lag.as_secs_f64(),
            exponent: cfg.hazard_exponent,
            min: cfg.min_interval.as_secs_f64(),
            max: cfg.max_interval.as_secs_f64(),
            expiry_margin: cfg.expiry_margin,
            active_interval: cfg.active_interval,
        };
        let durations = Durations::new(
            cfg.prior_median,
            cfg.prior_sigma,
            cfg.prior_weight,
            cfg.learn_window,
        );
        let scale = calibrate(&durations, &bounds, None);
        Self {
            bounds,
            model: Arc::new(RwLock::new(Model {
                durations,
                scale,
                feedback: LagFeedback::new(bounds.target_lag),
            })),
            calibrating: Arc::default(),
            shared: None,
        }
    }

    /// A policy that recalibrates at every hundred completions however
    /// fast they come: replays that play hours of calls in milliseconds.
    #[cfg(test)]
    pub(crate) fn replaying(cfg: &PollingConfig) -> Self {
        let mut policy = Self::from_config(cfg);
        policy.calibrating = Arc::new(Gate::spaced(Duration::ZERO));
        policy
    }

    /// A policy that shares what it learns through `learned`, and learns
    /// what `learned` brings from other instances and earlier runs.
    pub fn sharing(cfg: &PollingConfig, learned: &Learned) -> Self {
        let mut policy = Self::from_config(cfg);
        let (bounds, model) = (policy.bounds, policy.model.clone());
        let calibrating = policy.calibrating.clone();
        learned.attach(Box::new(move |lengths| {
            let mut m = model.write().unwrap_or_else(|p| p.into_inner());
            let before = m.durations.seen();
            for length in lengths {
                m.durations.observe(*length);
            }
            let after = m.durations.seen();
            drop(m);
            recalibrate(bounds, &model, &calibrating, Crossing::of(before, after));
        }));
        policy.shared = Some(learned.clone());
        policy
    }

    /// Conversation lengths learned so far, here and from others.
    pub fn learned(&self) -> u64 {
        self.read().durations.seen()
    }

    /// Seconds until the next poll of a conversation of age `age` seconds.
    pub fn gap(&self, age: f64) -> f64 {
        let model = self.read();
        gap(&model.durations, model.scale(), &self.bounds, age)
    }

    /// The p95 lag this policy expects on what it has learned, seconds.
    pub fn predicted_p95(&self) -> f64 {
        let model = self.read();
        predicted_p95(&model.durations, model.scale, &self.bounds)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Model> {
        self.model.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Until the number expires nothing but the transfer itself can happen:
    /// check for EXPIRED just after `expiresAt` (at most `max_interval` away).
    /// Without one (SIP), or with one already past while the upstream still
    /// says ACTIVE, poll as if the call began at registration, at most every
    /// `active_interval`.
    fn active_delay(&self, st: &TrackState) -> Duration {
        let until_expiry = st
            .expires_at
            .and_then(|expires| Duration::try_from(expires - OffsetDateTime::now_utc()).ok())
            .filter(|wait| !wait.is_zero());
        let delay = match until_expiry {
            Some(wait) => (wait + self.bounds.expiry_margin).min(secs(self.bounds.max)),
            None => secs(self.gap(st.age().as_secs_f64())).min(self.bounds.active_interval),
        };
        delay.max(secs(self.bounds.min))
    }
}

/// Recompute the scale off the hot path, one calibration at a time, when
/// `crossing` calls for one (see `recalibration`).
fn recalibrate(bounds: Bounds, model: &Arc<RwLock<Model>>, gate: &Arc<Gate>, crossing: Crossing) {
    if !gate.start(crossing, Instant::now()) {
        return;
    }
    let (durations, near) = {
        let m = model.read().unwrap_or_else(|p| p.into_inner());
        (m.durations.clone(), m.scale)
    };
    let (model, gate) = (model.clone(), gate.clone());
    let work = move || {
        let scale = calibrate(&durations, &bounds, Some(near));
        model.write().unwrap_or_else(|p| p.into_inner()).scale = scale;
        gate.done();
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(work)),
        Err(_) => work(),
    }
}

impl PollPolicy for AdaptivePolicy {
    fn next_delay(&self, st: &TrackState) -> Duration {
        match st.phase {
            Phase::Ongoing => {
                let age = st.ongoing_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                secs(self.gap(age))
            }
            Phase::Active => self.active_delay(st),
            Phase::Unknown => self.bounds.active_interval,
        }
    }

    fn observe_completion(&self, completion: &Completion) {
        let mut model = self.model.write().unwrap_or_else(|p| p.into_inner());
        if let Some(lag) = completion.lag {
            model.feedback.observe(lag.as_secs_f64());
        }
        let Some(duration) = completion.length else {
            return;
        };
        model.durations.observe(duration);
        let seen = model.durations.seen();
        drop(model);
        metrics::histogram!("bridge_conversation_seconds").record(duration.as_secs_f64());
        if let Some(shared) = &self.shared {
            shared.observed(duration);
        }
        let crossing = Crossing::of(seen - 1, seen);
        recalibrate(self.bounds, &self.model, &self.calibrating, crossing);
    }
}

/// The interval the hazard at age `t` asks for.
fn interval(d: &Durations, scale: f64, b: &Bounds, t: f64) -> f64 {
    let h = d.hazard(t);
    if h <= 0.0 {
        return b.max;
    }
    (scale / h.powf(b.exponent)).clamp(b.min, b.max)
}

/// Poll next at the earliest `τ + interval(τ)` over ages τ in the coming
/// interval, so a completion at any age waits at most its own interval.
/// Sampled, then resampled over the narrower span a constraint was found in,
/// so a burst of likely completions is not stepped over.
fn gap(d: &Durations, scale: f64, b: &Bounds, t: f64) -> f64 {
    let mut horizon = interval(d, scale, b, t);
    for _ in 0..REFINE {
        let next = (1..=LOOKAHEAD)
            .map(|k| t + horizon * k as f64 / LOOKAHEAD as f64)
            .map(|tau| tau + interval(d, scale, b, tau))
            .fold(t + horizon, f64::min);
        if next - t >= horizon * 0.99 {
            break;
        }
        horizon = next - t;
    }
    horizon.max(b.min)
}

/// p95 of detection lag if polls follow `gap` from age 0 and conversations
/// follow `d`: P(lag > x) = Σ_k F(t_k+1 - x) - F(t_k) over gaps longer than x.
fn predicted_p95(d: &Durations, scale: f64, b: &Bounds) -> f64 {
    #[cfg(test)]
    tests::PREDICTIONS.with(|n| n.set(n.get() + 1));
    let mut polls = vec![0.0];
    let mut t = 0.0;
    while d.survival(t) > 1e-3 && polls.len() < 20_000 {
        t += gap(d, scale, b, t);
        polls.push(t);
    }
    let at_poll: Vec<f64> = polls.iter().map(|&t| d.cdf(t)).collect();
    let exceed = |x: f64| -> f64 {
        (1..polls.len())
            .filter(|&k| polls[k] - polls[k - 1] > x)
            .map(|k| d.cdf(polls[k] - x) - at_poll[k - 1])
            .sum()
    };
    let (mut lo, mut hi) = (0.0, b.max);
    for _ in 0..32 {
        let mid = (lo + hi) / 2.0;
        if exceed(mid) > 1.0 - QUANTILE {
            lo = mid
        } else {
            hi = mid
        }
    }
    hi
}

/// The largest scale whose predicted p95 lag meets the target, to within
/// 0.1%. A recalibration (every hundred completions at most, so the answer
/// moves little) first looks within a factor of 4 of the last answer, and
/// what it finds there narrows the search when the answer has moved out.
///
/// The search is over the scale's logarithm, on the logarithm of the
/// prediction over the target: away from the interval bounds the predicted
/// lag grows as a power of the scale, so that is close to a straight line,
/// and a secant search ([`crossing_point`]) needs fewer predictions (each a
/// simulated schedule) than bisection did: 5 against 14 near the last
/// answer, 10 against 24 with no answer yet. Where the prediction jumps
/// (calls of about one second against a one-second minimum interval) it
/// falls back to halving: 16 against 25 (`adaptive_tests`). Zero or more
/// means too long, as before.
fn calibrate(d: &Durations, b: &Bounds, near: Option<f64>) -> f64 {
    let excess = |ln_scale: f64| (predicted_p95(d, ln_scale.exp(), b) / b.target_lag).ln();
    // Scales span intervals from microseconds to days.
    let (floor, ceiling) = (1e-4_f64.ln(), 1e4_f64.ln());
    let (mut lo, mut hi) = ((floor, None), (ceiling, None));
    if let Some(near) = near.filter(|n| n.is_finite() && *n > 0.0) {
        let l = (near.ln() - 4f64.ln()).clamp(floor, ceiling);
        let h = (near.ln() + 4f64.ln()).clamp(floor, ceiling);
        let at_l = excess(l);
        if crossing_point::above_zero(at_l) {
            // Too long already: the answer is below the bracket.
            hi = (l, Some(at_l));
        } else {
            lo = (l, Some(at_l));
            let at_h = excess(h);
            if crossing_point::above_zero(at_h) {
                hi = (h, Some(at_h))
            } else {
                lo = (h, Some(at_h))
            }
        }
    }
    let at_lo = lo.1.unwrap_or_else(|| excess(lo.0));
    if crossing_point::above_zero(at_lo) {
        // Even the shortest intervals miss the target.
        return lo.0.exp();
    }
    let at_hi = hi.1.unwrap_or_else(|| excess(hi.0));
    if !crossing_point::above_zero(at_hi) {
        // Even the longest intervals meet it.
        return hi.0.exp();
    }
    crossing_point::last_not_above(excess, (lo.0, at_lo), (hi.0, at_hi), TOLERANCE).exp()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 1e9))
}

#[cfg(test)]
#[path = "adaptive_tests.rs"]
mod tests;
