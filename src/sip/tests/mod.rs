//! Tests of the whole module through its public API.

mod budget;
mod golden;
mod hostile;
mod parse_cases;
mod prop;

use serde_json::{Map, Value};

use super::{Method, Profile, RenderRequest, SipConfig, SipInstruction};

/// A JSON object from pairs.
pub(super) fn obj(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A request with fixed ids and no task name or extra headers.
pub(super) fn request<'a>(
    method: Method,
    target: Option<&'a str>,
    tv: &'a Map<String, Value>,
    rv: &'a Map<String, Value>,
    profile: &'a Profile,
) -> RenderRequest<'a> {
    RenderRequest {
        method,
        target,
        call_transfer_id: "ct-1",
        external_conversation_id: "conv-12345",
        transfer_type: "SYSTEM",
        current_task_name: None,
        transfer_variables: tv,
        reference_variables: rv,
        extra_headers: &[],
        profile,
    }
}

/// The message's headers as rsip parses them back; panics if rsip cannot
/// parse the message.
pub(super) fn rsip_headers(message: &str) -> Vec<(String, String)> {
    use rsip::prelude::HasHeaders;
    let msg =
        rsip::SipMessage::try_from(message).unwrap_or_else(|e| panic!("rsip: {e}\n{message}"));
    msg.headers()
        .iter()
        .map(super::message::split_header)
        .collect()
}

/// Checks what every rendered message must satisfy: rsip parses it, the
/// parsed headers are exactly `headers`, the text has one line per header,
/// and it ends with the empty line.
pub(super) fn assert_sound(instr: &SipInstruction) {
    assert_eq!(
        rsip_headers(&instr.message),
        instr.headers,
        "{}",
        instr.message
    );
    assert_lines(instr);
    assert_typed_placeholders(instr);
}

/// The dialog headers also pass rsip's typed parsers (the strictest SIP
/// grammar at hand), and the transaction id is RFC 3261 compliant.
fn assert_typed_placeholders(instr: &SipInstruction) {
    use rsip::prelude::{HeadersExt, ToTypedHeader};
    let req = rsip::Request::try_from(instr.message.as_str()).unwrap();
    assert!(
        req.via_header()
            .unwrap()
            .typed()
            .unwrap()
            .branch()
            .is_some()
    );
    assert!(req.from_header().unwrap().typed().unwrap().tag().is_some());
    let to = req.to_header().unwrap().typed().unwrap();
    assert_eq!(to.tag().is_some(), instr.method != Method::Invite);
    assert_eq!(
        req.cseq_header().unwrap().typed().unwrap().method,
        instr.method.to_rsip()
    );
    assert_eq!(req.max_forwards_header().unwrap().num().unwrap(), 70);
    assert_eq!(req.contact_header().is_ok(), instr.method != Method::Bye);
    if let Ok(contact) = req.contact_header() {
        contact.typed().unwrap();
    }
    assert!(req.transaction_id().unwrap().is_some());
    assert_eq!(req.method, instr.method.to_rsip());
    assert_eq!(req.uri.to_string(), instr.request_uri);
}

/// Line structure only (for targets rsip cannot parse: IPv6, tel:).
pub(super) fn assert_lines(instr: &SipInstruction) {
    let body = instr
        .message
        .strip_suffix("\r\n\r\n")
        .expect("ends with empty line");
    let lines: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(lines.len(), instr.headers.len() + 1, "{}", instr.message);
    assert!(
        !instr
            .message
            .replace("\r\n", "")
            .contains(['\r', '\n', '\0'])
    );
    for (line, (n, v)) in lines[1..].iter().zip(&instr.headers) {
        assert_eq!(*line, format!("{n}: {v}"));
    }
    assert_eq!(
        instr.headers.last().map(|(n, v)| (n.as_str(), v.as_str())),
        Some(("Content-Length", "0"))
    );
}

/// The Refer-To URI (between `<` and `>`).
pub(super) fn refer_to(instr: &SipInstruction) -> String {
    let (_, v) = instr
        .headers
        .iter()
        .find(|(n, _)| n == "Refer-To")
        .expect("Refer-To");
    v.strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .expect("brackets")
        .to_string()
}

/// A config with the defaults.
pub(super) fn cfg() -> SipConfig {
    SipConfig::default()
}
