//! The GenerativeAgent call-transfer resource, read leniently.
//!
//! The vendor's own documents disagree with each other (UPSTREAM.md, "Quirks"),
//! so the reader accepts every variant seen there, and no enum value can fail
//! parsing: unknown values are kept verbatim as `Unknown(..)`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

pub use crate::transfer::Variables;

/// Declares an enum whose wire form is case-insensitive and whose unknown
/// values are preserved instead of rejected.
macro_rules! lenient_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value this build does not know; kept as received.
            Unknown(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Unknown(raw) => raw,
                }
            }
        }

        impl From<&str> for $name {
            fn from(raw: &str) -> Self {
                match raw.trim().to_ascii_uppercase().as_str() {
                    $($wire => Self::$variant,)+
                    _ => Self::Unknown(raw.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // A non-string (number, bool) is an unknown value, not an error.
                let value = Value::deserialize(d)?;
                Ok(match value {
                    Value::String(s) => Self::from(s.as_str()),
                    other => Self::Unknown(other.to_string()),
                })
            }
        }
    };
}

lenient_enum!(
    /// Upstream lifecycle of a call transfer.
    Status { Active => "ACTIVE", Ongoing => "ONGOING", Completed => "COMPLETED", Expired => "EXPIRED" }
);

lenient_enum!(
    /// How the agent ended the conversation.
    TransferType { Agent => "AGENT", System => "SYSTEM", CallerDisconnect => "CALLER_DISCONNECT" }
);

lenient_enum!(
    /// How the call reached the agent.
    TransferMethod { PhoneNumber => "PHONE_NUMBER", Sip => "SIP" }
);

lenient_enum!(
    /// How the agent hands a SIP call back.
    ReturnTransferType { Bye => "BYE", Refer => "REFER", Invite => "INVITE" }
);

impl Status {
    /// COMPLETED and EXPIRED end tracking.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Expired)
    }

    /// The bridge state this status leads to, if it ends tracking.
    pub fn ends_tracking(&self) -> Option<crate::transfer::BridgeState> {
        use crate::transfer::BridgeState;
        match self {
            Self::Completed => Some(BridgeState::Completed),
            Self::Expired => Some(BridgeState::Expired),
            _ => None,
        }
    }
}

/// `GET /generativeagent/v1/call-transfers/{id}` response body.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallTransfer {
    pub id: String,
    pub external_conversation_id: String,
    pub status: Status,
    pub created_at: String,
    #[serde(rename = "type")]
    pub kind: TransferMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_received_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_context: Option<InputContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_context: Option<OutputContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<SipReturn>,
}

/// Read through [`spellings::InputContext`]: the spec says `inputVariables`,
/// one vendor example says `variables`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", from = "spellings::InputContext")]
pub struct InputContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    pub input_variables: Variables,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_type: Option<TransferType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub reference_variables: Variables,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub transfer_variables: Variables,
}

/// Read through [`spellings::PhoneNumber`]: the spec says `expiresAt`, one
/// guide says `expireAt`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", from = "spellings::PhoneNumber")]
pub struct PhoneNumber {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Read through [`spellings::SipReturn`]: the spec says `returnUri`, the
/// guides say `returnURI`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", from = "spellings::SipReturn")]
pub struct SipReturn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_transfer_type: Option<ReturnTransferType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_invite_authentication: Option<InviteAuth>,
}

/// Credentials the agent uses for a return INVITE. The password is never
/// echoed back by the bridge (see `redact_secrets`).
#[derive(Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for InviteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "**redacted**"))
            .finish()
    }
}

impl CallTransfer {
    /// When the temporary phone number stops working, if known and parseable.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        parse_time(self.phone_number.as_ref()?.expires_at.as_deref()?)
    }

    pub fn completed_at(&self) -> Option<OffsetDateTime> {
        parse_time(self.completed_at.as_deref()?)
    }
}

/// RFC 3339 timestamps; anything else is treated as absent, never an error.
/// RFC 3339, as the upstream writes its times.
pub use crate::transfer::clock::parse_rfc3339 as parse_time;

/// Replace `sip.returnInviteAuthentication.password` in a raw resource so the
/// bridge can store and echo what it saw without leaking the credential.
/// True when there was one to replace.
pub fn redact_secrets(raw: &mut Value) -> bool {
    let auth = raw
        .get_mut("sip")
        .and_then(|s| s.get_mut("returnInviteAuthentication"))
        .and_then(Value::as_object_mut);
    if let Some(auth) = auth
        && auth.contains_key("password")
    {
        auth.insert("password".into(), Value::String("**redacted**".into()));
        return true;
    }
    false
}

/// Vendors send `null` for empty maps; treat it as empty rather than failing.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Variables, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => map,
        _ => Variables::new(),
    })
}

/// The objects whose fields the vendor spells two ways, as read. A serde
/// `alias` accepts either spelling but fails on a body that carries both
/// ("duplicate field"), and such a body would then be retried as unreadable
/// until the transfer timed out. Each spelling is read on its own here, and
/// the spec's wins when both are present.
mod spellings {
    use serde::Deserialize;

    use super::{InviteAuth, ReturnTransferType, Variables, null_as_empty};

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InputContext {
        #[serde(default)]
        task_name: Option<String>,
        #[serde(default, deserialize_with = "null_as_empty")]
        input_variables: Variables,
        #[serde(default, deserialize_with = "null_as_empty")]
        variables: Variables,
    }

    impl From<InputContext> for super::InputContext {
        fn from(read: InputContext) -> Self {
            Self {
                task_name: read.task_name,
                input_variables: match read.input_variables.is_empty() {
                    true => read.variables,
                    false => read.input_variables,
                },
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PhoneNumber {
        #[serde(default)]
        transfer_number: Option<String>,
        #[serde(default)]
        country: Option<String>,
        #[serde(default)]
        expires_at: Option<String>,
        #[serde(default)]
        expire_at: Option<String>,
    }

    impl From<PhoneNumber> for super::PhoneNumber {
        fn from(read: PhoneNumber) -> Self {
            Self {
                transfer_number: read.transfer_number,
                country: read.country,
                expires_at: read.expires_at.or(read.expire_at),
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SipReturn {
        #[serde(default)]
        return_transfer_type: Option<ReturnTransferType>,
        #[serde(default)]
        return_uri: Option<String>,
        #[serde(default, rename = "returnURI")]
        return_uri_guides: Option<String>,
        #[serde(default)]
        return_invite_authentication: Option<InviteAuth>,
    }

    impl From<SipReturn> for super::SipReturn {
        fn from(read: SipReturn) -> Self {
            Self {
                return_transfer_type: read.return_transfer_type,
                return_uri: read.return_uri.or(read.return_uri_guides),
                return_invite_authentication: read.return_invite_authentication,
            }
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
