//! Routing: an outcome (`outputContext` and the bridge state) becomes actions.
//!
//! Every state change produces an audit action; a COMPLETED transfer is also
//! matched against `[[routes]]` (first match wins) for its publish actions;
//! outcomes produce a webhook when a callback URL is known.

pub mod event;
mod rules;
mod sip_action;
mod template;

pub use crate::transfer::TransferEvent;
pub use rules::{AmqpRoute, MatchConfig, RouteConfig, validate_routes};
pub use sip_action::SipRoute;

use crate::sip::{SipConfig, SipInstruction};
use crate::transfer::{Action, ActionKind, AmqpTarget, Target};
use crate::transfer::{BridgeState, Transfer};
use crate::upstream::CallTransfer;

/// AMQP short strings (routing keys) hold at most 255 bytes.
const MAX_ROUTING_KEY: usize = 255;

/// What a state change produces: the event (its `sip` is the instruction the
/// API serves) and the actions that carry it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub event: TransferEvent,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteConfig>,
    audit_exchange: String,
    agent_exchange: String,
    pbx_exchange: String,
    pbx_mandatory: bool,
    sip: SipConfig,
    /// Callback for transfers registered without one.
    default_webhook: Option<String>,
}

/// Where planned actions go, besides what each route names itself.
#[derive(Debug, Clone)]
pub struct Destinations {
    pub audit_exchange: String,
    /// For routes that publish without naming an exchange.
    pub agent_exchange: String,
    pub pbx_exchange: String,
    /// Publish SIP instructions as mandatory (`amqp.pbx_mandatory`).
    pub pbx_mandatory: bool,
    /// Callback for transfers registered without one.
    pub default_webhook: Option<String>,
}

impl Router {
    pub fn new(routes: Vec<RouteConfig>, sip: SipConfig, to: Destinations) -> Self {
        Self {
            routes,
            audit_exchange: to.audit_exchange,
            agent_exchange: to.agent_exchange,
            pbx_exchange: to.pbx_exchange,
            pbx_mandatory: to.pbx_mandatory,
            sip,
            default_webhook: to.default_webhook,
        }
    }

    /// The event and actions for `transfer` entering `state`. Pure: nothing
    /// is sent here.
    pub fn plan(
        &self,
        transfer: &Transfer,
        state: BridgeState,
        resource: Option<&CallTransfer>,
    ) -> Plan {
        let mut event = event::for_state(transfer, state, resource);
        let route = match state {
            BridgeState::Completed => self.routes.iter().find(|r| r.matcher.matches(&event)),
            _ => None,
        };
        event.route = route.map(|r| r.name.clone());
        let mut actions = Vec::new();
        if let Some(route) = route {
            self.route_actions(route, transfer, resource, &mut event, &mut actions);
        }
        let suffix = state.event_suffix();
        actions.extend(self.webhook_action(transfer, state, route));
        actions.push(amqp_action(
            &event,
            transfer,
            (&format!("audit.{suffix}"), ActionKind::Audit),
            &self.audit_exchange,
            format!("transfer.{suffix}"),
            true,
        ));
        // Bodies are rendered after every field is final, so each action of
        // this state change carries the same event.
        let body = serde_json::to_string(&event).expect("events serialize");
        for action in &mut actions {
            action.body.clone_from(&body);
        }
        Plan { event, actions }
    }

    /// The IVR's webhook: every outcome (not registration) goes to the
    /// transfer's callback or the default one, unless the matched route
    /// turned webhooks off.
    fn webhook_action(
        &self,
        transfer: &Transfer,
        state: BridgeState,
        route: Option<&RouteConfig>,
    ) -> Option<Action> {
        let url = transfer
            .callback_url
            .as_ref()
            .or(self.default_webhook.as_ref())?;
        let wanted = state.is_terminal() && route.is_none_or(|r| r.webhook);
        wanted.then(|| {
            Action::new(
                &transfer.id,
                &format!("webhook.{}", state.event_suffix()),
                ActionKind::Webhook,
                Target::Webhook { url: url.clone() },
            )
        })
    }

    /// The audit record of `transfer` changing owner (no state change):
    /// `transfer.adopted` on the audit exchange, one per adopting instance.
    pub fn adopted(&self, transfer: &Transfer, from: Option<&str>, by: &str) -> Action {
        let event = event::for_state(transfer, BridgeState::Tracking, None).adopted(from, by);
        let mut action = amqp_action(
            &event,
            transfer,
            (&format!("audit.adopted.{by}"), ActionKind::Audit),
            &self.audit_exchange,
            "transfer.adopted".into(),
            true,
        );
        action.body = serde_json::to_string(&event).expect("events serialize");
        action
    }

    /// What `sip render` prints: the SIP instruction a COMPLETED upstream
    /// resource produces under the active routes.
    pub fn instruction_for(&self, resource: &CallTransfer) -> Result<SipInstruction, String> {
        let id = crate::transfer::TransferId::parse(&resource.id).map_err(|e| e.to_string())?;
        let transfer = Transfer {
            upstream_status: Some(resource.status.to_string()),
            ..Transfer::tracking(id, time::OffsetDateTime::now_utc())
        };
        let plan = self.plan(&transfer, BridgeState::Completed, Some(resource));
        match (plan.event.sip, plan.event.reason, plan.event.route) {
            (Some(sip), _, _) => Ok(sip),
            (None, Some(reason), _) => Err(reason),
            (None, None, Some(route)) => Err(format!(
                "route {route} matched but makes no SIP instruction"
            )),
            (None, None, None) => Err(format!(
                "no route matches transferType {}",
                plan.event.transfer_type.as_deref().unwrap_or("NONE")
            )),
        }
    }

    /// The route's SIP instruction and publishes. A failure of one is
    /// recorded in the event's `reason` and the rest still go out.
    fn route_actions(
        &self,
        route: &RouteConfig,
        transfer: &Transfer,
        resource: Option<&CallTransfer>,
        event: &mut TransferEvent,
        actions: &mut Vec<Action>,
    ) {
        let mut problems = Vec::new();
        if let Some(sip) = &route.sip {
            match self.pbx_action(sip, transfer, resource, event) {
                Ok(action) => actions.push(action),
                Err(e) => problems.push(format!("route {}: no SIP instruction: {e}", route.name)),
            }
        }
        if let Some(amqp) = &route.amqp {
            match self.route_publish(route, amqp, transfer, event) {
                Ok(action) => actions.push(action),
                Err(e) => problems.push(format!(
                    "route {}: routing key template failed: {e}",
                    route.name
                )),
            }
        }
        if !problems.is_empty() {
            // The outcome still reaches the audit trail, with the reason.
            tracing::error!(call_transfer_id = %transfer.id, problems = ?problems, "route could not run in full");
            event.reason = Some(problems.join("; "));
        }
    }

    /// The route's SIP instruction, kept in the event (the API serves it)
    /// and published to the PBX exchange with key `pbx.<method>`.
    fn pbx_action(
        &self,
        sip: &SipRoute,
        transfer: &Transfer,
        resource: Option<&CallTransfer>,
        event: &mut TransferEvent,
    ) -> Result<Action, String> {
        let instruction = sip
            .render(&self.sip, event, resource)
            .map_err(|e| e.to_string())?;
        let method = instruction.method.to_string().to_ascii_lowercase();
        event.sip = Some(instruction);
        let kind = ("pbx", ActionKind::Pbx);
        let key = format!("pbx.{method}");
        let exchange = &self.pbx_exchange;
        Ok(amqp_action(
            event,
            transfer,
            kind,
            exchange,
            key,
            self.pbx_mandatory,
        ))
    }

    /// The route's own publish, named after the route, its key rendered
    /// from the route's template.
    fn route_publish(
        &self,
        route: &RouteConfig,
        amqp: &AmqpRoute,
        transfer: &Transfer,
        event: &TransferEvent,
    ) -> Result<Action, String> {
        let exchange = amqp.exchange.as_deref().unwrap_or(&self.agent_exchange);
        let key = truncate(template::render(&amqp.routing_key, event).map_err(|e| e.to_string())?);
        let kind = (route.name.as_str(), ActionKind::Route(route.name.clone()));
        Ok(amqp_action(
            event,
            transfer,
            kind,
            exchange,
            key,
            amqp.mandatory,
        ))
    }
}

fn amqp_action(
    event: &TransferEvent,
    transfer: &Transfer,
    (name, kind): (&str, ActionKind),
    exchange: &str,
    routing_key: String,
    mandatory: bool,
) -> Action {
    let target = Target::Amqp(AmqpTarget {
        exchange: exchange.to_string(),
        routing_key,
        mandatory,
        event_type: event.kind.clone(),
        correlation_id: event.external_conversation_id.clone(),
        transfer_type: event.transfer_type.clone(),
        current_task: event.current_task_name.clone(),
    });
    Action::new(&transfer.id, name, kind, target)
}

fn truncate(mut key: String) -> String {
    if key.len() > MAX_ROUTING_KEY {
        let mut end = MAX_ROUTING_KEY;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
    }
    key
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
