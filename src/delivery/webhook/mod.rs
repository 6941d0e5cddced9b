//! Outbound webhooks following the Standard Webhooks spec
//! (<https://www.standardwebhooks.com>, the scheme Svix uses).
//!
//! - [`sign`]: `whsec_` secrets, `v1` HMAC-SHA256 signatures, verification;
//! - [`ssrf`]: refusing callback URLs that point into private networks;
//! - [`retry`]: the retry schedule and how responses are classified;
//! - [`client`]: one signed delivery attempt over a guarded HTTP client.

pub mod client;
pub mod retry;
pub mod sign;
pub mod ssrf;

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use self::client::{WebhookClient, WebhookError};
pub use self::retry::{RetryPolicy, Verdict, classify, parse_retry_after};
pub use self::sign::{
    DEFAULT_TOLERANCE, SecretError, VerifyError, WebhookSecret, sign, signature_header, verify,
    verify_at,
};
pub use self::ssrf::{
    CallbackPolicy, GuardedResolver, SsrfError, check_url, check_url_resolved, forbidden_reason,
    host_key, is_forbidden,
};

/// The `[webhook]` configuration section.
///
/// Serializing it is safe for display: secrets come out as
/// `whsec_**redacted**` (and therefore do not round-trip).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Current signing secret (`whsec_...`). Required before any callback is
    /// accepted: registration refuses a `callbackUrl` without it, and
    /// `webhook.default_url` needs it too (`config check`).
    pub secret: Option<WebhookSecret>,
    /// Secrets being rotated out; signatures for them are sent too.
    pub previous_secrets: Vec<WebhookSecret>,
    /// Callback URL used when a transfer names none.
    pub default_url: Option<String>,
    /// Permit `http://` callbacks (development only).
    pub allow_http: bool,
    /// Ranges exempt from the SSRF guard.
    pub allowed_cidrs: Vec<IpNet>,
    /// Callback hosts (names or IP addresses) trusted as they are: neither
    /// the SSRF guard nor the https requirement applies to them.
    #[serde(deserialize_with = "crate::settings::name_list")]
    pub allowed_hosts: Vec<String>,
    /// Whole-request timeout per attempt.
    #[serde(with = "crate::settings::duration")]
    pub timeout: Duration,
    /// When to retry failed attempts.
    pub retry: RetryPolicy,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            secret: None,
            previous_secrets: Vec::new(),
            default_url: None,
            allow_http: false,
            allowed_cidrs: Vec::new(),
            allowed_hosts: Vec::new(),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

impl WebhookConfig {
    /// The SSRF policy these settings describe.
    pub fn policy(&self) -> CallbackPolicy {
        CallbackPolicy {
            allow_http: self.allow_http,
            allowed_cidrs: self.allowed_cidrs.clone(),
            allowed_hosts: self.allowed_hosts.iter().map(|h| host_key(h)).collect(),
        }
    }

    /// Secrets to sign with, current first (the order receivers try them).
    pub fn signing_secrets(&self) -> Vec<WebhookSecret> {
        self.secret
            .iter()
            .chain(&self.previous_secrets)
            .cloned()
            .collect()
    }

    /// A [`WebhookClient`] for these settings.
    pub fn client(&self) -> Result<WebhookClient, WebhookError> {
        WebhookClient::new(self.policy(), self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    // The error is flattened to its message: figment::Error is large and
    // only its text is asserted on.
    fn from_toml(toml: &str) -> Result<WebhookConfig, String> {
        Figment::from(Toml::string(toml))
            .extract()
            .map_err(|e: figment::Error| e.to_string())
    }

    #[test]
    fn parses_full_toml() {
        let cfg = from_toml(&format!(
            r#"
            secret = "{SECRET}"
            previous_secrets = ["{SECRET}"]
            default_url = "https://hooks.example.com/in"
            allow_http = true
            allowed_cidrs = ["10.1.0.0/16"]
            timeout = "15s"
            [retry]
            schedule = ["0s", "5s", "5m"]
            jitter = 0.1
            max_retry_after = "30m"
            "#
        ))
        .unwrap();
        assert_eq!(cfg.signing_secrets().len(), 2);
        assert_eq!(cfg.timeout, Duration::from_secs(15));
        assert_eq!(cfg.retry.schedule[2], Duration::from_secs(300));
        assert_eq!(cfg.retry.max_retry_after, Duration::from_secs(1800));
        assert!(cfg.policy().allow_http);
        assert!(cfg.policy().check_ip("10.1.2.3".parse().unwrap()).is_ok());
    }

    #[test]
    fn defaults_apply_to_missing_fields() {
        let cfg = from_toml("[retry]\njitter = 0.5").unwrap();
        assert_eq!(cfg.timeout, Duration::from_secs(10));
        assert!(cfg.secret.is_none() && !cfg.allow_http);
        assert_eq!(cfg.retry.schedule, RetryPolicy::default().schedule);
        assert!((cfg.retry.jitter - 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_secrets() {
        assert!(from_toml("alow_http = true").is_err());
        assert!(from_toml("[retry]\nshedule = [\"1s\"]").is_err());
        let err = from_toml(r#"secret = "abc""#).unwrap_err();
        assert!(err.contains("must start with whsec_"), "{err}");
        assert!(from_toml(r#"timeout = "ten seconds""#).is_err());
    }

    #[test]
    fn serialization_redacts_secrets() {
        let cfg = from_toml(&format!(r#"secret = "{SECRET}""#)).unwrap();
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains(r#""secret":"whsec_**redacted**""#), "{json}");
        assert!(!json.contains("MfKQ9r8G"), "{json}");
        assert!(json.contains(r#""timeout":"10s""#), "{json}");
        assert!(!format!("{cfg:?}").contains("MfKQ9r8G"));
    }
}
