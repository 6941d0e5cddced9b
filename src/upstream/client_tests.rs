use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use futures::StreamExt;
use secrecy::SecretString;

use super::*;
use crate::config::Config;
use crate::upstream::error::Disposition;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client(base_url: String) -> UpstreamClient {
    let mut config = Config::from_figment(Config::embedded()).unwrap().upstream;
    config.base_url = base_url;
    config.api_id = "id-1".into();
    config.api_secret = SecretString::from("s3cret-never-elsewhere");
    UpstreamClient::new(&config, Arc::new(Budget::new(&config))).unwrap()
}

/// A server that answers every request with `status` and keeps the headers
/// of each.
async fn recorder(status: StatusCode) -> (SocketAddr, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/{*rest}",
        any(move |headers: HeaderMap| async move {
            record.lock().unwrap().push(headers);
            status
        }),
    );
    (serve(app).await, seen)
}

/// The credentials are sent to the configured upstream only: a redirect,
/// even to another host, is an error to retry, not a request that carries
/// `asapp-api-secret` to wherever the `Location` points.
#[tokio::test]
async fn a_redirect_is_not_followed_and_the_secret_stays_home() {
    let (elsewhere, reached) = recorder(StatusCode::OK).await;
    let location = format!("http://{elsewhere}/stolen");
    let upstream = Router::new().route(
        "/generativeagent/v1/call-transfers/{id}",
        get(move || async move { (StatusCode::FOUND, [("location", location)]).into_response() }),
    );
    let upstream = serve(upstream).await;

    let error = client(format!("http://{upstream}"))
        .get("t-1", Priority::Signal)
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(302), "{error}");
    assert_eq!(error.disposition(), Disposition::RetryLater { after: None });
    assert!(error.to_string().contains("not followed"), "{error}");
    assert!(
        reached.lock().unwrap().is_empty(),
        "the redirect was followed: {:?}",
        reached.lock().unwrap()
    );
}

/// Both credentials reach the configured upstream; the secret's header
/// value is marked sensitive (never indexed by HPACK, not printed).
#[tokio::test]
async fn the_credentials_go_to_the_upstream_and_the_secret_is_sensitive() {
    let (upstream, seen) = recorder(StatusCode::IM_A_TEAPOT).await;
    let client = client(format!("http://{upstream}"));

    let error = client.get("t-2", Priority::Signal).await.unwrap_err();

    assert_eq!(error.status(), Some(418), "{error}");
    let headers = seen.lock().unwrap().pop().expect("the upstream was asked");
    assert_eq!(headers[HEADER_API_ID], "id-1");
    assert_eq!(headers[HEADER_API_SECRET], "s3cret-never-elsewhere");
    assert!(client.api_secret.is_sensitive());
    assert!(!format!("{client:?}").contains("s3cret"), "{client:?}");
}

#[test]
fn a_secret_that_is_no_header_value_is_refused_without_quoting_it() {
    let error = secret_header("bad\nsecret").unwrap_err().to_string();
    assert!(error.contains("upstream.api_secret"), "{error}");
    assert!(!error.contains("bad"), "{error}");
}

/// An answer past a MiB is refused as malformed (and retried), whether it
/// says its length or streams without one, instead of being read whole.
#[tokio::test]
async fn an_oversized_answer_is_refused_not_read_whole() {
    let huge = || format!("{{\"id\":\"{}\"}}", "x".repeat(2 << 20));
    let sized = Router::new().route(
        "/generativeagent/v1/call-transfers/{id}",
        get(move || async move { huge() }),
    );
    let chunks = Router::new().route(
        "/generativeagent/v1/call-transfers/{id}",
        get(|| async {
            let piece = || Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 << 10]));
            let endless = futures::stream::repeat_with(piece).take(64);
            axum::body::Body::from_stream(endless)
        }),
    );
    for app in [sized, chunks] {
        let upstream = serve(app).await;
        let error = client(format!("http://{upstream}"))
            .get("t-3", Priority::Signal)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, UpstreamError::Malformed(m) if m.contains("over")),
            "{error}"
        );
        assert_eq!(error.disposition(), Disposition::RetryLater { after: None });
    }
}

/// A body in several chunks is put together, not cut at the first.
#[tokio::test]
async fn an_answer_in_chunks_is_read_whole() {
    let json = r#"{"id":"t-4","externalConversationId":"c","status":"ONGOING",
        "createdAt":"2024-06-01T12:34:56Z","type":"SIP"}"#;
    let app = Router::new().route(
        "/generativeagent/v1/call-transfers/{id}",
        get(move || async move {
            let pieces = json
                .as_bytes()
                .chunks(5)
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)));
            axum::body::Body::from_stream(futures::stream::iter(pieces.collect::<Vec<_>>()))
        }),
    );
    let upstream = serve(app).await;
    let fetched = client(format!("http://{upstream}"))
        .get("t-4", Priority::Signal)
        .await
        .unwrap();
    assert_eq!(fetched.raw["status"], "ONGOING");
    assert_eq!(fetched.text(), json, "the store keeps the body as it came");
}

/// What the client makes of `body`, answered by an upstream to its GET of
/// `id`.
async fn fetched_from(body: String, id: &str) -> Fetched {
    let app = Router::new().route(
        "/generativeagent/v1/call-transfers/{id}",
        get(move || async move { body }),
    );
    let upstream = serve(app).await;
    client(format!("http://{upstream}"))
        .get(id, Priority::Signal)
        .await
        .unwrap()
}

/// A body with the return INVITE's password is kept as the redacted tree
/// writes it: the password goes nowhere, neither in the tree nor the text.
#[tokio::test]
async fn a_body_with_a_secret_is_kept_redacted() {
    let json = r#"{"id":"t-5","externalConversationId":"c","status":"COMPLETED",
        "createdAt":"2024-06-01T12:34:56Z","type":"SIP","sip":{"returnTransferType":"INVITE",
        "returnInviteAuthentication":{"username":"u","password":"hunter2"}}}"#;
    let fetched = fetched_from(json.to_owned(), "t-5").await;
    assert!(!fetched.text().contains("hunter2"), "{}", fetched.text());
    let kept: Value = serde_json::from_str(fetched.text()).unwrap();
    assert_eq!(kept, fetched.raw);
    assert_eq!(
        kept["sip"]["returnInviteAuthentication"]["password"],
        "**redacted**"
    );
}

/// A fetched resource made from a tree (a SIP return's, a test's) keeps
/// no password either.
#[test]
fn a_resource_made_from_a_tree_is_redacted() {
    let raw = serde_json::json!({"id": "t-8", "externalConversationId": "c", "status": "COMPLETED", "createdAt": "2024-06-01T12:34:56Z",
        "type": "SIP", "sip": {"returnInviteAuthentication": {"username": "u", "password": "hunter2"}}});
    let resource: CallTransfer = serde_json::from_value(raw.clone()).unwrap();
    let fetched = Fetched::new(resource, raw);
    assert!(!fetched.text().contains("hunter2"), "{}", fetched.text());
    assert_eq!(
        fetched.raw["sip"]["returnInviteAuthentication"]["password"],
        "**redacted**"
    );
}

/// A key named twice parses to its last value: a password in the first
/// `sip` is not in the tree, and must not be in the text the store keeps
/// either, spelled out or escaped.
#[tokio::test]
async fn a_secret_under_a_repeated_key_stays_out_of_the_text() {
    const SHADOWED: [&str; 2] = [
        r#"{"sip":{"returnInviteAuthentication":{"password":"hunter2"}},"#,
        r#"{"sip":{"returnInviteAuthentication":{"p\u0061ssword":"hunter2"}},"#,
    ];
    for head in SHADOWED {
        let json = format!(
            r#"{head}"id":"t-6","externalConversationId":"c","status":"COMPLETED",
            "createdAt":"2024-06-01T12:34:56Z","type":"SIP","sip":{{}}}}"#
        );
        let fetched = fetched_from(json, "t-6").await;
        assert!(
            !fetched.text().contains("hunter2"),
            "{head}: {}",
            fetched.text()
        );
        assert_eq!(fetched.raw["sip"], serde_json::json!({}), "{head}");
    }
}

/// Spellings of one key: as is, and with one letter escaped.
fn spelled(key: &str, escaped: bool) -> String {
    match escaped {
        false => key.to_owned(),
        true => format!(
            "{}\\u{:04x}{}",
            &key[..1],
            u32::from(key.as_bytes()[1]),
            &key[2..]
        ),
    }
}

/// One `returnInviteAuthentication`: whether its key is escaped, and for
/// each of its passwords, whether that key is.
type Auth = (bool, Vec<bool>);
/// One `sip` object: whether its key is escaped, and its auths.
type Sip = (bool, Vec<Auth>);

/// A body whose `sip` objects, `returnInviteAuthentication` objects and
/// passwords each come zero to two times, under plain or escaped keys.
fn body_with_secrets(shape: &[Sip]) -> String {
    let mut body = String::from(r#"{"id":"t-7","status":"COMPLETED""#);
    for (sip_escaped, auths) in shape {
        body += &format!(
            r#","{}":{{"returnUri":"sip:ivr@pbx""#,
            spelled("sip", *sip_escaped)
        );
        for (auth_escaped, passwords) in auths {
            let key = spelled("returnInviteAuthentication", *auth_escaped);
            body += &format!(r#","{key}":{{"username":"u""#);
            for escaped in passwords {
                body += &format!(r#","{}":"hunter2""#, spelled("password", *escaped));
            }
            body += "}";
        }
        body += "}";
    }
    body + "}"
}

/// A key escaped one time in four: bodies with no escape at all, where the
/// text can be the body itself, come often.
fn escaped() -> proptest::bool::Weighted {
    proptest::bool::weighted(0.25)
}

proptest::proptest! {
    /// Whatever keys repeat and however they are spelled, the text the
    /// store keeps holds no password; a body without one is kept as it came.
    #[test]
    fn the_kept_text_never_holds_a_password(
        shape in proptest::collection::vec(
            (escaped(), proptest::collection::vec(
                (escaped(), proptest::collection::vec(escaped(), 0..3)),
                0..3,
            )),
            0..3,
        ),
    ) {
        let body = body_with_secrets(&shape);
        let mut raw: Value = serde_json::from_str(&body).unwrap();
        let redacted = redact_secrets(&mut raw);
        let text = kept_text(body.as_bytes(), &raw, redacted);
        proptest::prop_assert!(!text.contains("hunter2"), "{} -> {}", body, text);
        let kept: Value = serde_json::from_str(&text).unwrap();
        proptest::prop_assert_eq!(&kept, &raw);
        if !body.contains("hunter2") && !body.contains('\\') {
            proptest::prop_assert_eq!(&*text, body.as_str());
        }
    }
}
