//! Builds the SIP message text on rsip 0.4's header types.
//!
//! The request line is written here rather than through `rsip::Request`
//! because rsip's `Uri` cannot represent `tel:` URIs (it would print
//! `tel://`), IPv6 hosts as targets, or URI headers; the method and version
//! still come from rsip. The returned header list is derived from the very
//! `rsip::Header` values that are printed, so it always equals the message.

use rsip::headers::UntypedHeader;
use rsip::param::{Branch, Tag};
use rsip::{Header, Headers};

use super::render::Method;
use super::vendor::CALL_TRANSFER_ID;

/// Placeholder values the PBX replaces with the real dialog's. Each is valid
/// SIP on its own: hosts are under the reserved `.invalid` TLD (RFC 2606
/// §2), the branch has the RFC 3261 §8.1.1.7 magic cookie, tags are tokens.
pub mod placeholders {
    /// Host standing for the bridge / PBX side.
    pub const BRIDGE_HOST: &str = "bridge.invalid";
    /// User part of From and Contact.
    pub const BRIDGE_USER: &str = "transfer-bridge";
    /// Request-URI of REFER and BYE: the dialog's remote target.
    pub const REMOTE_TARGET: &str = "sip:remote@remote.invalid";
    /// Via branch (RFC 3261 §8.1.1.7: must start with `z9hG4bK`).
    pub const VIA_BRANCH: &str = "z9hG4bK-bridge-placeholder";
    /// From tag.
    pub const FROM_TAG: &str = "bridge-placeholder";
    /// To tag of the in-dialog requests (REFER, BYE).
    pub const TO_TAG: &str = "remote-placeholder";
    /// Call-ID.
    pub const CALL_ID: &str = "placeholder@bridge.invalid";
    /// CSeq number.
    pub const CSEQ: u32 = 1;
    /// Max-Forwards (RFC 3261 §8.1.1.6 recommends 70).
    pub const MAX_FORWARDS: u32 = 70;
}

use placeholders as ph;

/// What varies between messages.
pub(super) struct Parts<'a> {
    /// Method of the request.
    pub method: Method,
    /// Request-URI, already validated.
    pub request_uri: &'a str,
    /// INVITE only: the target, used as the To URI (a new dialog, no tag).
    pub invite_to: Option<&'a str>,
    /// REFER only: the Refer-To URI, already escaped.
    pub refer_to: Option<&'a str>,
    /// Call transfer id, already checked; omitted when empty.
    pub call_transfer_id: &'a str,
    /// Custom headers, already checked.
    pub custom: Vec<(String, String)>,
}

/// Renders the message; returns its text and its header list.
pub(super) fn build(parts: Parts<'_>) -> (String, Vec<(String, String)>) {
    let mut headers = dialog_headers(&parts);
    if let Some(uri) = parts.refer_to {
        // RFC 3515 §2.1 + RFC 3261 §20.10: a URI with headers must be
        // enclosed in angle brackets.
        headers.push(Header::Other("Refer-To".into(), format!("<{uri}>")));
    }
    if !parts.call_transfer_id.is_empty() {
        headers.push(Header::Other(
            CALL_TRANSFER_ID.into(),
            parts.call_transfer_id.into(),
        ));
    }
    headers.extend(parts.custom.into_iter().map(|(n, v)| Header::Other(n, v)));
    headers.push(Header::ContentLength(0u32.into()));
    let list = headers.iter().map(split_header).collect();
    let text = format!(
        "{} {} {}\r\n{}\r\n",
        parts.method.to_rsip(),
        parts.request_uri,
        rsip::Version::V2,
        Headers::from(headers)
    );
    (text, list)
}

/// Via, Max-Forwards, From, To, Call-ID, CSeq and (not for BYE, RFC 3261
/// Table 3) Contact, all placeholders except INVITE's To.
fn dialog_headers(parts: &Parts<'_>) -> Vec<Header> {
    let via = rsip::typed::Via {
        version: rsip::Version::V2,
        transport: rsip::Transport::Udp,
        uri: rsip::Uri {
            host_with_port: rsip::Domain::from(ph::BRIDGE_HOST).into(),
            ..Default::default()
        },
        params: vec![Branch::new(ph::VIA_BRANCH).into()],
    };
    let from = rsip::typed::From {
        display_name: None,
        uri: bridge_uri(),
        params: vec![Tag::new(ph::FROM_TAG).into()],
    };
    let to = match parts.invite_to {
        Some(target) => rsip::headers::To::new(format!("<{target}>")),
        None => rsip::headers::To::new(format!("<{}>;tag={}", ph::REMOTE_TARGET, ph::TO_TAG)),
    };
    let mut out = vec![
        Header::Via(via.into()),
        Header::MaxForwards(ph::MAX_FORWARDS.into()),
        Header::From(from.into()),
        Header::To(to),
        Header::CallId(rsip::headers::CallId::new(ph::CALL_ID)),
        Header::CSeq(
            rsip::typed::CSeq {
                seq: ph::CSEQ,
                method: parts.method.to_rsip(),
            }
            .into(),
        ),
    ];
    if parts.method != Method::Bye {
        let contact = rsip::typed::Contact {
            display_name: None,
            uri: bridge_uri(),
            params: vec![],
        };
        out.push(Header::Contact(contact.into()));
    }
    out
}

fn bridge_uri() -> rsip::Uri {
    rsip::Uri {
        scheme: Some(rsip::Scheme::Sip),
        auth: Some(rsip::Auth {
            user: ph::BRIDGE_USER.into(),
            password: None,
        }),
        host_with_port: rsip::Domain::from(ph::BRIDGE_HOST).into(),
        ..Default::default()
    }
}

/// `Name: value` as printed by rsip, back into a pair. Names are tokens and
/// never contain ": ", so the first occurrence is the separator.
pub(super) fn split_header(h: &Header) -> (String, String) {
    let line = h.to_string();
    match line.split_once(": ") {
        Some((n, v)) => (n.to_string(), v.to_string()),
        None => (line.trim_end_matches(':').to_string(), String::new()),
    }
}
