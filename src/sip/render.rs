//! Rendering a finished transfer into the SIP request the PBX sends next.

use serde::{Deserialize, Serialize};

use super::config::{Profile, SipConfig};
use super::error::SipError;
use super::message::{self, Parts, placeholders};
use super::place::{self, Placement, UriLimits};
use super::rules::{TargetKind, check_target, has_control, trim_lws};
use super::vendor;

/// The SIP request the PBX should send.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Blind transfer (RFC 3515); variables ride in the Refer-To URI.
    Refer,
    /// A new leg to the target; variables are plain headers.
    Invite,
    /// Hang up; variables are plain headers.
    Bye,
}

impl Method {
    /// The rsip equivalent.
    pub fn to_rsip(self) -> rsip::Method {
        match self {
            Method::Refer => rsip::Method::Refer,
            Method::Invite => rsip::Method::Invite,
            Method::Bye => rsip::Method::Bye,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_rsip())
    }
}

/// Everything [`render`] needs about one completed transfer.
#[derive(Clone, Debug)]
pub struct RenderRequest<'a> {
    /// Which request to build.
    pub method: Method,
    /// `sip:`, `sips:` or `tel:` URI resolved by the caller; required for
    /// REFER and INVITE, ignored for BYE (whose request-URI is the
    /// [`placeholders::REMOTE_TARGET`] placeholder).
    pub target: Option<&'a str>,
    /// Upstream call transfer id, sent as `X-ASAPP-CallTransferId`.
    pub call_transfer_id: &'a str,
    /// Sent as `<prefix>extConId` (mandatory).
    pub external_conversation_id: &'a str,
    /// Sent as `<prefix>transfer` (mandatory); any text is passed through.
    pub transfer_type: &'a str,
    /// Sent as `<prefix>taskName` when present.
    pub current_task_name: Option<&'a str>,
    /// Sent as `<prefix>tv-<name>`; hostile.
    pub transfer_variables: &'a serde_json::Map<String, serde_json::Value>,
    /// Sent as `<prefix>rv-<name>`; hostile.
    pub reference_variables: &'a serde_json::Map<String, serde_json::Value>,
    /// Route headers; same checks as variables, vendor names refused.
    pub extra_headers: &'a [(String, String)],
    /// Platform limits in force.
    pub profile: &'a Profile,
}

/// The rendered request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SipInstruction {
    /// Method of the request.
    pub method: Method,
    /// Request-URI.
    pub request_uri: String,
    /// Exactly the headers of `message`, in order (`[[name, value], ...]`).
    pub headers: Vec<(String, String)>,
    /// Whole message: CRLF line ends, empty line, `Content-Length: 0`.
    pub message: String,
    /// Header names of every variable or extra header refused or not
    /// fitting, e.g. `X-GA-tv-priority`; `User-to-User` for the UUI.
    pub dropped: Vec<String>,
    /// Where the call goes next, for dialplans that read one field: the
    /// Refer-To URI of a REFER, else the request-URI (a placeholder for BYE).
    pub target: String,
}

/// Renders one transfer; see the module docs for placement rules.
pub fn render(req: &RenderRequest<'_>, cfg: &SipConfig) -> Result<SipInstruction, SipError> {
    if has_control(req.call_transfer_id) {
        return Err(SipError::InvalidCallTransferId);
    }
    let target = match req.method {
        Method::Bye => None,
        m => Some(check_target(req.target.ok_or(SipError::MissingTarget(m))?)?),
    };
    let (refer_to, placement) = place_all(req, cfg, target)?;
    let request_uri = match (req.method, target) {
        (Method::Invite, Some((t, _))) => t,
        _ => placeholders::REMOTE_TARGET,
    };
    let (message, headers) = message::build(Parts {
        method: req.method,
        request_uri,
        invite_to: target
            .filter(|_| req.method == Method::Invite)
            .map(|(t, _)| t),
        refer_to: refer_to.as_deref(),
        call_transfer_id: trim_lws(req.call_transfer_id),
        custom: placement.headers,
    });
    let target = refer_to.unwrap_or_else(|| request_uri.to_string());
    Ok(SipInstruction {
        method: req.method,
        request_uri: request_uri.to_string(),
        headers,
        message,
        dropped: placement.dropped,
        target,
    })
}

/// Places the candidate headers: in the Refer-To URI for a REFER to a SIP
/// target, as plain headers otherwise. Returns the Refer-To URI (REFER
/// only) and the plain headers with the dropped names.
fn place_all(
    req: &RenderRequest<'_>,
    cfg: &SipConfig,
    target: Option<(&str, TargetKind)>,
) -> Result<(Option<String>, Placement), SipError> {
    let uri_limit = cfg
        .max_uri_len
        .min(req.profile.max_uri_len.unwrap_or(usize::MAX));
    if let Some((t, _)) = target {
        check_target_len(t, uri_limit, req.profile)?;
    }
    let cands = vendor::candidates(req, cfg);
    match (req.method, target) {
        (Method::Refer, Some((t, TargetKind::Sip))) => {
            let limits = UriLimits {
                uri: uri_limit,
                headers: req.profile.max_headers_len,
            };
            let (uri, placed) = place::uri(t, cands, req.profile, limits)?;
            // The placed headers live in the URI, not in the message.
            Ok((
                Some(uri),
                Placement {
                    headers: Vec::new(),
                    ..placed
                },
            ))
        }
        // tel: URIs have no header component (RFC 3966): plain headers.
        (Method::Refer, Some((t, TargetKind::Tel))) => {
            Ok((Some(t.to_string()), place::plain(cands, req.profile)?))
        }
        _ => Ok((None, place::plain(cands, req.profile)?)),
    }
}

fn check_target_len(t: &str, uri_limit: usize, profile: &Profile) -> Result<(), SipError> {
    let limit = uri_limit.min(profile.max_target_len.unwrap_or(usize::MAX));
    if t.len() > limit {
        return Err(SipError::TargetTooLong {
            len: t.len(),
            limit,
        });
    }
    Ok(())
}
