//! `sip::render` with arbitrary variable names and values, extra headers,
//! ids, targets, profiles and `[sip]` settings.
//!
//! Properties, for every configuration that passes `SipConfig::validate`
//! (the bridge refuses to start otherwise):
//! - render returns `Ok` or a `SipError`, never panics;
//! - no emitted header name or value can break a line (no injection);
//! - with a simple `sip:` target the message parses with rsip, which sees
//!   exactly the headers the instruction lists;
//! - `parse_return` reads the message back: the mandatory vendor headers and
//!   every variable that was not reported in `dropped`, with its value.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use transfer_bridge::sip::{
    Method, ParsedReturn, RenderRequest, ReturnInput, SipConfig, SipInstruction, parse_return,
    render,
};

#[derive(Arbitrary, Debug)]
enum Target {
    /// `sip:<user>@<host>[:port]` from safe characters: the case the rsip
    /// property is about.
    Simple {
        user: u32,
        host: u8,
        port: Option<u16>,
    },
    /// Anything at all (tel:, IPv6, garbage): must only not panic.
    Raw(String),
    None,
}

#[derive(Arbitrary, Debug)]
enum Var {
    Text(String),
    Number(i64),
    Flag(bool),
    Null,
    List(Vec<String>),
}

impl Var {
    fn json(self) -> Value {
        match self {
            Var::Text(s) => Value::String(s),
            Var::Number(n) => n.into(),
            Var::Flag(b) => b.into(),
            Var::Null => Value::Null,
            Var::List(items) => items.into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    target: Target,
    call_transfer_id: String,
    external_conversation_id: String,
    transfer_type: String,
    current_task_name: Option<String>,
    transfer_variables: Vec<(String, Var)>,
    reference_variables: Vec<(String, Var)>,
    extra_headers: Vec<(String, String)>,
    profile: u8,
    custom_prefix: Option<String>,
    max_uri_len: u16,
    uui: Option<(String, u8)>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    check(input);
});

fn check(input: Input) {
    let mut cfg = SipConfig::default();
    if let Some(prefix) = input.custom_prefix {
        cfg.header_prefix = prefix;
    }
    cfg.max_uri_len = usize::from(input.max_uri_len);
    if let Some((variable, max)) = input.uui {
        cfg.uui.enabled = true;
        cfg.uui.variable = variable;
        cfg.uui.max_bytes = usize::from(max);
    }
    if cfg.validate().is_err() {
        return;
    }
    let profile_name = ["default", "twilio", "plivo"][usize::from(input.profile % 3)];
    let Ok(profile) = cfg.profile(Some(profile_name)) else {
        return;
    };
    let method = [Method::Refer, Method::Invite, Method::Bye][usize::from(input.method % 3)];
    let (target, simple) = match input.target {
        Target::Simple { user, host, port } => {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            (Some(format!("sip:u{user}@h{host}.example.com{port}")), true)
        }
        Target::Raw(raw) => (Some(raw), false),
        Target::None => (None, method == Method::Bye),
    };
    let tv: Map<String, Value> = input
        .transfer_variables
        .into_iter()
        .map(|(k, v)| (k, v.json()))
        .collect();
    let rv: Map<String, Value> = input
        .reference_variables
        .into_iter()
        .map(|(k, v)| (k, v.json()))
        .collect();
    let req = RenderRequest {
        method,
        target: target.as_deref(),
        call_transfer_id: &input.call_transfer_id,
        external_conversation_id: &input.external_conversation_id,
        transfer_type: &input.transfer_type,
        current_task_name: input.current_task_name.as_deref(),
        transfer_variables: &tv,
        reference_variables: &rv,
        extra_headers: &input.extra_headers,
        profile: &profile,
    };
    let Ok(sip) = render(&req, &cfg) else {
        return;
    };
    for (name, value) in &sip.headers {
        assert!(!name.contains(['\r', '\n', ':']), "header name {name:?}");
        assert!(
            !value.contains(['\r', '\n']),
            "header {name} value {value:?}"
        );
    }
    if simple {
        rsip_agrees(&sip);
    }
    let parsed = parse_return(ReturnInput::Message(&sip.message), &cfg.header_prefix)
        .unwrap_or_else(|e| panic!("own message does not parse back: {e}\n{}", sip.message));
    reads_back(&req, &cfg.header_prefix, &sip, &parsed);
}

fn rsip_agrees(sip: &SipInstruction) {
    let parsed = rsip::SipMessage::try_from(sip.message.as_str())
        .unwrap_or_else(|e| panic!("rsip refuses the message: {e:?}\n{}", sip.message));
    let rsip::SipMessage::Request(request) = parsed else {
        panic!("rsip reads a response");
    };
    assert_eq!(
        request.headers.iter().count(),
        sip.headers.len(),
        "{}",
        sip.message
    );
}

/// Header values lose surrounding SP/HTAB in plain headers (RFC 3261 §7.3.1).
fn lws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn reads_back(req: &RenderRequest<'_>, prefix: &str, sip: &SipInstruction, got: &ParsedReturn) {
    assert_eq!(
        got.external_conversation_id.as_deref().map(lws),
        Some(lws(req.external_conversation_id))
    );
    assert_eq!(
        got.transfer_type.as_deref().map(lws),
        Some(lws(req.transfer_type))
    );
    let maps = [
        ("tv-", req.transfer_variables, &got.transfer_variables),
        ("rv-", req.reference_variables, &got.reference_variables),
    ];
    for (tag, sent, read) in maps {
        for (name, value) in sent {
            let header = format!("{prefix}{tag}{name}");
            if sip.dropped.contains(&header) {
                continue;
            }
            let want = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let Some(Value::String(back)) = read.get(name) else {
                panic!("{header} was neither emitted nor dropped\n{}", sip.message);
            };
            assert_eq!(lws(back), lws(&want), "{header}");
        }
    }
}
