//! URI budget and platform profiles.

use serde_json::{Map, Value, json};

use super::{assert_sound, cfg, obj, refer_to, request};
use crate::sip::{Method, Profile, ReturnInput, SipConfig, SipError, parse_return, render};

const TARGET: &str = "sip:sbc.example.com";

/// Every transfer and reference variable is either read back from the URI
/// with its value or listed in `dropped`, never both.
fn assert_partition(
    uri: &str,
    tv: &Map<String, Value>,
    rv: &Map<String, Value>,
    dropped: &[String],
) {
    let back = parse_return(ReturnInput::ReferTo(uri), "X-GA-").unwrap();
    for (tag, sent, got) in [
        ("tv", tv, &back.transfer_variables),
        ("rv", rv, &back.reference_variables),
    ] {
        for (k, v) in sent {
            let name = format!("X-GA-{tag}-{k}");
            let placed = got.get(k).is_some();
            assert_ne!(placed, dropped.contains(&name), "{name}");
            if placed {
                assert_eq!(got[k], json!(crate::sip::vendor::value_string(v)));
            }
        }
        assert!(got.keys().all(|k| sent.contains_key(k)));
    }
}

#[test]
fn overflow_is_reported_and_smaller_variables_still_fit() {
    let tv = obj(&[
        ("a", json!("x".repeat(150))),
        ("b", json!("small")),
        ("c", json!("x".repeat(90))),
    ]);
    let rv = obj(&[("r1", json!("y".repeat(40))), ("r2", json!("z"))]);
    let mut c = cfg();
    c.max_uri_len = 200;
    let p = Profile::default();
    let got = render(&request(Method::Refer, Some(TARGET), &tv, &rv, &p), &c).unwrap();
    let uri = refer_to(&got);
    assert!(uri.len() <= 200, "{}", uri.len());
    // a (150) does not fit; b, then c (90) do; r1 no longer fits; r2 does.
    assert_eq!(got.dropped, ["X-GA-tv-a", "X-GA-rv-r1"]);
    assert!(uri.ends_with("&X-GA-rv-r2=z"));
    assert_partition(&uri, &tv, &rv, &got.dropped);
    assert_sound(&got);
}

#[test]
fn many_variables_every_limit() {
    let tv: Map<String, Value> = (0..60)
        .map(|i| (format!("t{i}"), json!("v".repeat(i * 3))))
        .collect();
    let rv: Map<String, Value> = (0..60).map(|i| (format!("r{i}"), json!(i))).collect();
    let p = Profile::default();
    for limit in [80, 100, 257, 512, 1024, 16384] {
        let mut c = cfg();
        c.max_uri_len = limit;
        let got = render(&request(Method::Refer, Some(TARGET), &tv, &rv, &p), &c).unwrap();
        let uri = refer_to(&got);
        assert!(uri.len() <= limit, "{limit}: {}", uri.len());
        assert_partition(&uri, &tv, &rv, &got.dropped);
        assert_eq!(got.dropped.is_empty(), limit == 16384, "{limit}");
    }
}

#[test]
fn mandatory_headers_that_do_not_fit_are_an_error() {
    let tv = obj(&[("a", json!("1"))]);
    let p = Profile::default();
    let mut c = cfg();
    // "sip:sbc.example.com?X-GA-extConId=conv-12345" is 44 bytes.
    c.max_uri_len = 43;
    let err = render(&request(Method::Refer, Some(TARGET), &tv, &tv, &p), &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot emit mandatory header X-GA-extConId: does not fit within the 43-byte URI limit"
    );
    c.max_uri_len = 44;
    let err = render(&request(Method::Refer, Some(TARGET), &tv, &tv, &p), &c).unwrap_err();
    assert!(matches!(err, SipError::MandatoryHeader { name, .. } if name == "X-GA-transfer"));
    c.max_uri_len = 10;
    let err = render(&request(Method::Invite, Some(TARGET), &tv, &tv, &p), &c).unwrap_err();
    assert_eq!(err, SipError::TargetTooLong { len: 19, limit: 10 });
}

#[test]
fn profile_uri_limit_is_the_smaller_one() {
    let tv: Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!("value"))).collect();
    let rv = obj(&[]);
    let p = Profile {
        max_uri_len: Some(300),
        ..Profile::default()
    };
    let got = render(&request(Method::Refer, Some(TARGET), &tv, &rv, &p), &cfg()).unwrap();
    assert!(refer_to(&got).len() <= 300 && refer_to(&got).len() > 280);
    let mut c = cfg();
    c.max_uri_len = 200;
    let got = render(&request(Method::Refer, Some(TARGET), &tv, &rv, &p), &c).unwrap();
    assert!(refer_to(&got).len() <= 200 && refer_to(&got).len() > 180);
}

fn twilio() -> (SipConfig, Profile) {
    let mut c = cfg();
    c.max_uri_len = 8192;
    let p = c.profile(Some("twilio")).unwrap();
    (c, p)
}

#[test]
fn twilio_header_part_under_1024_and_x_names_only() {
    let (c, p) = twilio();
    let tv: Map<String, Value> = (0..100)
        .map(|i| (format!("k{i:02}"), json!("0123456789")))
        .collect();
    let rv = obj(&[]);
    let extra = [
        ("Customer".to_string(), "1".to_string()),
        ("x-customer".to_string(), "2".to_string()),
    ];
    let mut req = request(Method::Refer, Some(TARGET), &tv, &rv, &p);
    req.extra_headers = &extra;
    let got = render(&req, &c).unwrap();
    let uri = refer_to(&got);
    let part = uri.split_once('?').unwrap().1;
    assert!(part.len() <= 1023 && part.len() > 990, "{}", part.len());
    assert_eq!(got.dropped[0], "Customer");
    assert!(uri.contains("&x-customer=2&"));
    assert_partition(&uri, &tv, &rv, &got.dropped);
    let long = format!("sip:{}.example.com", "a".repeat(240));
    let err = render(&request(Method::Invite, Some(&long), &tv, &rv, &p), &c).unwrap_err();
    assert_eq!(
        err,
        SipError::TargetTooLong {
            len: 256,
            limit: 255
        }
    );
}

#[test]
fn plivo_needs_its_prefix_and_short_names_and_values() {
    let mut c = cfg();
    let p = Profile::builtin("plivo").unwrap();
    let tv = obj(&[
        ("big", json!("x".repeat(121))),
        ("name-way-too-long", json!("v")),
        ("ok", json!("v")),
    ]);
    let rv = obj(&[("fits", json!("x".repeat(120)))]);
    let err = render(&request(Method::Invite, Some(TARGET), &tv, &rv, &p), &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot emit mandatory header X-GA-extConId: name lacks the profile prefix \"X-PH-\""
    );
    c.header_prefix = "X-PH-".into();
    assert_eq!(c.profile(Some("plivo")).unwrap(), p);
    for method in [Method::Refer, Method::Invite] {
        let mut req = request(method, Some(TARGET), &tv, &rv, &p);
        let extra = [("X-Other".to_string(), "1".to_string())];
        req.extra_headers = &extra;
        let got = render(&req, &c).unwrap();
        assert_eq!(
            got.dropped,
            ["X-Other", "X-PH-tv-big", "X-PH-tv-name-way-too-long"],
            "{method}"
        );
        assert_sound(&got);
        let back = parse_return(ReturnInput::Message(&got.message), "X-PH-").unwrap();
        assert_eq!(back.transfer_variables, obj(&[("ok", json!("v"))]));
        assert_eq!(back.reference_variables, rv);
    }
}
