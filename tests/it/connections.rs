//! Hostile connections: slow or missing heads and bodies, idle keep-alive,
//! too many sockets, heads hyper would refuse. Each is closed in bounded
//! time, and every refusal carries the error envelope.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Test-sized limits, so each case takes about a second.
async fn spawn_strict() -> TestApp {
    spawn_app_with(|c| {
        c.http.header_read_timeout = Duration::from_secs(1);
        c.http.body_read_timeout = Duration::from_secs(1);
        c.http.idle_timeout = Duration::from_secs(1);
        c.http.max_connections = 4;
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect to the bridge")
}

/// Everything the server sends until it closes (or `within` runs out).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&all).into_owned(), closed)
}

/// The status of a raw response, after checking its body is the envelope.
fn envelope_status(raw: &str) -> u16 {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not a response: {raw:?}"));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    let body: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body not JSON ({e}): {raw}"));
    assert_eq!(body["error"]["code"], format!("{status}-01"), "{raw}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    status
}

#[tokio::test]
async fn slow_headers_get_408_and_the_socket_is_closed() {
    let app = spawn_strict().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    // One byte a second, the way the fault-injection pass sent them.
    let trickle = tokio::spawn(async move {
        for _ in 0..30 {
            if write.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    });
    let started = Instant::now();
    let mut all = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut all)).await;
    trickle.abort();
    assert!(closed.is_ok(), "still open after 5 s");
    let raw = String::from_utf8_lossy(&all);
    assert_eq!(envelope_status(&raw), 408, "{raw}");
    eprintln!("slow head closed after {:?} (limit 1 s)", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let app = spawn_strict().await;
    let mut stream = connect(&app).await;
    let head = "POST /v1/transfers HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n\
                Content-Length: 1000000000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (raw, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(envelope_status(&raw), 413, "{raw}");
    eprintln!("declared length refused after {:?}", started.elapsed());
    assert!(closed, "the connection stays open after the refusal");
    // Refused at once, not after the body timeout.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let app = spawn_strict().await;
    let mut stream = connect(&app).await;
    let head = "POST /v1/transfers HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{\"callTrans";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (raw, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(envelope_status(&raw), 408, "{raw}");
    eprintln!(
        "missing body answered after {:?} (limit 1 s)",
        started.elapsed()
    );
    assert!(closed, "the connection stays open after the refusal");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_strict().await;
    let mut stream = connect(&app).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n";
    stream.write_all(request).await.unwrap();
    let mut first = [0u8; 1024];
    let n = stream.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // Still open for the next request within the idle timeout...
    stream.write_all(request).await.unwrap();
    let n = stream.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // ...and closed once idle for longer.
    let started = Instant::now();
    let (rest, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "idle connection still open after 5 s");
    assert!(rest.is_empty(), "{rest}");
    let idle = started.elapsed();
    eprintln!("idle connection closed after {idle:?} (limit 1 s)");
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(3),
        "{idle:?}"
    );
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_the_cap_frees_up() {
    let app = spawn_strict().await;
    let mut held = Vec::new();
    for _ in 0..app.config.http.max_connections {
        held.push(connect(&app).await);
    }
    // Let the server accept them all before the next one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut excess = connect(&app).await;
    let (raw, closed) = read_until_closed(&mut excess, Duration::from_secs(3)).await;
    assert_eq!(envelope_status(&raw), 503, "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{raw}"
    );
    assert!(closed);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "a freed slot is usable again");
}

#[tokio::test]
async fn heads_hyper_would_refuse_get_the_envelope() {
    let app = spawn_strict().await;
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            format!("GET /healthz HTTP/1.1\r\nHost: b\r\n{many}\r\n").into_bytes(),
            431,
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: b\r\nX-Bad: a\x7fb\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: b\r\nBad Name: v\r\n\r\n".to_vec(),
            400,
        ),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
    ];
    for (request, expected) in cases {
        let mut stream = connect(&app).await;
        stream.write_all(&request).await.unwrap();
        let (raw, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
        assert_eq!(envelope_status(&raw), expected, "{raw}");
        assert!(closed);
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
}
