//! The vendor's headers-only convention: which header carries what, and the
//! ordered list of candidate headers for one transfer.

use serde_json::Value;

use super::config::SipConfig;
use super::place::{Candidate, Kind};
use super::render::RenderRequest;
use super::rules::starts_with_ci;

/// Plain header carrying the call transfer id (not prefixed, not subject to
/// profiles: it is for the PBX, and it is read back from messages only).
pub(super) const CALL_TRANSFER_ID: &str = "X-ASAPP-CallTransferId";
/// RFC 7433 header name.
pub(super) const USER_TO_USER: &str = "User-to-User";
const EXT_CON_ID: &str = "extConId";
const TRANSFER: &str = "transfer";
const TASK_NAME: &str = "taskName";
const TV: &str = "tv-";
const RV: &str = "rv-";

/// The two headers without which the vendor cannot correlate a transfer.
pub(super) fn mandatory_names(prefix: &str) -> [String; 2] {
    [
        format!("{prefix}{EXT_CON_ID}"),
        format!("{prefix}{TRANSFER}"),
    ]
}

/// What a vendor header carries, decoded from its name.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Field<'a> {
    /// `<prefix>extConId`.
    ExtConId,
    /// `<prefix>transfer`.
    Transfer,
    /// `<prefix>taskName`.
    TaskName,
    /// `<prefix>tv-<name>`: a transfer variable.
    Tv(&'a str),
    /// `<prefix>rv-<name>`: a reference variable.
    Rv(&'a str),
}

/// Decodes a header name; the prefix and the fixed parts are matched
/// case-insensitively (RFC 3261 §7.3.1), variable names keep their case.
pub(super) fn classify<'a>(name: &'a str, prefix: &str) -> Option<Field<'a>> {
    if !starts_with_ci(name, prefix) {
        return None;
    }
    let rest = name.get(prefix.len()..)?;
    let var = |tag: &str| {
        starts_with_ci(rest, tag)
            .then(|| rest.get(tag.len()..))
            .flatten()
    };
    if rest.eq_ignore_ascii_case(EXT_CON_ID) {
        Some(Field::ExtConId)
    } else if rest.eq_ignore_ascii_case(TRANSFER) {
        Some(Field::Transfer)
    } else if rest.eq_ignore_ascii_case(TASK_NAME) {
        Some(Field::TaskName)
    } else if let Some(v) = var(TV) {
        Some(Field::Tv(v))
    } else {
        var(RV).map(Field::Rv)
    }
}

/// A variable's value as header text: strings as they are, anything else
/// JSON-encoded (so `5` becomes `"5"` and `{"a":1}` stays `{"a":1}`).
pub(super) fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The candidate headers, in priority order: the two mandatory vendor
/// headers, the task name, the route's extra headers (operator data comes
/// before caller data so a caller cannot push it out of the URI budget),
/// User-to-User, transfer variables, reference variables.
pub(super) fn candidates(req: &RenderRequest<'_>, cfg: &SipConfig) -> Vec<Candidate> {
    let p = &cfg.header_prefix;
    let [ext_con_id, transfer] = mandatory_names(p);
    let mut out = vec![
        Candidate::new(
            ext_con_id,
            req.external_conversation_id.into(),
            Kind::Mandatory,
        ),
        Candidate::new(transfer, req.transfer_type.into(), Kind::Mandatory),
    ];
    if let Some(task) = req.current_task_name {
        out.push(Candidate::new(
            format!("{p}{TASK_NAME}"),
            task.into(),
            Kind::Optional,
        ));
    }
    for (name, value) in req.extra_headers {
        let mut c = Candidate::new(name.clone(), value.clone(), Kind::Optional);
        // A route must not be able to forge vendor data.
        if classify(name, p).is_some() {
            c.refused = Some("name is a vendor header name");
        }
        out.push(c);
    }
    out.extend(uui(req, cfg));
    let vars = |tag: &str, map: &serde_json::Map<String, Value>| {
        map.iter()
            .map(|(k, v)| Candidate::new(format!("{p}{tag}{k}"), value_string(v), Kind::Optional))
            .collect::<Vec<_>>()
    };
    out.extend(vars(TV, req.transfer_variables));
    out.extend(vars(RV, req.reference_variables));
    out
}

/// RFC 7433 §4.1: `User-to-User: <hex>;encoding=hex;purpose=<purpose>`.
fn uui(req: &RenderRequest<'_>, cfg: &SipConfig) -> Option<Candidate> {
    let uui = &cfg.uui;
    let raw = value_string(
        req.transfer_variables
            .get(&uui.variable)
            .filter(|_| uui.enabled)?,
    );
    let hex: String = raw.bytes().map(|b| format!("{b:02x}")).collect();
    let value = format!("{hex};encoding=hex;purpose={}", uui.purpose);
    let mut c = Candidate::new(USER_TO_USER.into(), value, Kind::Uui);
    if raw.is_empty() {
        // uui-data = token / quoted-string: it cannot be empty.
        c.refused = Some("UUI value is empty");
    } else if raw.len() > uui.max_bytes {
        c.refused = Some("UUI value is over uui.max_bytes");
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_names() {
        let p = "X-GA-";
        assert_eq!(classify("X-GA-extConId", p), Some(Field::ExtConId));
        assert_eq!(classify("x-ga-EXTCONID", p), Some(Field::ExtConId));
        assert_eq!(classify("X-GA-transfer", p), Some(Field::Transfer));
        assert_eq!(classify("X-GA-taskName", p), Some(Field::TaskName));
        assert_eq!(classify("X-GA-TV-Prio", p), Some(Field::Tv("Prio")));
        assert_eq!(classify("X-GA-rv-", p), Some(Field::Rv("")));
        assert_eq!(classify("X-GA-other", p), None);
        assert_eq!(classify("X-Other", p), None);
        assert_eq!(classify("tv-a", ""), Some(Field::Tv("a")));
        assert_eq!(classify("é", "X"), None);
    }

    #[test]
    fn values_as_text() {
        assert_eq!(value_string(&json!("a b")), "a b");
        assert_eq!(value_string(&json!(5)), "5");
        assert_eq!(value_string(&json!(true)), "true");
        assert_eq!(value_string(&json!(null)), "null");
        assert_eq!(value_string(&json!([1, "x"])), "[1,\"x\"]");
        assert_eq!(value_string(&json!({"a": {"b": 1}})), "{\"a\":{\"b\":1}}");
    }
}
