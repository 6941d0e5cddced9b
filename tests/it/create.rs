//! `POST /v1/transfers` with `create`: an IVR waits on its answer with a
//! caller on the line, so the create is retried as the vendor advises, and
//! the caller hears "later" (503 with `Retry-After`) instead of waiting for
//! the upstream's pause or the budget's reset.

use std::time::Duration;

use serde_json::{Value, json};
use transfer_bridge::simulator::Fault;

use crate::helpers::*;

/// Longer than the create window (`upstream.timeout`, 10 s by default) and
/// its last attempt, yet far shorter than any pause the tests provoke.
const ANSWERED_WITHIN: Duration = Duration::from_secs(25);

fn create_body(id: &str) -> Value {
    json!({"create": {"id": id, "externalConversationId": "conv", "type": "PHONE_NUMBER",
        "phoneNumber": {"country": "US"}}})
}

fn on_create(fault: Fault) -> Fault {
    Fault {
        endpoint: Some("create".into()),
        ..fault
    }
}

async fn register_in_time(app: &TestApp, id: &str) -> reqwest::Response {
    tokio::time::timeout(ANSWERED_WITHIN, app.register(create_body(id)))
        .await
        .expect("a create is answered within its window, not held")
}

/// The envelope of a 503 and its `Retry-After` in seconds.
async fn later(response: reqwest::Response) -> (u64, String) {
    assert_eq!(response.status(), 503);
    let after = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "503-01", "{body}");
    (after, body["error"]["message"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_create_is_retried_through_passing_server_errors() {
    let app = spawn_app().await;
    app.sim.inject(on_create(Fault::status(503).times(2)));
    let response = register_in_time(&app, &unique("retried")).await;
    assert_eq!(response.status(), 201);
    let view: Value = response.json().await.unwrap();
    assert!(
        view["upstream"]["phoneNumber"]["transferNumber"].is_string(),
        "{view}"
    );
    assert_eq!(app.sim.counters().by_status.get(&503), Some(&2));
}

/// A 429 whose pause outlasts the window: one attempt, then 503 at once with
/// the upstream's own `Retry-After`.
#[tokio::test]
async fn a_rate_limited_create_answers_503_with_the_pause() {
    let app = spawn_app().await;
    app.sim.inject(on_create(Fault {
        retry_after: Some("120".into()),
        ..Fault::status(429)
    }));
    let (after, message) = later(register_in_time(&app, &unique("limited")).await).await;
    assert!((100..=120).contains(&after), "Retry-After: {after}");
    assert!(message.contains("budget is paused"), "{message}");
    assert_eq!(app.sim.counters().by_status.get(&429), Some(&1));
}

/// A 429 with a short pause: the create waits it out and succeeds.
#[tokio::test]
async fn a_create_waits_out_a_short_pause() {
    let app = spawn_app().await;
    app.sim.inject(on_create(Fault {
        retry_after: Some("1".into()),
        ..Fault::status(429).times(1)
    }));
    assert_eq!(
        register_in_time(&app, &unique("paused")).await.status(),
        201
    );
    assert_eq!(app.sim.counters().by_status.get(&429), Some(&1));
}

/// The day's budget spent: 503 at once, `Retry-After` no later than the
/// reset at 00:00 UTC, and no request beyond the budget.
#[tokio::test]
async fn a_create_past_the_daily_budget_answers_503_at_once() {
    let app = spawn_app_with(|c| {
        c.upstream.daily_budget = 2;
        c.upstream.signal_reserve = 1;
        c.upstream.budget_batch = 1;
    })
    .await;
    let mut answers = Vec::new();
    for n in 0..3 {
        let response = register_in_time(&app, &unique(&format!("spent{n}"))).await;
        answers.push(response.status().as_u16());
        if response.status() == 503 {
            let (after, message) = later(response).await;
            let (h, m, s) = time::OffsetDateTime::now_utc().time().as_hms();
            let to_midnight = 86_400 - (u64::from(h) * 3600 + u64::from(m) * 60 + u64::from(s));
            assert!(
                after <= to_midnight + 1,
                "Retry-After {after}, {to_midnight} s to 00:00 UTC"
            );
            assert!(message.contains("budget"), "{message}");
            break;
        }
    }
    assert_eq!(answers.last(), Some(&503), "{answers:?}");
    let counters = app.sim.counters();
    assert!(counters.creates + counters.gets <= 2, "{counters:?}");
}
