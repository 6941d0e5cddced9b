//! Routing-key and target templates (minijinja).

use std::sync::{LazyLock, RwLock};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::transfer::TransferEvent;

/// What templates can see. `currentTaskName` is `"none"` when the agent gave
/// no task, so a default key such as `agent.{{ currentTaskName }}` stays a
/// well-formed routing key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Context<'a> {
    call_transfer_id: &'a str,
    external_conversation_id: &'a str,
    transfer_type: &'a str,
    current_task_name: &'a str,
    transfer_variables: &'a serde_json::Map<String, serde_json::Value>,
    reference_variables: &'a serde_json::Map<String, serde_json::Value>,
    metadata: &'a std::collections::BTreeMap<String, String>,
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    // A typo in a template must surface as an error (the outcome then goes to
    // audit with the reason), never render as an empty routing key.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Compile-check a template for `config check`.
pub fn check(source: &str) -> Result<(), String> {
    env()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Each template compiled once. Rendering compiled the source on every
/// call, a new environment and parse per action (1% of a signalled
/// transfer's CPU, `perf record` on the e2e `signalled` stage). The sources
/// are the config's (its routes and SIP targets), so the set is small and
/// fixed; past `CACHED` distinct ones the rest are compiled per call.
static COMPILED: LazyLock<RwLock<Environment<'static>>> = LazyLock::new(|| RwLock::new(env()));
const CACHED: usize = 1024;

pub fn render(source: &str, event: &TransferEvent) -> Result<String, String> {
    let ctx = Context {
        call_transfer_id: &event.call_transfer_id,
        external_conversation_id: event.external_conversation_id.as_deref().unwrap_or(""),
        transfer_type: event.transfer_type.as_deref().unwrap_or("NONE"),
        current_task_name: event.current_task_name.as_deref().unwrap_or("none"),
        transfer_variables: &event.transfer_variables,
        reference_variables: &event.reference_variables,
        metadata: &event.metadata,
    };
    let ctx = minijinja::Value::from(minijinja::value::Serde(ctx));
    let read = |env: &Environment<'static>| {
        env.get_template(source)
            .ok()
            .map(|t| t.render(ctx.clone()).map_err(|e| e.to_string()))
    };
    if let Some(done) = read(&COMPILED.read().unwrap_or_else(|p| p.into_inner())) {
        return done;
    }
    let mut compiled = COMPILED.write().unwrap_or_else(|p| p.into_inner());
    if compiled.templates().count() < CACHED
        && compiled
            .add_template_owned(source.to_owned(), source.to_owned())
            .is_ok()
        && let Some(done) = read(&compiled)
    {
        return done;
    }
    drop(compiled);
    // Not cached (a compile error, or the cache is full): as before.
    env().render_str(source, ctx).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(task: Option<&str>) -> TransferEvent {
        serde_json::from_value(serde_json::json!({
            "eventId": "ct-1.completed", "type": "transfer.completed",
            "occurredAt": "2026-12-03T12:00:00Z", "callTransferId": "ct-1",
            "externalConversationId": null, "state": "COMPLETED", "status": "COMPLETED",
            "transferType": "AGENT", "currentTaskName": task, "transferVariables": {},
            "referenceVariables": {}, "inputContext": null, "route": null,
            "metadata": {"queue": "gold"}, "sip": null, "reason": null
        }))
        .unwrap()
    }

    #[test]
    fn a_compiled_template_renders_each_event_and_a_bad_one_fails_every_time() {
        let key = "agent.{{ currentTaskName }}.{{ metadata.queue }}";
        assert_eq!(
            render(key, &event(Some("billing"))).unwrap(),
            "agent.billing.gold"
        );
        assert_eq!(render(key, &event(None)).unwrap(), "agent.none.gold");
        let typo = "agent.{{ currentTaskNam }}";
        for _ in 0..2 {
            let error = render(typo, &event(Some("billing"))).unwrap_err();
            assert!(error.contains("undefined"), "{error}");
        }
        let broken = "agent.{{ currentTaskName";
        for _ in 0..2 {
            assert!(render(broken, &event(None)).is_err());
        }
    }
}
