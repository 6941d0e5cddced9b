//! Errors of the SIP module. Every message is meant to be shown to a human
//! (the integrator turns parse errors into HTTP 422 bodies), so each one says
//! precisely what was wrong.

use super::render::Method;

/// Everything that can go wrong while rendering a SIP instruction, reading a
/// returned REFER/INVITE, or checking the `[sip]` configuration.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SipError {
    /// The `[sip]` configuration is unusable; the text says which key and why.
    #[error("invalid [sip] config: {0}")]
    InvalidConfig(String),
    /// A route asked for a profile that is neither built in nor configured.
    #[error("unknown SIP profile \"{0}\"")]
    UnknownProfile(String),
    /// REFER and INVITE cannot be rendered without somewhere to send the call.
    #[error("{0} needs a target")]
    MissingTarget(Method),
    /// The target URI is unusable; the text is the full reason,
    /// e.g. "target is not a sip:, sips: or tel: URI".
    #[error("{0}")]
    InvalidTarget(String),
    /// The target alone is longer than the URI limit in force.
    #[error("target is {len} bytes, over the {limit}-byte URI limit")]
    TargetTooLong {
        /// Length of the target in bytes.
        len: usize,
        /// The limit that applied (config, profile, or profile target limit).
        limit: usize,
    },
    /// A mandatory header (external conversation id or transfer type) could
    /// not be emitted, so the vendor could not correlate the transfer.
    #[error("cannot emit mandatory header {name}: {reason}")]
    MandatoryHeader {
        /// The header name, e.g. "X-GA-extConId".
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The call transfer id cannot be put in a header (control characters).
    #[error("call transfer id contains control characters")]
    InvalidCallTransferId,
    /// The returned REFER has no Refer-To header.
    #[error("Refer-To header missing")]
    ReferToMissing,
    /// The returned Refer-To value or message is malformed; the text says how.
    #[error("{0}")]
    Malformed(String),
}

impl SipError {
    /// Shorthand for [`SipError::Malformed`].
    pub(super) fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed(reason.into())
    }
}
