//! The `[sip]` configuration section and the per-platform [`Profile`]s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::SipError;
use super::rules::{check_target, is_token, is_token_byte, starts_with_ci};
use super::vendor::mandatory_names;

/// The `[sip]` TOML section (snake_case keys, unknown keys rejected).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Prefix of every vendor header, `X-GA-` by default. Must consist of
    /// RFC 3261 token characters (it may be empty).
    pub header_prefix: String,
    /// Limit on the whole Refer-To URI (what sits between `<` and `>`) and on
    /// the request-URI, in bytes. 1024 by default.
    pub max_uri_len: usize,
    /// Used when neither the route nor the transfer gives a target.
    pub default_target: Option<String>,
    /// RFC 7433 User-to-User settings.
    pub uui: UuiConfig,
    /// User-defined profiles, merged field by field over the built-ins of the
    /// same name (see [`SipConfig::profile`]).
    pub profiles: BTreeMap<String, Profile>,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            header_prefix: "X-GA-".to_string(),
            max_uri_len: 1024,
            default_target: None,
            uui: UuiConfig::default(),
            profiles: BTreeMap::new(),
        }
    }
}

/// RFC 7433 User-to-User settings (`[sip.uui]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UuiConfig {
    /// Whether to emit a `User-to-User` header. Off by default.
    pub enabled: bool,
    /// Which transfer variable's value goes into the UUI (default `uui`).
    pub variable: String,
    /// The RFC 7433 `purpose` parameter (default `isdn-uui`); a token.
    pub purpose: String,
    /// Cap on the value's bytes before hex encoding (default 128).
    pub max_bytes: usize,
}

impl Default for UuiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            variable: "uui".to_string(),
            purpose: "isdn-uui".to_string(),
            max_bytes: 128,
        }
    }
}

/// Limits that a real platform imposes on custom headers, selectable per
/// route. `None` means "no limit of this kind".
///
/// Name and value lengths are measured in bytes before percent-escaping
/// (what the platform sees once it turns URI headers into real headers);
/// `max_headers_len` is measured on the escaped header part after `?`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Limit on the whole URI; the smaller of this and
    /// [`SipConfig::max_uri_len`] applies.
    pub max_uri_len: Option<usize>,
    /// Limit on the URI-header part (after `?`, excluding the `?`).
    pub max_headers_len: Option<usize>,
    /// Required prefix (case-insensitive) of every custom header name.
    pub name_prefix: Option<String>,
    /// Limit on a custom header name.
    pub max_name_len: Option<usize>,
    /// Limit on a custom header value.
    pub max_value_len: Option<usize>,
    /// Limit on the target URI alone (the part before `?`). An addition to
    /// the original API, needed to express Twilio's 255-character SIP URI.
    pub max_target_len: Option<usize>,
}

impl Profile {
    /// The built-in profiles: `default` (no limits), `twilio` (target URI
    /// of at most 255 characters, header part fewer than 1024 characters,
    /// `X-` names only) and `plivo` (`X-PH-` names of at most 24 characters,
    /// values of at most 120).
    pub fn builtin(name: &str) -> Option<Profile> {
        match name {
            "default" => Some(Profile::default()),
            // Twilio error 21227: "Headers portion of SIP URI must be fewer
            // than 1024 chars"; error 32113: only X- extension headers.
            "twilio" => Some(Profile {
                max_target_len: Some(255),
                max_headers_len: Some(1023),
                name_prefix: Some("X-".to_string()),
                ..Profile::default()
            }),
            "plivo" => Some(Profile {
                name_prefix: Some("X-PH-".to_string()),
                max_name_len: Some(24),
                max_value_len: Some(120),
                ..Profile::default()
            }),
            _ => None,
        }
    }

    /// Field-by-field merge: every `Some` of `over` wins.
    fn merged(self, over: &Profile) -> Profile {
        Profile {
            max_uri_len: over.max_uri_len.or(self.max_uri_len),
            max_headers_len: over.max_headers_len.or(self.max_headers_len),
            name_prefix: over.name_prefix.clone().or(self.name_prefix),
            max_name_len: over.max_name_len.or(self.max_name_len),
            max_value_len: over.max_value_len.or(self.max_value_len),
            max_target_len: over.max_target_len.or(self.max_target_len),
        }
    }

    fn validate(&self, name: &str) -> Result<(), SipError> {
        let bad = |what: &str| {
            Err(SipError::InvalidConfig(format!(
                "profile \"{name}\": {what}"
            )))
        };
        if let Some(p) = &self.name_prefix
            && !p.bytes().all(is_token_byte)
        {
            return bad("name_prefix must consist of RFC 3261 token characters");
        }
        let limits = [
            self.max_uri_len,
            self.max_headers_len,
            self.max_name_len,
            self.max_value_len,
            self.max_target_len,
        ];
        if limits.contains(&Some(0)) {
            return bad("limits must be greater than 0");
        }
        Ok(())
    }
}

impl SipConfig {
    /// Resolves a route's profile name (`None` means `default`): a
    /// user-defined profile is merged over the built-in of the same name, if
    /// any; an unknown name is an error.
    ///
    /// A profile whose name rules the mandatory vendor headers
    /// (`<header_prefix>extConId`, `<header_prefix>transfer`) cannot meet is
    /// an [`SipError::InvalidConfig`]: every render with it would fail, so
    /// resolving route profiles at start-up catches it early.
    pub fn profile(&self, name: Option<&str>) -> Result<Profile, SipError> {
        let name = name.unwrap_or("default");
        let profile = match (Profile::builtin(name), self.profiles.get(name)) {
            (Some(base), Some(user)) => base.merged(user),
            (Some(base), None) => base,
            (None, Some(user)) => user.clone(),
            (None, None) => return Err(SipError::UnknownProfile(name.to_string())),
        };
        for header in mandatory_names(&self.header_prefix) {
            if let Some(p) = profile
                .name_prefix
                .as_deref()
                .filter(|p| !starts_with_ci(&header, p))
            {
                return Err(SipError::InvalidConfig(format!(
                    "profile \"{name}\" requires header names starting with \"{p}\", \
                     but header_prefix gives {header}"
                )));
            }
            if let Some(max) = profile.max_name_len.filter(|m| header.len() > *m) {
                return Err(SipError::InvalidConfig(format!(
                    "profile \"{name}\" allows {max}-byte header names, but header_prefix gives {header}"
                )));
            }
        }
        Ok(profile)
    }

    /// Checks the section once at start-up so that rendering cannot fail on
    /// configuration.
    pub fn validate(&self) -> Result<(), SipError> {
        let bad = |what: &str| Err(SipError::InvalidConfig(what.to_string()));
        // The prefix becomes part of header names: token chars only.
        if !self.header_prefix.bytes().all(is_token_byte) {
            return bad("header_prefix must consist of RFC 3261 token characters");
        }
        if self.max_uri_len == 0 {
            return bad("max_uri_len must be greater than 0");
        }
        if let Some(t) = &self.default_target {
            check_target(t).map_err(|e| SipError::InvalidConfig(format!("default_target: {e}")))?;
        }
        if self.uui.variable.is_empty() {
            return bad("uui.variable must not be empty");
        }
        // RFC 7433 §4.1: purpose-param = "purpose" EQUAL token.
        if !is_token(&self.uui.purpose) {
            return bad("uui.purpose must be an RFC 3261 token");
        }
        if self.uui.max_bytes == 0 {
            return bad("uui.max_bytes must be greater than 0");
        }
        for (name, p) in &self.profiles {
            if name.is_empty() {
                return bad("profile names must not be empty");
            }
            p.validate(name)?;
            self.profile(Some(name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_toml_like_json() {
        let cfg: SipConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, SipConfig::default());
        assert_eq!(cfg.header_prefix, "X-GA-");
        assert_eq!(cfg.max_uri_len, 1024);
        assert!(!cfg.uui.enabled);
        assert_eq!((cfg.uui.variable.as_str(), cfg.uui.max_bytes), ("uui", 128));
        assert!(cfg.validate().is_ok());
        let err = serde_json::from_str::<SipConfig>(r#"{"max_uri":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"));
        let err = serde_json::from_str::<SipConfig>(r#"{"profiles":{"p":{"x":1}}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"));
    }

    #[test]
    fn profiles_resolve_and_merge() {
        let mut cfg = SipConfig::default();
        assert_eq!(cfg.profile(None).unwrap(), Profile::default());
        assert_eq!(
            cfg.profile(Some("twilio")).unwrap().max_headers_len,
            Some(1023)
        );
        let err = cfg.profile(Some("plivo")).unwrap_err().to_string();
        assert!(err.contains("starting with \"X-PH-\", but header_prefix gives X-GA-extConId"));
        cfg.header_prefix = "X-PH-much-too-long-".into();
        let err = cfg.profile(Some("plivo")).unwrap_err().to_string();
        assert!(err.contains("allows 24-byte header names"), "{err}");
        cfg.header_prefix = "x-ph-".into();
        assert_eq!(cfg.profile(Some("plivo")).unwrap().max_name_len, Some(24));
        assert_eq!(
            cfg.profile(Some("nope")).unwrap_err().to_string(),
            "unknown SIP profile \"nope\""
        );
        let over = Profile {
            max_value_len: Some(50),
            ..Profile::default()
        };
        cfg.profiles.insert("plivo".into(), over.clone());
        cfg.profiles.insert("mine".into(), over);
        let plivo = cfg.profile(Some("plivo")).unwrap();
        assert_eq!(
            (plivo.max_value_len, plivo.max_name_len),
            (Some(50), Some(24))
        );
        assert_eq!(cfg.profile(Some("mine")).unwrap().max_name_len, None);
    }

    #[test]
    fn validate_reports_each_problem() {
        let check = |f: &dyn Fn(&mut SipConfig), want: &str| {
            let mut cfg = SipConfig::default();
            f(&mut cfg);
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        };
        check(&|c| c.header_prefix = "X GA".into(), "header_prefix");
        check(&|c| c.max_uri_len = 0, "max_uri_len");
        check(
            &|c| c.default_target = Some("http://x".into()),
            "default_target",
        );
        check(&|c| c.uui.variable.clear(), "uui.variable");
        check(&|c| c.uui.purpose = "a;b".into(), "uui.purpose");
        check(&|c| c.uui.max_bytes = 0, "uui.max_bytes");
        let zero = Profile {
            max_name_len: Some(0),
            ..Profile::default()
        };
        check(
            &|c| drop(c.profiles.insert("z".into(), zero.clone())),
            "greater than 0",
        );
        let pfx = Profile {
            name_prefix: Some("X:".into()),
            ..Profile::default()
        };
        check(
            &|c| drop(c.profiles.insert("p".into(), pfx.clone())),
            "name_prefix",
        );
        check(
            &|c| drop(c.profiles.insert(String::new(), Profile::default())),
            "names",
        );
        let twilio = Profile {
            max_value_len: Some(9),
            ..Profile::default()
        };
        let set = |c: &mut SipConfig| {
            c.header_prefix = "GA-".into();
            c.profiles.insert("twilio".into(), twilio.clone());
        };
        check(&set, "requires header names starting with \"X-\"");
    }
}
