//! What the bridge knows about conversation lengths (ONGOING to COMPLETED):
//! a log-spaced histogram of learned durations that slowly forgets, on top
//! of a log-normal prior. It answers the survival function and the hazard
//! (how likely a conversation of age t ends in the next instant) that the
//! adaptive policy spaces polls by.

use std::time::Duration;

/// Lower edge of the first bin, seconds.
const LOW: f64 = 0.01;
/// Each bin is 15% wider than the last: 110 bins reach about 13 hours.
const RATIO: f64 = 1.15;
const BINS: usize = 110;

#[derive(Debug, Clone)]
pub struct Durations {
    prior: Vec<f64>,
    learned: Vec<f64>,
    /// Mass of bins `i..`, recomputed after every change.
    tail: Vec<f64>,
    /// Each new observation scales older ones by this (1 - 1/window).
    keep: f64,
    seen: u64,
}

impl Durations {
    /// A log-normal prior with this median and sigma, worth `weight`
    /// observations; observations forget with horizon `window`.
    pub fn new(median: Duration, sigma: f64, weight: f64, window: u32) -> Self {
        let mu = median.as_secs_f64().max(LOW).ln();
        let cdf = |edge: f64| normal_cdf((edge.ln() - mu) / sigma);
        let prior = (0..BINS)
            .map(|i| weight * (cdf(edge(i + 1)) - cdf(edge(i))))
            .collect();
        let mut durations = Self {
            prior,
            learned: vec![0.0; BINS],
            tail: vec![0.0; BINS + 1],
            keep: 1.0 - 1.0 / f64::from(window.max(1)),
            seen: 0,
        };
        durations.recount();
        durations
    }

    /// Learn one completed conversation's length.
    pub fn observe(&mut self, duration: Duration) {
        for mass in &mut self.learned {
            *mass *= self.keep;
        }
        self.learned[bin(duration.as_secs_f64())] += 1.0;
        self.seen += 1;
        self.recount();
    }

    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// P(duration > t).
    pub fn survival(&self, t: f64) -> f64 {
        self.survival_in(t, bin(t))
    }

    /// [`Self::survival`] with `t`'s bin `i` already known.
    fn survival_in(&self, t: f64, i: usize) -> f64 {
        if t < LOW {
            return 1.0;
        }
        let (lo, hi) = (edge(i), edge(i + 1));
        let inside = self.mass(i) * ((hi - t) / (hi - lo)).clamp(0.0, 1.0);
        ((self.tail[i + 1] + inside) / self.tail[0]).clamp(0.0, 1.0)
    }

    pub fn cdf(&self, t: f64) -> f64 {
        1.0 - self.survival(t)
    }

    /// Completions per second among conversations still going at age `t`.
    /// Zero past everything seen: the tail is unknown, so not "likely".
    pub fn hazard(&self, t: f64) -> f64 {
        let i = bin(t.max(LOW));
        let density = self.mass(i) / (edge(i + 1) - edge(i)) / self.tail[0];
        let survival = self.survival_in(t, i);
        if survival < 1e-9 {
            return 0.0;
        }
        density / survival
    }

    /// The age by which a fraction `q` of conversations have ended.
    pub fn quantile(&self, q: f64) -> f64 {
        let (mut lo, mut hi) = (0.0, edge(BINS));
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if self.cdf(mid) < q {
                lo = mid
            } else {
                hi = mid
            }
        }
        hi
    }

    fn mass(&self, i: usize) -> f64 {
        self.prior[i] + self.learned[i]
    }

    fn recount(&mut self) {
        let mut sum = 0.0;
        for i in (0..BINS).rev() {
            sum += self.mass(i);
            self.tail[i] = sum;
        }
        self.tail[BINS] = 0.0;
    }
}

/// Bin edges, computed once: calibration asks for them millions of times.
static EDGES: std::sync::LazyLock<[f64; BINS + 2]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|i| LOW * RATIO.powi(i as i32)));

fn edge(i: usize) -> f64 {
    EDGES[i]
}

fn bin(t: f64) -> usize {
    if t <= LOW {
        return 0;
    }
    ((t / LOW).ln() / RATIO.ln())
        .floor()
        .clamp(0.0, (BINS - 1) as f64) as usize
}

/// Standard normal CDF via erfc (Numerical Recipes' erfcc, error < 1.2e-7).
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_is_the_log_normal_it_was_given() {
        let d = Durations::new(Duration::from_secs(180), 0.6, 20.0, 1000);
        let median = d.quantile(0.5);
        assert!((median / 180.0 - 1.0).abs() < 0.05, "{median}");
        // exp(1.645 * 0.6) = 2.68: the 95th percentile of the log-normal.
        let p95 = d.quantile(0.95);
        assert!((p95 / (180.0 * 2.68) - 1.0).abs() < 0.05, "{p95}");
        // Completion is unlikely early on and likely near the median.
        assert!(d.hazard(20.0) < d.hazard(180.0) / 20.0);
    }

    #[test]
    fn observations_outweigh_the_prior_and_old_ones_fade() {
        let mut d = Durations::new(Duration::from_secs(180), 0.6, 20.0, 500);
        for _ in 0..2000 {
            d.observe(Duration::from_secs(40));
        }
        let median = d.quantile(0.5);
        assert!((35.0..46.0).contains(&median), "{median}");
        for _ in 0..3000 {
            d.observe(Duration::from_secs(600));
        }
        let median = d.quantile(0.5);
        assert!(
            (520.0..690.0).contains(&median),
            "drifted to the new regime: {median}"
        );
        assert_eq!(d.seen(), 5000);
    }

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-7);
        assert!((normal_cdf(1.644_853_6) - 0.95).abs() < 1e-6);
    }
}
