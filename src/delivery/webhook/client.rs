//! HTTP delivery of one signed webhook attempt.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::redirect::Policy;

use super::retry::{Verdict, classify};
use super::sign::{
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, WebhookSecret, signature_header, unix_now,
};
use super::ssrf::{CallbackPolicy, GuardedResolver, SsrfError, check_url};

const USER_AGENT: &str = concat!("transfer-bridge/", env!("CARGO_PKG_VERSION"));

/// A delivery attempt that must not be retried as-is.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL, or an address it resolves to, is refused by the SSRF policy.
    #[error("callback refused: {0}")]
    Refused(#[from] SsrfError),
    /// The message id cannot be sent (see [`WebhookClient::send`]).
    #[error("invalid webhook message id: {0}")]
    InvalidMessageId(&'static str),
    /// The HTTP client could not be constructed (e.g. TLS backend failure).
    #[error("could not build webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Sends signed webhooks through one pooled, SSRF-guarded HTTP client.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: CallbackPolicy,
}

impl WebhookClient {
    /// Builds the client: no redirects, [`GuardedResolver`] for DNS, no
    /// proxies, `timeout` for the whole request, and a
    /// `transfer-bridge/<version>` user agent.
    pub fn new(policy: CallbackPolicy, timeout: Duration) -> Result<Self, WebhookError> {
        let http = reqwest::Client::builder()
            // The spec counts 3xx as failures, and a followed redirect would
            // reach a target that `check_url` never saw.
            .redirect(Policy::none())
            .dns_resolver(GuardedResolver::new(policy.clone()))
            // A proxy resolves the target itself, bypassing the guard; this
            // also ignores HTTP(S)_PROXY from the environment.
            .no_proxy()
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Self { http, policy })
    }

    /// The SSRF policy this client enforces.
    pub fn policy(&self) -> &CallbackPolicy {
        &self.policy
    }

    /// Makes one delivery attempt of `body` (JSON) to `url`.
    ///
    /// Sends `webhook-id: msg_id`, `webhook-timestamp: now` and, unless
    /// `secrets` is empty, `webhook-signature` with one signature per secret
    /// (current first). `msg_id` must be non-empty, a valid header value and
    /// free of `.`, which the spec forbids because the signed content is
    /// dot-delimited.
    ///
    /// HTTP responses and transport faults (connect, TLS, timeout, DNS
    /// failure) yield a [`Verdict`]; an SSRF refusal, including one raised
    /// while resolving, is `Err(WebhookError::Refused)`.
    pub async fn send(
        &self,
        url: &str,
        msg_id: &str,
        body: Bytes,
        secrets: &[WebhookSecret],
    ) -> Result<Verdict, WebhookError> {
        // Every time: IP-literal URLs never reach the guarded resolver.
        let url = check_url(&self.policy, url)?;
        let headers = webhook_headers(msg_id, unix_now(), &body, secrets)?;
        // Only the host is logged: paths and queries may carry tokens.
        let host = url.host_str().unwrap_or_default().to_owned();
        let result = self.http.post(url).headers(headers).body(body).send().await;
        let verdict = match result {
            Ok(response) => classify(response.status(), response.headers()),
            Err(err) => transport_verdict(err).inspect_err(|e| {
                tracing::warn!(%host, msg_id, error = %e, "webhook refused at connect time");
            })?,
        };
        tracing::debug!(%host, msg_id, ?verdict, "webhook attempt finished");
        Ok(verdict)
    }
}

fn webhook_headers(
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    secrets: &[WebhookSecret],
) -> Result<HeaderMap, WebhookError> {
    if msg_id.is_empty() {
        return Err(WebhookError::InvalidMessageId("it is empty"));
    }
    if msg_id.contains('.') {
        return Err(WebhookError::InvalidMessageId("it contains '.'"));
    }
    let id = HeaderValue::from_str(msg_id)
        .map_err(|_| WebhookError::InvalidMessageId("it is not a valid header value"))?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(HEADER_ID, id);
    headers.insert(HEADER_TIMESTAMP, HeaderValue::from(timestamp));
    if !secrets.is_empty() {
        let value = signature_header(secrets, msg_id, timestamp, body);
        let value = HeaderValue::from_str(&value).expect("base64 signatures are valid header text");
        headers.insert(HEADER_SIGNATURE, value);
    }
    Ok(headers)
}

/// Maps a reqwest failure: SSRF refusals from the resolver are permanent;
/// everything else is a transport fault worth retrying.
fn transport_verdict(err: reqwest::Error) -> Result<Verdict, WebhookError> {
    // The URL may carry credentials in its query; keep it out of reasons.
    let err = err.without_url();
    if let Some(ssrf) = find_ssrf(&err)
        && ssrf.is_refusal()
    {
        return Err(WebhookError::Refused(ssrf));
    }
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Ok(Verdict::Retry {
        retry_after: None,
        reason: format!("{kind}: {}", error_chain(&err)),
    })
}

/// The resolver's error travels boxed inside hyper's connect error.
fn find_ssrf(err: &(dyn StdError + 'static)) -> Option<SsrfError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(ssrf) = e.downcast_ref::<SsrfError>() {
            return Some(ssrf.clone());
        }
        current = e.source();
    }
    None
}

fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
