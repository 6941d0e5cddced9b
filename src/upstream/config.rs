//! `[upstream]`: the client, its timeouts and its request budget.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub base_url: String,
    pub api_id: String,
    #[serde(serialize_with = "crate::settings::redact")]
    pub api_secret: SecretString,
    #[serde(with = "crate::settings::duration")]
    pub timeout: Duration,
    /// Spike limit: no 1-second window sees more requests than this.
    pub rate_limit_per_s: u32,
    /// Requests per UTC day, creates and GETs together.
    pub daily_budget: u32,
    /// Part of the daily budget that only returned-call signals and creates
    /// may spend, so a caller who is back is never told "budget exhausted".
    pub signal_reserve: u32,
    /// Requests of the daily budget an instance reserves from the store at a
    /// time; what it has not sent goes back at a clean stop.
    pub budget_batch: u32,
    /// Routine polls may run ahead of an even spread of the remaining budget
    /// over the rest of the day by at most this much of it.
    #[serde(with = "crate::settings::duration")]
    pub pacing_window: Duration,
    /// First retry after credentials are refused (401/403); doubles.
    #[serde(with = "crate::settings::duration")]
    pub auth_probe_initial: Duration,
    #[serde(with = "crate::settings::duration")]
    pub auth_probe_max: Duration,
    /// Transfers due while the credentials have been refused for this long
    /// end FAILED ("auth refused") so integrators can fall back.
    #[serde(with = "crate::settings::duration")]
    pub auth_fail_after: Duration,
}
