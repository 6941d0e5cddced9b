//! Corrections to the generated OpenAPI document for what utoipa's
//! annotations cannot say, so a schema-driven fuzzer (schemathesis, in CI)
//! generates only what the service accepts and reaches every `{id}`
//! operation with real ids.

use serde_json::{Value, json};

use super::register::{MAX_METADATA_ENTRIES, MAX_METADATA_KEY, MAX_METADATA_VALUE};
use crate::transfer::{BridgeState, MAX_ID_LEN};

/// The operations that take a transfer id, by operationId, and the link
/// name each gets from a response that returns a transfer.
const ID_OPERATIONS: &[(&str, &str)] = &[
    ("get_one", "GetTransfer"),
    ("cancel", "CancelTransfer"),
    ("returned", "SignalReturned"),
    ("redeliver", "Redeliver"),
    ("instruction", "GetSipInstruction"),
];

pub fn apply(doc: &mut Value) {
    register_body(&mut doc["components"]["schemas"]["RegisterRequest"]);
    list_state(&mut doc["paths"]["/v1/transfers"]["get"]["parameters"]);
    non_empty_raw_bodies(&mut doc["paths"]["/v1/sip/returns"]["post"]["requestBody"]);
    wait_pattern(&mut doc["paths"]);
    for (path, method) in [("/v1/transfers", "post"), ("/v1/sip/returns", "post")] {
        let responses = &mut doc["paths"][path][method]["responses"];
        for status in ["200", "201"] {
            responses[status]["links"] = id_links();
        }
    }
}

/// One of `callTransferId` / `create` is required (both may be given when
/// they name the same id), ids use the id alphabet, and metadata's limits.
fn register_body(schema: &mut Value) {
    schema["anyOf"] = json!([
        {"required": ["callTransferId"], "properties": {"callTransferId": {"type": "string"}}},
        {"required": ["create"], "properties": {"create": {"type": "object"}}},
    ]);
    let properties = &mut schema["properties"];
    // Not `.` or `..`: see `InvalidId::DotSegment`.
    let id = format!("^(?!\\.\\.?$)[A-Za-z0-9._~:@+=-]{{1,{MAX_ID_LEN}}}$");
    properties["callTransferId"]["pattern"] = json!(id);
    properties["metadata"]["maxProperties"] = json!(MAX_METADATA_ENTRIES);
    properties["metadata"]["propertyNames"] =
        json!({"minLength": 1, "maxLength": MAX_METADATA_KEY});
    properties["metadata"]["additionalProperties"] =
        json!({"type": "string", "maxLength": MAX_METADATA_VALUE});
}

/// `state` is matched in any case, which a JSON Schema enum cannot say.
fn list_state(parameters: &mut Value) {
    let any_case: Vec<String> = BridgeState::ALL
        .iter()
        .map(|s| {
            s.as_str()
                .chars()
                .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()))
                .collect()
        })
        .collect();
    let pattern = format!("^(|{})$", any_case.join("|"));
    for parameter in parameters.as_array_mut().into_iter().flatten() {
        if parameter["name"] == "state" {
            parameter["schema"]["pattern"] = json!(pattern);
        }
    }
}

/// `?wait=` takes exactly what `wait::parse` reads.
fn wait_pattern(paths: &mut Value) {
    let operations = paths
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut());
    for operation in
        operations.flat_map(|o| o.as_object_mut().into_iter().flat_map(|o| o.values_mut()))
    {
        let parameters = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut);
        let parameters = parameters.into_iter().flatten();
        for parameter in parameters.filter(|p| p["name"] == "wait") {
            parameter["schema"]["pattern"] = json!(super::wait::PATTERN);
        }
    }
}

/// A raw URI or SIP message cannot be empty.
fn non_empty_raw_bodies(body: &mut Value) {
    for media in ["text/plain", "message/sip"] {
        body["content"][media]["schema"]["minLength"] = json!(1);
    }
}

/// Links from a response holding a transfer to every operation on its id.
fn id_links() -> Value {
    let links: serde_json::Map<String, Value> = ID_OPERATIONS
        .iter()
        .map(|(operation, name)| {
            let link = json!({
                "operationId": operation,
                "parameters": {"id": "$response.body#/callTransferId"},
            });
            (name.to_string(), link)
        })
        .collect();
    Value::Object(links)
}
