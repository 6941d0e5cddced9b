//! `POST /generativeagent/v1/call-transfers` request body (createCallTransfer).

use serde::{Deserialize, Serialize};

use super::model::{InputContext, ReturnTransferType, TransferMethod};

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
