//! Routing: an outcome (`outputContext` and the bridge state) becomes actions.
//!
//! Every state change produces an audit action; a COMPLETED transfer is also
//! matched against `[[routes]]` (first match wins) for its publish actions;
//! outcomes produce a webhook when a callback URL is known.

pub mod event;
mod rules;
mod template;

pub use event::TransferEvent;
pub use rules::{AmqpRoute, MatchConfig, RouteConfig, validate_routes};

use crate::config::Config;
use crate::outbox::{Action, AmqpTarget, Target};
use crate::transfer::{BridgeState, Transfer};
use crate::upstream::CallTransfer;

/// AMQP short strings (routing keys) hold at most 255 bytes.
const MAX_ROUTING_KEY: usize = 255;

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteConfig>,
    audit_exchange: String,
    agent_exchange: String,
}

impl Router {
    pub fn new(config: &Config) -> Self {
        Self {
            routes: config.routes.clone(),
            audit_exchange: config.amqp.audit_exchange.clone(),
            agent_exchange: config.amqp.agent_exchange.clone(),
        }
    }

    /// The actions for `transfer` entering `state`. Pure: nothing is sent here.
    pub fn plan(
        &self,
        transfer: &Transfer,
        state: BridgeState,
        resource: Option<&CallTransfer>,
    ) -> Vec<Action> {
        let mut event = TransferEvent::for_state(transfer, state, resource);
        let route = match state {
            BridgeState::Completed => self.routes.iter().find(|r| r.matcher.matches(&event)),
            _ => None,
        };
        event.route = route.map(|r| r.name.clone());
        let mut actions = Vec::new();
        if let Some(route) = route
            && let Some(amqp) = &route.amqp
        {
            match template::render(&amqp.routing_key, &event) {
                Ok(key) => actions.push(amqp_action(
                    &event,
                    transfer,
                    &route.name,
                    amqp.exchange.as_deref().unwrap_or(&self.agent_exchange),
                    truncate(key),
                    amqp.mandatory,
                )),
                Err(e) => {
                    // The outcome still reaches the audit trail, with the reason.
                    tracing::error!(route = %route.name, error = %e, "routing key template failed");
                    event.reason = Some(format!(
                        "route {}: routing key template failed: {e}",
                        route.name
                    ));
                }
            }
        }
        let audit_key = format!("transfer.{}", state.event_suffix());
        let audit_name = format!("audit.{}", state.event_suffix());
        actions.push(amqp_action(
            &event,
            transfer,
            &audit_name,
            &self.audit_exchange,
            audit_key,
            true,
        ));
        // Bodies are rendered after every field is final, so each action of
        // this state change carries the same event.
        let body = serde_json::to_string(&event).expect("events serialize");
        for action in &mut actions {
            action.body.clone_from(&body);
        }
        actions
    }
}

fn amqp_action(
    event: &TransferEvent,
    transfer: &Transfer,
    name: &str,
    exchange: &str,
    routing_key: String,
    mandatory: bool,
) -> Action {
    Action {
        id: transfer.id.action_id(name),
        transfer_id: transfer.id.clone(),
        kind: name.split('.').next().unwrap_or(name).to_string(),
        target: Target::Amqp(AmqpTarget {
            exchange: exchange.to_string(),
            routing_key,
            mandatory,
            event_type: event.kind.clone(),
            correlation_id: event.external_conversation_id.clone(),
            transfer_type: event.transfer_type.clone(),
            current_task: event.current_task_name.clone(),
        }),
        body: String::new(),
    }
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
