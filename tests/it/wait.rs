//! `?wait=`: the call comes back and the dialplan's one pull gets the answer.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// Routine polls so rare that only the pull's signal can find a completion.
fn rare_routine_polls(c: &mut transfer_bridge::config::Config) {
    c.polling.active_interval = Duration::from_secs(20);
    c.polling.ongoing_interval = Duration::from_secs(20);
}

fn message(error: &Value) -> &str {
    error["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_pull_after_the_call_came_back_gets_the_refer_in_one_request() {
    let app = spawn_app_with(rare_routine_polls).await;
    let id = unique("pull");
    app.script(&id, refer_after(600));
    app.register_id(&id).await;
    // The upstream says COMPLETED now; the bridge has not polled since.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let asked = Instant::now();
    let r = app.get(&format!("/v1/transfers/{id}/sip?wait=10s")).await;
    let took = asked.elapsed();
    assert_eq!(r.status(), 200);
    let sip: Value = r.json().await.unwrap();
    assert_eq!(sip["method"], "REFER");
    assert!(
        sip["target"]
            .as_str()
            .unwrap()
            .starts_with("sip:ivr@pbx.example.com?")
    );
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    // The pull was the signal: one GET found it, not the 20 s routine poll.
    assert_eq!(app.sim.gets(&id), 2, "the first look, then the pull's poll");
}

#[tokio::test]
async fn a_held_pull_is_answered_by_the_completion() {
    let app = spawn_app_with(rare_routine_polls).await;
    let id = unique("held");
    app.script(&id, refer_after(1200));
    app.register_id(&id).await;
    let asked = Instant::now();
    let raw = app
        .http
        .get(format!("{}/v1/transfers/{id}/sip?wait=10s", app.base))
        .header("accept", "message/sip")
        .send()
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["content-type"], "message/sip");
    assert!(raw.text().await.unwrap().starts_with("REFER sip:"));
    // Held through ONGOING (about 1.25 s), answered by the re-poll after it.
    assert!(took > Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn a_held_pull_that_runs_out_says_still_tracking() {
    let app = spawn_app_with(rare_routine_polls).await;
    let id = unique("timeout");
    app.script(&id, refer_after(60_000));
    app.register_id(&id).await;
    let asked = Instant::now();
    let r = app.get(&format!("/v1/transfers/{id}/sip?wait=700ms")).await;
    let took = asked.elapsed();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["retry-after"], "1");
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["code"], "202-01");
    assert!(message(&error).contains("TRACKING"), "{error}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "{took:?}"
    );

    let view = app.get(&format!("/v1/transfers/{id}?wait=300ms")).await;
    assert_eq!(view.status(), 200);
    assert_eq!(view.headers()["retry-after"], "1");
    assert_eq!(view.json::<Value>().await.unwrap()["state"], "TRACKING");
    let returned = app
        .post(&format!("/v1/transfers/{id}/returned?wait=0.3"))
        .await;
    assert_eq!(returned.status(), 202);
    assert_eq!(returned.headers()["retry-after"], "1");
}

#[tokio::test]
async fn an_outcome_without_instruction_answers_at_once_naming_the_final_state() {
    let app = spawn_app_with(rare_routine_polls).await;
    let _agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let id = unique("agent");
    app.script(
        &id,
        completes_with(json!({"transferType": "AGENT", "currentTaskName": "billing"})),
    );
    app.register_id(&id).await;
    let asked = Instant::now();
    let r = app.get(&format!("/v1/transfers/{id}/sip?wait=10s")).await;
    assert_eq!(r.status(), 404);
    assert!(asked.elapsed() < Duration::from_secs(3));
    let error: Value = r.json().await.unwrap();
    let text = message(&error);
    assert!(
        text.contains("no SIP instruction") && text.contains("COMPLETED"),
        "{text}"
    );
    assert!(text.contains("AGENT"), "{text}");
    // Now terminal: answered at once, however long the wait.
    let asked = Instant::now();
    let again = app.get(&format!("/v1/transfers/{id}/sip?wait=30s")).await;
    assert_eq!(again.status(), 404);
    assert!(asked.elapsed() < Duration::from_millis(500));

    let expired = unique("expired");
    app.script(&expired, json!({"timeline": [{"status": "EXPIRED"}]}));
    app.register_id(&expired).await;
    let r = app
        .get(&format!("/v1/transfers/{expired}/sip?wait=10s"))
        .await;
    assert_eq!(r.status(), 404);
    let error: Value = r.json().await.unwrap();
    assert!(message(&error).contains("EXPIRED"), "{error}");
}

#[tokio::test]
async fn the_view_and_returned_answer_when_the_transfer_leaves_tracking() {
    let app = spawn_app_with(rare_routine_polls).await;
    let id = unique("view");
    app.script(&id, refer_after(800));
    app.register_id(&id).await;
    let returned = app
        .post(&format!("/v1/transfers/{id}/returned?wait=10s"))
        .await;
    assert_eq!(returned.status(), 200);
    assert!(returned.headers().get("retry-after").is_none());
    assert_eq!(
        returned.json::<Value>().await.unwrap()["state"],
        "COMPLETED"
    );
    let view = app.get(&format!("/v1/transfers/{id}?wait=5")).await;
    assert_eq!(view.json::<Value>().await.unwrap()["state"], "COMPLETED");
}

#[tokio::test]
async fn a_cancel_wakes_held_requests_and_the_cap_is_enforced() {
    let app = spawn_app_with(|c| {
        rare_routine_polls(c);
        c.http.max_waiters = 2;
    })
    .await;
    let id = unique("cap");
    app.script(&id, refer_after(60_000));
    app.register_id(&id).await;
    let pull = |app: &TestApp| {
        let url = format!("{}/v1/transfers/{id}/sip?wait=20s", app.base);
        let request = app.http.get(url);
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    let held = [pull(&app), pull(&app)];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over = app.get(&format!("/v1/transfers/{id}?wait=20s")).await;
    assert_eq!(over.status(), 503);
    assert_eq!(over.headers()["retry-after"], "1");
    let error: Value = over.json().await.unwrap();
    assert!(message(&error).contains("max_waiters"), "{error}");
    let cancelled = Instant::now();
    let delete = app.http.delete(format!("{}/v1/transfers/{id}", app.base));
    assert_eq!(delete.send().await.unwrap().status(), 200);
    for request in held {
        let r = request.await.unwrap();
        assert_eq!(r.status(), 404);
        assert!(message(&r.json().await.unwrap()).contains("CANCELLED"));
    }
    assert!(cancelled.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn held_requests_are_answered_at_shutdown() {
    let mut app = spawn_app_with(rare_routine_polls).await;
    let id = unique("shutdown");
    app.script(&id, refer_after(60_000));
    app.register_id(&id).await;
    let held: Vec<_> = (0..3)
        .map(|_| {
            let request = app
                .http
                .get(format!("{}/v1/transfers/{id}/sip?wait=30s", app.base));
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    app.begin_stop();
    for request in held {
        let r = request.await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
    }
    assert!(
        stopping.elapsed() < Duration::from_millis(500),
        "{:?}",
        stopping.elapsed()
    );
    app.stop().await;
    assert!(stopping.elapsed() < app.config.shutdown.deadline);
}

#[tokio::test]
async fn bad_waits_are_refused_in_the_envelope() {
    let app = spawn_app().await;
    let id = unique("bad");
    app.script(&id, refer_after(60_000));
    app.register_id(&id).await;
    for bad in [
        "-5",
        "abc",
        "5parsecs",
        "1e309",
        "99999999999999999999",
        "-1s",
        "",
    ] {
        for path in [
            format!("/v1/transfers/{id}"),
            format!("/v1/transfers/{id}/sip"),
        ] {
            let r = app.get(&format!("{path}?wait={bad}")).await;
            assert_eq!(r.status(), 422, "{path}?wait={bad}");
            let error: Value = r.json().await.unwrap();
            assert!(message(&error).starts_with("wait: "), "{error}");
        }
    }
}
