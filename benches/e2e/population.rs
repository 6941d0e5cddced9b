//! The simulated workload: log-normal conversation lengths, arrivals spread
//! evenly, all time-compressed by one factor.

use std::time::Duration;

/// Conversation length in real seconds: log-normal, median 150 s, sigma 0.7
/// ("around 3 minutes", and deliberately not the policy's prior of 180 s /
/// 0.6, so the adaptive policy has something to learn).
pub const MEDIAN_S: f64 = 150.0;
pub const SIGMA: f64 = 0.7;
/// Real seconds between create and the caller reaching the agent (the
/// simulator's number expires then too).
pub const ACTIVE_S: f64 = 10.0;

/// Deterministic pseudo-random numbers (SplitMix64): the same workload on
/// every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// One scripted transfer, in compressed time.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// Offset from the start of the run at which it is created.
    pub arrives: Duration,
    pub active: Duration,
    pub ongoing: Duration,
}

/// `n` calls whose arrivals keep about `concurrency` of them going at once.
pub fn calls(n: usize, concurrency: usize, compression: f64, seed: u64) -> Vec<Call> {
    let mut rng = Rng::new(seed);
    let mean = ACTIVE_S + MEDIAN_S * (SIGMA * SIGMA / 2.0).exp();
    let spacing = mean / compression / concurrency as f64;
    (0..n)
        .map(|i| Call {
            arrives: Duration::from_secs_f64(i as f64 * spacing),
            active: Duration::from_secs_f64(ACTIVE_S / compression),
            ongoing: Duration::from_secs_f64(MEDIAN_S * (SIGMA * rng.normal()).exp() / compression),
        })
        .collect()
}
