//! `sip::parse_return` on arbitrary text, as `POST /v1/sip/returns` receives
//! it: read both as a Refer-To value and as a whole SIP message, under the
//! shipped vendor prefix and under an empty one (the most permissive valid
//! `sip.header_prefix`: every header name is then a vendor candidate).
//!
//! Raw text rather than an `arbitrary` struct so that seeds/sip_parse holds
//! real messages libFuzzer can mutate.
//!
//! Property: it returns `Ok` or a `SipError`, never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use transfer_bridge::sip::{ReturnInput, parse_return};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for prefix in ["X-GA-", ""] {
        let _ = parse_return(ReturnInput::ReferTo(text), prefix);
        let _ = parse_return(ReturnInput::Message(text), prefix);
    }
});
