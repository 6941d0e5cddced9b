//! Typed client for the two call-transfer endpoints.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Notify;
use tracing::instrument;

use super::UpstreamConfig;
use super::budget::{Budget, Priority};
use super::create::{CreateCallTransfer, retry_delay};
use super::error::{ErrorEnvelope, UpstreamError, parse_retry_after};
use super::model::{CallTransfer, redact_secrets};

pub const HEADER_API_ID: &str = "asapp-api-id";
pub const HEADER_API_SECRET: &str = "asapp-api-secret";
const COLLECTION_PATH: &str = "generativeagent/v1/call-transfers";

/// A resource as parsed, plus the JSON it came from (secrets redacted) so the
/// bridge can show integrators exactly what the upstream said.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub resource: CallTransfer,
    pub raw: Value,
    /// `raw` as the store keeps it: the body as it came when nothing in it
    /// was redacted, so an ending copies it instead of writing the tree out
    /// again (that serialization was 3% of a burst's CPU).
    text: Box<str>,
}

impl Fetched {
    /// A resource and its tree, which the text is written from; a password
    /// in the tree is redacted here too, as [`Fetched::from_body`] does.
    pub fn new(resource: CallTransfer, mut raw: Value) -> Self {
        redact_secrets(&mut raw);
        let text = raw.to_string().into_boxed_str();
        Self {
            resource,
            raw,
            text,
        }
    }

    /// A successful answer's body: the resource, its tree with secrets
    /// redacted, and the text the store keeps (see `kept_text`). One parse:
    /// the typed resource is read from the tree by reference, not from a
    /// clone of it.
    pub fn from_body(body: &[u8]) -> Result<Self, UpstreamError> {
        let malformed = |e: serde_json::Error| UpstreamError::Malformed(e.to_string());
        let mut raw: Value = serde_json::from_slice(body).map_err(malformed)?;
        let resource = CallTransfer::deserialize(&raw).map_err(malformed)?;
        let redacted = redact_secrets(&mut raw);
        let text = kept_text(body, &raw, redacted);
        Ok(Self {
            resource,
            raw,
            text,
        })
    }

    /// The JSON text of `raw`, for the store.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Cheap to clone (every field is shared; the tracker clones it per poll);
/// one connection pool and one request budget per process.
#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    base: Arc<Url>,
    /// `base` + the collection path.
    collection: Arc<Url>,
    api_id: HeaderValue,
    /// Marked sensitive: HTTP/2 sends it as a never-indexed literal, so it
    /// never enters a connection's HPACK table, and `Debug` prints
    /// `Sensitive`. Made once: each request used to copy the secret into a
    /// header value of its own.
    api_secret: HeaderValue,
    budget: Arc<Budget>,
    /// How long a create may keep its caller waiting on the budget and on
    /// retries: `upstream.timeout`.
    create_window: Duration,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("base", &self.base.as_str())
            .field("api_id", &self.api_id.to_str().unwrap_or("?"))
            .field("api_secret", &"**redacted**")
            .finish()
    }
}

impl UpstreamClient {
    pub fn new(config: &UpstreamConfig, budget: Arc<Budget>) -> anyhow::Result<Self> {
        let mut base = Url::parse(&config.base_url)?;
        // `join` drops the last segment unless the base ends with a slash.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("transfer-bridge/", env!("CARGO_PKG_VERSION")))
            // A followed redirect would carry the credentials along: reqwest
            // strips `Authorization` on a cross-host redirect, not the
            // vendor's `asapp-api-*` headers. A 3xx is an error instead
            // (see `UpstreamError::disposition`).
            .redirect(Policy::none())
            .build()?;
        Ok(Self {
            http,
            // Joined once: parsing it again cost every request a URL parse.
            collection: Arc::new(base.join(COLLECTION_PATH)?),
            base: Arc::new(base),
            api_id: HeaderValue::from_str(&config.api_id)
                .context("upstream.api_id is not a valid HTTP header value")?,
            api_secret: secret_header(config.api_secret.expose_secret())?,
            budget,
            create_window: config.timeout,
        })
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// `GET /generativeagent/v1/call-transfers/{id}`. Its span is at debug
    /// level: a poller makes a thousand of these a second, and an info span
    /// (formatted fields, a JSON log context) cost more than the request.
    #[instrument(level = "debug", skip_all, fields(call_transfer_id = %id))]
    pub async fn get(&self, id: &str, priority: Priority) -> Result<Fetched, UpstreamError> {
        let url = self.transfer_url(Some(id));
        self.send(Method::GET, url, None, priority, None).await
    }

    /// A routine GET that a returned-call signal for the same transfer can
    /// raise (`raised`) while it still waits for its turn: from then on it
    /// waits as a signal's (see [`Budget::acquire_raisable`]).
    #[instrument(level = "debug", skip_all, fields(call_transfer_id = %id))]
    pub async fn get_routine(&self, id: &str, raised: &Notify) -> Result<Fetched, UpstreamError> {
        self.budget.acquire_raisable(raised).await;
        self.send_counted(Method::GET, self.transfer_url(Some(id)), None)
            .await
    }

    /// `POST /generativeagent/v1/call-transfers`, for a caller who waits on
    /// the answer: a 409 (the id exists) is read with a GET, and a failure
    /// the vendor says to retry is retried (see `create::retry_delay`) while
    /// the next attempt starts within `upstream.timeout` of the first. Past
    /// that window it fails, and a budget that holds requests back beyond it
    /// fails at once ([`UpstreamError::Budget`]).
    #[instrument(skip_all, fields(call_transfer_id = %body.id))]
    pub async fn create(&self, body: &CreateCallTransfer) -> Result<Fetched, UpstreamError> {
        let json =
            serde_json::to_value(body).map_err(|e| UpstreamError::Malformed(e.to_string()))?;
        let deadline = Some(tokio::time::Instant::now() + self.create_window);
        let mut attempt = 1;
        loop {
            let url = self.transfer_url(None);
            let mut result = self
                .send(Method::POST, url, Some(&json), Priority::Signal, deadline)
                .await;
            if let Err(UpstreamError::Status { status: 409, .. }) = result {
                let url = self.transfer_url(Some(&body.id));
                result = self
                    .send(Method::GET, url, None, Priority::Signal, deadline)
                    .await;
            }
            let Err(error) = &result else { return result };
            match retry_delay(error, attempt) {
                Some(delay) if Some(tokio::time::Instant::now() + delay) < deadline => {
                    tracing::info!(error = %error, attempt, "upstream create failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return result,
            }
        }
    }

    fn transfer_url(&self, id: Option<&str>) -> Url {
        let mut url = Url::clone(&self.collection);
        if let Some(id) = id {
            // push() percent-encodes, so an id can never escape its segment.
            url.path_segments_mut()
                .expect("http(s) URLs have path segments")
                .push(id);
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        priority: Priority,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Fetched, UpstreamError> {
        if let Err(until) = self.budget.acquire_by(priority, deadline).await {
            let retry_after = until.saturating_duration_since(tokio::time::Instant::now());
            return Err(UpstreamError::Budget { retry_after });
        }
        self.send_counted(method, url, body).await
    }

    /// A request whose turn the budget has counted.
    async fn send_counted(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Fetched, UpstreamError> {
        let mut request = self
            .http
            .request(method, url)
            .header(HEADER_API_ID, self.api_id.clone())
            .header(HEADER_API_SECRET, self.api_secret.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let result = match request.send().await {
            Ok(response) => read_response(response).await,
            Err(e) if e.is_timeout() => Err(UpstreamError::Timeout),
            Err(e) => Err(UpstreamError::Connect(without_url(&e))),
        };
        self.budget.observe(&result);
        result
    }
}

/// The secret as a sensitive header value; an error that does not quote it.
fn secret_header(secret: &str) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(secret)
        .ok()
        .context("upstream.api_secret is not a valid HTTP header value")?;
    value.set_sensitive(true);
    Ok(value)
}

async fn read_response(response: reqwest::Response) -> Result<Fetched, UpstreamError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let bytes = read_body(response).await?;
    if status != StatusCode::OK && !status.is_success() {
        let envelope = serde_json::from_slice::<ErrorEnvelope>(&bytes)
            .ok()
            .map(|e| e.error);
        return Err(UpstreamError::Status {
            status: status.as_u16(),
            envelope,
            retry_after,
        });
    }
    Fetched::from_body(&bytes)
}

/// The text the store keeps of `body`, whose tree is `raw` (already
/// redacted; `redacted` says whether a password was replaced): the body as
/// it came, unless it could carry a password the tree does not show.
fn kept_text(body: &[u8], raw: &Value, redacted: bool) -> Box<str> {
    match std::str::from_utf8(body) {
        Ok(text) if !redacted && !may_hold_a_secret(body) => text.into(),
        _ => raw.to_string().into_boxed_str(),
    }
}

/// Whether the body, as text, could carry a password the tree does not
/// show: a key named twice parses to its last value, so an earlier one,
/// spelled out or with escapes, is in the text only. Such a body is kept
/// as the redacted tree writes it instead.
fn may_hold_a_secret(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"password").is_some()
        || memchr::memmem::find(body, b"\\u").is_some()
}

/// The most of an upstream answer the bridge reads. A call transfer is a
/// few KiB; an answer past this is a broken upstream (or not the upstream),
/// and reading it whole would hold all of it in memory, once per poll.
const MAX_BODY: usize = 1 << 20;

/// The body, at most [`MAX_BODY`]; one chunk, the usual case, is not copied.
async fn read_body(mut response: reqwest::Response) -> Result<Bytes, UpstreamError> {
    let too_large = || UpstreamError::Malformed(format!("answer over {MAX_BODY} bytes"));
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(too_large());
    }
    let Some(first) = next_chunk(&mut response).await? else {
        return Ok(Bytes::new());
    };
    let mut body = match next_chunk(&mut response).await? {
        None if first.len() <= MAX_BODY => return Ok(first),
        None => return Err(too_large()),
        Some(second) => [first, second].concat(),
    };
    loop {
        if body.len() > MAX_BODY {
            return Err(too_large());
        }
        match next_chunk(&mut response).await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => return Ok(body.into()),
        }
    }
}

async fn next_chunk(response: &mut reqwest::Response) -> Result<Option<Bytes>, UpstreamError> {
    response.chunk().await.map_err(|e| match e.is_timeout() {
        true => UpstreamError::Timeout,
        false => UpstreamError::Connect(without_url(&e)),
    })
}

/// reqwest errors embed the URL; keep logs short and free of query strings.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<upstream>");
    }
    text
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
