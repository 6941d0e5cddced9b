//! Standard Webhooks signing and verification (symmetric `v1` scheme).
//!
//! Spec: <https://www.standardwebhooks.com> ("Signature scheme",
//! "Webhook headers", "Verifying signatures"). The signed content is
//! `{msg_id}.{timestamp}.{body}`, the MAC is HMAC-SHA256 (RFC 2104) and the
//! header value is `v1,<base64(mac)>` (RFC 4648 §4, standard alphabet).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt as _;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

/// Header carrying the message id, stable across retries (spec: "Webhook headers").
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the attempt's unix timestamp in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-delimited list of `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Replay window used by the Standard Webhooks reference libraries (5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const PREFIX: &str = "whsec_";
const REDACTED: &str = "whsec_**redacted**";
// The spec's table: "Random. At least 24 bytes (192 bits, 512 maximum)".
const MIN_KEY_LEN: usize = 24;
const MAX_KEY_LEN: usize = 64;

/// A symmetric signing secret in the `whsec_<base64>` serialization.
///
/// The decoded key is held in a [`SecretSlice`] (zeroized on drop). `Debug`
/// prints `WebhookSecret(**redacted**)` and `Serialize` writes
/// `whsec_**redacted**`, so the key never reaches logs or config dumps.
#[derive(Clone)]
pub struct WebhookSecret {
    key: SecretSlice<u8>,
}

/// Why a `whsec_...` string could not be parsed. Never contains key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The string lacks the `whsec_` prefix the spec uses to identify HMAC keys.
    #[error("webhook secret must start with whsec_")]
    MissingPrefix,
    /// The part after `whsec_` is not standard, padded base64.
    // The decoder's own message is dropped on purpose: it quotes the offending byte.
    #[error("webhook secret is not valid base64 after whsec_")]
    InvalidBase64,
    /// Nothing follows `whsec_` (or it decodes to zero bytes).
    #[error("webhook secret key is empty")]
    Empty,
    /// The key is shorter than the spec's 24-byte minimum.
    #[error("webhook secret key is {0} bytes; Standard Webhooks requires at least 24")]
    TooShort(usize),
    /// The key is longer than the spec's 64-byte (512-bit) maximum.
    #[error("webhook secret key is {0} bytes; Standard Webhooks allows at most 64")]
    TooLong(usize),
}

impl WebhookSecret {
    /// Generates a fresh random 32-byte secret from the OS-seeded thread RNG.
    pub fn generate() -> Self {
        let key: [u8; 32] = rand::rng().random();
        Self {
            key: key.to_vec().into(),
        }
    }

    /// Returns the full `whsec_<base64>` string, for showing a new secret to
    /// its owner once. Deliberately named so that call sites stand out.
    pub fn expose_whsec(&self) -> String {
        format!("{PREFIX}{}", BASE64.encode(self.key.expose_secret()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // RFC 2104 §2: HMAC accepts keys of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(self.key.expose_secret()).expect("HMAC takes any key length")
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let encoded = s.strip_prefix(PREFIX).ok_or(SecretError::MissingPrefix)?;
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = BASE64
            .decode(encoded)
            .map_err(|_| SecretError::InvalidBase64)?;
        match key.len() {
            0 => Err(SecretError::Empty),
            n if n < MIN_KEY_LEN => Err(SecretError::TooShort(n)),
            n if n > MAX_KEY_LEN => Err(SecretError::TooLong(n)),
            _ => Ok(Self { key: key.into() }),
        }
    }
}

impl TryFrom<&str> for WebhookSecret {
    type Error = SecretError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(**redacted**)")
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for WebhookSecret {
    // Serialization exists only for redacted config dumps; it cannot round-trip.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Signs one message: `v1,<base64 HMAC-SHA256("{msg_id}.{timestamp}.{body}")>`.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = signed_mac(secret, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// Builds the `webhook-signature` value: one `v1,` entry per secret, space
/// separated, in the order given (current secret first, then previous ones).
///
/// Sending every signature during rotation is what the spec prescribes for
/// zero-downtime secret rotation. An empty slice yields an empty string.
pub fn signature_header(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let sigs: Vec<String> = secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect();
    sigs.join(" ")
}

fn signed_mac(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // Streaming the three parts avoids copying a possibly large body.
    let mut mac = secret.mac();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Why an incoming webhook failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required `webhook-*` header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but not visible ASCII, or the timestamp is not an integer.
    #[error("invalid header {0}")]
    InvalidHeader(&'static str),
    /// The timestamp is outside the replay tolerance (too old or too far ahead).
    #[error("timestamp {timestamp} is outside the tolerance around now ({now})")]
    TimestampOutOfTolerance {
        /// The `webhook-timestamp` received.
        timestamp: i64,
        /// The verifier's clock, unix seconds.
        now: i64,
    },
    /// No `v1` signature matched any of the secrets.
    #[error("no matching signature")]
    NoMatchingSignature,
}

/// Verifies a received webhook against the current clock.
///
/// Succeeds when any `v1` signature in `webhook-signature` matches any of
/// `secrets` and `webhook-timestamp` is within `tolerance` of now (both
/// directions, as the spec asks, to bound replays).
pub fn verify(
    secrets: &[WebhookSecret],
    headers: &HeaderMap,
    body: &[u8],
    tolerance: Duration,
) -> Result<(), VerifyError> {
    verify_at(secrets, headers, body, tolerance, unix_now())
}

/// Like [`verify`], with an explicit `now` (unix seconds) for deterministic tests.
pub fn verify_at(
    secrets: &[WebhookSecret],
    headers: &HeaderMap,
    body: &[u8],
    tolerance: Duration,
    now: i64,
) -> Result<(), VerifyError> {
    let msg_id = header(headers, HEADER_ID)?;
    let ts_raw = header(headers, HEADER_TIMESTAMP)?;
    let signatures = header(headers, HEADER_SIGNATURE)?;
    let timestamp: i64 = ts_raw
        .parse()
        .map_err(|_| VerifyError::InvalidHeader(HEADER_TIMESTAMP))?;
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(VerifyError::TimestampOutOfTolerance { timestamp, now });
    }
    // Unknown versions (e.g. `v1a`, asymmetric) are skipped, per the spec's
    // forward-compatibility goal; undecodable entries simply cannot match.
    let candidates = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok());
    for tag in candidates {
        for secret in secrets {
            // `verify_slice` compares in constant time (spec: "use a constant
            // time comparison function").
            let mac = signed_mac(secret, msg_id, timestamp, body);
            if mac.verify_slice(&tag).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::NoMatchingSignature)
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .ok_or(VerifyError::MissingHeader(name))?
        .to_str()
        .map_err(|_| VerifyError::InvalidHeader(name))
}

/// Current time as unix seconds (0 if the clock is before 1970).
pub(super) fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
