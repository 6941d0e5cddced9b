//! `POST /generativeagent/v1/call-transfers` request body (createCallTransfer).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::UpstreamError;
use super::model::{InputContext, ReturnTransferType, TransferMethod};
use crate::backoff::Backoff;

/// Longest `sip.returnUri` the vendor accepts.
pub const MAX_RETURN_URI: usize = 1024;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCallTransfer {
    pub id: String,
    pub external_conversation_id: String,
    #[serde(rename = "type")]
    pub kind: TransferMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<CreatePhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<super::model::SipReturn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_context: Option<InputContext>,
    /// Fields this build does not know, sent on as received, so a field the
    /// vendor adds later reaches the upstream through the bridge.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Delays between a failing create's attempts, per the vendor's guidance
/// for 5xx answers (UPSTREAM.md, "Errors"): 250, 500, 1000 ms.
const SERVER_RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
/// Attempts at most, the first included: three retries, as the vendor's
/// schedules have three steps.
const MAX_ATTEMPTS: u32 = 4;

/// How long to wait before retrying a create whose `attempt` (1-based)
/// failed with `error`, or `None` to give up. A 5xx (or a 408 or 425,
/// which invite a repeat) or an unreachable upstream: its `Retry-After`,
/// else [`SERVER_RETRY`]. A 429: at once, as
/// the budget's pause for that 429 (its `Retry-After`, else 1, 2, 4 s)
/// holds the next attempt back. Anything else is final: a timeout has used
/// the caller's whole window already, another 4xx will not change, and a
/// 2xx that could not be read has created the transfer.
pub fn retry_delay(error: &UpstreamError, attempt: u32) -> Option<Duration> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    match error {
        UpstreamError::Status { status: 429, .. } => Some(Duration::ZERO),
        UpstreamError::Status {
            status: 408 | 425 | 500..=599,
            retry_after,
            ..
        } => Some(retry_after.unwrap_or(SERVER_RETRY.delay(attempt))),
        UpstreamError::Connect(_) => Some(SERVER_RETRY.delay(attempt)),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CreatePhoneNumber {
    /// ISO 3166 alpha-2.
    pub country: String,
}

impl CreateCallTransfer {
    /// Checks the vendor documents; a failure becomes a 422 before any
    /// upstream request is spent on it.
    pub fn validate(&self) -> Result<(), String> {
        if self.external_conversation_id.trim().is_empty() {
            return Err("create.externalConversationId must not be empty".into());
        }
        match &self.kind {
            TransferMethod::PhoneNumber => {
                let country = self.phone_number.as_ref().map(|p| p.country.as_str());
                match country {
                    Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()) => {}
                    Some(_) => {
                        return Err(
                            "create.phoneNumber.country must be an ISO 3166 alpha-2 code like \"US\""
                                .into(),
                        );
                    }
                    None => {
                        return Err(
                            "create.phoneNumber.country is required for type PHONE_NUMBER".into(),
                        );
                    }
                }
            }
            TransferMethod::Sip => self.validate_sip()?,
            TransferMethod::Unknown(other) => {
                return Err(format!(
                    "create.type must be PHONE_NUMBER or SIP, got {other:?}"
                ));
            }
        }
        Ok(())
    }

    fn validate_sip(&self) -> Result<(), String> {
        let Some(sip) = &self.sip else {
            return Ok(());
        };
        if let Some(ReturnTransferType::Unknown(other)) = &sip.return_transfer_type {
            return Err(format!(
                "create.sip.returnTransferType must be BYE, REFER or INVITE, got {other:?}"
            ));
        }
        if let Some(uri) = &sip.return_uri
            && uri.len() > MAX_RETURN_URI
        {
            return Err(format!(
                "create.sip.returnUri is {} characters; the upstream allows {MAX_RETURN_URI}",
                uri.len()
            ));
        }
        let needs_uri = matches!(
            sip.return_transfer_type,
            Some(ReturnTransferType::Refer | ReturnTransferType::Invite)
        );
        if needs_uri && sip.return_uri.is_none() {
            return Err("create.sip.returnUri is required for REFER and INVITE returns".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_create_is_retried_as_the_vendor_says() {
        let status = |status, retry_after| UpstreamError::Status {
            status,
            envelope: None,
            retry_after,
        };
        let ms = Duration::from_millis;
        let delays: Vec<_> = (1..=4)
            .map(|n| retry_delay(&status(503, None), n))
            .collect();
        assert_eq!(delays, [Some(ms(250)), Some(ms(500)), Some(ms(1000)), None]);
        assert_eq!(retry_delay(&status(500, Some(ms(3000))), 1), Some(ms(3000)));
        assert_eq!(retry_delay(&status(408, None), 1), Some(ms(250)));
        assert_eq!(retry_delay(&status(429, None), 3), Some(Duration::ZERO));
        assert_eq!(retry_delay(&status(429, None), 4), None);
        assert_eq!(
            retry_delay(&UpstreamError::Connect("x".into()), 2),
            Some(ms(500))
        );
        for final_error in [
            status(400, None),
            status(404, None),
            status(422, None),
            UpstreamError::Timeout,
            UpstreamError::Malformed("x".into()),
            UpstreamError::Budget { retry_after: ms(5) },
        ] {
            assert_eq!(retry_delay(&final_error, 1), None, "{final_error}");
        }
    }

    #[test]
    fn sends_return_uri_in_spec_spelling() {
        let body: CreateCallTransfer = serde_json::from_value(json!({
            "id": "t1", "externalConversationId": "c1", "type": "SIP",
            "sip": {"returnTransferType": "REFER", "returnURI": "sip:x@y"},
            "inputContext": {"taskName": "welcome", "variables": {"a": 1}},
            "futureField": {"x": 1}
        }))
        .unwrap();
        body.validate().unwrap();
        let out = serde_json::to_value(&body).unwrap();
        assert_eq!(out["sip"]["returnUri"], "sip:x@y");
        assert!(out["sip"].get("returnURI").is_none());
        assert_eq!(out["inputContext"]["inputVariables"]["a"], 1);
        assert_eq!(out["futureField"]["x"], 1);
    }

    #[test]
    fn rejects_what_the_vendor_would() {
        let bad = |v: serde_json::Value| {
            serde_json::from_value::<CreateCallTransfer>(v)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        let e = bad(json!({"id": "t", "externalConversationId": "c", "type": "PHONE_NUMBER"}));
        assert!(e.contains("phoneNumber.country"), "{e}");
        let e = bad(json!({"id": "t", "externalConversationId": "c", "type": "FAX"}));
        assert!(e.contains("create.type"), "{e}");
        let long = "x".repeat(1025);
        let e = bad(
            json!({"id": "t", "externalConversationId": "c", "type": "SIP",
            "sip": {"returnTransferType": "REFER", "returnUri": long}}),
        );
        assert!(e.contains("1025"), "{e}");
    }
}
