//! Upstream failures, and what each one means for the bridge.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The vendor's error envelope: `{"error": {"requestId", "message", "code"}}`.
/// The bridge's own API answers in the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub request_id: String,
    pub message: String,
    /// `STATUS-SUBCODE`, e.g. `404-01`; optional in the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A non-2xx answer; `envelope` is absent when the body was not the
    /// documented shape.
    #[error("upstream answered {status}{}", describe(.status, .envelope))]
    Status {
        status: u16,
        envelope: Option<ErrorBody>,
        retry_after: Option<Duration>,
    },
    #[error("upstream request timed out")]
    Timeout,
    #[error("cannot reach upstream: {0}")]
    Connect(String),
    /// A 2xx whose body is not a call transfer.
    #[error("upstream sent an unreadable body: {0}")]
    Malformed(String),
    /// Not sent: the bridge's request budget holds every request back (a
    /// 429's pause, the day's cap) for longer than the caller can wait.
    #[error("the upstream request budget is paused or spent for the next {}s", retry_secs(.retry_after))]
    Budget { retry_after: Duration },
}

/// Whole seconds to wait, at least one: what a `Retry-After` header says.
pub fn retry_secs(after: &Duration) -> u64 {
    after.as_secs_f64().ceil().max(1.0) as u64
}

fn describe(status: &u16, envelope: &Option<ErrorBody>) -> String {
    if (300..400).contains(status) {
        return ": a redirect, not followed (check upstream.base_url)".into();
    }
    match envelope {
        Some(e) => format!(
            ": {} ({}, requestId {})",
            e.message,
            e.code.as_deref().unwrap_or("no code"),
            e.request_id
        ),
        None => String::new(),
    }
}

/// What a failed request means, per the vendor's error-handling guidance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// 429, 5xx, timeout, connect error, malformed body: try again later,
    /// not before `after` when the upstream said so.
    RetryLater { after: Option<Duration> },
    /// 404: a transfer created a moment ago may not be visible yet.
    NotYetVisible,
    /// Any other 4xx: this transfer will never succeed.
    FatalForTransfer,
    /// 401/403: the credentials are wrong; every transfer is affected.
    FatalForBridge,
}

impl UpstreamError {
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Status {
                status,
                retry_after,
                ..
            } => match status {
                401 | 403 => Disposition::FatalForBridge,
                404 => Disposition::NotYetVisible,
                429 => Disposition::RetryLater {
                    after: *retry_after,
                },
                500..=599 => Disposition::RetryLater {
                    after: *retry_after,
                },
                // 408 and 425 say the request itself may be repeated (RFC
                // 9110 §15.5.9, RFC 8470): a proxy's or the server's timing,
                // not a verdict on the transfer. Not a status the vendor
                // declares, so not one its "do not retry 4xx" is about.
                408 | 425 => Disposition::RetryLater {
                    after: *retry_after,
                },
                // Redirects are not followed (the credentials would go with
                // them): a misplaced `upstream.base_url`, which the operator
                // fixes, not a verdict on this transfer.
                300..=399 => Disposition::RetryLater { after: None },
                _ => Disposition::FatalForTransfer,
            },
            Self::Timeout | Self::Connect(_) | Self::Malformed(_) => {
                Disposition::RetryLater { after: None }
            }
            Self::Budget { retry_after } => Disposition::RetryLater {
                after: Some(*retry_after),
            },
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Status { status: 429, .. } => "rate_limited",
            Self::Status {
                status: 401 | 403, ..
            } => "auth",
            Self::Status { status: 404, .. } => "not_found",
            Self::Status { status: 500.., .. } => "server_error",
            Self::Status {
                status: 300..=399, ..
            } => "redirect",
            Self::Status { .. } => "client_error",
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Malformed(_) => "malformed",
            Self::Budget { .. } => "budget",
        }
    }
}

/// The longest `Retry-After` taken as said: the daily limit resets within a
/// day. A longer one (a server's mistake, or a date years ahead) would pause
/// every request for that long, overflow an `Instant`, or put a poll past
/// what the scheduler's timer wheel holds (about two years), and is read as
/// this much instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3), at
/// most [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let after = crate::retry_after::parse(value, std::time::SystemTime::now())?;
    Some(after.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> UpstreamError {
        UpstreamError::Status {
            status: code,
            envelope: None,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn classification_follows_the_vendor_guidance() {
        assert_eq!(
            status(429, Some(2)).disposition(),
            Disposition::RetryLater {
                after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            status(503, None).disposition(),
            Disposition::RetryLater { after: None }
        );
        assert_eq!(
            status(500, None).disposition(),
            Disposition::RetryLater { after: None }
        );
        assert_eq!(status(404, None).disposition(), Disposition::NotYetVisible);
        assert_eq!(status(401, None).disposition(), Disposition::FatalForBridge);
        assert_eq!(status(403, None).disposition(), Disposition::FatalForBridge);
        for code in [301, 302, 307, 308] {
            let redirect = status(code, None);
            assert_eq!(
                redirect.disposition(),
                Disposition::RetryLater { after: None }
            );
            assert_eq!(redirect.label(), "redirect");
            assert!(redirect.to_string().contains("not followed"), "{redirect}");
        }
        for code in [408, 425] {
            assert_eq!(
                status(code, Some(2)).disposition(),
                Disposition::RetryLater {
                    after: Some(Duration::from_secs(2))
                }
            );
        }
        for code in [400, 409, 413, 422] {
            assert_eq!(
                status(code, None).disposition(),
                Disposition::FatalForTransfer
            );
        }
        assert_eq!(
            UpstreamError::Timeout.disposition(),
            Disposition::RetryLater { after: None }
        );
    }

    #[test]
    fn parses_envelope_and_retry_after() {
        let env: ErrorEnvelope = serde_json::from_str(
            r#"{"error":{"requestId":"8e03","code":"429-01","message":"Too Many Requests"}}"#,
        )
        .unwrap();
        assert_eq!(env.error.code.as_deref(), Some("429-01"));
        let no_code: ErrorEnvelope =
            serde_json::from_str(r#"{"error":{"requestId":"r","message":"m"}}"#).unwrap();
        assert!(no_code.error.code.is_none());
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        for huge in [
            "68720000",
            "18446744073709551615",
            "99999999999999999999999",
            "Fri, 01 Jan 2100 00:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
    }
}
