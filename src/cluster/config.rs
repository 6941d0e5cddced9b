//! `[cluster]`: who this instance is and how its lease is kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::ConfigError;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Empty: generated at start, `<hostname>-<8 hex>`.
    pub instance_id: String,
    #[serde(with = "crate::settings::duration")]
    pub lease_ttl: Duration,
    #[serde(with = "crate::settings::duration")]
    pub renew_interval: Duration,
}

/// Longest instance id: it travels in NOTIFY payloads and log lines.
const MAX_ID: usize = 64;

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id = &self.instance_id;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.len() > MAX_ID || !id.chars().all(allowed) {
            return Err(ConfigError::invalid(
                "cluster.instance_id",
                format!("at most {MAX_ID} of A-Z a-z 0-9 . _ -"),
            ));
        }
        crate::settings::nonzero_duration("cluster.renew_interval", self.renew_interval)?;
        // Two renewals must fit in one lease, so one slow write does not
        // make a live instance look dead.
        if self.lease_ttl < self.renew_interval * 2 {
            return Err(ConfigError::invalid(
                "cluster.lease_ttl",
                "must be at least twice cluster.renew_interval",
            ));
        }
        Ok(())
    }

    /// The configured id, or a fresh one.
    pub fn instance_id(&self) -> String {
        if !self.instance_id.is_empty() {
            return self.instance_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| {
                h.trim()
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-")
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "bridge".into());
        let host: String = host.chars().take(MAX_ID - 9).collect();
        format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
    }
}
