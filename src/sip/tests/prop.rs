//! Property tests: for arbitrary names and values, the emitted message
//! parses back (rsip) to exactly the emitted headers, and `parse_return`
//! gives back exactly the variables that were not dropped.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{assert_sound, cfg, refer_to, request, rsip_headers};
use crate::sip::rules::trim_lws;
use crate::sip::vendor::value_string;
use crate::sip::{
    Method, ParsedReturn, Profile, ReturnInput, SipInstruction, parse_return, render,
};

const TARGET: &str = "sip:sbc.example.com";

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9._!%*+`'~-]{0,10}",
        2 => "(?s).{0,8}",
        1 => "[a-z \r\n:;=&<>\"?%\u{0}é😀]{1,6}",
        1 => prop::sample::select(vec!["Via", "body", "A", "a", "Call-ID"]).prop_map(String::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,40}",
        2 => "(?s).{0,30}",
        2 => "[a-z \t\r\n\u{0}\u{85}%&=;<>\"?,@#0dé😀]{0,30}",
        1 => Just("%0d%0a".to_string()),
        1 => "[a-z]{0,400}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => text().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(json!({"a": [1, "x\r\ny"], "b": null})),
    ]
}

fn vars() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(name(), value(), 0..12).prop_map(|m| m.into_iter().collect())
}

/// Extra headers; vendor-named ones (refused, tested elsewhere) are left
/// out so `dropped` names stay unambiguous here.
fn extras() -> impl Strategy<Value = Vec<(String, String)>> {
    let not_vendor = |(n, _): &(String, String)| !n.to_ascii_lowercase().starts_with("x-ga-");
    prop::collection::vec(
        (name(), text()).prop_filter("vendor name", not_vendor),
        0..4,
    )
}

/// The variables expected back: not dropped, values as text, trimmed for
/// plain headers.
fn expected(
    sent: &Map<String, Value>,
    tag: &str,
    dropped: &[String],
    plain: bool,
) -> Map<String, Value> {
    sent.iter()
        .filter(|(k, _)| !dropped.contains(&format!("X-GA-{tag}-{k}")))
        .map(|(k, v)| {
            let s = value_string(v);
            let s = if plain { trim_lws(&s).to_string() } else { s };
            (k.clone(), Value::String(s))
        })
        .collect()
}

fn check_vars(
    got: &ParsedReturn,
    instr: &SipInstruction,
    tv: &Map<String, Value>,
    rv: &Map<String, Value>,
    plain: bool,
) {
    assert_eq!(
        got.transfer_variables,
        expected(tv, "tv", &instr.dropped, plain)
    );
    assert_eq!(
        got.reference_variables,
        expected(rv, "rv", &instr.dropped, plain)
    );
    assert_eq!(got.external_conversation_id.as_deref(), Some("conv-12345"));
    assert_eq!(got.transfer_type.as_deref(), Some("SYSTEM"));
}

/// No header outside the emitted set, and no emitted line was split.
fn assert_no_injection(instr: &SipInstruction) {
    assert_sound(instr);
    let parsed = rsip_headers(&instr.message);
    assert_eq!(parsed.len(), instr.message.matches("\r\n").count() - 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn refer_round_trips(tv in vars(), rv in vars(), extra in extras(), limit in 60usize..1500) {
        let mut c = cfg();
        c.max_uri_len = limit;
        let p = Profile::default();
        let mut req = request(Method::Refer, Some(TARGET), &tv, &rv, &p);
        req.extra_headers = &extra;
        // Below ~65 bytes even the mandatory headers do not fit.
        let Ok(instr) = render(&req, &c) else {
            prop_assert!(limit < 66);
            return Ok(());
        };
        assert_no_injection(&instr);
        let uri = refer_to(&instr);
        prop_assert!(uri.len() <= limit);
        let from_uri = parse_return(ReturnInput::ReferTo(&uri), "X-GA-").unwrap();
        check_vars(&from_uri, &instr, &tv, &rv, false);
        let from_msg = parse_return(ReturnInput::Message(&instr.message), "X-GA-").unwrap();
        prop_assert_eq!(from_msg.call_transfer_id.as_deref(), Some("ct-1"));
        prop_assert_eq!(ParsedReturn { call_transfer_id: None, ..from_msg }, from_uri);
    }

    #[test]
    fn invite_and_bye_round_trip(tv in vars(), rv in vars(), extra in extras(), bye in any::<bool>()) {
        let p = Profile::default();
        let method = if bye { Method::Bye } else { Method::Invite };
        let mut req = request(method, Some(TARGET), &tv, &rv, &p);
        req.extra_headers = &extra;
        let instr = render(&req, &cfg()).unwrap();
        assert_no_injection(&instr);
        let got = parse_return(ReturnInput::Message(&instr.message), "X-GA-").unwrap();
        check_vars(&got, &instr, &tv, &rv, true);
        prop_assert_eq!(got.call_transfer_id.as_deref(), Some("ct-1"));
        // Every extra header is emitted with its trimmed value or dropped.
        for (n, v) in &extra {
            let emitted = instr.headers.iter().any(|(hn, hv)| hn == n && hv == trim_lws(v));
            prop_assert!(emitted || instr.dropped.contains(n), "{:?}", n);
        }
    }

    #[test]
    fn parse_return_never_panics(s in "(?s).{0,200}", t in "[a-zA-Z:<>?&=%;\" \r\n-]{0,80}") {
        let _ = parse_return(ReturnInput::ReferTo(&s), "X-GA-");
        let _ = parse_return(ReturnInput::Message(&s), "X-GA-");
        let _ = parse_return(ReturnInput::ReferTo(&format!("<sip:h?{t}>")), "X-GA-");
        let _ = parse_return(ReturnInput::Message(&format!("REFER sip:h SIP/2.0\r\n{t}")), "");
    }
}
