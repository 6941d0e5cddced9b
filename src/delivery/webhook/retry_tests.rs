use super::*;
use reqwest::header::HeaderValue;

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn no_jitter() -> RetryPolicy {
    RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::default()
    }
}

fn with_header(name: &'static str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).unwrap());
    h
}

#[test]
fn schedule_and_exhaustion() {
    let p = no_jitter();
    let expected = [
        Duration::ZERO,
        Duration::from_secs(5),
        5 * MIN,
        30 * MIN,
        2 * HOUR,
        5 * HOUR,
        10 * HOUR,
        10 * HOUR,
    ];
    assert_eq!(p.max_attempts(), 8);
    for (i, want) in expected.iter().enumerate() {
        let attempt = u32::try_from(i).unwrap() + 1;
        assert_eq!(
            p.delay_before(attempt, None),
            Some(*want),
            "attempt {attempt}"
        );
    }
    assert_eq!(p.delay_before(9, None), None);
    assert_eq!(p.delay_before(u32::MAX, None), None);
    assert_eq!(p.delay_before(0, None), Some(Duration::ZERO));
}

#[test]
fn jitter_stays_within_bounds_and_varies() {
    let p = RetryPolicy::default(); // jitter 0.2
    let base = 30 * MIN;
    let samples: Vec<Duration> = (0..500).map(|_| p.delay_before(4, None).unwrap()).collect();
    for d in &samples {
        assert!(*d >= base.mul_f64(0.8) && *d <= base.mul_f64(1.2), "{d:?}");
    }
    assert!(
        samples.iter().any(|d| *d != samples[0]),
        "jitter not applied"
    );
    // The immediate first attempt stays immediate.
    assert_eq!(p.delay_before(1, None), Some(Duration::ZERO));
}

#[test]
fn extreme_jitter_is_clamped_not_negative() {
    for jitter in [5.0, -3.0, f64::NAN, f64::INFINITY] {
        let p = RetryPolicy {
            jitter,
            ..RetryPolicy::default()
        };
        for _ in 0..100 {
            let d = p.delay_before(2, None).unwrap();
            assert!(d <= Duration::from_secs(10), "jitter {jitter}: {d:?}");
        }
    }
}

#[test]
fn retry_after_is_a_capped_minimum() {
    let p = no_jitter();
    // A hint longer than the schedule is honoured...
    let d = p.delay_before(2, Some(10 * MIN));
    assert_eq!(d, Some(10 * MIN));
    // ...but capped at max_retry_after (1h by default).
    assert_eq!(p.delay_before(2, Some(48 * HOUR)), Some(HOUR));
    // A shorter hint never speeds up the schedule.
    assert_eq!(p.delay_before(5, Some(MIN)), Some(2 * HOUR));
    // Exhaustion wins over any hint.
    assert_eq!(p.delay_before(9, Some(MIN)), None);
}

#[test]
fn classify_success_and_stop() {
    let none = HeaderMap::new();
    assert_eq!(classify(StatusCode::OK, &none), Verdict::Delivered);
    assert_eq!(classify(StatusCode::NO_CONTENT, &none), Verdict::Delivered);
    assert!(matches!(
        classify(StatusCode::GONE, &none),
        Verdict::Stop { .. }
    ));
    let abort = with_header(HEADER_DELIVERY, "Abort-Message");
    match classify(StatusCode::INTERNAL_SERVER_ERROR, &abort) {
        Verdict::Stop { reason } => assert!(reason.contains("abort-message"), "{reason}"),
        other => panic!("expected Stop, got {other:?}"),
    }
    let other_value = with_header(HEADER_DELIVERY, "keep-going");
    assert!(matches!(
        classify(StatusCode::INTERNAL_SERVER_ERROR, &other_value),
        Verdict::Retry { .. }
    ));
}

#[test]
fn classify_redirects_and_errors_retry() {
    let loc = with_header("location", "http://127.0.0.1/");
    for code in [301, 302, 307, 308] {
        let status = StatusCode::from_u16(code).unwrap();
        match classify(status, &loc) {
            Verdict::Retry {
                retry_after: None,
                reason,
            } => assert!(reason.contains("redirect"), "{reason}"),
            other => panic!("{code}: {other:?}"),
        }
    }
    for code in [400, 404, 500, 502, 504] {
        let status = StatusCode::from_u16(code).unwrap();
        let v = classify(status, &with_header("retry-after", "30"));
        // Retry-After is only read for 429/503.
        assert!(
            matches!(
                v,
                Verdict::Retry {
                    retry_after: None,
                    ..
                }
            ),
            "{code}: {v:?}"
        );
    }
}

#[test]
fn classify_reads_retry_after_seconds_and_date() {
    let v = classify(
        StatusCode::TOO_MANY_REQUESTS,
        &with_header("retry-after", "120"),
    );
    assert!(matches!(v, Verdict::Retry { retry_after: Some(d), .. } if d == 2 * MIN));
    let later = SystemTime::now() + Duration::from_secs(600);
    let date = httpdate::fmt_http_date(later);
    match classify(
        StatusCode::SERVICE_UNAVAILABLE,
        &with_header("retry-after", &date),
    ) {
        Verdict::Retry {
            retry_after: Some(d),
            ..
        } => assert!(
            d > Duration::from_secs(590) && d <= Duration::from_secs(600),
            "{d:?}"
        ),
        other => panic!("expected a Retry-After, got {other:?}"),
    }
    let v = classify(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new());
    assert!(matches!(
        v,
        Verdict::Retry {
            retry_after: None,
            ..
        }
    ));
}

#[test]
fn parse_retry_after_forms() {
    let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    let p = |s| parse_retry_after(s, now);
    assert_eq!(p("0"), Some(Duration::ZERO));
    assert_eq!(p(" 42 "), Some(Duration::from_secs(42)));
    assert_eq!(p("Sun, 06 Nov 1994 08:51:37 GMT"), Some(2 * MIN));
    // RFC 850 and asctime forms are valid HTTP-dates too (RFC 9110 §5.6.7).
    assert_eq!(p("Sunday, 06-Nov-94 08:50:37 GMT"), Some(MIN));
    assert_eq!(p("Sun Nov  6 08:50:37 1994"), Some(MIN));
    assert_eq!(p("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(p("-5"), None);
    assert_eq!(p("soon"), None);
    assert_eq!(p(""), None);
}

#[test]
fn policy_serde_roundtrip_uses_humantime() {
    let p = RetryPolicy::default();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["schedule"][2], "5m");
    assert_eq!(json["max_retry_after"], "1h");
    let back: RetryPolicy = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
}
