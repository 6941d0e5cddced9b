//! The README's Kamailio recipes, run unmodified by a real Kamailio against
//! a real bridge: the returning INVITE is redirected by the instruction, a
//! REFER is relayed to `POST /v1/sip/returns`, and every failure of the
//! bridge ends in the recipe's fallback within its timeout.

use std::time::{Duration, Instant};

use rsip::{Header, Method};
use serde_json::json;

use crate::helpers::*;
use crate::pbx::{Kamailio, SipClient, check, header_value, quoted};

const REDIRECT: &str = "return-by-redirect.cfg";
const RELAY: &str = "refer-relay.cfg";
const FALLBACK: &str = "sip:agents@fallback.example.com";

/// The redirect recipe pointed at `bridge`, with the test's fallback.
async fn redirector(bridge: &str, extra: &[(&str, String)]) -> Kamailio {
    let mut defines = vec![
        ("BRIDGE_URL", quoted(bridge)),
        ("FALLBACK_URI", quoted(FALLBACK)),
    ];
    defines.extend(extra.iter().cloned());
    Kamailio::start(REDIRECT, &defines).await
}

/// The agent side's INVITE for a returning call.
async fn invite(kamailio: &Kamailio, id: &str, wait: Duration) -> (rsip::Response, Duration) {
    let client = SipClient::new(kamailio.addr).await;
    let header = Header::Other("X-ASAPP-CallTransferId".into(), id.into());
    let request = client.request(Method::Invite, "sip:return@127.0.0.1", vec![header]);
    let sent = Instant::now();
    let response = client.send(&request, wait).await;
    (response, sent.elapsed())
}

/// Asserts a 302 whose Contact is exactly `<uri>`.
fn assert_redirect(response: &rsip::Response, uri: &str, kamailio: &Kamailio) {
    assert_eq!(
        response.status_code.code(),
        302,
        "{response}\n{}",
        kamailio.log()
    );
    let contact = header_value(response, "contact").expect("a Contact header");
    assert_eq!(contact, format!("<{uri}>"), "{}", kamailio.log());
}

#[test]
fn kamailio_accepts_both_recipes_as_shipped() {
    for name in [REDIRECT, RELAY] {
        let checked = check(name, &[("BRIDGE_URL", quoted("http://10.0.0.1:8080"))]);
        let log = String::from_utf8_lossy(&checked.stderr);
        assert!(checked.status.success(), "kamailio -c {name}: {log}");
    }
}

#[tokio::test]
async fn kamailio_redirects_an_invite_after_completion_to_the_target() {
    let app = spawn_app().await;
    let id = unique("kam-after");
    app.script(&id, refer_after(100));
    app.register_id(&id).await;
    app.settled(&id).await;
    let sip = app.json(&format!("/v1/transfers/{id}/sip")).await;
    let target = sip["target"].as_str().unwrap().to_string();
    assert!(target.contains("?X-GA-"), "{target}");

    let kamailio = redirector(&app.base, &[]).await;
    let (response, took) = invite(&kamailio, &id, Duration::from_secs(5)).await;
    assert_redirect(&response, &target, &kamailio);
    assert!(took < Duration::from_secs(1), "302 after {took:?}");
    eprintln!("INVITE after COMPLETED: 302 in {took:?}");
}

#[tokio::test]
async fn kamailio_holds_an_invite_that_comes_before_the_completion() {
    let app = spawn_app().await;
    let kamailio = redirector(&app.base, &[]).await;
    let id = unique("kam-before");
    app.script(&id, refer_after(750));
    let registered = Instant::now();
    app.register_id(&id).await;
    // The agent hands back as it tells the upstream: the INVITE is here
    // before the upstream says COMPLETED (simulator clock: 800 ms after
    // registration at the latest).
    let completed_at = registered + Duration::from_millis(800);

    let (response, _) = invite(&kamailio, &id, Duration::from_secs(15)).await;
    let answered = Instant::now();
    let sip = app.json(&format!("/v1/transfers/{id}/sip")).await;
    assert_redirect(&response, sip["target"].as_str().unwrap(), &kamailio);
    assert!(
        answered > completed_at,
        "answered before the upstream completed"
    );
    let after = answered - completed_at;
    assert!(
        after < Duration::from_secs(1),
        "302 {after:?} after COMPLETED"
    );
    eprintln!("INVITE held; 302 {after:?} after the upstream's COMPLETED");
}

#[tokio::test]
async fn kamailio_sends_an_agent_outcome_to_the_fallback() {
    let app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let id = unique("kam-agent");
    app.script(
        &id,
        completes_with(json!({"transferType": "AGENT", "currentTaskName": "billing"})),
    );
    app.register_id(&id).await;
    let kamailio = redirector(&app.base, &[]).await;

    let (response, _) = invite(&kamailio, &id, Duration::from_secs(15)).await;
    assert_redirect(&response, FALLBACK, &kamailio);
    // The human queue hears about it from the bridge, not from Kamailio.
    assert_eq!(body(&agent.next().await)["callTransferId"], id.as_str());
}

#[tokio::test]
async fn kamailio_falls_back_at_once_when_the_bridge_is_stopped() {
    let mut app = spawn_app().await;
    let kamailio = redirector(&app.base, &[("HTTP_TIMEOUT", "3".into())]).await;
    app.stop().await;

    let (response, took) = invite(&kamailio, &unique("kam-down"), Duration::from_secs(5)).await;
    assert_redirect(&response, FALLBACK, &kamailio);
    assert!(took < Duration::from_secs(3), "fallback after {took:?}");
    eprintln!("bridge stopped: fallback 302 in {took:?}");
}

#[tokio::test]
async fn kamailio_falls_back_within_the_timeout_when_the_bridge_hangs() {
    // Accepts connections and never answers: a bridge stuck behind a
    // load balancer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let defines = [("HTTP_TIMEOUT", "2".into()), ("PULL_WAIT", quoted("1s"))];
    let kamailio = redirector(&base, &defines).await;

    let (response, took) = invite(&kamailio, &unique("kam-hang"), Duration::from_secs(8)).await;
    assert_redirect(&response, FALLBACK, &kamailio);
    // One pull per try, each cut at HTTP_TIMEOUT: no 202 came, so one try.
    assert!(took >= Duration::from_secs(2), "fallback after {took:?}");
    assert!(
        took < Duration::from_millis(3500),
        "fallback after {took:?}"
    );
    eprintln!("bridge hanging: fallback 302 in {took:?}");
    hold.abort();
}

/// A headers-only REFER: the variables ride in the Refer-To's URI headers.
fn refer(client: &SipClient, conversation: &str) -> rsip::Request {
    let refer_to = format!(
        "<sip:queue@acd.example.com?X-GA-extConId={conversation}&X-GA-transfer=AGENT\
         &X-GA-taskName=billing&X-GA-tv-reason=late%20fee&X-GA-rv-caseId=C-9>"
    );
    let header = Header::Other("Refer-To".into(), refer_to);
    client.request(Method::Refer, "sip:pbx@127.0.0.1", vec![header])
}

#[tokio::test]
async fn kamailio_relays_a_refer_to_the_bridge_once() {
    let app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let kamailio = Kamailio::start(RELAY, &[("BRIDGE_URL", quoted(&app.base))]).await;
    let client = SipClient::new(kamailio.addr).await;
    let conversation = unique("conv");

    let accepted = client
        .send(&refer(&client, &conversation), Duration::from_secs(5))
        .await;
    assert_eq!(
        accepted.status_code.code(),
        202,
        "{accepted}\n{}",
        kamailio.log()
    );
    let event = body(&agent.next().await);
    assert_eq!(event["externalConversationId"], conversation.as_str());
    assert_eq!(event["transferType"], "AGENT");
    assert_eq!(event["currentTaskName"], "billing");
    assert_eq!(event["transferVariables"], json!({"reason": "late fee"}));
    assert_eq!(event["referenceVariables"], json!({"caseId": "C-9"}));

    // The sender repeats it (a new transaction): accepted again, routed once.
    let again = client
        .send(&refer(&client, &conversation), Duration::from_secs(5))
        .await;
    assert_eq!(again.status_code.code(), 202, "{again}");
    let extra = agent.drain(Duration::from_millis(1500)).await;
    assert!(
        extra.is_empty(),
        "a second agent message: {:?}",
        body(&extra[0])
    );
}

#[tokio::test]
async fn kamailio_refuses_a_refer_when_the_bridge_is_stopped() {
    let mut app = spawn_app().await;
    let defines = [
        ("BRIDGE_URL", quoted(&app.base)),
        ("HTTP_TIMEOUT", "2".into()),
    ];
    let kamailio = Kamailio::start(RELAY, &defines).await;
    app.stop().await;
    let client = SipClient::new(kamailio.addr).await;

    let sent = Instant::now();
    let refused = client
        .send(&refer(&client, &unique("conv")), Duration::from_secs(5))
        .await;
    assert_eq!(
        refused.status_code.code(),
        503,
        "{refused}\n{}",
        kamailio.log()
    );
    assert_eq!(header_value(&refused, "retry-after").as_deref(), Some("5"));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
}
