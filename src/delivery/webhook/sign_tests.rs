use super::*;
use reqwest::header::HeaderValue;

// Official Standard Webhooks / Svix test vector. Checked independently with:
// python3 -c 'import hmac,hashlib,base64;print("v1,"+base64.b64encode(hmac.new(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}",hashlib.sha256).digest()).decode())'
// which prints v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TS: i64 = 1_614_265_330;
const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn vector_secret() -> WebhookSecret {
    VECTOR_SECRET.parse().unwrap()
}

fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HEADER_ID, HeaderValue::from_str(id).unwrap());
    h.insert(HEADER_TIMESTAMP, HeaderValue::from(ts));
    h.insert(HEADER_SIGNATURE, HeaderValue::from_str(sig).unwrap());
    h
}

#[test]
fn known_answer_vector() {
    assert_eq!(
        sign(&vector_secret(), VECTOR_ID, VECTOR_TS, VECTOR_BODY),
        VECTOR_SIG
    );
}

#[test]
fn rotation_header_lists_every_secret_in_order() {
    let current = WebhookSecret::generate();
    let previous = vector_secret();
    let header = signature_header(
        &[current.clone(), previous],
        VECTOR_ID,
        VECTOR_TS,
        VECTOR_BODY,
    );
    let expected_first = sign(&current, VECTOR_ID, VECTOR_TS, VECTOR_BODY);
    assert_eq!(header, format!("{expected_first} {VECTOR_SIG}"));
    assert_eq!(signature_header(&[], VECTOR_ID, VECTOR_TS, VECTOR_BODY), "");
}

#[test]
fn verify_accepts_vector_and_rotated_header() {
    let secrets = [vector_secret()];
    let h = headers(VECTOR_ID, VECTOR_TS, VECTOR_SIG);
    assert_eq!(
        verify_at(&secrets, &h, VECTOR_BODY, DEFAULT_TOLERANCE, VECTOR_TS),
        Ok(())
    );
    // A receiver that only knows the old secret still accepts a rotated header,
    // and unknown schemes (v1a) are skipped rather than failing the whole header.
    let rotated = format!("v1a,AAAA v1,bm90LWEtc2lnbmF0dXJl {VECTOR_SIG}");
    let h = headers(VECTOR_ID, VECTOR_TS, &rotated);
    assert_eq!(
        verify_at(&secrets, &h, VECTOR_BODY, DEFAULT_TOLERANCE, VECTOR_TS),
        Ok(())
    );
}

#[test]
fn verify_rejects_tampering() {
    let secrets = [vector_secret()];
    let tol = DEFAULT_TOLERANCE;
    let bad_body = verify_at(
        &secrets,
        &headers(VECTOR_ID, VECTOR_TS, VECTOR_SIG),
        br#"{"test": 2432232315}"#,
        tol,
        VECTOR_TS,
    );
    assert_eq!(bad_body, Err(VerifyError::NoMatchingSignature));
    let bad_id = verify_at(
        &secrets,
        &headers("msg_other", VECTOR_TS, VECTOR_SIG),
        VECTOR_BODY,
        tol,
        VECTOR_TS,
    );
    assert_eq!(bad_id, Err(VerifyError::NoMatchingSignature));
    let bad_ts = verify_at(
        &secrets,
        &headers(VECTOR_ID, VECTOR_TS + 1, VECTOR_SIG),
        VECTOR_BODY,
        tol,
        VECTOR_TS,
    );
    assert_eq!(bad_ts, Err(VerifyError::NoMatchingSignature));
    let wrong_key = [WebhookSecret::generate()];
    let h = headers(VECTOR_ID, VECTOR_TS, VECTOR_SIG);
    assert_eq!(
        verify_at(&wrong_key, &h, VECTOR_BODY, tol, VECTOR_TS),
        Err(VerifyError::NoMatchingSignature)
    );
}

#[test]
fn verify_enforces_tolerance_both_ways() {
    let secrets = [vector_secret()];
    let h = headers(VECTOR_ID, VECTOR_TS, VECTOR_SIG);
    let tol = Duration::from_secs(300);
    let at = |now| verify_at(&secrets, &h, VECTOR_BODY, tol, now);
    assert_eq!(at(VECTOR_TS + 300), Ok(()));
    assert_eq!(at(VECTOR_TS - 300), Ok(()));
    for now in [VECTOR_TS + 301, VECTOR_TS - 301] {
        assert_eq!(
            at(now),
            Err(VerifyError::TimestampOutOfTolerance {
                timestamp: VECTOR_TS,
                now
            })
        );
    }
    // The real-clock entry point rejects a 2021 timestamp as far too old.
    assert!(matches!(
        verify(&secrets, &h, VECTOR_BODY, tol),
        Err(VerifyError::TimestampOutOfTolerance { .. })
    ));
}

#[test]
fn verify_reports_missing_and_malformed_headers() {
    let secrets = [vector_secret()];
    let mut h = headers(VECTOR_ID, VECTOR_TS, VECTOR_SIG);
    h.remove(HEADER_SIGNATURE);
    let r = verify_at(&secrets, &h, VECTOR_BODY, DEFAULT_TOLERANCE, VECTOR_TS);
    assert_eq!(r, Err(VerifyError::MissingHeader(HEADER_SIGNATURE)));
    h.insert(HEADER_SIGNATURE, HeaderValue::from_static(VECTOR_SIG));
    h.insert(HEADER_TIMESTAMP, HeaderValue::from_static("soon"));
    let r = verify_at(&secrets, &h, VECTOR_BODY, DEFAULT_TOLERANCE, VECTOR_TS);
    assert_eq!(r, Err(VerifyError::InvalidHeader(HEADER_TIMESTAMP)));
}

#[test]
fn secret_parse_errors_name_the_problem() {
    let parse = |s: &str| s.parse::<WebhookSecret>().err();
    assert_eq!(
        parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        Some(SecretError::MissingPrefix)
    );
    assert_eq!(parse("whsec_"), Some(SecretError::Empty));
    assert_eq!(parse("whsec_not base64!"), Some(SecretError::InvalidBase64));
    assert_eq!(parse("whsec_dGVzdA=="), Some(SecretError::TooShort(4)));
    let long = format!("whsec_{}", BASE64.encode([7u8; 65]));
    assert_eq!(parse(&long), Some(SecretError::TooLong(65)));
    let msg = SecretError::MissingPrefix.to_string();
    assert!(msg.contains("must start with whsec_"), "{msg}");
    assert!(WebhookSecret::try_from(VECTOR_SECRET).is_ok());
}

#[test]
fn secret_never_printed() {
    let secret = vector_secret();
    assert_eq!(format!("{secret:?}"), "WebhookSecret(**redacted**)");
    let err = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!"
        .parse::<WebhookSecret>()
        .unwrap_err();
    assert!(!err.to_string().contains("MfKQ9"));
    assert_eq!(secret.expose_whsec(), VECTOR_SECRET);
    let generated = WebhookSecret::generate();
    let again: WebhookSecret = generated.expose_whsec().parse().unwrap();
    assert_eq!(
        sign(&generated, "m", 1, b"x"),
        sign(&again, "m", 1, b"x"),
        "expose_whsec must round-trip"
    );
}
