//! URI headers (`sip:host?name=value&...`, RFC 3261 §19.1.1), which rsip
//! 0.4 does not support: its `Uri.headers` is a placeholder and its parser
//! fails on `?` after a port. Escaping and unescaping live here.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::error::SipError;

/// Bytes that must be escaped in an `hname` or `hvalue` (RFC 3261 §25.1):
///
/// ```text
/// hname          = 1*( hnv-unreserved / unreserved / escaped )
/// hvalue         = *( hnv-unreserved / unreserved / escaped )
/// hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
/// unreserved     = alphanum / mark
/// mark           = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
/// ```
///
/// Everything else, notably `%`, `&`, `=`, `;`, `<`, `>`, `"`, space and
/// all controls, is escaped; non-ASCII bytes always are.
pub(super) const HEADER_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    // mark
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    // hnv-unreserved
    .remove(b'[')
    .remove(b']')
    .remove(b'/')
    .remove(b'?')
    .remove(b':')
    .remove(b'+')
    .remove(b'$');

/// Escapes an hname or hvalue.
pub(super) fn escape(s: &str) -> String {
    utf8_percent_encode(s, HEADER_ESCAPE).to_string()
}

/// One `hname=hvalue` pair, escaped.
pub(super) fn pair(name: &str, value: &str) -> String {
    format!("{}={}", escape(name), escape(value))
}

/// Splits a URI at the first `?` into the base and the header part.
///
/// The first `?` is the right one for every URI the bridge emits: targets
/// with `?` (legal only in a user part, RFC 3261 §25.1 `user-unreserved`)
/// are refused on the way out.
pub(super) fn split(uri: &str) -> (&str, Option<&str>) {
    match uri.split_once('?') {
        Some((base, headers)) => (base, Some(headers)),
        None => (uri, None),
    }
}

/// Parses a header part (after `?`) into unescaped `(name, value)` pairs.
///
/// Strict about what breaks meaning (bad `%` escapes, invalid UTF-8, empty
/// names, a missing `=`, characters that cannot appear in a URI at all) and
/// lenient about printable reserved characters such as `@`, `;` or `,`
/// that many PBXs leave unescaped.
pub(super) fn parse(part: &str) -> Result<Vec<(String, String)>, SipError> {
    part.split('&')
        .enumerate()
        .map(|(i, header)| {
            let Some((name, value)) = header.split_once('=') else {
                return Err(SipError::malformed(format!(
                    "URI header {} (\"{header}\") has no '='",
                    i + 1
                )));
            };
            let name = unescape(name, "URI header name")?;
            if name.is_empty() {
                return Err(SipError::malformed(format!(
                    "URI header {} has an empty name",
                    i + 1
                )));
            }
            let value = unescape(value, &format!("value of URI header {name}"))?;
            Ok((name, value))
        })
        .collect()
}

/// Strict percent-unescaping: the `percent-encoding` decoder passes invalid
/// escapes through silently, so they are checked first.
pub(super) fn unescape(s: &str, what: &str) -> Result<String, SipError> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                let end = (i + 3).min(s.len());
                let shown = String::from_utf8_lossy(&bytes[i..end]);
                return Err(SipError::malformed(format!(
                    "bad percent-escape \"{shown}\" in {what} (RFC 3261 §25.1 escaped = \"%\" HEXDIG HEXDIG)"
                )));
            }
        } else if !b.is_ascii_graphic() || matches!(b, b'<' | b'>' | b'"') {
            let c = s[i..].chars().next().unwrap_or_default();
            return Err(SipError::malformed(format!(
                "{what} contains {c:?}, which must be percent-escaped in a URI"
            )));
        }
    }
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| SipError::malformed(format!("{what} is not valid UTF-8 once unescaped")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_exactly_what_the_grammar_requires() {
        assert_eq!(escape("AZaz09-_.!~*'()[]/?:+$"), "AZaz09-_.!~*'()[]/?:+$");
        assert_eq!(
            escape("%&=;<>\" \r\n\0@,#"),
            "%25%26%3D%3B%3C%3E%22%20%0D%0A%00%40%2C%23"
        );
        assert_eq!(escape("%0d%0a"), "%250d%250a");
        assert_eq!(escape("café"), "caf%C3%A9");
        assert_eq!(escape("😀"), "%F0%9F%98%80");
        assert_eq!(pair("X-GA-tv-a b", "x=y&z"), "X-GA-tv-a%20b=x%3Dy%26z");
    }

    #[test]
    fn every_ascii_byte_round_trips() {
        let all: String = (0u8..=127).map(char::from).collect();
        let escaped = escape(&all);
        assert!(escaped.bytes().all(|b| b.is_ascii_graphic()));
        assert!(!escaped.contains(['&', '=', '<', '>', '"', ';']));
        assert_eq!(unescape(&escaped, "t").unwrap(), all);
    }

    #[test]
    fn parses_and_unescapes() {
        let got = parse("a=1&X-GA-tv-p%20q=%250d%250a&e=&u=caf%C3%A9&l=a@b;c,d").unwrap();
        let want = [
            ("a", "1"),
            ("X-GA-tv-p q", "%0d%0a"),
            ("e", ""),
            ("u", "café"),
            ("l", "a@b;c,d"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(parse("a=b=c").unwrap()[0].1, "b=c");
        assert_eq!(parse("a=1+2").unwrap()[0].1, "1+2");
    }

    #[test]
    fn rejects_malformed_with_reasons() {
        let cases = [
            ("a=%zz", "bad percent-escape \"%zz\""),
            ("a=%4", "bad percent-escape \"%4\""),
            ("a=%", "bad percent-escape \"%\""),
            ("a=%C3", "not valid UTF-8"),
            ("a=%FF", "not valid UTF-8"),
            ("a", "has no '='"),
            ("a=1&&b=2", "URI header 2 (\"\") has no '='"),
            ("", "has no '='"),
            ("=1", "empty name"),
            ("a=x y", "' '"),
            ("a=<", "'<'"),
            ("a=\r\n", "'\\r'"),
            ("a=é", "'é'"),
        ];
        for (part, want) in cases {
            let err = parse(part).unwrap_err().to_string();
            assert!(err.contains(want), "{part:?}: {err}");
        }
    }

    #[test]
    fn splits_at_first_question_mark() {
        assert_eq!(split("sip:h?a=1?&b=2"), ("sip:h", Some("a=1?&b=2")));
        assert_eq!(split("sip:h"), ("sip:h", None));
    }
}
