use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn http_policy() -> CallbackPolicy {
    CallbackPolicy {
        allow_http: true,
        allowed_cidrs: vec![],
        ..CallbackPolicy::default()
    }
}

#[test]
fn forbidden_ranges() {
    let forbidden = [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "127.0.0.1",
        "127.255.0.9",
        "169.254.169.254",
        "192.0.0.170",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::",
        "::1",
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:7f00:1::1",
        "2002:c0a8:101::",
        "2001::1",
        "2001:db8::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "100::1",
    ];
    for s in forbidden {
        assert!(is_forbidden(ip(s)), "{s} should be forbidden");
    }
}

#[test]
fn public_addresses_allowed() {
    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "100.128.0.1",
        "192.169.0.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ];
    for s in public {
        assert_eq!(forbidden_reason(ip(s)), None, "{s} should be allowed");
    }
}

#[test]
fn reasons_are_precise() {
    let err = check_url(&CallbackPolicy::default(), "https://10.0.0.1/hook").unwrap_err();
    assert_eq!(err.to_string(), "address 10.0.0.1 is private (RFC 1918)");
    let reason = forbidden_reason(ip("::ffff:127.0.0.1")).unwrap();
    assert_eq!(reason, "loopback, via embedded IPv4 127.0.0.1");
    let reason = forbidden_reason(ip("169.254.169.254")).unwrap();
    assert!(reason.starts_with("link-local"), "{reason}");
}

#[test]
fn check_url_refuses_literal_and_obfuscated_hosts() {
    let policy = http_policy();
    let cases = [
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://10.0.0.1:8080/x", "10.0.0.1"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        ("http://[::1]:9000/", "::1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        // WHATWG URL parsing turns these IPv4 spellings into 127.0.0.1.
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
    ];
    for (url, addr) in cases {
        match check_url(&policy, url) {
            Err(SsrfError::Forbidden { addr: got, .. }) => assert_eq!(got, ip(addr), "{url}"),
            other => panic!("{url}: expected Forbidden, got {other:?}"),
        }
    }
}

#[test]
fn check_url_scheme_userinfo_and_host_rules() {
    let strict = CallbackPolicy::default();
    let e = check_url(&strict, "http://example.com/").unwrap_err();
    assert_eq!(e, SsrfError::HttpNotAllowed);
    assert!(e.to_string().contains("set webhook.allow_http"));
    assert!(check_url(&strict, "https://example.com/hook").is_ok());
    assert!(check_url(&http_policy(), "http://example.com/hook").is_ok());
    let ftp = check_url(&strict, "ftp://example.com/");
    assert_eq!(ftp, Err(SsrfError::UnsupportedScheme("ftp".into())));
    let creds = check_url(&strict, "https://user:pw@example.com/");
    assert_eq!(creds, Err(SsrfError::UserInfo));
    let user_only = check_url(&strict, "https://example.com@10.0.0.1/");
    assert_eq!(user_only, Err(SsrfError::UserInfo));
    assert!(matches!(
        check_url(&strict, "not a url"),
        Err(SsrfError::InvalidUrl(_))
    ));
    // Special schemes always have a host (WHATWG URL): an empty one is a
    // parse error, and `https:///path` reads `path` as the host.
    let no_host = check_url(&strict, "https://");
    assert!(
        matches!(no_host, Err(SsrfError::InvalidUrl(_))),
        "{no_host:?}"
    );
}

#[test]
fn allowed_cidrs_exempt_ranges() {
    let policy = CallbackPolicy {
        allow_http: true,
        allowed_cidrs: vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        ..CallbackPolicy::default()
    };
    assert!(check_url(&policy, "http://127.0.0.1:8080/").is_ok());
    assert!(check_url(&policy, "http://[::ffff:127.0.0.1]/").is_ok());
    assert!(check_url(&policy, "http://[fd00::5]/").is_ok());
    // Only the listed ranges are exempt.
    assert!(check_url(&policy, "http://10.0.0.1/").is_err());
    assert!(check_url(&policy, "http://[::1]/").is_err());
}

#[tokio::test]
async fn resolved_check_refuses_localhost() {
    let err = check_url_resolved(&http_policy(), "http://localhost/")
        .await
        .unwrap_err();
    match err {
        SsrfError::ResolvedForbidden { host, addr, .. } => {
            assert_eq!(host, "localhost");
            assert!(addr.is_loopback(), "{addr}");
        }
        other => panic!("expected ResolvedForbidden, got {other:?}"),
    }
    // Literals still go through the literal check.
    let literal = check_url_resolved(&http_policy(), "http://127.0.0.1/").await;
    assert!(matches!(literal, Err(SsrfError::Forbidden { .. })));
}

#[tokio::test]
async fn resolved_check_accepts_allowed_localhost() {
    let policy = CallbackPolicy {
        allow_http: true,
        allowed_cidrs: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        ..CallbackPolicy::default()
    };
    let url = check_url_resolved(&policy, "http://localhost:8080/cb")
        .await
        .unwrap();
    assert_eq!(url.port(), Some(8080));
}

#[tokio::test]
async fn guarded_resolver_refuses_localhost() {
    let resolver = GuardedResolver::new(http_policy());
    let name: Name = "localhost".parse().unwrap();
    let err = match resolver.resolve(name).await {
        Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
        Err(e) => e,
    };
    let ssrf = err.downcast_ref::<SsrfError>().expect("an SsrfError");
    assert!(
        matches!(ssrf, SsrfError::ResolvedForbidden { .. }),
        "{ssrf}"
    );
}

#[tokio::test]
async fn guarded_resolver_returns_vetted_addresses() {
    let policy = CallbackPolicy {
        allow_http: true,
        allowed_cidrs: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        ..CallbackPolicy::default()
    };
    let resolver = GuardedResolver::new(policy);
    let addrs: Vec<SocketAddr> = resolver
        .resolve("localhost".parse().unwrap())
        .await
        .unwrap()
        .collect();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
}

/// `webhook.allowed_hosts`: a listed host, by name or address in any
/// spelling, passes both the address check and the https requirement; a host
/// not listed is refused as before.
#[tokio::test]
async fn allowed_hosts_are_trusted_as_they_are() {
    let hosts = ["LocalHost.", "127.0.0.1", "[::1]"];
    let policy = CallbackPolicy {
        allowed_hosts: hosts.iter().map(|h| host_key(h)).collect(),
        ..CallbackPolicy::default()
    };
    for url in [
        "http://localhost:9/cb",
        "http://127.0.0.1:9/",
        "https://[::1]/x",
        "http://0x7f.0.0.1/",
    ] {
        assert!(check_url(&policy, url).is_ok(), "{url}");
        assert!(check_url_resolved(&policy, url).await.is_ok(), "{url}");
    }
    assert!(policy.trusts("localhost") && !policy.trusts("localhost.example"));
    assert_eq!(
        check_url(&policy, "http://127.0.0.2/"),
        Err(SsrfError::HttpNotAllowed)
    );
    assert!(matches!(
        check_url(&policy, "https://10.0.0.1/"),
        Err(SsrfError::Forbidden { .. })
    ));
    let resolver = GuardedResolver::new(policy);
    let addrs = resolver
        .resolve("localhost".parse().unwrap())
        .await
        .unwrap();
    assert!(addrs.into_iter().all(|a| a.ip().is_loopback()));
}
