//! SIP instructions end to end: SYSTEM outcomes on `transfer.pbx`, the HTTP
//! lookup for dialplans, and headers-only returns.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

fn system_script() -> Value {
    let mut script = completes_with(
        json!({"transferType": "SYSTEM", "currentTaskName": "verify",
        "transferVariables": {"priority": "high", "note": "a&b=c <x>", "inject": "x\r\nVia: evil"},
        "referenceVariables": {"caseId": "C-9"}}),
    );
    script["type"] = "SIP".into();
    script["sip"] =
        json!({"returnTransferType": "REFER", "returnUri": "sip:ivr@pbx.example.com:5060"});
    script
}

#[tokio::test]
async fn system_outcome_publishes_a_parseable_refer() {
    let app = spawn_app().await;
    let mut pbx = app.bind(&app.config.amqp.pbx_exchange, "pbx.#").await;
    let id = unique("system");
    app.script(&id, system_script());
    app.register_id(&id).await;

    let delivery = pbx.next().await;
    assert_eq!(delivery.routing_key.as_str(), "pbx.refer");
    assert_eq!(
        delivery.properties.message_id().as_ref().unwrap().as_str(),
        format!("{id}.pbx")
    );
    let event = body(&delivery);
    let sip = &event["sip"];
    assert_eq!(sip["method"], "REFER");
    let message = sip["message"].as_str().unwrap();
    let parsed = rsip::SipMessage::try_from(message).expect("rsip parses the REFER");
    let rsip::SipMessage::Request(request) = parsed else {
        panic!("not a request")
    };
    // rsip sees exactly the headers the instruction lists: none injected.
    assert_eq!(
        request.headers.iter().count(),
        sip["headers"].as_array().unwrap().len()
    );
    assert_eq!(message.matches("\r\nVia: ").count(), 1, "no injected Via");
    let refer_to = sip["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "Refer-To")
        .unwrap()[1]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        refer_to.starts_with("<sip:ivr@pbx.example.com:5060?"),
        "{refer_to}"
    );
    assert!(refer_to.contains("X-GA-tv-priority=high"));
    assert!(
        refer_to.contains("X-GA-tv-note=a%26b%3Dc%20%3Cx%3E"),
        "{refer_to}"
    );
    assert_eq!(sip["dropped"], json!(["X-GA-tv-inject"]));

    // The same instruction over HTTP, as JSON and as message/sip.
    app.settled(&id).await;
    let url = format!("{}/v1/transfers/{id}/sip", app.base);
    let served: Value = app
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(&served, sip);
    let raw = app
        .http
        .get(&url)
        .header("accept", "message/sip")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-type"], "message/sip");
    assert_eq!(raw.text().await.unwrap(), message);
    let by_query = app
        .http
        .get(format!("{url}?format=sip"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.text().await.unwrap(), message);
    assert_eq!(
        sip["target"].as_str().unwrap(),
        refer_to.trim_start_matches('<').trim_end_matches('>')
    );

    // Round trip: the Refer-To read back by /v1/sip/returns gives the variables.
    let uri = refer_to.trim_start_matches('<').trim_end_matches('>');
    let parsed = app
        .http
        .post(format!("{}/v1/sip/returns", app.base))
        .json(&json!({"referTo": uri}))
        .send()
        .await
        .unwrap();
    assert_eq!(parsed.status(), 201);
    let view: Value = parsed.json().await.unwrap();
    let output = &view["upstream"]["outputContext"];
    assert_eq!(
        output["transferVariables"],
        json!({"priority": "high", "note": "a&b=c <x>"})
    );
    assert_eq!(output["referenceVariables"], json!({"caseId": "C-9"}));
}

#[tokio::test]
async fn headers_only_returns_are_routed_without_upstream_calls() {
    let app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let message = "REFER sip:agent@pbx.example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP ga.example.com;branch=z9hG4bK776\r\n\
        From: <sip:ga@ga.example.com>;tag=1\r\nTo: <sip:pbx@pbx.example.com>;tag=2\r\n\
        Call-ID: abc@ga.example.com\r\nCSeq: 2 REFER\r\nMax-Forwards: 70\r\n\
        X-ASAPP-CallTransferId: hdr-ret-1\r\n\
        Refer-To: <sip:queue@acd.example.com?X-GA-extConId=conv-77&X-GA-transfer=AGENT&X-GA-taskName=billing&X-GA-tv-reason=late%20fee>\r\n\
        Content-Length: 0\r\n\r\n";
    let url = format!("{}/v1/sip/returns", app.base);
    let response = app
        .http
        .post(&url)
        .header("content-type", "message/sip")
        .body(message)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let event = body(&agent.next().await);
    assert_eq!(event["callTransferId"], "hdr-ret-1");
    assert_eq!(event["externalConversationId"], "conv-77");
    assert_eq!(event["transferType"], "AGENT");
    assert_eq!(event["currentTaskName"], "billing");
    assert_eq!(event["transferVariables"]["reason"], "late fee");
    assert_eq!(app.sim.counters().gets, 0, "no upstream call");
    // The same return again is idempotent: no second message.
    let again = app
        .http
        .post(&url)
        .header("content-type", "message/sip")
        .body(message)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert!(
        agent
            .next_within(Duration::from_millis(500))
            .await
            .is_none()
    );

    let plain = app
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("sip:x@y.example.com?X-GA-extConId=c-2&X-GA-transfer=CALLER_DISCONNECT")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 201);
    for (ctype, bad) in [
        ("text/plain", "not a uri"),
        ("text/plain", "sip:x@y?X-GA-tv-a=%zz"),
        ("application/json", "{\"referTo\": 5}"),
        ("message/sip", "garbage"),
    ] {
        let r = app
            .http
            .post(&url)
            .header("content-type", ctype)
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{ctype} {bad}");
        let error: Value = r.json().await.unwrap();
        assert_eq!(error["error"]["code"], "422-01");
    }
    let media = app
        .http
        .post(&url)
        .header("content-type", "image/png")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), 415);
}

#[tokio::test]
async fn no_instruction_is_a_clear_404() {
    let app = spawn_app().await;
    let id = unique("nosip");
    app.script(
        &id,
        completes_with(json!({"transferType": "AGENT", "currentTaskName": "x"})),
    );
    let _agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    app.register_id(&id).await;
    app.settled(&id).await;
    let r = app.get(&format!("/v1/transfers/{id}/sip")).await;
    assert_eq!(r.status(), 404);
    let error: Value = r.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no SIP instruction")
    );
}

/// A SYSTEM outcome whose route cannot make its REFER (no `returnUri` and no
/// `sip.default_target`): the 404 says why, not that no route matched.
#[tokio::test]
async fn a_route_that_could_not_make_its_instruction_says_why() {
    let app = spawn_app().await;
    let id = unique("notarget");
    let mut script = system_script();
    script["sip"] = json!({"returnTransferType": "REFER"});
    app.script(&id, script);
    app.register_id(&id).await;
    app.settled(&id).await;
    let r = app.get(&format!("/v1/transfers/{id}/sip")).await;
    assert_eq!(r.status(), 404);
    let error: Value = r.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("no SIP instruction"), "{message}");
    assert!(!message.contains("no route"), "{message}");
    assert!(message.contains("route system"), "{message}");
}
