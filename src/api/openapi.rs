//! The OpenAPI 3.1 document of the bridge's own API, generated from the
//! handlers' annotations. `openapi.json` in the repository is this document;
//! a test fails when it is stale.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{health, register, sip, transfers, view};
use crate::outbox::ActionView;
use crate::upstream::{ErrorBody, ErrorEnvelope};

#[derive(OpenApi)]
#[openapi(
    info(title = "transfer-bridge", description = "Tracks GenerativeAgent call transfers and delivers their outcomes."),
    paths(
        transfers::create, transfers::list, transfers::get_one, transfers::cancel,
        transfers::returned, transfers::redeliver, sip::instruction, sip::returns,
        health::healthz, health::readyz, health::metrics,
    ),
    components(schemas(register::RegisterRequest, view::TransferView, view::ListResponse, ActionView, ErrorEnvelope, ErrorBody)),
    modifiers(&BearerAuth),
    tags((name = "transfers"), (name = "sip"), (name = "ops")),
)]
pub struct ApiDoc;

/// `/v1` routes take `Authorization: Bearer <token>` when tokens are configured.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // No license is declared for this service; an empty one is noise.
        openapi.info.license = None;
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as served and checked in (pretty, trailing newline).
pub fn document() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    super::spec::apply(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).expect("the document serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    /// Regenerate with `UPDATE_OPENAPI=1 cargo test --lib openapi`.
    #[test]
    fn checked_in_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let current = super::document();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &current).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == current,
            "openapi.json is stale; run `UPDATE_OPENAPI=1 cargo test --lib openapi` and commit it"
        );
        let doc: serde_json::Value = serde_json::from_str(&current).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/v1/transfers/{id}/sip"]["get"].is_object());
    }

    /// What the fault-injection pass found the spec and the service
    /// disagreeing on, and the links a fuzzer needs to reach `{id}` routes.
    #[test]
    fn the_spec_says_what_the_service_enforces() {
        let doc: serde_json::Value = serde_json::from_str(&super::document()).unwrap();
        let list = &doc["paths"]["/v1/transfers"]["get"];
        let limit = list["parameters"].as_array().unwrap().iter();
        let limit = limit.clone().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], 500);
        assert!(list["responses"]["400"].is_object());
        assert!(doc["paths"]["/v1/transfers/{id}/sip"]["get"]["responses"]["400"].is_object());
        let register = &doc["components"]["schemas"]["RegisterRequest"];
        assert_eq!(register["anyOf"][0]["required"][0], "callTransferId");
        assert_eq!(register["anyOf"][1]["required"][0], "create");
        let returns = &doc["paths"]["/v1/sip/returns"]["post"];
        let plain = &returns["requestBody"]["content"]["text/plain"]["schema"];
        assert_eq!(plain["minLength"], 1);
        let operation_ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let links = doc["paths"]["/v1/transfers"]["post"]["responses"]["201"]["links"]
            .as_object()
            .unwrap();
        assert_eq!(links.len(), 5);
        for link in links.values() {
            let target = link["operationId"].as_str().unwrap();
            assert!(operation_ids.contains(&target), "{target}");
            assert_eq!(link["parameters"]["id"], "$response.body#/callTransferId");
        }
        assert!(returns["responses"]["201"]["links"]["GetTransfer"].is_object());
    }
}
