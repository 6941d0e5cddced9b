//! Lexical rules shared by rendering and configuration checks: RFC 3261
//! tokens, header-safe values, reserved header names and target URIs.

use super::error::SipError;

/// Header names the bridge never emits on behalf of a variable or an extra
/// header (compared case-insensitively, RFC 3261 §7.3.1).
///
/// Two groups: the headers the bridge writes itself (a second copy would make
/// the message ambiguous, and compact forms from RFC 3261 §7.3.3 / RFC 3515
/// §2.1 count too), and the ones RFC 3261 §19.1.5 says must not be honoured
/// when they come from a URI (dangerous, or falsely advertising
/// capabilities). `body` is the special hname of RFC 3261 §19.1.1 that would
/// inject a message body.
const RESERVED: &[&str] = &[
    // Written by the bridge.
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Max-Forwards",
    "Contact",
    "m",
    "Content-Length",
    "l",
    "Content-Type",
    "c",
    "Content-Encoding",
    "e",
    "Refer-To",
    "r",
    "X-ASAPP-CallTransferId",
    // RFC 3261 §19.1.5.
    "Record-Route",
    "Route",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Allow",
    "Organization",
    "Supported",
    "k",
    "User-Agent",
    // RFC 3261 §19.1.1.
    "body",
];

/// Whether `name` is one of the [`RESERVED`] header names.
pub(super) fn is_reserved(name: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// RFC 3261 §25.1: `token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_"
/// / "+" / "`" / "'" / "~")`.
pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Whether `s` is a non-empty RFC 3261 token (the grammar of header names).
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Whether `s` contains a control character other than HTAB.
///
/// RFC 3261 §25.1 header values are `TEXT-UTF8char / LWS`: CR and LF only
/// appear as line folding, which we never emit, and other controls are not
/// allowed at all. Unicode C1 controls (e.g. NEL) are refused too because
/// some stacks treat them as line breaks.
pub(super) fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\t')
}

/// ASCII case-insensitive `starts_with` (header names are case-insensitive,
/// RFC 3261 §7.3.1).
pub(super) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Trims the LWS that RFC 3261 §7.3.1 says is not part of a header value.
pub(super) fn trim_lws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The kind of a validated target URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TargetKind {
    /// `sip:` or `sips:` — can carry URI headers (RFC 3261 §19.1.1).
    Sip,
    /// `tel:` (RFC 3966) — has no header component.
    Tel,
}

/// Validates a target minimally and returns it trimmed, with its kind.
///
/// The target is not round-tripped through rsip's URI parser because rsip
/// 0.4 rejects IPv6 hosts and `tel:` URIs. We only check what keeps the
/// message well-formed: scheme, a non-empty host, no character that could
/// leave the `<...>` of a name-addr or split the request line, and no `?`
/// (the bridge appends the URI headers itself).
pub(super) fn check_target(target: &str) -> Result<(&str, TargetKind), SipError> {
    let target = target.trim();
    let bad = |msg: &str| Err(SipError::InvalidTarget(msg.to_string()));
    let Some((scheme, rest)) = target.split_once(':') else {
        return bad("target is not a sip:, sips: or tel: URI");
    };
    let kind = if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        TargetKind::Sip
    } else if scheme.eq_ignore_ascii_case("tel") {
        TargetKind::Tel
    } else {
        return bad("target is not a sip:, sips: or tel: URI");
    };
    if let Some(c) = target
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '<' | '>' | '"' | '\\'))
    {
        return Err(SipError::InvalidTarget(format!(
            "target contains {c:?}, which is not allowed in a URI"
        )));
    }
    if target.contains('?') {
        return bad("target must not carry URI headers ('?'); the bridge adds them");
    }
    match kind {
        TargetKind::Sip => check_sip_host(rest)?,
        TargetKind::Tel if rest.is_empty() => return bad("tel: target has no number"),
        TargetKind::Tel => {}
    }
    Ok((target, kind))
}

/// Checks the `hostport` of a SIP URI (RFC 3261 §25.1), after the scheme.
fn check_sip_host(rest: &str) -> Result<(), SipError> {
    let bad = |msg: &str| Err(SipError::InvalidTarget(msg.to_string()));
    // userinfo ends at the last '@': '@' cannot appear unescaped later on.
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split(';').next().unwrap_or_default();
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => split_ipv6(v6)?,
        None => {
            let (host, port) = hostport
                .split_once(':')
                .map_or((hostport, None), |(h, p)| (h, Some(p)));
            if !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            {
                return bad("target host is not a domain name or IP address");
            }
            (host, port)
        }
    };
    if host.is_empty() {
        return bad("target has an empty host");
    }
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("target port is not a number");
    }
    Ok(())
}

/// Splits `2001:db8::1]:5060` (after the `[`) into address and port.
fn split_ipv6(v6: &str) -> Result<(&str, Option<&str>), SipError> {
    let bad = |msg: &str| Err(SipError::InvalidTarget(msg.to_string()));
    let Some((addr, after)) = v6.split_once(']') else {
        return bad("target has an IPv6 host without a closing ']'");
    };
    if addr.is_empty()
        || !addr
            .chars()
            .all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
    {
        return bad("target has an invalid IPv6 host");
    }
    // Anything after ']' must be ":port"; "]x" is reported as a bad port.
    let port = match after {
        "" => None,
        a => Some(a.strip_prefix(':').unwrap_or(a)),
    };
    Ok((addr, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accepted() {
        for t in [
            "sip:sbc.example.com",
            "sips:+15551234@sbc.example.com:5061;transport=tls",
            "sip:[2001:db8::1]:5060",
            "sip:[2001:db8::1]",
            "tel:+1-201-555-0123",
            " sip:a@b ",
        ] {
            assert!(check_target(t).is_ok(), "{t}");
        }
        assert_eq!(check_target("tel:+1").unwrap().1, TargetKind::Tel);
        assert_eq!(check_target("SIPS:x").unwrap().1, TargetKind::Sip);
    }

    #[test]
    fn targets_refused_with_reason() {
        let cases = [
            ("http://x", "not a sip:, sips: or tel: URI"),
            ("sbc.example.com", "not a sip:, sips: or tel: URI"),
            ("sip:", "empty host"),
            ("sip:a@", "empty host"),
            ("sip:a b", "not allowed"),
            ("sip:a>b", "not allowed"),
            ("sip:a\r\nX: y", "not allowed"),
            ("sip:a?X=1", "URI headers"),
            ("sip:[2001:db8::1", "closing"),
            ("sip:[zz]", "invalid IPv6"),
            ("sip:host:50x", "port"),
            ("sip:host:", "port"),
            ("sip:[::1]x", "port"),
            ("sip://host", "not a domain"),
            ("tel:", "no number"),
            ("sip:café.example", "not allowed"),
        ];
        for (t, why) in cases {
            let err = check_target(t).unwrap_err().to_string();
            assert!(err.contains(why), "{t:?}: {err}");
        }
    }

    #[test]
    fn tokens_and_controls() {
        assert!(is_token("X-GA-tv-a.b!%*_+`'~"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a:b"));
        assert!(!is_token("café"));
        assert!(has_control("a\rb"));
        assert!(has_control("a\u{0}"));
        assert!(has_control("a\u{85}"));
        assert!(!has_control("a\tb café 😀"));
        assert!(is_reserved("call-id") && is_reserved("BODY") && !is_reserved("X-GA-x"));
        assert!(starts_with_ci("x-ga-A", "X-GA-") && !starts_with_ci("X-G", "X-GA-"));
        assert!(!starts_with_ci("é-GA-x", "X-GA-"));
        assert_eq!(trim_lws(" \ta b\t "), "a b");
    }
}
