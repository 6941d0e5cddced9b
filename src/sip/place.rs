//! Decides, candidate by candidate, which headers are emitted and which are
//! dropped, either as plain message headers or as URI headers under a
//! length budget. Nothing is dropped silently: every refused optional
//! header is listed by name, and a refused mandatory one is an error.

use super::config::Profile;
use super::error::SipError;
use super::rules::{has_control, is_reserved, is_token, starts_with_ci, trim_lws};
use super::uri_headers;

/// How a refusal is handled and which rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Refusal is an error (the vendor cannot correlate without it).
    Mandatory,
    /// Refusal lists the name in `dropped`.
    Optional,
    /// RFC 7433 `User-to-User`: a standard header, so the profile's
    /// custom-name rules do not apply; refusal lists it in `dropped`.
    Uui,
}

/// A header the bridge would like to emit.
#[derive(Clone, Debug)]
pub(super) struct Candidate {
    /// Full header name, e.g. `X-GA-tv-priority`.
    pub name: String,
    /// Unescaped value.
    pub value: String,
    /// Handling of a refusal.
    pub kind: Kind,
    /// Set when the candidate was refused before placement (e.g. an extra
    /// header spoofing a vendor name, or a UUI value over its cap).
    pub refused: Option<&'static str>,
}

impl Candidate {
    /// A candidate that is not refused up front.
    pub fn new(name: String, value: String, kind: Kind) -> Self {
        Self {
            name,
            value,
            kind,
            refused: None,
        }
    }
}

/// The outcome of placement.
#[derive(Debug, Default)]
pub(super) struct Placement {
    /// Emitted headers, in order, with their final (unescaped) values.
    pub headers: Vec<(String, String)>,
    /// Names of refused optional candidates, in order.
    pub dropped: Vec<String>,
}

impl Placement {
    fn refuse(&mut self, c: Candidate, reason: String) -> Result<(), SipError> {
        match c.kind {
            Kind::Mandatory => Err(SipError::MandatoryHeader {
                name: c.name,
                reason,
            }),
            Kind::Optional | Kind::Uui => {
                self.dropped.push(c.name);
                Ok(())
            }
        }
    }

    /// The rules common to plain and URI headers; `None` means acceptable.
    fn refusal(&self, c: &Candidate, profile: &Profile) -> Option<String> {
        if let Some(r) = c.refused {
            return Some(r.to_string());
        }
        // Even inside a URI the name must be a token: the PBX turns URI
        // headers into real headers (RFC 3261 §19.1.5), so an escaped space
        // or colon would only move the injection one hop further.
        if !is_token(&c.name) {
            return Some("name is not an RFC 3261 token".into());
        }
        if is_reserved(&c.name) {
            return Some("name is reserved (RFC 3261 §19.1.5)".into());
        }
        // Names are case-insensitive (RFC 3261 §7.3.1): "a" and "A" collide.
        if self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&c.name))
        {
            return Some("a header of this name is already emitted".into());
        }
        // Same reason as for names: an escaped CR LF in a URI becomes a raw
        // one at the PBX.
        if has_control(&c.value) {
            return Some("value contains control characters".into());
        }
        if c.kind == Kind::Uui {
            return None;
        }
        profile_refusal(c, profile)
    }
}

/// The profile's custom-header rules.
fn profile_refusal(c: &Candidate, profile: &Profile) -> Option<String> {
    if let Some(p) = &profile.name_prefix
        && !starts_with_ci(&c.name, p)
    {
        return Some(format!("name lacks the profile prefix \"{p}\""));
    }
    if let Some(max) = profile.max_name_len.filter(|m| c.name.len() > *m) {
        return Some(format!("name is longer than the profile's {max} bytes"));
    }
    if let Some(max) = profile.max_value_len.filter(|m| c.value.len() > *m) {
        return Some(format!("value is longer than the profile's {max} bytes"));
    }
    None
}

/// Places candidates as plain message headers (INVITE, BYE, REFER to a
/// `tel:` target). Values lose their surrounding LWS, which RFC 3261 §7.3.1
/// says is not part of the value anyway.
pub(super) fn plain(cands: Vec<Candidate>, profile: &Profile) -> Result<Placement, SipError> {
    let mut out = Placement::default();
    for mut c in cands {
        c.value = trim_lws(&c.value).to_string();
        match out.refusal(&c, profile) {
            Some(reason) => out.refuse(c, reason)?,
            None => out.headers.push((c.name, c.value)),
        }
    }
    Ok(out)
}

/// Length limits for a URI with headers.
#[derive(Clone, Copy, Debug)]
pub(super) struct UriLimits {
    /// Whole URI, in bytes.
    pub uri: usize,
    /// Escaped header part after `?`, in bytes.
    pub headers: Option<usize>,
}

/// Places candidates as URI headers of `base`, in order, skipping those that
/// would overflow a limit (later, smaller ones may still fit). Returns the
/// full URI. Values are kept exactly (they are escaped, not trimmed).
pub(super) fn uri(
    base: &str,
    cands: Vec<Candidate>,
    profile: &Profile,
    limits: UriLimits,
) -> Result<(String, Placement), SipError> {
    let mut out = Placement::default();
    let mut part = String::new();
    for c in cands {
        if let Some(reason) = out.refusal(&c, profile) {
            out.refuse(c, reason)?;
            continue;
        }
        let piece = uri_headers::pair(&c.name, &c.value);
        let part_len = part.len() + usize::from(!part.is_empty()) + piece.len();
        // +1 for the '?' that introduces the headers (RFC 3261 §19.1.1).
        if base.len() + 1 + part_len > limits.uri {
            out.refuse(
                c,
                format!("does not fit within the {}-byte URI limit", limits.uri),
            )?;
            continue;
        }
        if let Some(max) = limits.headers.filter(|m| part_len > *m) {
            out.refuse(
                c,
                format!("does not fit within the {max}-byte URI-header limit"),
            )?;
            continue;
        }
        if !part.is_empty() {
            part.push('&');
        }
        part.push_str(&piece);
        out.headers.push((c.name, c.value));
    }
    let uri = if part.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{part}")
    };
    Ok((uri, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(n: &str, v: &str) -> Candidate {
        Candidate::new(n.into(), v.into(), Kind::Optional)
    }

    #[test]
    fn plain_refuses_and_trims() {
        let cands = vec![
            opt("X-a", " v \t"),
            opt("X-A", "dup"),
            opt("X b", "v"),
            opt("Call-ID", "v"),
            opt("X-c", "a\r\nEvil: y"),
            Candidate {
                refused: Some("spoof"),
                ..opt("X-d", "v")
            },
        ];
        let p = plain(cands, &Profile::default()).unwrap();
        assert_eq!(p.headers, vec![("X-a".to_string(), "v".to_string())]);
        assert_eq!(p.dropped, ["X-A", "X b", "Call-ID", "X-c", "X-d"]);
    }

    #[test]
    fn mandatory_refusal_is_an_error() {
        let c = Candidate::new("X-GA-extConId".into(), "a\nb".into(), Kind::Mandatory);
        let err = plain(vec![c], &Profile::default()).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot emit mandatory header X-GA-extConId: value contains control characters"
        );
    }

    #[test]
    fn uri_budget_skips_big_and_keeps_smaller() {
        let limits = UriLimits {
            uri: 30,
            headers: None,
        };
        // ("c" alone would be refused: it is Content-Type's compact form.)
        let cands = vec![opt("a", "1"), opt("b", &"x".repeat(30)), opt("d", "2")];
        let (got, p) = uri("sip:h.example", cands, &Profile::default(), limits).unwrap();
        assert_eq!(got, "sip:h.example?a=1&d=2");
        assert_eq!(p.dropped, ["b"]);
        let limits = UriLimits {
            uri: 100,
            headers: Some(4),
        };
        let (got, p) = uri(
            "sip:h",
            vec![opt("a", "1"), opt("d", "2")],
            &Profile::default(),
            limits,
        )
        .unwrap();
        assert_eq!(
            (got.as_str(), p.dropped),
            ("sip:h?a=1", vec!["d".to_string()])
        );
    }

    #[test]
    fn uri_exact_fit_boundary() {
        // "sip:h?a=1" is 9 bytes: fits at 9, not at 8.
        let fit = |n| {
            uri(
                "sip:h",
                vec![opt("a", "1")],
                &Profile::default(),
                UriLimits {
                    uri: n,
                    headers: None,
                },
            )
        };
        assert_eq!(fit(9).unwrap().0, "sip:h?a=1");
        assert_eq!(fit(8).unwrap().0, "sip:h");
    }

    #[test]
    fn profile_rules() {
        let p = Profile {
            name_prefix: Some("X-PH-".into()),
            max_name_len: Some(8),
            max_value_len: Some(3),
            ..Profile::default()
        };
        let cands = vec![
            opt("x-ph-ok", "abc"),
            opt("X-GA-a", "v"),
            opt("X-PH-long", "v"),
            opt("X-PH-v", "abcd"),
            Candidate::new("User-to-User".into(), "abcdef".into(), Kind::Uui),
        ];
        let out = plain(cands, &p).unwrap();
        assert_eq!(out.dropped, ["X-GA-a", "X-PH-long", "X-PH-v"]);
        assert_eq!(out.headers.len(), 2);
    }
}
