//! Simulator timelines the tests share.

use serde_json::{Value, json};

/// A SIP transfer whose agent hands back with a REFER after `ongoing_ms`.
pub fn refer_after(ongoing_ms: u64) -> Value {
    json!({"type": "SIP",
        "timeline": [{"status": "ACTIVE", "forMs": 50}, {"status": "ONGOING", "forMs": ongoing_ms},
            {"status": "COMPLETED"}],
        "sip": {"returnTransferType": "REFER", "returnUri": "sip:ivr@pbx.example.com"},
        "outputContext": {"transferType": "SYSTEM", "currentTaskName": "verify",
            "transferVariables": {"priority": "high", "note": "a&b=c"}}})
}

/// A timeline that completes with `output` after a short ONGOING phase.
pub fn completes_with(output: Value) -> Value {
    json!({"timeline": [{"status": "ACTIVE", "forMs": 100}, {"status": "ONGOING", "forMs": 200}, {"status": "COMPLETED"}],
        "outputContext": output})
}
