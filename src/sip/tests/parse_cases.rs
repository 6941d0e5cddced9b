//! `parse_return` on valid variants and on malformed input.

use serde_json::json;

use super::obj;
use crate::sip::{ParsedReturn, ReturnInput, SipError, parse_return};

fn refer_to(v: &str) -> Result<ParsedReturn, SipError> {
    parse_return(ReturnInput::ReferTo(v), "X-GA-")
}

fn message(v: &str) -> Result<ParsedReturn, SipError> {
    parse_return(ReturnInput::Message(v), "X-GA-")
}

#[test]
fn bare_uri_and_name_addr_forms() {
    let uri = "sip:sbc.example.com?X-GA-extConId=conv-1&X-GA-transfer=SYSTEM&X-GA-tv-priority=high";
    let want = ParsedReturn {
        external_conversation_id: Some("conv-1".into()),
        transfer_type: Some("SYSTEM".into()),
        transfer_variables: obj(&[("priority", json!("high"))]),
        ..ParsedReturn::default()
    };
    assert_eq!(refer_to(uri).unwrap(), want);
    assert_eq!(refer_to(&format!("<{uri}>")).unwrap(), want);
    assert_eq!(
        refer_to(&format!(" \"A <b> \\\" c\" <{uri}>;method=INVITE ")).unwrap(),
        want
    );
    assert_eq!(refer_to(&format!("Agent <{uri}>")).unwrap(), want);
    assert_eq!(refer_to("tel:+15551234").unwrap(), ParsedReturn::default());
    assert_eq!(refer_to("<sips:h>").unwrap(), ParsedReturn::default());
}

#[test]
fn message_forms() {
    let refer = "REFER sip:[2001:db8::1] SIP/2.0\n\
        r: <sip:h?x-ga-TRANSFER=AGENT&X-GA-rv-case=7&X-Other=1>\n\
        X-ASAPP-CallTransferId: ct-9\n\
        X-GA-extConId:conv-2\n\
        X-GA-taskName : Billing\n\
        X-GA-tv-note: folded\n\t  value\n\
        X-GA-tv-same: 1\r\n\
        \r\n\
        body is ignored: X-GA-tv-x: y\n";
    let got = message(refer).unwrap();
    assert_eq!(got.call_transfer_id.as_deref(), Some("ct-9"));
    assert_eq!(got.external_conversation_id.as_deref(), Some("conv-2"));
    assert_eq!(got.transfer_type.as_deref(), Some("AGENT"));
    assert_eq!(got.current_task_name.as_deref(), Some("Billing"));
    assert_eq!(
        got.transfer_variables,
        obj(&[("note", json!("folded value")), ("same", json!("1"))])
    );
    assert_eq!(got.reference_variables, obj(&[("case", json!("7"))]));
    let invite = "INVITE tel:+1555 SIP/2.0\r\nX-GA-tv-a: 1\r\nX-GA-tv-a: 1\r\n";
    assert_eq!(
        message(invite).unwrap().transfer_variables,
        obj(&[("a", json!("1"))])
    );
    let bye = "BYE sip:h SIP/2.0\r\nRefer-To: <sip:h?X-GA-tv-a=1>\r\nX-GA-tv-a: 1\r\n\r\n";
    assert_eq!(
        message(bye).unwrap().transfer_variables,
        obj(&[("a", json!("1"))])
    );
    let prefixed = parse_return(
        ReturnInput::Message("INVITE sip:h SIP/2.0\r\nX-PH-tv-a: 1\r\nX-GA-tv-b: 2\r\n"),
        "X-PH-",
    );
    assert_eq!(
        prefixed.unwrap().transfer_variables,
        obj(&[("a", json!("1"))])
    );
}

#[test]
fn malformed_refer_to_values() {
    let cases = [
        ("", "Refer-To is empty: no URI"),
        ("   ", "Refer-To is empty: no URI"),
        ("garbage", "Refer-To URI is not a sip:, sips: or tel: URI"),
        ("http://example.com", "not a sip:, sips: or tel: URI"),
        ("<>", "not a sip:, sips: or tel: URI"),
        ("<sip:h?a=1", "'<' without a closing '>'"),
        ("\"unterminated <sip:h>", "unterminated quote"),
        ("<sip:h> trailing", "unexpected \"trailing\""),
        (
            "sip:h?X-GA-tv-a=%zz",
            "bad percent-escape \"%zz\" in value of URI header X-GA-tv-a",
        ),
        ("sip:h?X-GA-tv-a=%2", "bad percent-escape \"%2\""),
        (
            "sip:h?X-GA-tv-%ZZa=1",
            "bad percent-escape \"%ZZ\" in URI header name",
        ),
        ("sip:h?X-GA-tv-a=%FF", "not valid UTF-8"),
        ("sip:h?", "URI header 1 (\"\") has no '='"),
        ("sip:h?X-GA-tv-a", "has no '='"),
        ("sip:h?a=1&&b=2", "URI header 2"),
        ("sip:h?=1", "empty name"),
        ("<sip:h?a=x y>", "' '"),
        (
            "sip:h?X-GA-tv-a=1&X-GA-tv-a=2",
            "X-GA-tv-a appears twice with different values",
        ),
        ("sip:h?X-GA-extConId=1&x-ga-extconid=2", "appears twice"),
    ];
    for (input, want) in cases {
        let err = refer_to(input).unwrap_err().to_string();
        assert!(err.contains(want), "{input:?}: {err}");
    }
}

#[test]
fn malformed_messages() {
    let cases = [
        ("", "message is empty"),
        ("\r\n\r\n", "message is empty"),
        ("hello world", "not a SIP request line"),
        ("SIP/2.0 200 OK\r\n\r\n", "not a SIP request line"),
        ("REFER sip:h SIP/3.0\r\n", "not a SIP request line"),
        ("REFER  sip:h SIP/2.0\r\n", "not a SIP request line"),
        (
            "OPTIONS sip:h SIP/2.0\r\n",
            "unsupported method \"OPTIONS\"",
        ),
        ("refer sip:h SIP/2.0\r\n", "unsupported method \"refer\""),
        (
            "REFER sip:h SIP/2.0\r\nX-A: 1\r\n\r\n",
            "Refer-To header missing",
        ),
        (
            "REFER sip:h SIP/2.0\r\nRefer-To: <sip:a>\r\nr: <sip:b>\r\n",
            "more than one Refer-To",
        ),
        (
            "REFER sip:h SIP/2.0\r\nRefer-To: sip:h?X-GA-tv-a=1\r\n",
            "must be enclosed in '<' '>'",
        ),
        (
            "REFER sip:h SIP/2.0\r\nRefer-To: <sip:h?X-GA-tv-a=%zz>\r\n",
            "bad percent-escape",
        ),
        ("REFER sip:h SIP/2.0\r\nRefer-To:\r\n", "Refer-To is empty"),
        (
            "INVITE sip:h SIP/2.0\r\nno colon here\r\n",
            "header line 1 has no ':'",
        ),
        (
            "INVITE sip:h SIP/2.0\r\nBad Name: 1\r\n",
            "\"Bad Name\" is not an RFC 3261 token",
        ),
        (
            "INVITE sip:h SIP/2.0\r\n continuation\r\n",
            "continuation line",
        ),
        (
            "INVITE sip:h SIP/2.0\r\nX-A: a\u{0}b\r\n",
            "control characters",
        ),
        (
            "INVITE sip:h SIP/2.0\r\nX-A: a\rb\r\n",
            "control characters",
        ),
        (
            "INVITE sip:h SIP/2.0\r\nX-GA-tv-a: 1\r\nX-GA-tv-a: 2\r\n",
            "appears twice",
        ),
        (
            "INVITE sip:h SIP/2.0\r\nRefer-To: <sip:h?X-GA-tv-a=1>\r\nX-GA-tv-a: 2\r\n",
            "appears twice",
        ),
        (
            "INVITE sip:h SIP/2.0\r\nX-ASAPP-CallTransferId: 1\r\nX-ASAPP-CallTransferId: 2\r\n",
            "twice",
        ),
    ];
    for (input, want) in cases {
        let err = message(input).unwrap_err().to_string();
        assert!(err.contains(want), "{input:?}: {err}");
    }
}

#[test]
fn never_panics_on_prefixes_of_a_valid_message_or_odd_bytes() {
    let full = "REFER sip:h SIP/2.0\r\nRefer-To: \"d\\\"x\" <sip:h?X-GA-tv-a=caf%C3%A9&X-GA-rv-b=%25>;p=1\r\n\r\n";
    for end in (0..=full.len()).filter(|i| full.is_char_boundary(*i)) {
        let _ = message(&full[..end]);
        let _ = refer_to(&full[..end]);
    }
    for odd in [
        "\u{0}",
        "é<",
        "<é",
        "\"",
        "<<>>",
        "sip:h?%",
        "sip:h?%é",
        "sip:\u{10FFFF}?a=%E2%82",
    ] {
        let _ = message(odd);
        let _ = refer_to(odd);
    }
    let got = message(full).unwrap();
    assert_eq!(got.transfer_variables, obj(&[("a", json!("café"))]));
    assert_eq!(got.reference_variables, obj(&[("b", json!("%"))]));
}
