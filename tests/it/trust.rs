//! Without a signal, no transfer goes unpolled past `polling.max_interval`;
//! signal trust is learned per integration (bearer token), and a
//! registration may decide for itself.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use transfer_bridge::config::{Config, PolicyKind, TrustSignals};

use crate::helpers::*;

/// Milliseconds between the simulator's successive GETs of `id`.
fn gaps(app: &TestApp, id: &str) -> Vec<i64> {
    let at: Vec<i64> = app
        .sim
        .counters()
        .recent
        .iter()
        .filter(|r| r.id == id && r.method == "GET")
        .map(|r| r.at_ms)
        .collect();
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

/// ACTIVE for an hour, with a number that expires in a day.
fn far_expiry() -> Value {
    json!({"timeline": [{"status": "ACTIVE", "forMs": 3_600_000}, {"status": "EXPIRED"}],
        "expiresInMs": 86_400_000})
}

#[tokio::test]
async fn with_the_default_policy_a_far_expiry_is_polled_within_30_s() {
    let app = spawn_app_with(|c| {
        c.polling = Config::from_figment(Config::embedded()).unwrap().polling;
    })
    .await;
    assert_eq!(app.config.polling.max_interval, Duration::from_secs(30));
    let id = unique("far");
    app.script(&id, far_expiry());
    app.register_id(&id).await;
    let started = Instant::now();
    while app.sim.gets(&id) < 2 && started.elapsed() < Duration::from_secs(33) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gaps = gaps(&app, &id);
    assert!(!gaps.is_empty(), "no second GET within 33 s");
    assert!(gaps.iter().all(|&g| g <= 30_200), "{gaps:?}");
}

#[tokio::test]
async fn fresh_ongoing_and_far_expiry_transfers_respect_max_interval() {
    let app = spawn_app_with(|c| {
        c.polling = Config::from_figment(Config::embedded()).unwrap().polling;
        c.polling.max_interval = Duration::from_secs(1);
        c.polling.target_lag = Duration::from_millis(500);
    })
    .await;
    let (active, ongoing) = (unique("active"), unique("ongoing"));
    app.script(&active, far_expiry());
    let conversation = json!({"timeline": [{"status": "ACTIVE", "forMs": 100},
        {"status": "ONGOING", "forMs": 3_600_000}, {"status": "COMPLETED"}], "expiresInMs": 86_400_000});
    app.script(&ongoing, conversation);
    app.register_id(&active).await;
    app.register_id(&ongoing).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    for id in [&active, &ongoing] {
        let gaps = gaps(&app, id);
        assert!(gaps.len() >= 3, "{id}: {gaps:?}");
        assert!(gaps.iter().all(|&g| g <= 1_150), "{id}: {gaps:?}");
    }
}

/// A quick conversation: ONGOING for 300 ms, then an AGENT outcome.
fn quick() -> Value {
    completes_with(json!({"transferType": "AGENT", "currentTaskName": "t"}))
}

/// The metric label of a token: `tok-` and 8 hex digits of its SHA-256.
fn fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("tok-{hex}")
}

async fn register_as(app: &TestApp, token: &str, body: Value) {
    let r = app
        .http
        .post(format!("{}/v1/transfers", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn trust_is_per_token_and_a_silent_token_is_still_polled() {
    let app = spawn_app_with(|c| {
        c.http.api_tokens = vec![
            "pbx-loud".to_string().into(),
            "pbx-quiet".to_string().into(),
        ];
        c.polling.ongoing_interval = Duration::from_secs(2);
        c.polling.active_interval = Duration::from_secs(2);
        c.polling.max_interval = Duration::from_secs(2);
        c.polling.target_lag = Duration::from_secs(1);
    })
    .await;
    let _agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    // The loud PBX signals each of 20 calls as it comes back.
    let loud: Vec<String> = (0..20).map(|_| unique("loud")).collect();
    for id in &loud {
        app.script(id, quick());
        register_as(&app, "pbx-loud", json!({"callTransferId": id})).await;
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    for id in &loud {
        let url = format!("{}/v1/transfers/{id}/returned?wait=5s", app.base);
        let r = app
            .http
            .post(url)
            .bearer_auth("pbx-loud")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let label = format!(
        "bridge_signal_share{{integration=\"{}\"}}",
        fingerprint("pbx-loud")
    );
    let share = metrics
        .lines()
        .find(|l| l.starts_with(&label))
        .unwrap_or_else(|| panic!("no {label}: {metrics}"));
    assert!(share.ends_with(" 1"), "{share}");
    assert!(
        !metrics.contains("pbx-loud"),
        "the token itself never shows"
    );

    // Registered together: the loud token's call is left to its signal,
    // the quiet one's is polled within the bound and found without one.
    let (trusted, silent) = (unique("trusted"), unique("silent"));
    app.script(&trusted, quick());
    app.script(&silent, quick());
    register_as(&app, "pbx-loud", json!({"callTransferId": trusted})).await;
    register_as(&app, "pbx-quiet", json!({"callTransferId": silent})).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(app.sim.gets(&trusted), 0, "trusted: the signal will tell");
    assert!(app.sim.gets(&silent) >= 2);
    let view = app
        .http
        .get(format!("{}/v1/transfers/{silent}", app.base))
        .bearer_auth("pbx-quiet")
        .send()
        .await
        .unwrap();
    assert_eq!(view.json::<Value>().await.unwrap()["state"], "COMPLETED");
}

#[tokio::test]
async fn a_registration_decides_whether_its_return_is_signalled() {
    let app = spawn_app_with(|c| {
        c.polling.trust_signals = TrustSignals::Never;
    })
    .await;
    let (promised, silent) = (unique("promised"), unique("silent"));
    app.script(&promised, quick());
    app.script(&silent, quick());
    let r = app
        .register(json!({"callTransferId": promised, "returnSignal": true}))
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .register(json!({"callTransferId": silent, "returnSignal": false}))
        .await;
    assert_eq!(r.status(), 201);
    // A repeat with the same body is still an identical repeat.
    let again = app
        .register(json!({"callTransferId": promised, "returnSignal": true}))
        .await;
    assert_eq!(again.status(), 200);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.sim.gets(&promised), 0);
    assert_eq!(app.view(&silent).await["state"], "COMPLETED");
    // Its signal then finds it at once.
    let url = format!("{}/v1/transfers/{promised}/sip?wait=5s", app.base);
    let r = app.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 404, "AGENT: no instruction");
    assert_eq!(app.sim.gets(&promised), 1);
}

/// A PBX looping on `/returned` for a call the upstream still shows
/// ONGOING, with the default polling settings: the first signal gets its
/// GET at once, then the quick re-polls of a lagging upstream go on as for
/// one signal; the other 40 signals of those 2 s add none.
#[tokio::test]
async fn a_pbx_looping_on_returned_costs_a_few_gets_not_one_per_signal() {
    let app = spawn_app_with(|c| {
        c.polling = Config::from_figment(Config::embedded()).unwrap().polling;
    })
    .await;
    let id = unique("looper");
    app.script(&id, json!({"timeline": [{"status": "ONGOING"}]}));
    app.register_id(&id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = app.sim.gets(&id);
    let url = format!("{}/v1/transfers/{id}/returned", app.base);
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(app.http.post(&url).send().await.unwrap()), 202);
    let first = Instant::now();
    while app.sim.gets(&id) == before {
        assert!(
            first.elapsed() < Duration::from_millis(500),
            "no GET at once"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(status(app.http.post(&url).send().await.unwrap()), 202);
    }
    // At once, then 250 ms, 500 ms, 1 s and 2 s after the first signal.
    let spent = app.sim.gets(&id) - before;
    assert!((2..=6).contains(&spent), "{spent} GETs for 41 signals");
    assert_eq!(app.view(&id).await["state"], "TRACKING");
}

/// Routine polls every `every`, whatever the status.
fn fixed_every(c: &mut Config, every: Duration) {
    c.polling.policy = PolicyKind::Fixed;
    c.polling.active_interval = every;
    c.polling.ongoing_interval = every;
}

/// The day's routine share is spent (one GET), so routine polls wait for
/// midnight. The first signal's GETs still see ONGOING; the upstream
/// completes; a second signal comes inside the gap that spaces pulls (3 s),
/// while the transfer's routine poll is overdue. That poll must move into
/// the signal lane, not wait in the routine lane for the budget.
#[tokio::test]
async fn a_repeated_signal_does_not_wait_behind_a_spent_routine_budget() {
    let app = spawn_app_with(|c| {
        c.upstream.daily_budget = 20;
        c.upstream.signal_reserve = 19;
        fixed_every(c, Duration::from_millis(200));
        c.polling.trust_signals = TrustSignals::Never;
        c.polling.returned_interval = Duration::from_secs(3);
        c.polling.returned_window = Duration::from_millis(400);
    })
    .await;
    let id = unique("again");
    app.script(
        &id,
        json!({"timeline": [{"status": "ONGOING", "forMs": 1000}, {"status": "COMPLETED"}],
            "outputContext": {"transferType": "SYSTEM"}}),
    );
    app.register_id(&id).await;
    let url = format!("{}/v1/transfers/{id}/returned", app.base);
    assert_eq!(app.http.post(&url).send().await.unwrap().status(), 202);
    // Its quick re-polls (every 200 ms for 400 ms) are over before the
    // upstream completes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.view(&id).await["state"], "TRACKING", "no routine poll");
    assert_eq!(app.http.post(&url).send().await.unwrap().status(), 202);
    let signalled = Instant::now();
    assert_eq!(app.settled(&id).await["state"], "COMPLETED");
    let waited = signalled.elapsed();
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
}

/// `n` transfers ONGOING for good, whose return the PBX promises to signal.
async fn promised(app: &TestApp, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|_| unique("storm")).collect();
    for id in &ids {
        app.script(id, json!({"timeline": [{"status": "ONGOING"}]}));
        let body = json!({"callTransferId": id, "returnSignal": true});
        assert_eq!(app.register(body).await.status(), 201);
    }
    ids
}

/// A storm of returned-call signals over the spike limit (2/s). Routine
/// requests yield to every waiting signal, so a caller whose transfer's
/// routine GET was waiting when they came back must take their place in the
/// storm: their GET goes before those of the signals that came after
/// theirs, not after the storm.
#[tokio::test]
async fn a_routine_get_waiting_out_a_storm_of_signals_is_raised_by_its_own() {
    let app = spawn_app_with(|c| {
        c.upstream.rate_limit_per_s = 2;
        c.upstream.daily_budget = 1_000_000;
        fixed_every(c, Duration::from_millis(300));
    })
    .await;
    let (before, after) = (promised(&app, 4).await, promised(&app, 4).await);
    let caller = unique("caller");
    app.script(
        &caller,
        json!({"timeline": [{"status": "ONGOING", "forMs": 1000}, {"status": "COMPLETED"}],
            "outputContext": {"transferType": "SYSTEM"}}),
    );
    let body = json!({"callTransferId": caller, "returnSignal": false});
    assert_eq!(app.register(body).await.status(), 201);
    let returned = |id: &str| format!("{}/v1/transfers/{id}/returned", app.base);
    for id in &before {
        assert_eq!(
            app.http.post(returned(id)).send().await.unwrap().status(),
            202
        );
    }
    // The caller's routine GET is waiting behind them when the call is back.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let url = returned(&caller);
    assert_eq!(app.http.post(&url).send().await.unwrap().status(), 202);
    let signal = Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for id in &after {
        assert_eq!(
            app.http.post(returned(id)).send().await.unwrap().status(),
            202
        );
    }
    while app.view(&caller).await["state"] == "TRACKING" {
        let waited = signal.elapsed();
        assert!(
            waited < Duration::from_secs(10),
            "still TRACKING after {waited:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gets = app.sim.counters().recent;
    let times = |id: &String| {
        let gets = gets.iter().filter(|r| r.id == *id && r.method == "GET");
        gets.map(|r| r.at_ms).collect::<Vec<i64>>()
    };
    let answered = *times(&caller).iter().max().unwrap();
    let later = after.iter().filter_map(|id| times(id).into_iter().min());
    // None yet: the caller went first.
    let first_later = later.min().unwrap_or(i64::MAX);
    assert!(
        answered < first_later,
        "the caller's GET at {answered}, the first of later signals at {first_later}"
    );
}
