//! What every module's configuration shares: its error, the checks most
//! keys need, and serializers that never print a secret. A leaf: it imports
//! nothing of the crate, so each module owns its own config struct and
//! `config` (at the top) only assembles and validates them.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serializer};

/// The commented reference configuration, compiled in as the defaults.
pub const DEFAULTS_TOML: &str = include_str!("../config/bridge.toml");

/// What a redacted secret prints as.
pub const REDACTED: &str = "**redacted**";

/// A configuration problem, always naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Figment's errors, each rewritten as `section.key: problem (source)`.
    #[error("{0}")]
    Load(String),
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

pub fn positive(key: &str, value: u32) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}

pub fn nonzero_duration(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be longer than 0s"));
    }
    Ok(())
}

pub fn redact<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    if secret.expose_secret().is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str(REDACTED)
    }
}

/// Print a URL with its password masked, so operators still see host and user.
pub fn redact_url_password<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_url_password(secret.expose_secret()))
}

/// `amqp://user:pass@host` -> `amqp://user:**redacted**@host`.
pub fn mask_url_password(raw: &str) -> String {
    match reqwest::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some(REDACTED));
            url.to_string()
        }
        Ok(_) => raw.to_string(),
        Err(_) => REDACTED.to_string(),
    }
}

/// A list of names as a TOML list or, from the environment, as one
/// comma-separated string (`BRIDGE_WEBHOOK__ALLOWED_HOSTS=a.example,b.example`);
/// entries are trimmed, empty ones dropped.
pub fn name_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let names = match OneOrMany::deserialize(d)? {
        OneOrMany::One(joined) => joined.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(names) => names,
    };
    Ok(names
        .into_iter()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect())
}

/// Durations in the configuration: humantime text (`5s`, `15m`), at most
/// [`duration::MAX`]. Timers hold a deadline at most about two years ahead
/// (tokio-util's `DelayQueue` panics past it), and `Instant + d` overflows
/// for a large enough `d`: a mistyped `1000000d` fails the load instead.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de::Error as _};

    /// The longest duration a setting may hold: a year.
    pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(value, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let value: Duration = humantime_serde::deserialize(d)?;
        match value <= MAX {
            true => Ok(value),
            false => Err(D::Error::custom("must be at most 365 days")),
        }
    }
}
