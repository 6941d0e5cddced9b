use super::*;
use serde_json::json;

/// The GET spec's own example body (seeds/get-call-transfer.openapi.md),
/// including its lowercase `status: completed`.
const SPEC_EXAMPLE: &str = r#"{
  "id": "0867617078-0032318833-2221801472-0002236962",
  "externalConversationId": "0867617078-0032318833-2221801472-0002236962",
  "status": "completed",
  "createdAt": "2024-06-01T12:34:56Z",
  "callReceivedAt": "2024-06-01T12:35:00Z",
  "completedAt": "2024-06-01T12:38:56Z",
  "inputContext": {"taskName": "Welcome", "inputVariables": {"email": "example@gmail.com", "name": "name"}},
  "outputContext": {
    "transferType": "SYSTEM",
    "currentTaskName": "Welcome",
    "referenceVariables": {"reference_variable_1": "reference_value_1", "reference_variable_2": "reference_value_2"},
    "transferVariables": {"transfer_variable_1": "transfer_value_1", "transfer_variable_2": "transfer_value_2"}
  },
  "type": "PHONE_NUMBER",
  "phoneNumber": {"transferNumber": "+19995550199", "country": "US", "expiresAt": "2024-06-01T12:35:56Z"}
}"#;

#[test]
fn reads_the_spec_example() {
    let t: CallTransfer = serde_json::from_str(SPEC_EXAMPLE).unwrap();
    assert_eq!(t.status, Status::Completed);
    assert!(t.status.is_terminal());
    assert_eq!(t.kind, TransferMethod::PhoneNumber);
    let out = t.output_context.as_ref().unwrap();
    assert_eq!(out.transfer_type, Some(TransferType::System));
    assert_eq!(out.current_task_name.as_deref(), Some("Welcome"));
    assert_eq!(
        out.transfer_variables["transfer_variable_2"],
        "transfer_value_2"
    );
    assert_eq!(out.reference_variables.len(), 2);
    let input = t.input_context.as_ref().unwrap();
    assert_eq!(input.input_variables["email"], "example@gmail.com");
    assert_eq!(
        t.expires_at().unwrap().unix_timestamp(),
        parse_time("2024-06-01T12:35:56Z").unwrap().unix_timestamp()
    );
    assert!(t.completed_at().is_some());
}

#[test]
fn reads_the_guides_variants() {
    let body = json!({
        "id": "a", "externalConversationId": "c", "status": "Ongoing",
        "createdAt": "2024-06-01T12:34:56Z", "type": "SIP",
        "inputContext": {"taskName": "welcome", "variables": {"email": "x@y.z"}},
        "phoneNumber": {"transferNumber": "+1", "country": "US", "expireAt": "2024-06-01T12:35:56Z"},
        "sip": {"returnTransferType": "refer", "returnURI": "sip:back@pbx.example.com"}
    });
    let t: CallTransfer = serde_json::from_value(body).unwrap();
    assert_eq!(t.status, Status::Ongoing);
    assert_eq!(t.input_context.unwrap().input_variables["email"], "x@y.z");
    assert!(t.phone_number.unwrap().expires_at.is_some());
    let sip = t.sip.unwrap();
    assert_eq!(sip.return_transfer_type, Some(ReturnTransferType::Refer));
    assert_eq!(sip.return_uri.as_deref(), Some("sip:back@pbx.example.com"));
}

/// A body that spells a field both ways is read, not refused as a
/// duplicate; the spec's spelling wins, the other fills in when the spec's
/// is absent or empty.
#[test]
fn reads_a_body_with_both_spellings() {
    let body = json!({
        "id": "a", "externalConversationId": "c", "status": "COMPLETED",
        "createdAt": "2024-06-01T12:34:56Z", "type": "SIP",
        "inputContext": {"inputVariables": {"a": 1}, "variables": {"b": 2}},
        "phoneNumber": {"expiresAt": "2024-06-01T12:35:56Z", "expireAt": "2030-01-01T00:00:00Z"},
        "sip": {"returnUri": "sip:spec@pbx", "returnURI": "sip:guide@pbx"}
    });
    let t: CallTransfer = serde_json::from_value(body).unwrap();
    assert_eq!(
        t.input_context.unwrap().input_variables,
        json!({"a": 1}).as_object().cloned().unwrap()
    );
    let expires = t.phone_number.unwrap().expires_at;
    assert_eq!(expires.as_deref(), Some("2024-06-01T12:35:56Z"));
    assert_eq!(t.sip.unwrap().return_uri.as_deref(), Some("sip:spec@pbx"));

    let body = json!({"inputVariables": null, "variables": {"b": 2}});
    let input: InputContext = serde_json::from_value(body).unwrap();
    assert_eq!(input.input_variables["b"], 2);
    let body = json!({"returnUri": null, "returnURI": "sip:guide@pbx"});
    let sip: SipReturn = serde_json::from_value(body).unwrap();
    assert_eq!(sip.return_uri.as_deref(), Some("sip:guide@pbx"));
}

/// What the bridge writes is the spec's spelling only.
#[test]
fn writes_the_spec_spelling() {
    let body = json!({"returnURI": "sip:x@y", "returnTransferType": "REFER"});
    let sip: SipReturn = serde_json::from_value(body).unwrap();
    let out = serde_json::to_value(&sip).unwrap();
    assert_eq!(
        out,
        json!({"returnUri": "sip:x@y", "returnTransferType": "REFER"})
    );
    let phone: PhoneNumber = serde_json::from_value(json!({"expireAt": "t"})).unwrap();
    assert_eq!(
        serde_json::to_value(&phone).unwrap(),
        json!({"expiresAt": "t"})
    );
}

#[test]
fn keeps_non_string_variables_and_unknown_enums() {
    let body = json!({
        "id": "a", "externalConversationId": "c", "status": "PAUSED",
        "createdAt": "not a time", "type": "CARRIER_PIGEON",
        "outputContext": {
            "transferType": "HANDOFF_V2", "currentTaskName": null,
            "transferVariables": {"vip": true, "score": 4.5, "tags": ["a", "b"], "n": null},
            "referenceVariables": null
        }
    });
    let t: CallTransfer = serde_json::from_value(body).unwrap();
    assert_eq!(t.status, Status::Unknown("PAUSED".into()));
    assert!(!t.status.is_terminal());
    assert_eq!(t.kind, TransferMethod::Unknown("CARRIER_PIGEON".into()));
    let out = t.output_context.unwrap();
    assert_eq!(
        out.transfer_type,
        Some(TransferType::Unknown("HANDOFF_V2".into()))
    );
    assert_eq!(out.transfer_variables["vip"], true);
    assert_eq!(out.transfer_variables["tags"], json!(["a", "b"]));
    assert!(out.reference_variables.is_empty());
}

#[test]
fn completed_without_output_context_is_fine() {
    let body = json!({"id": "a", "externalConversationId": "c", "status": "COMPLETED",
        "createdAt": "2024-06-01T12:34:56Z", "type": "SIP"});
    let t: CallTransfer = serde_json::from_value(body).unwrap();
    assert!(t.output_context.is_none());
}

#[test]
fn missing_required_field_is_an_error() {
    let body = json!({"id": "a", "status": "COMPLETED", "createdAt": "x", "type": "SIP"});
    assert!(serde_json::from_value::<CallTransfer>(body).is_err());
}

#[test]
fn invite_password_is_redacted() {
    let mut raw =
        json!({"sip": {"returnInviteAuthentication": {"username": "u", "password": "hunter2"}}});
    assert!(redact_secrets(&mut raw), "a password was replaced");
    assert!(
        !redact_secrets(&mut json!({"sip": {}})),
        "nothing to replace"
    );
    assert_eq!(
        raw["sip"]["returnInviteAuthentication"]["password"],
        "**redacted**"
    );
    let auth = InviteAuth {
        username: Some("u".into()),
        password: Some("hunter2".into()),
    };
    assert!(!format!("{auth:?}").contains("hunter2"));
}
