//! Layered configuration: embedded defaults < config file < `BRIDGE_*` env.
//!
//! The embedded defaults are `config/bridge.toml` itself, so the commented
//! reference file and the real defaults can never drift apart.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::routing::RouteConfig;

mod tracking;

pub use crate::delivery::{AmqpConfig, AuditQueueType};
pub use crate::outbox::OutboxConfig;
pub use crate::tracker::{PolicyKind, PollingConfig, TrustSignals};
pub use crate::upstream::UpstreamConfig;

pub use crate::settings::{ConfigError, DEFAULTS_TOML, mask_url_password};
use crate::settings::{nonzero_duration, positive};

/// Far above any file-descriptor limit, and within what a semaphore holds.
const MAX_CONNECTIONS: usize = 1_000_000;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub upstream: UpstreamConfig,
    pub polling: PollingConfig,
    pub store: StoreConfig,
    pub cluster: crate::cluster::ClusterConfig,
    pub amqp: AmqpConfig,
    pub outbox: OutboxConfig,
    pub telemetry: TelemetryConfig,
    pub shutdown: ShutdownConfig,
    pub sip: crate::sip::SipConfig,
    pub webhook: crate::delivery::webhook::WebhookConfig,
    /// Where `serve` runs its threads (see `affinity`).
    #[serde(default)]
    pub runtime: crate::affinity::RuntimeConfig,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Accepted bearer tokens; empty disables auth.
    #[serde(
        deserialize_with = "secret_list::deserialize",
        serialize_with = "secret_list::serialize"
    )]
    pub api_tokens: Vec<SecretString>,
    pub max_body_bytes: usize,
    /// Registrations per second per bearer token (all callers share one
    /// bucket when auth is off), with `register_burst` in reserve.
    pub register_rate_per_s: u32,
    pub register_burst: u32,
    /// Longest `?wait=` a request may be held for; longer asks are capped.
    #[serde(with = "crate::settings::duration")]
    pub max_wait: Duration,
    /// Requests held with `?wait=` at once; beyond it: 503 with Retry-After.
    pub max_waiters: usize,
    /// A connection's first request head must arrive within this, so a
    /// client trickling headers cannot hold a socket (slowloris).
    #[serde(with = "crate::settings::duration")]
    pub header_read_timeout: Duration,
    /// A request body must arrive whole within this (a declared length that
    /// never comes would otherwise hold the connection forever).
    #[serde(with = "crate::settings::duration")]
    pub body_read_timeout: Duration,
    /// A kept-alive connection with no request this long is closed.
    #[serde(with = "crate::settings::duration")]
    pub idle_timeout: Duration,
    /// Open connections at once; more are answered 503 and closed, so file
    /// descriptors cannot run out.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(serialize_with = "crate::settings::redact_url_password")]
    pub url: SecretString,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// After the signal: keep answering (registrations and /readyz say 503)
    /// so load balancers stop sending traffic before the listener closes.
    #[serde(with = "crate::settings::duration")]
    pub grace: Duration,
    /// Then wait at most this long for in-flight polls and deliveries.
    #[serde(with = "crate::settings::duration")]
    pub deadline: Duration,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub format: LogFormat,
}

impl Config {
    /// The embedded defaults alone (no file, no env): what tests start from.
    pub fn embedded() -> Figment {
        Figment::from(Toml::string(DEFAULTS_TOML))
    }

    /// The figment every entry point uses: defaults, then the file, then env.
    /// An explicit `--config` file must exist; the implicit one is optional.
    pub fn figment(file: Option<&Path>) -> Figment {
        let figment = Self::embedded();
        let figment = match file {
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("config/bridge.toml")),
        };
        with_env(figment)
    }

    /// Extract and validate; reads nothing but the figment it is given.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    /// Checks that serde cannot express. Every message names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_upstream()?;
        positive("outbox.batch_size", self.outbox.batch_size)?;
        positive("outbox.concurrency", self.outbox.concurrency as u32)?;
        self.validate_http()?;
        let store = self.store.url.expose_secret();
        if crate::store::Backend::of_url(store).is_none() {
            return Err(ConfigError::invalid(
                "store.url",
                "must start with sqlite: (one instance) or postgres:// (several)",
            ));
        }
        self.cluster.validate()?;
        self.amqp.validate()?;
        self.validate_webhook()?;
        self.sip
            .validate()
            .map_err(|e| ConfigError::invalid("sip", e.to_string()))?;
        crate::routing::validate_routes(&self.routes, &self.sip)
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        positive("http.max_body_bytes", http.max_body_bytes as u32)?;
        positive("http.register_rate_per_s", http.register_rate_per_s)?;
        positive("http.register_burst", http.register_burst)?;
        let waiters = http.max_waiters.min(u32::MAX as usize) as u32;
        positive("http.max_waiters", waiters)?;
        nonzero_duration("http.header_read_timeout", http.header_read_timeout)?;
        nonzero_duration("http.body_read_timeout", http.body_read_timeout)?;
        nonzero_duration("http.idle_timeout", http.idle_timeout)?;
        if !(1..=MAX_CONNECTIONS).contains(&http.max_connections) {
            return Err(ConfigError::invalid(
                "http.max_connections",
                format!("must be between 1 and {MAX_CONNECTIONS}"),
            ));
        }
        Ok(())
    }

    fn validate_webhook(&self) -> Result<(), ConfigError> {
        let webhook = &self.webhook;
        if let Some(url) = &webhook.default_url {
            crate::delivery::webhook::check_url(&webhook.policy(), url)
                .map_err(|e| ConfigError::invalid("webhook.default_url", e.to_string()))?;
            if webhook.secret.is_none() {
                return Err(ConfigError::invalid(
                    "webhook.secret",
                    "required when webhook.default_url is set (whsec_<base64>)",
                ));
            }
        }
        for host in &webhook.allowed_hosts {
            if host.contains(['/', '?', '#', '@']) || host.contains(char::is_whitespace) {
                return Err(ConfigError::invalid(
                    "webhook.allowed_hosts",
                    format!("{host:?} is not a host name or IP address (no scheme, port or path)"),
                ));
            }
        }
        if webhook.retry.schedule.is_empty() {
            return Err(ConfigError::invalid(
                "webhook.retry.schedule",
                "needs at least one attempt",
            ));
        }
        if !(0.0..=1.0).contains(&webhook.retry.jitter) {
            return Err(ConfigError::invalid(
                "webhook.retry.jitter",
                "must be between 0 and 1",
            ));
        }
        nonzero_duration("webhook.timeout", webhook.timeout)
    }

    /// The router for these routes, exchanges and SIP settings.
    pub fn router(&self) -> crate::routing::Router {
        let to = crate::routing::Destinations {
            audit_exchange: self.amqp.audit_exchange.clone(),
            agent_exchange: self.amqp.agent_exchange.clone(),
            pbx_exchange: self.amqp.pbx_exchange.clone(),
            pbx_mandatory: self.amqp.pbx_mandatory,
            default_webhook: self.webhook.default_url.clone(),
        };
        crate::routing::Router::new(self.routes.clone(), self.sip.clone(), to)
    }

    /// The effective configuration as TOML with every secret redacted.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    /// Warnings that do not stop `config check` but would stop `serve`.
    pub fn missing_credentials(&self) -> Option<&'static str> {
        let id = self.upstream.api_id.is_empty();
        let secret = self.upstream.api_secret.expose_secret().is_empty();
        match (id, secret) {
            (true, true) => Some(
                "upstream.api_id and upstream.api_secret are empty: set BRIDGE_UPSTREAM__API_ID and BRIDGE_UPSTREAM__API_SECRET",
            ),
            (true, false) => Some("upstream.api_id is empty: set BRIDGE_UPSTREAM__API_ID"),
            (false, true) => Some("upstream.api_secret is empty: set BRIDGE_UPSTREAM__API_SECRET"),
            (false, false) => None,
        }
    }
}

/// Name the key the way the reference file does (`http.max_body_bytes`),
/// whichever provider (file or `BRIDGE_*` env) supplied the bad value.
fn describe(error: figment::Error) -> ConfigError {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("{key}: {}{source}", e.kind)
            }
        })
        .collect();
    ConfigError::Load(lines.join("; "))
}

/// `figment` with the `BRIDGE_*` variables over it. Figment reads a
/// variable's value as TOML would, so `BRIDGE_UPSTREAM__API_ID=12345` became
/// the number 12345 (and `007` the number 7), which a text key refused: an
/// all-digit id, secret or token could not be set from the environment. A
/// variable that reads as a number or a bool keeps its text when the key's
/// value so far (the defaults, the file) is text or a list.
///
/// A variable of another tool (`BRIDGE_BIN`, `BRIDGE_URL`: the prefix is a
/// common one, and a harness or a dialplan script may use it for its own
/// settings; see [`foreign_key`]) is left out, with a warning on stderr,
/// instead of stopping the bridge as an unknown key. `BRIDGE_AMQP_URL` and
/// any key in a known section are still checked.
fn with_env(figment: Figment) -> Figment {
    let env = Env::prefixed("BRIDGE_").split("__");
    let (mut foreign, mut texts) = (Vec::new(), Vec::new());
    for (key, raw) in env.iter() {
        let key = key.as_str();
        if foreign_key(&figment, key) {
            let name = key.replace('.', "__").to_ascii_uppercase();
            let section = key.split('.').next().unwrap_or_default();
            eprintln!(
                "warning: ignoring BRIDGE_{name}: the configuration has no section {section:?}"
            );
            foreign.push(key.to_string());
        } else if keeps_text(&figment, key, &raw) {
            texts.push((key.to_string(), raw));
        }
    }
    let env = env.filter(move |key| !foreign.contains(&key.as_str().to_ascii_lowercase()));
    let mut figment = figment.merge(env);
    for (key, raw) in texts {
        figment = figment.merge(figment::providers::Serialized::default(&key, raw));
    }
    figment
}

/// Whether the variable of `key` keeps its text `raw`: it reads as a number
/// or a bool, and the key's value so far is text or a list.
fn keeps_text(figment: &Figment, key: &str, raw: &str) -> bool {
    use figment::value::Value;
    let scalar = matches!(raw.parse(), Ok(Value::Num(..) | Value::Bool(..)));
    scalar
        && matches!(
            figment.find_value(key),
            Ok(Value::String(..) | Value::Array(..))
        )
}

/// Whether the `BRIDGE_` variable of `key` (`upstream.api_id`) is another
/// tool's: its first segment neither names a section of `figment` nor
/// starts with one and an underscore (`amqp_url`: one underscore where two
/// belong, a typo of ours).
fn foreign_key(figment: &Figment, key: &str) -> bool {
    let first = key.split('.').next().unwrap_or_default();
    let prefixes = first.match_indices('_').map(|(at, _)| &first[..at]);
    !std::iter::once(first)
        .chain(prefixes)
        .any(|section| figment.find_value(section).is_ok())
}

/// Tokens arrive as a TOML list or, from env, as one comma-separated string.
mod secret_list {
    use super::*;
    use serde::Deserializer;

    /// Read as `settings::name_list` reads a list, each token then secret.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
        let tokens = crate::settings::name_list(d)?;
        Ok(tokens.into_iter().map(SecretString::from).collect())
    }

    pub fn serialize<S: Serializer>(v: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|_| crate::settings::REDACTED))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
#[path = "config_tests.rs"]
mod tests;
