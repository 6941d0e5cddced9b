//! A route's `sip` action: which request the PBX sends next, to where.

use serde::{Deserialize, Serialize};

use super::template;
use crate::sip::{self, Method, RenderRequest, SipConfig, SipInstruction};
use crate::transfer::TransferEvent;
use crate::upstream::CallTransfer;
use crate::upstream::model::ReturnTransferType;

/// `sip = { ... }` in a route.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SipRoute {
    /// REFER, INVITE or BYE. Default: the transfer's
    /// `sip.returnTransferType`, else BYE (the upstream's own default).
    #[serde(default)]
    pub method: Option<Method>,
    /// Target URI template (`sip:`, `sips:` or `tel:`). Default: the
    /// transfer's `sip.returnUri`, else `sip.default_target`.
    #[serde(default)]
    pub target: Option<String>,
    /// Extra headers `[[name, value], ...]`, checked like variables.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// A `[sip.profiles]` name or built-in (`default`, `twilio`, `plivo`).
    #[serde(default)]
    pub profile: Option<String>,
}

impl SipRoute {
    /// Render the instruction for `event` (whose fields are final except
    /// `sip`). Errors are for the event's `reason`.
    pub fn render(
        &self,
        cfg: &SipConfig,
        event: &TransferEvent,
        resource: Option<&CallTransfer>,
    ) -> Result<SipInstruction, String> {
        let upstream_sip = resource.and_then(|r| r.sip.as_ref());
        let method = self.method.unwrap_or_else(|| {
            match upstream_sip.and_then(|s| s.return_transfer_type.as_ref()) {
                Some(ReturnTransferType::Refer) => Method::Refer,
                Some(ReturnTransferType::Invite) => Method::Invite,
                _ => Method::Bye,
            }
        });
        let target = match &self.target {
            Some(source) => Some(template::render(source, event)?),
            None => upstream_sip
                .and_then(|s| s.return_uri.clone())
                .or_else(|| cfg.default_target.clone()),
        };
        let profile = cfg
            .profile(self.profile.as_deref())
            .map_err(|e| e.to_string())?;
        let request = RenderRequest {
            method,
            target: target.as_deref(),
            call_transfer_id: &event.call_transfer_id,
            external_conversation_id: event.external_conversation_id.as_deref().unwrap_or(""),
            transfer_type: event.transfer_type.as_deref().unwrap_or("NONE"),
            current_task_name: event.current_task_name.as_deref(),
            transfer_variables: &event.transfer_variables,
            reference_variables: &event.reference_variables,
            extra_headers: &self.headers,
            profile: &profile,
        };
        sip::render(&request, cfg).map_err(|e| e.to_string())
    }
}

/// `config check` for a route's `sip` action.
pub fn check(route: &SipRoute, cfg: &SipConfig) -> Result<(), (&'static str, String)> {
    if let Some(target) = &route.target {
        template::check(target).map_err(|e| ("sip.target", e))?;
    }
    cfg.profile(route.profile.as_deref())
        .map_err(|e| ("sip.profile", e.to_string()))?;
    Ok(())
}
