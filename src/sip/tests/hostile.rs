//! Hostile names and values: no injection, nothing silent, exact round trip.

use serde_json::{Map, Value, json};

use super::{assert_sound, cfg, obj, refer_to, request, rsip_headers};
use crate::sip::{Method, Profile, ReturnInput, SipInstruction, parse_return, render};

const TARGET: &str = "sip:sbc.example.com";

fn render_one(method: Method, tv: &Map<String, Value>) -> SipInstruction {
    let rv = obj(&[]);
    let p = Profile::default();
    render(&request(method, Some(TARGET), tv, &rv, &p), &cfg()).unwrap()
}

/// Renders `name = value` as REFER and INVITE and checks soundness; returns
/// (REFER, INVITE).
fn both(name: &str, value: &str) -> (SipInstruction, SipInstruction) {
    let tv = obj(&[(name, json!(value))]);
    let refer = render_one(Method::Refer, &tv);
    let invite = render_one(Method::Invite, &tv);
    for instr in [&refer, &invite] {
        assert_sound(instr);
        let names: Vec<String> = rsip_headers(&instr.message)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(
            !names.iter().any(|n| n.eq_ignore_ascii_case("Evil")),
            "{}",
            instr.message
        );
    }
    (refer, invite)
}

/// The transfer variables read back from the REFER (URI and whole message)
/// and from the INVITE.
fn read_back(refer: &SipInstruction, invite: &SipInstruction) -> [Map<String, Value>; 3] {
    let uri = refer_to(refer);
    let from_uri = parse_return(ReturnInput::ReferTo(&uri), "X-GA-").unwrap();
    let from_refer = parse_return(ReturnInput::Message(&refer.message), "X-GA-").unwrap();
    let from_invite = parse_return(ReturnInput::Message(&invite.message), "X-GA-").unwrap();
    [
        from_uri.transfer_variables,
        from_refer.transfer_variables,
        from_invite.transfer_variables,
    ]
}

#[test]
fn crlf_and_controls_in_values_are_refused() {
    for value in [
        "x\r\nEvil: y",
        "x\nEvil: y",
        "x\rEvil: y",
        "nul\0",
        "bell\u{7}",
        "nel\u{85}",
        "del\u{7f}",
    ] {
        let (refer, invite) = both("v", value);
        assert_eq!(refer.dropped, ["X-GA-tv-v"], "{value:?}");
        assert_eq!(invite.dropped, ["X-GA-tv-v"], "{value:?}");
        assert!(!refer_to(&refer).contains("tv-v"));
        for m in read_back(&refer, &invite) {
            assert!(m.is_empty());
        }
    }
}

#[test]
fn crlf_and_odd_chars_in_names_are_refused() {
    for name in [
        "a\r\nEvil: y",
        "a b",
        "a:b",
        "caf\u{e9}",
        "a\0",
        "a;b",
        "a=b",
        "a&b",
        "a<b>",
        "a\"b",
        "a?b",
        "a/b",
    ] {
        let (refer, invite) = both(name, "v");
        let header = format!("X-GA-tv-{name}");
        assert_eq!(refer.dropped, vec![header.clone()], "{name:?}");
        assert_eq!(invite.dropped, vec![header], "{name:?}");
    }
}

#[test]
fn literal_escapes_are_escaped_again() {
    let (refer, invite) = both("v", "%0d%0a");
    assert!(refer_to(&refer).ends_with("&X-GA-tv-v=%250d%250a"));
    assert!(invite.message.contains("\r\nX-GA-tv-v: %0d%0a\r\n"));
    for m in read_back(&refer, &invite) {
        assert_eq!(m, obj(&[("v", json!("%0d%0a"))]));
    }
}

#[test]
fn delimiters_unicode_and_tabs_round_trip() {
    let cases = [
        ("<>?&=;\"", "%3C%3E?%26%3D%3B%22"),
        ("café", "caf%C3%A9"),
        ("😀", "%F0%9F%98%80"),
        ("a\tb", "a%09b"),
        ("a,b@c#d e", "a%2Cb%40c%23d%20e"),
        ("", ""),
        ("[x]/?:+$-_.!~*'()", "[x]/?:+$-_.!~*'()"),
    ];
    for (value, escaped) in cases {
        let (refer, invite) = both("v", value);
        assert!(refer.dropped.is_empty() && invite.dropped.is_empty());
        assert!(
            refer_to(&refer).ends_with(&format!("&X-GA-tv-v={escaped}")),
            "{value:?}"
        );
        for m in read_back(&refer, &invite) {
            assert_eq!(m, obj(&[("v", json!(value))]), "{value:?}");
        }
    }
}

#[test]
fn token_names_with_odd_characters_round_trip() {
    let name = "a.b!c%d*e_f+g`h'i~j-K";
    let (refer, invite) = both(name, "v");
    assert!(refer_to(&refer).contains("&X-GA-tv-a.b!c%25d*e_f+g%60h'i~j-K=v"));
    for m in read_back(&refer, &invite) {
        assert_eq!(m, obj(&[(name, json!("v"))]));
    }
}

#[test]
fn plain_values_lose_surrounding_whitespace_only() {
    let (refer, invite) = both("v", "  a  b\t ");
    let [uri, msg, plain] = read_back(&refer, &invite);
    assert_eq!(uri, obj(&[("v", json!("  a  b\t "))]));
    assert_eq!(msg, uri);
    assert_eq!(plain, obj(&[("v", json!("a  b"))]));
}

#[test]
fn ten_kilobyte_values() {
    let big = "é".repeat(5_000);
    let (refer, invite) = both("big", &big);
    assert_eq!(refer.dropped, ["X-GA-tv-big"]);
    assert!(refer_to(&refer).len() <= 1024);
    assert!(invite.dropped.is_empty());
    let [_, _, plain] = read_back(&refer, &invite);
    assert_eq!(plain, obj(&[("big", json!(big))]));
}

#[test]
fn five_hundred_variables() {
    let tv: Map<String, Value> = (0..500)
        .map(|i| (format!("var{i:03}"), json!(format!("value-{i}"))))
        .collect();
    let refer = render_one(Method::Refer, &tv);
    let invite = render_one(Method::Invite, &tv);
    assert_sound(&refer);
    assert_sound(&invite);
    let uri = refer_to(&refer);
    assert!(uri.len() <= 1024);
    let back = parse_return(ReturnInput::ReferTo(&uri), "X-GA-")
        .unwrap()
        .transfer_variables;
    assert!(!back.is_empty() && !refer.dropped.is_empty());
    assert_eq!(back.len() + refer.dropped.len(), 500);
    for (k, v) in &tv {
        let name = format!("X-GA-tv-{k}");
        assert_ne!(back.get(k) == Some(v), refer.dropped.contains(&name), "{k}");
    }
    assert!(invite.dropped.is_empty());
    assert_eq!(
        parse_return(ReturnInput::Message(&invite.message), "X-GA-")
            .unwrap()
            .transfer_variables,
        tv
    );
}

#[test]
fn reserved_and_spoofing_extra_headers_are_refused() {
    let names = [
        "From",
        "call-id",
        "CSeq",
        "Via",
        "v",
        "Record-Route",
        "Route",
        "Accept",
        "Allow",
        "Contact",
        "m",
    ];
    let names = names.iter().chain(&[
        "Organization",
        "Supported",
        "User-Agent",
        "body",
        "Refer-To",
        "Content-Length",
    ]);
    let names = names.chain(&[
        "X-GA-tv-priority",
        "x-ga-extconid",
        "X-ASAPP-CallTransferId",
        "X-Ok",
    ]);
    let extra: Vec<(String, String)> = names
        .map(|n| (n.to_string(), "spoof".to_string()))
        .collect();
    let tv = obj(&[("priority", json!("high"))]);
    let rv = obj(&[]);
    let p = Profile::default();
    for method in [Method::Refer, Method::Invite, Method::Bye] {
        let mut req = request(method, Some(TARGET), &tv, &rv, &p);
        req.extra_headers = &extra;
        let got = render(&req, &cfg()).unwrap();
        assert_sound(&got);
        let want: Vec<&str> = extra
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| *n != "X-Ok")
            .collect();
        assert_eq!(got.dropped, want, "{method}");
        let back = parse_return(ReturnInput::Message(&got.message), "X-GA-").unwrap();
        assert_eq!(back.transfer_variables, tv);
        assert_eq!(back.external_conversation_id.as_deref(), Some("conv-12345"));
        assert_eq!(got.message.matches("spoof").count(), 1, "{method}");
    }
}

#[test]
fn empty_prefix_cannot_collide_with_reserved_or_vendor_names() {
    let mut c = cfg();
    c.header_prefix = String::new();
    let tv = obj(&[("Via", json!("x"))]);
    let rv = obj(&[]);
    let p = Profile::default();
    let extra = [
        ("extConId".to_string(), "forged".to_string()),
        ("body".to_string(), "b".to_string()),
    ];
    let mut req = request(Method::Refer, Some(TARGET), &tv, &rv, &p);
    req.extra_headers = &extra;
    let got = render(&req, &c).unwrap();
    assert_eq!(
        refer_to(&got),
        "sip:sbc.example.com?extConId=conv-12345&transfer=SYSTEM&tv-Via=x"
    );
    assert_eq!(got.dropped, ["extConId", "body"]);
    let back = parse_return(ReturnInput::ReferTo(&refer_to(&got)), "").unwrap();
    assert_eq!(back.transfer_variables, tv);
}

#[test]
fn case_insensitive_duplicates_are_dropped() {
    let tv = obj(&[("A", json!("1")), ("a", json!("2"))]);
    let refer = render_one(Method::Refer, &tv);
    let invite = render_one(Method::Invite, &tv);
    assert_eq!(refer.dropped, ["X-GA-tv-a"]);
    assert_eq!(invite.dropped, ["X-GA-tv-a"]);
    for m in read_back(&refer, &invite) {
        assert_eq!(m, obj(&[("A", json!("1"))]));
    }
}

#[test]
fn hostile_mandatory_values() {
    let tv = obj(&[]);
    let p = Profile::default();
    let mut req = request(Method::Refer, Some(TARGET), &tv, &tv, &p);
    req.external_conversation_id = "c\r\nEvil: 1";
    let err = render(&req, &cfg()).unwrap_err().to_string();
    assert_eq!(
        err,
        "cannot emit mandatory header X-GA-extConId: value contains control characters"
    );
    req.external_conversation_id = "conv <&> é";
    req.transfer_type = "WEIRD;type";
    req.current_task_name = Some("bad\ntask");
    let got = render(&req, &cfg()).unwrap();
    assert_eq!(got.dropped, ["X-GA-taskName"]);
    let back = parse_return(ReturnInput::ReferTo(&refer_to(&got)), "X-GA-").unwrap();
    assert_eq!(back.external_conversation_id.as_deref(), Some("conv <&> é"));
    assert_eq!(back.transfer_type.as_deref(), Some("WEIRD;type"));
    assert_eq!(back.current_task_name, None);
}

#[test]
fn uui_rules() {
    let mut c = cfg();
    c.uui.enabled = true;
    c.uui.max_bytes = 4;
    let rv = obj(&[]);
    let p = Profile::default();
    for (value, dropped) in [("abcd", false), ("abcde", true), ("", true)] {
        let tv = obj(&[("uui", json!(value))]);
        let refer = render(&request(Method::Refer, Some(TARGET), &tv, &rv, &p), &c).unwrap();
        assert_eq!(
            refer.dropped.contains(&"User-to-User".to_string()),
            dropped,
            "{value:?}"
        );
        if !dropped {
            // RFC 7433 in a Refer-To URI: ';' and '=' escaped.
            assert!(
                refer_to(&refer)
                    .contains("&User-to-User=61626364%3Bencoding%3Dhex%3Bpurpose%3Disdn-uui&")
            );
        }
    }
    c.uui.enabled = false;
    let tv = obj(&[("uui", json!("abcd"))]);
    let invite = render(&request(Method::Invite, Some(TARGET), &tv, &rv, &p), &c).unwrap();
    assert!(!invite.message.contains("User-to-User"));
}
