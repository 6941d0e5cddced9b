//! Call transfer ids: parsed once at the edge, trusted everywhere after.

use std::fmt;
use std::sync::Arc;

/// Longest id accepted. AMQP short strings hold 255 bytes and the bridge
/// appends `.<action>` to build message ids, so ids stay well under that.
pub const MAX_ID_LEN: usize = 128;

/// A call transfer id that is safe in a URL path segment, an AMQP short
/// string, a SIP header value and a log line. Shared, not copied: the
/// tracker keeps an id in its map, its timer wheel and the transfer's
/// state, and actions, polls and wake-ups clone it all the time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(Arc<str>);

impl serde::Serialize for TransferId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    #[error("callTransferId must not be empty")]
    Empty,
    #[error("callTransferId is {0} bytes; at most {MAX_ID_LEN} are allowed")]
    TooLong(usize),
    #[error("callTransferId may contain only letters, digits and . _ - : @ + = ~ (found {0:?})")]
    BadChar(char),
    /// `.` and `..` are dot segments: HTTP clients remove them from a URL
    /// path (RFC 3986 5.2.4), so `/v1/transfers/{id}` could never reach them.
    #[error("callTransferId cannot be \".\" or \"..\"")]
    DotSegment,
}

/// The id alphabet: ASCII letters and digits, and `. _ - : @ + = ~`. A
/// byte of a multi-byte character is never allowed, so a non-ASCII
/// character is refused at its first byte.
fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@' | b'+' | b'=' | b'~')
}

impl TransferId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if raw.is_empty() {
            return Err(InvalidId::Empty);
        }
        if raw.len() > MAX_ID_LEN {
            return Err(InvalidId::TooLong(raw.len()));
        }
        if raw == "." || raw == ".." {
            return Err(InvalidId::DotSegment);
        }
        // A conservative alphabet: upstream ids are caller-chosen strings like
        // `0867617078-0032318833-...` or UUIDs; nothing that needs escaping.
        // Checked byte by byte (every stored row and claimed action parses
        // its id: 0.5% of a burst's CPU as a search of the punctuation per
        // character); the error names the character the bad byte starts.
        if let Some(at) = raw.bytes().position(|b| !allowed(b)) {
            let bad = raw[at..]
                .chars()
                .next()
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            return Err(InvalidId::BadChar(bad));
        }
        Ok(Self(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the action `name` of this transfer: `<id>.<name>`, the AMQP
    /// `message_id` and webhook id, stable across redelivery.
    pub fn action_id(&self, name: &str) -> String {
        format!("{}.{name}", self.0)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TransferId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_vendor_style_ids() {
        for ok in [
            "0867617078-0032318833-2221801472-0002236962",
            "ct_1.a",
            "a:b@c",
        ] {
            assert_eq!(TransferId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_hostile_ids() {
        assert_eq!(TransferId::parse(""), Err(InvalidId::Empty));
        assert_eq!(
            TransferId::parse(&"a".repeat(10_000)),
            Err(InvalidId::TooLong(10_000))
        );
        assert_eq!(TransferId::parse("../etc"), Err(InvalidId::BadChar('/')));
        assert_eq!(TransferId::parse("a\r\nb"), Err(InvalidId::BadChar('\r')));
        assert_eq!(TransferId::parse("a%2Fb"), Err(InvalidId::BadChar('%')));
        assert_eq!(TransferId::parse("a b"), Err(InvalidId::BadChar(' ')));
        assert_eq!(TransferId::parse(".."), Err(InvalidId::DotSegment));
        assert_eq!(TransferId::parse("."), Err(InvalidId::DotSegment));
        assert!(TransferId::parse("...").is_ok());
        assert_eq!(
            TransferId::parse("caf\u{e9}"),
            Err(InvalidId::BadChar('\u{e9}'))
        );
        assert_eq!(
            TransferId::parse("a\u{1F4DE}b"),
            Err(InvalidId::BadChar('\u{1F4DE}'))
        );
    }

    #[test]
    fn the_alphabet_is_letters_digits_and_eight_marks() {
        for b in 0..=u8::MAX {
            let c = char::from(b);
            let expected = c.is_ascii_alphanumeric() || "._-:@+=~".contains(c);
            assert_eq!(allowed(b), expected, "byte {b:#04x}");
        }
    }
}
