//! A webhook receiver that verifies every Standard Webhooks signature it
//! gets and answers from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use transfer_bridge::delivery::webhook::{DEFAULT_TOLERANCE, WebhookSecret, verify};

/// The Standard Webhooks test-vector secret, used as the bridge's secret.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    RetryAfter(u16, &'static str),
    Abort,
    Redirect(String),
    /// 200 after this long.
    Slow(Duration),
}

#[derive(Clone, Debug)]
pub struct Got {
    pub id: String,
    pub body: Value,
    pub verified: bool,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    got: Vec<Got>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    secrets: Arc<Vec<WebhookSecret>>,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Verifies with `secrets`; answers 200 once the script is used up.
    pub async fn start(secrets: &[&str], script: Vec<Reply>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Self {
            url,
            secrets: Arc::new(secrets.iter().map(|s| s.parse().unwrap()).collect()),
            inner: Arc::new(Mutex::new(Inner {
                script: script.into(),
                got: Vec::new(),
            })),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    pub fn got(&self) -> Vec<Got> {
        self.inner.lock().unwrap().got.clone()
    }

    /// Wait for `n` requests.
    pub async fn wait_for(&self, n: usize) -> Vec<Got> {
        for _ in 0..200 {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("receiver got {} of {n} requests", self.got().len());
    }
}

async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let verified = verify(&receiver.secrets, &headers, &body, DEFAULT_TOLERANCE).is_ok();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let reply = {
        let mut inner = receiver.inner.lock().unwrap();
        inner.got.push(Got {
            id,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            verified,
            at: Instant::now(),
        });
        inner.script.pop_front()
    };
    match reply {
        None => StatusCode::OK.into_response(),
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Reply::RetryAfter(code, after)) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", after)],
        )
            .into_response(),
        Some(Reply::Abort) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("webhook-delivery", "abort-message")],
        )
            .into_response(),
        Some(Reply::Redirect(to)) => (StatusCode::FOUND, [("location", to)]).into_response(),
        Some(Reply::Slow(after)) => {
            tokio::time::sleep(after).await;
            StatusCode::OK.into_response()
        }
    }
}
