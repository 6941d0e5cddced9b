use super::*;
use crate::config::Config;
use crate::transfer::TransferId;
use figment::providers::Format;
use serde_json::json;

fn config() -> Config {
    Config::from_figment(figment::Figment::from(figment::providers::Toml::string(
        crate::config::DEFAULTS_TOML,
    )))
    .unwrap()
}

fn transfer() -> Transfer {
    Transfer {
        upstream_status: Some("ONGOING".into()),
        metadata: [("queue".to_string(), "gold".to_string())].into(),
        polls: 3,
        ..Transfer::tracking(
            TransferId::parse("ct-1").unwrap(),
            time::OffsetDateTime::now_utc(),
        )
    }
}

fn completed(transfer_type: &str, task: &str) -> CallTransfer {
    serde_json::from_value(json!({
        "id": "ct-1", "externalConversationId": "conv-9", "status": "COMPLETED",
        "createdAt": "2024-06-01T12:34:56Z", "type": "PHONE_NUMBER",
        "outputContext": {"transferType": transfer_type, "currentTaskName": task,
            "transferVariables": {"priority": "high"}}
    }))
    .unwrap()
}

fn target(action: &Action) -> &AmqpTarget {
    match &action.target {
        Target::Amqp(t) => t,
        other => panic!("not amqp: {other:?}"),
    }
}

#[test]
fn agent_outcome_goes_to_the_agent_exchange_and_audit() {
    let router = config().router();
    let actions = router
        .plan(
            &transfer(),
            BridgeState::Completed,
            Some(&completed("AGENT", "billing")),
        )
        .actions;
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0].id, "ct-1.agent");
    let agent = target(&actions[0]);
    assert_eq!(agent.exchange, "transfer.agent");
    assert_eq!(agent.routing_key, "agent.billing");
    assert!(agent.mandatory);
    assert_eq!(agent.correlation_id.as_deref(), Some("conv-9"));
    assert_eq!(actions[1].id, "ct-1.audit.completed");
    assert_eq!(target(&actions[1]).routing_key, "transfer.completed");
    let event: TransferEvent = serde_json::from_str(&actions[0].body).unwrap();
    assert_eq!(event.kind, "transfer.completed");
    assert_eq!(event.route.as_deref(), Some("agent"));
    assert_eq!(event.metadata["queue"], "gold");
    assert_eq!(event.transfer_variables["priority"], "high");
    assert_eq!(actions[0].body, actions[1].body);
}

#[test]
fn disconnect_and_unknown_types_only_reach_audit() {
    let router = config().router();
    for kind in ["CALLER_DISCONNECT", "SOMETHING_NEW"] {
        let actions = router
            .plan(
                &transfer(),
                BridgeState::Completed,
                Some(&completed(kind, "x")),
            )
            .actions;
        assert_eq!(actions.len(), 1, "{kind}");
        assert_eq!(actions[0].kind, "audit");
    }
}

/// `UNKNOWN` in a route is the fallback for any type this build does not
/// know, in whatever case it arrives; a known type never takes it.
#[test]
fn an_unknown_route_takes_every_new_type_and_no_known_one() {
    let mut cfg = config();
    let route = "name = \"fallback\"\nmatch = { transfer_type = [\"unknown\"] }\namqp = { routing_key = \"agent.fallback\" }";
    cfg.routes.push(toml::from_str(route).unwrap());
    let router = cfg.router();
    let kinds = |kind: &str| -> Vec<String> {
        let plan = router.plan(
            &transfer(),
            BridgeState::Completed,
            Some(&completed(kind, "x")),
        );
        let mut kinds: Vec<String> = plan.actions.iter().map(|a| a.kind.to_string()).collect();
        kinds.sort();
        kinds
    };
    for kind in ["SOMETHING_NEW", "queue_transfer"] {
        assert_eq!(kinds(kind), ["audit", "fallback"], "{kind}");
    }
    for kind in ["CALLER_DISCONNECT", "caller_disconnect"] {
        assert_eq!(kinds(kind), ["audit"], "{kind}");
    }
}

#[test]
fn glob_and_variable_matchers() {
    let mut cfg = config();
    cfg.routes.insert(
        0,
        toml::from_str(
            "name = \"vip\"\nmatch = { task = \"bill*\", variables = { priority = \"high\" } }\namqp = { exchange = \"vip\", routing_key = \"vip.{{ transferVariables.priority }}\" }",
        )
        .unwrap(),
    );
    let router = cfg.router();
    let actions = router
        .plan(
            &transfer(),
            BridgeState::Completed,
            Some(&completed("AGENT", "billing")),
        )
        .actions;
    assert_eq!(actions[0].id, "ct-1.vip");
    assert_eq!(target(&actions[0]).routing_key, "vip.high");
    let other = router
        .plan(
            &transfer(),
            BridgeState::Completed,
            Some(&completed("AGENT", "sales")),
        )
        .actions;
    assert_eq!(other[0].id, "ct-1.agent");
}

#[test]
fn missing_task_still_gives_a_usable_key() {
    let router = config().router();
    let resource: CallTransfer = serde_json::from_value(json!({
        "id": "ct-1", "externalConversationId": "c", "status": "COMPLETED",
        "createdAt": "x", "type": "SIP", "outputContext": {"transferType": "AGENT"}
    }))
    .unwrap();
    let actions = router
        .plan(&transfer(), BridgeState::Completed, Some(&resource))
        .actions;
    assert_eq!(target(&actions[0]).routing_key, "agent.none");
}
