//! SIP instructions for the PBX after a call transfer completes.
//!
//! [`render`] turns an upstream `outputContext` into the request the PBX
//! sends next — REFER (blind transfer, RFC 3515), INVITE (new leg) or BYE —
//! and [`parse_return`] reads the same vendor data back from a Refer-To
//! value or a whole message.
//!
//! # Where the data goes
//!
//! Vendor headers (prefix `X-GA-` by default, [`SipConfig::header_prefix`]):
//! `X-GA-extConId`, `X-GA-transfer`, `X-GA-taskName`, `X-GA-tv-<name>` per
//! transfer variable and `X-GA-rv-<name>` per reference variable. Values that
//! are not JSON strings are JSON-encoded. Candidates are tried in this
//! order: extConId, transfer, taskName, the route's extra headers,
//! `User-to-User` (RFC 7433, when enabled), transfer variables, reference
//! variables (each map in its iteration order: sorted by key, unless a
//! dependency enables serde_json's `preserve_order`).
//!
//! * **REFER to a `sip:`/`sips:` target**: everything goes in the Refer-To
//!   URI as URI headers (RFC 3261 §19.1.1), escaped, e.g.
//!   `Refer-To: <sip:sbc.example.com?X-GA-extConId=conv-1&X-GA-transfer=SYSTEM>`.
//!   The URI stays within `min(max_uri_len, profile.max_uri_len)` bytes and
//!   the header part within `profile.max_headers_len`; a header that does
//!   not fit is skipped and later, smaller ones may still go in.
//! * **INVITE**: plain headers (`X-GA-tv-priority: high`), request-URI and To
//!   are the target.
//! * **BYE**: plain headers; the target is ignored.
//! * **`tel:` targets** (RFC 3966) are kept verbatim; a `tel:` URI has no
//!   header component, so even a REFER carries the variables as plain
//!   headers of the REFER itself — they reach the PBX, not the new leg.
//!
//! The call transfer id is sent as the plain header `X-ASAPP-CallTransferId`
//! on every request (omitted when empty); it is for the PBX, so profiles do
//! not apply to it.
//!
//! # Hostile names and values
//!
//! One rule for plain and URI headers alike, because a PBX turns URI headers
//! into real headers (RFC 3261 §19.1.5): a header is refused, and its name
//! listed in [`SipInstruction::dropped`], when its name is not an RFC 3261
//! token (spaces, colons, non-ASCII...), is reserved (the headers the bridge
//! writes itself, their compact forms, the RFC 3261 §19.1.5 dangerous list
//! and `body`), repeats an emitted name case-insensitively, or its value
//! holds a control character other than HTAB; also when it breaks a profile
//! rule or does not fit the URI budget. Extra headers named like vendor
//! headers are refused so a route cannot forge them. In URIs everything
//! outside RFC 3261's `hname`/`hvalue` characters is percent-escaped (a
//! literal `%0d%0a` becomes `%250d%250a`); in plain headers, values lose
//! their surrounding SP/HTAB (not part of the value, RFC 3261 §7.3.1) and
//! UTF-8 is written as is. If `extConId` or `transfer` is refused, or does
//! not fit, [`render`] fails with [`SipError::MandatoryHeader`]: a transfer
//! the vendor cannot correlate is an error, not a silent drop.
//!
//! # Placeholders
//!
//! The PBX replaces these dialog values ([`placeholders`]); each is valid
//! SIP so strict parsers accept the message as it is:
//!
//! ```text
//! REFER/BYE request-URI: sip:remote@remote.invalid
//! Via:          SIP/2.0/UDP bridge.invalid;branch=z9hG4bK-bridge-placeholder
//! Max-Forwards: 70
//! From:         <sip:transfer-bridge@bridge.invalid>;tag=bridge-placeholder
//! To:           <sip:remote@remote.invalid>;tag=remote-placeholder   (REFER, BYE)
//!               <target>                                             (INVITE)
//! Call-ID:      placeholder@bridge.invalid
//! CSeq:         1 REFER | 1 INVITE | 1 BYE
//! Contact:      <sip:transfer-bridge@bridge.invalid>                 (not on BYE)
//! Content-Length: 0
//! ```
//!
//! The message is built on rsip 0.4's header types; URI headers, escaping
//! and the request line are done here because rsip has no URI-header
//! support, escapes nothing, writes CR/LF in values raw, and rejects IPv6
//! hosts and `tel:` URIs.

mod config;
mod error;
mod message;
mod parse;
mod place;
mod render;
mod rules;
mod uri_headers;
mod vendor;

#[cfg(test)]
mod tests;

pub use self::config::{Profile, SipConfig, UuiConfig};
pub use self::error::SipError;
pub use self::message::placeholders;
pub use self::parse::{ParsedReturn, ReturnInput, parse_return};
pub use self::render::{Method, RenderRequest, SipInstruction, render};
