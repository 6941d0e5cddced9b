use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, post};

use super::*;
use crate::delivery::webhook::sign::{DEFAULT_TOLERANCE, verify};

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

const BODY: &str = r#"{"type":"transfer.completed","data":{"id":"t_1"}}"#;

fn loopback_policy() -> CallbackPolicy {
    CallbackPolicy {
        allow_http: true,
        allowed_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        ..CallbackPolicy::default()
    }
}

fn client(policy: CallbackPolicy) -> WebhookClient {
    WebhookClient::new(policy, Duration::from_secs(5)).unwrap()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A receiver that records requests and checks signatures with `verify`,
/// knowing only `secrets` (like a real consumer).
async fn verifying_receiver(secrets: Vec<WebhookSecret>) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let handler = |State((secrets, seen)): State<(Arc<Vec<WebhookSecret>>, Seen)>,
                   headers: HeaderMap,
                   body: Bytes| async move {
        let ok = verify(&secrets, &headers, &body, DEFAULT_TOLERANCE).is_ok();
        seen.lock().unwrap().push((headers, body));
        if ok {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::UNAUTHORIZED
        }
    };
    let app = Router::new()
        .route("/hook", post(handler))
        .with_state((Arc::new(secrets), seen.clone()));
    (serve(app).await, seen)
}

#[tokio::test]
async fn delivers_signed_webhook_that_verifies() {
    let current = WebhookSecret::generate();
    let previous = WebhookSecret::generate();
    // The receiver still has the previous secret: rotation must not break it.
    let (addr, seen) = verifying_receiver(vec![previous.clone()]).await;
    let url = format!("http://{addr}/hook");
    let verdict = client(loopback_policy())
        .send(
            &url,
            "msg_1",
            Bytes::from_static(BODY.as_bytes()),
            &[current, previous],
        )
        .await
        .unwrap();
    assert_eq!(verdict, Verdict::Delivered);
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert_eq!(body.as_ref(), BODY.as_bytes());
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["webhook-id"], "msg_1");
    let sigs = headers["webhook-signature"].to_str().unwrap();
    assert_eq!(sigs.split(' ').count(), 2, "{sigs}");
    let ua = headers["user-agent"].to_str().unwrap();
    assert!(ua.starts_with("transfer-bridge/"), "{ua}");
}

#[tokio::test]
async fn wrong_secret_is_rejected_by_receiver_and_retried() {
    let (addr, seen) = verifying_receiver(vec![WebhookSecret::generate()]).await;
    let url = format!("http://{addr}/hook");
    let verdict = client(loopback_policy())
        .send(
            &url,
            "msg_2",
            Bytes::from_static(b"{}"),
            &[WebhookSecret::generate()],
        )
        .await
        .unwrap();
    assert!(matches!(verdict, Verdict::Retry { .. }), "{verdict:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let target_hits = Arc::new(Mutex::new(0_u32));
    let hits = target_hits.clone();
    let target = Router::new().route(
        "/target",
        any(move || async move {
            *hits.lock().unwrap() += 1;
            StatusCode::NO_CONTENT
        }),
    );
    let target_addr = serve(target).await;
    let location = format!("http://{target_addr}/target");
    let redirector = Router::new().route(
        "/hook",
        post(move || async move {
            let headers = [("location", location)];
            (StatusCode::FOUND, headers).into_response()
        }),
    );
    let addr = serve(redirector).await;
    let verdict = client(loopback_policy())
        .send(&format!("http://{addr}/hook"), "msg_3", Bytes::new(), &[])
        .await
        .unwrap();
    match verdict {
        Verdict::Retry { reason, .. } => assert!(reason.contains("302"), "{reason}"),
        other => panic!("expected Retry, got {other:?}"),
    }
    assert_eq!(*target_hits.lock().unwrap(), 0, "redirect was followed");
}

#[tokio::test]
async fn default_policy_refuses_loopback_receiver() {
    let (addr, seen) = verifying_receiver(vec![]).await;
    let url = format!("http://{addr}/hook");
    let body = Bytes::from_static(b"{}");
    let strict = client(CallbackPolicy::default());
    let err = strict.send(&url, "m", body.clone(), &[]).await.unwrap_err();
    assert!(
        matches!(err, WebhookError::Refused(SsrfError::HttpNotAllowed)),
        "{err}"
    );
    let http_only = client(CallbackPolicy {
        allow_http: true,
        allowed_cidrs: vec![],
        ..CallbackPolicy::default()
    });
    let err = http_only
        .send(&url, "m", body.clone(), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, WebhookError::Refused(SsrfError::Forbidden { .. })),
        "{err}"
    );
    // By name: only the guarded resolver sees this, inside reqwest.
    let by_name = format!("http://localhost:{}/hook", addr.port());
    let err = http_only.send(&by_name, "m", body, &[]).await.unwrap_err();
    assert!(
        matches!(
            err,
            WebhookError::Refused(SsrfError::ResolvedForbidden { .. })
        ),
        "{err}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "a refused request got through"
    );
}

#[tokio::test]
async fn transport_faults_are_retried() {
    // A port with nothing listening: bind, note it, close.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/hook");
    let verdict = client(loopback_policy())
        .send(&url, "m", Bytes::new(), &[])
        .await
        .unwrap();
    match verdict {
        Verdict::Retry { reason, .. } => assert!(reason.starts_with("connection"), "{reason}"),
        other => panic!("expected Retry, got {other:?}"),
    }
}

#[tokio::test]
async fn timeout_is_retried() {
    let slow = Router::new().route(
        "/hook",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::NO_CONTENT.into_response()
        }),
    );
    let addr = serve(slow).await;
    let quick = WebhookClient::new(loopback_policy(), Duration::from_millis(200)).unwrap();
    let verdict = quick
        .send(&format!("http://{addr}/hook"), "m", Bytes::new(), &[])
        .await
        .unwrap();
    match verdict {
        Verdict::Retry { reason, .. } => assert!(reason.starts_with("timeout"), "{reason}"),
        other => panic!("expected Retry, got {other:?}"),
    }
}

#[tokio::test]
async fn message_ids_are_validated() {
    let c = client(loopback_policy());
    for bad in ["", "msg.1", "msg\n1"] {
        let r: Result<Verdict, WebhookError> =
            c.send("http://127.0.0.1:9/", bad, Bytes::new(), &[]).await;
        assert!(
            matches!(r, Err(WebhookError::InvalidMessageId(_))),
            "{bad:?}: {r:?}"
        );
    }
}
