//! The upstream reader on arbitrary bytes: `serde_json` into `CallTransfer`
//! (the vendor's GET body), the lenient enums, secret redaction, and the
//! `sip render` path (routes -> SIP instruction) on whatever parsed.
//!
//! Properties: nothing panics; no enum ever refuses a JSON value (the model
//! promises unknown values are kept, never rejected); what the bridge
//! serializes it reads back; a redacted resource holds no password; the
//! text the store keeps of a body (`Fetched::text`) reads back as JSON with
//! no password, and as the very tree when it is the body itself.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;
use transfer_bridge::config::Config;
use transfer_bridge::routing::Router;
use transfer_bridge::upstream::Fetched;
use transfer_bridge::upstream::model::{
    self, CallTransfer, ReturnTransferType, Status, TransferMethod, TransferType,
};

/// The shipped routes (AGENT -> amqp, SYSTEM -> sip), built once.
static ROUTER: LazyLock<Router> = LazyLock::new(|| {
    let config = Config::from_figment(Config::embedded()).expect("embedded config is valid");
    config.router()
});

fuzz_target!(|data: &[u8]| {
    if let Ok(resource) = serde_json::from_slice::<CallTransfer>(data) {
        exercise(&resource);
    }
    if let Ok(fetched) = Fetched::from_body(data) {
        kept_text(data, &fetched);
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    lenient::<Status>(&value);
    lenient::<TransferType>(&value);
    lenient::<TransferMethod>(&value);
    lenient::<ReturnTransferType>(&value);
    if let Value::String(raw) = &value {
        status_keeps_raw(raw);
    }
    model::redact_secrets(&mut value);
    if let Some(password) = value.pointer("/sip/returnInviteAuthentication/password") {
        assert_eq!(password, "**redacted**");
    }
});

fn exercise(resource: &CallTransfer) {
    let _ = resource.status.is_terminal();
    let _ = resource.status.ends_tracking();
    let _ = (resource.expires_at(), resource.completed_at());
    let _ = ROUTER.instruction_for(resource);

    let bytes = serde_json::to_vec(resource).expect("a parsed resource serializes");
    let again: CallTransfer =
        serde_json::from_slice(&bytes).expect("the bridge reads what it wrote");
    // Variables are JSON and floats may move by an ulp through serde_json's
    // default parser, so compare the typed fields, not the whole value.
    assert_eq!(again.id, resource.id);
    assert_eq!(again.status, resource.status);
    assert_eq!(again.kind, resource.kind);
    let types = |r: &CallTransfer| r.output_context.as_ref().map(|o| o.transfer_type.clone());
    assert_eq!(types(&again), types(resource));
}

/// The text the store keeps is JSON without a password; when it is the body
/// as it came, it is exactly the tree the bridge read. (A text written from
/// the tree is not compared with it: floats may move by an ulp.)
fn kept_text(data: &[u8], fetched: &Fetched) {
    let kept: Value = serde_json::from_str(fetched.text()).expect("the kept text is JSON");
    if let Some(password) = kept.pointer("/sip/returnInviteAuthentication/password") {
        assert_eq!(password, "**redacted**");
    }
    if fetched.text().as_bytes() == data {
        assert_eq!(
            kept, fetched.raw,
            "the body kept as it came is the tree read"
        );
    }
}

/// Every JSON value, at the top level or as an object's field, becomes a
/// variant: known or `Unknown`, never an error.
fn lenient<T: DeserializeOwned>(value: &Value) {
    serde_json::from_value::<T>(value.clone()).expect("lenient enums accept any JSON value");
    if let Value::Object(map) = value {
        for field in map.values() {
            serde_json::from_value::<T>(field.clone()).expect("lenient enums accept any field");
        }
    }
}

/// `Unknown` keeps the text verbatim; a known variant matched it ignoring
/// case and surrounding whitespace.
fn status_keeps_raw(raw: &str) {
    match Status::from(raw) {
        Status::Unknown(kept) => assert_eq!(kept, raw),
        known => assert!(known.as_str().eq_ignore_ascii_case(raw.trim())),
    }
}
