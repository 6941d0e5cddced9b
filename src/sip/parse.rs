//! Reading variables back from a Refer-To value or from a whole REFER /
//! INVITE / BYE, e.g. one the vendor sends back to the bridge.
//!
//! The message is split by hand, not with rsip: rsip 0.4 fails on IPv6 and
//! `tel:` request-URIs, and knows nothing of URI headers.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::SipError;
use super::rules::{has_control, is_token, trim_lws};
use super::uri_headers;
use super::vendor::{CALL_TRANSFER_ID, Field, classify};

/// What [`parse_return`] reads.
#[derive(Clone, Copy, Debug)]
pub enum ReturnInput<'a> {
    /// A Refer-To value: a bare URI (whose `?` part is read as URI headers)
    /// or a name-addr such as `"x" <sip:host?a=b>;param`.
    ReferTo(&'a str),
    /// A whole request: request line, headers, optionally the empty line
    /// and a body (ignored). CRLF or bare LF line ends.
    Message(&'a str),
}

/// The vendor data found. Variable values are always strings: a number sent
/// as `5` comes back as `"5"` (the wire cannot tell them apart).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParsedReturn {
    /// `X-ASAPP-CallTransferId` (plain message header only).
    pub call_transfer_id: Option<String>,
    /// `<prefix>extConId`.
    pub external_conversation_id: Option<String>,
    /// `<prefix>transfer`.
    pub transfer_type: Option<String>,
    /// `<prefix>taskName`.
    pub current_task_name: Option<String>,
    /// `<prefix>tv-<name>` headers.
    pub transfer_variables: Map<String, Value>,
    /// `<prefix>rv-<name>` headers.
    pub reference_variables: Map<String, Value>,
}

/// Reads vendor headers from a Refer-To value or a whole message. URI header
/// values are percent-unescaped; plain header values are taken as written
/// (minus surrounding LWS), since SIP header values are not escaped.
/// Malformed input gives a [`SipError`] saying precisely what is wrong.
pub fn parse_return(input: ReturnInput<'_>, header_prefix: &str) -> Result<ParsedReturn, SipError> {
    let mut out = ParsedReturn::default();
    match input {
        ReturnInput::ReferTo(value) => {
            let uri = refer_to_uri(value, false)?;
            collect_uri(uri, header_prefix, &mut out)?;
        }
        ReturnInput::Message(text) => parse_message(text, header_prefix, &mut out)?,
    }
    Ok(out)
}

/// Extracts the URI from a Refer-To value.
///
/// `in_header`: inside a message, an addr-spec without angle brackets ends
/// at the first `;` (what follows are header parameters, RFC 3261 §20), and
/// a `?` there is an error (RFC 3261 §20.10: such a URI must be bracketed).
fn refer_to_uri(value: &str, in_header: bool) -> Result<&str, SipError> {
    let v = trim_lws(value.trim());
    if v.is_empty() {
        return Err(SipError::malformed("Refer-To is empty: no URI"));
    }
    let uri = match laquot(v)? {
        Some(start) => bracketed(&v[start + 1..])?,
        None if in_header => {
            let uri = v.split(';').next().unwrap_or_default();
            if uri.contains('?') {
                return Err(SipError::malformed(
                    "a Refer-To URI with headers must be enclosed in '<' '>' (RFC 3261 §20.10)",
                ));
            }
            uri
        }
        None => v,
    };
    let scheme = uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("sip" | "sips" | "tel")) {
        return Err(SipError::malformed(
            "Refer-To URI is not a sip:, sips: or tel: URI",
        ));
    }
    Ok(uri)
}

/// Index of the `<` that opens the name-addr, skipping a quoted display
/// name (RFC 3261 §25.1 quoted-string, with `\` quoted-pairs).
fn laquot(v: &str) -> Result<Option<usize>, SipError> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in v.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '<') => return Ok(Some(i)),
            _ => {}
        }
    }
    if quoted {
        return Err(SipError::malformed(
            "Refer-To display name has an unterminated quote",
        ));
    }
    Ok(None)
}

/// The URI up to `>`; only parameters may follow it.
fn bracketed(after: &str) -> Result<&str, SipError> {
    let Some((uri, rest)) = after.split_once('>') else {
        return Err(SipError::malformed(
            "Refer-To has '<' without a closing '>'",
        ));
    };
    let rest = trim_lws(rest);
    if !rest.is_empty() && !rest.starts_with(';') {
        return Err(SipError::malformed(format!(
            "unexpected \"{rest}\" after the Refer-To URI (only ;parameters may follow '>')"
        )));
    }
    Ok(uri.trim())
}

fn collect_uri(uri: &str, prefix: &str, out: &mut ParsedReturn) -> Result<(), SipError> {
    let (_, Some(part)) = uri_headers::split(uri) else {
        return Ok(());
    };
    for (name, value) in uri_headers::parse(part)? {
        store(&name, value, prefix, out)?;
    }
    Ok(())
}

/// Files one vendor header; unknown names are ignored, a second different
/// value for the same field is an error.
fn store(name: &str, value: String, prefix: &str, out: &mut ParsedReturn) -> Result<(), SipError> {
    let slot = match classify(name, prefix) {
        Some(Field::ExtConId) => &mut out.external_conversation_id,
        Some(Field::Transfer) => &mut out.transfer_type,
        Some(Field::TaskName) => &mut out.current_task_name,
        Some(Field::Tv(var)) => return insert_var(&mut out.transfer_variables, var, name, value),
        Some(Field::Rv(var)) => return insert_var(&mut out.reference_variables, var, name, value),
        None => return Ok(()),
    };
    set_once(slot, value, name)
}

fn set_once(slot: &mut Option<String>, value: String, name: &str) -> Result<(), SipError> {
    match slot {
        Some(old) if *old != value => Err(conflict(name)),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn insert_var(
    map: &mut Map<String, Value>,
    var: &str,
    name: &str,
    value: String,
) -> Result<(), SipError> {
    match map.get(var) {
        Some(Value::String(old)) if *old != value => Err(conflict(name)),
        _ => {
            map.insert(var.to_string(), Value::String(value));
            Ok(())
        }
    }
}

fn conflict(name: &str) -> SipError {
    SipError::malformed(format!("{name} appears twice with different values"))
}

fn parse_message(text: &str, prefix: &str, out: &mut ParsedReturn) -> Result<(), SipError> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let method = request_method(lines.next().unwrap_or_default())?;
    let headers = unfold(lines.take_while(|l| !l.is_empty()))?;
    let refer_tos: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Refer-To") || n.eq_ignore_ascii_case("r"))
        .map(|(_, v)| v.as_str())
        .collect();
    match (refer_tos.as_slice(), method) {
        ([], "REFER") => return Err(SipError::ReferToMissing),
        ([], _) => {}
        ([one], _) => collect_uri(refer_to_uri(one, true)?, prefix, out)?,
        _ => {
            return Err(SipError::malformed(
                "more than one Refer-To header (RFC 3515 §2.4.1)",
            ));
        }
    }
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(CALL_TRANSFER_ID) {
            set_once(&mut out.call_transfer_id, value, &name)?;
        } else {
            store(&name, value, prefix, out)?;
        }
    }
    Ok(())
}

/// Checks `METHOD SP Request-URI SP SIP/2.0` and returns the method.
fn request_method(line: &str) -> Result<&str, SipError> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, "SIP/2.0"] = parts.as_slice() else {
        if line.trim().is_empty() {
            return Err(SipError::malformed("message is empty: no request line"));
        }
        return Err(SipError::malformed(
            "first line is not a SIP request line (METHOD Request-URI SIP/2.0)",
        ));
    };
    if uri.is_empty() || has_control(uri) {
        return Err(SipError::malformed(
            "request line has an invalid Request-URI",
        ));
    }
    // Methods are case-sensitive (RFC 3261 §7.1).
    match *method {
        "REFER" | "INVITE" | "BYE" => Ok(method),
        other => Err(SipError::malformed(format!(
            "unsupported method \"{other}\" (expected REFER, INVITE or BYE)"
        ))),
    }
}

/// Splits header lines into `(name, value)`, joining folded lines
/// (RFC 3261 §7.3.1: a line starting with SP/HTAB continues the previous).
fn unfold<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<(String, String)>, SipError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, line) in lines.enumerate() {
        if has_control(line) {
            return Err(SipError::malformed(format!(
                "header line {} contains control characters",
                i + 1
            )));
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = out.last_mut() else {
                return Err(SipError::malformed(
                    "headers start with a continuation line",
                ));
            };
            value.push(' ');
            value.push_str(trim_lws(line));
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(SipError::malformed(format!(
                "header line {} has no ':'",
                i + 1
            )));
        };
        // HCOLON = *( SP / HTAB ) ":" SWS
        let name = trim_lws(name);
        if !is_token(name) {
            return Err(SipError::malformed(format!(
                "header name {name:?} is not an RFC 3261 token"
            )));
        }
        out.push((name.to_string(), trim_lws(value).to_string()));
    }
    Ok(out)
}
