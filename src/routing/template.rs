//! Routing-key and target templates (minijinja).

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
    env()
        .render_str(source, minijinja::value::Serde(ctx))
        .map_err(|e| e.to_string())
}
