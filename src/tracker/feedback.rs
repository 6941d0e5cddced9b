//! Closing the loop on `polling.target_lag`: the adaptive policy's scale
//! comes from a model of call lengths, which knows nothing of request
//! latency, timer slack, jitter or a model that is still learning. The
//! bridge does see the lag it actually achieved (`completedAt` to the poll
//! that found it), so a slow integral loop nudges the schedule until the
//! measured p95 matches the target.

use std::collections::VecDeque;

/// Lags kept, fewest before correcting, and new lags between corrections.
const KEEP: usize = 200;
const MIN_LAGS: usize = 40;
const EVERY: usize = 25;

#[derive(Debug, Clone)]
pub struct LagFeedback {
    target: f64,
    lags: VecDeque<f64>,
    fresh: usize,
    correction: f64,
}

impl LagFeedback {
    pub fn new(target: f64) -> Self {
        Self {
            target,
            lags: VecDeque::with_capacity(KEEP),
            fresh: 0,
            correction: 1.0,
        }
    }

    /// Factor on the modelled intervals (1 = trust the model).
    pub fn correction(&self) -> f64 {
        self.correction
    }

    /// One completion found by a routine poll, `lag` seconds late.
    pub fn observe(&mut self, lag: f64) {
        if self.lags.len() == KEEP {
            self.lags.pop_front();
        }
        self.lags.push_back(lag.max(0.0));
        self.fresh += 1;
        if self.lags.len() < MIN_LAGS || self.fresh < EVERY {
            return;
        }
        self.fresh = 0;
        let mut sorted: Vec<f64> = self.lags.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let p95 = sorted[(sorted.len() * 95).div_ceil(100) - 1];
        if p95 > 0.0 {
            // Lag grows about in proportion to the intervals; half a step at
            // a time, so noise in 200 samples does not make it swing.
            let step = (self.target / p95).sqrt().clamp(0.8, 1.25);
            self.correction = (self.correction * step).clamp(0.25, 4.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plant whose p95 lag is `bias` times the scale it is given: the loop
    /// settles where the measured p95 meets the target.
    #[test]
    fn measured_lag_converges_on_the_target() {
        for bias in [0.6, 1.0, 1.7] {
            let mut loop_ = LagFeedback::new(5.0);
            for i in 0..2000 {
                let p95 = 5.0 * bias * loop_.correction();
                // Lags spread evenly up to p95 / 0.95, in a fixed order.
                let lag = p95 / 0.95 * ((i * 37 % 100) as f64 + 0.5) / 100.0;
                loop_.observe(lag);
            }
            let achieved = 5.0 * bias * loop_.correction();
            assert!(
                (achieved / 5.0 - 1.0).abs() < 0.05,
                "bias {bias}: {achieved}"
            );
        }
    }
}
