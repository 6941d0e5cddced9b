//! Hostile input at every endpoint: always a 4xx in the envelope, and the
//! process keeps serving.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/v1/transfers"),
    ("GET", "/v1/transfers"),
    ("GET", "/v1/transfers/{id}"),
    ("DELETE", "/v1/transfers/{id}"),
    ("POST", "/v1/transfers/{id}/returned"),
    ("POST", "/v1/transfers/{id}/redeliver"),
    ("GET", "/v1/transfers/{id}/sip"),
    ("POST", "/v1/sip/returns"),
];

async fn assert_4xx(app: &TestApp, response: reqwest::Response, what: &str) {
    let status = response.status();
    assert!(status.is_client_error(), "{what}: got {status}");
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let error = &body["error"];
    assert_eq!(
        error["code"],
        format!("{}-01", status.as_u16()),
        "{what}: {body}"
    );
    assert!(
        error["requestId"].as_str().is_some_and(|r| !r.is_empty()),
        "{what}"
    );
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "still serving after {what}");
}

fn bad_ids() -> Vec<String> {
    vec![
        "%20".into(),
        "x".repeat(10_000),
        "a%0d%0aX-Evil:%201".into(),
        "a%00b".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
        "a%2Fb".into(),
        "%FF%FE".into(),
        "caf%C3%A9".into(),
    ]
}

#[tokio::test]
async fn bad_ids_everywhere() {
    let app = spawn_app().await;
    for (method, path) in ENDPOINTS.iter().filter(|(_, p)| p.contains("{id}")) {
        for id in bad_ids() {
            let url = format!("{}{}", app.base, path.replace("{id}", &id));
            let response = app
                .http
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .send()
                .await
                .unwrap();
            assert_4xx(&app, response, &format!("{method} {path} id={:.40}", id)).await;
        }
    }
}

#[tokio::test]
async fn malformed_bodies_and_content_types() {
    let app = spawn_app().await;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{".to_vec()),
        ("application/json", b"[]".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", br#"{"callTransferId": ["x"]}"#.to_vec()),
        (
            "application/json",
            br#"{"callTransferId": "ok", "metadata": {"k": 5}}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"callTransferId": "ok", "unknown": 1}"#.to_vec(),
        ),
        ("application/json", vec![0xff, 0xfe, 0x00]),
        (
            "application/json",
            format!("{{\"callTransferId\": \"{}\"}}", "a".repeat(200_000)).into_bytes(),
        ),
        ("text/xml", b"<x/>".to_vec()),
        ("", b"{}".to_vec()),
    ];
    for (method, path) in ENDPOINTS.iter().filter(|(m, _)| *m == "POST") {
        let url = format!("{}{}", app.base, path.replace("{id}", "no-such-transfer"));
        for (ctype, body) in &bodies {
            let mut request = app.http.post(&url).body(body.clone());
            if !ctype.is_empty() {
                request = request.header("content-type", *ctype);
            }
            let response = request.send().await.unwrap();
            assert_4xx(
                &app,
                response,
                &format!(
                    "{method} {path} {ctype} {:.30}",
                    String::from_utf8_lossy(body)
                ),
            )
            .await;
        }
    }
    for query in [
        "state=../../",
        "limit=-1",
        "limit=abc",
        "cursor=%00",
        "cursor=-5",
        "nope=1",
        "limit=99999999999999999999",
    ] {
        let response = app.get(&format!("/v1/transfers?{query}")).await;
        assert_4xx(&app, response, query).await;
    }
}

#[tokio::test]
async fn bad_or_missing_auth_everywhere() {
    let app = spawn_app_with(|c| c.http.api_tokens = vec!["right-token".to_string().into()]).await;
    for (method, path) in ENDPOINTS {
        let url = format!("{}{}", app.base, path.replace("{id}", "some-id"));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic cmlnaHQtdG9rZW4="),
            Some("Bearer "),
            Some("bearer right-token-but-longer"),
            Some("Bearerright-token"),
        ] {
            let mut request = app.http.request(method.clone(), &url);
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} {auth:?}");
            assert_4xx(&app, response, &format!("{method} {path} {auth:?}")).await;
        }
    }
    // The scheme's case does not matter (RFC 9110 §11.1); the token's does.
    for auth in ["bearer right-token", "BEARER right-token"] {
        let url = format!("{}/v1/transfers", app.base);
        let response = app.http.get(&url).header("authorization", auth);
        assert_eq!(response.send().await.unwrap().status(), 200, "{auth}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let app = spawn_app().await;
    for (method, path) in [
        ("GET", "/v2/transfers"),
        ("PUT", "/v1/transfers"),
        ("PATCH", "/v1/transfers/x"),
        ("GET", "/v1/sip/returns"),
        ("TRACE", "/healthz"),
    ] {
        let response = app
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{}", app.base, path),
            )
            .send()
            .await
            .unwrap();
        assert_4xx(&app, response, &format!("{method} {path}")).await;
    }
}
