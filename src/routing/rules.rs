//! Declarative routes: `[[routes]]` in config, evaluated in order.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::settings::ConfigError;

use crate::transfer::TransferEvent;
use crate::upstream::TransferType;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique; becomes the action name in message ids (`<id>.<name>`) and the
    /// event's `route` field.
    pub name: String,
    #[serde(rename = "match", default)]
    pub matcher: MatchConfig,
    /// Publish the event to an exchange.
    #[serde(default)]
    pub amqp: Option<AmqpRoute>,
    /// Make a SIP instruction for the PBX (published to the PBX exchange,
    /// embedded in the event, served at `/v1/transfers/{id}/sip`).
    #[serde(default)]
    pub sip: Option<super::sip_action::SipRoute>,
    /// Send the webhook for this outcome (when a callback URL is known).
    #[serde(default = "yes")]
    pub webhook: bool,
}

fn yes() -> bool {
    true
}

/// All present conditions must hold; an empty matcher matches everything.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Any of these (case-insensitive). `NONE` matches a completion without
    /// outputContext; `UNKNOWN` matches any type this build does not know
    /// (the vendor adds types: UPSTREAM.md routes them to a fallback).
    #[serde(default)]
    pub transfer_type: Vec<String>,
    /// `currentTaskName`, exactly or as a glob (`billing_*`).
    #[serde(default)]
    pub task: Option<String>,
    /// Transfer variables that must equal these values.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpRoute {
    /// Defaults to `amqp.agent_exchange`.
    #[serde(default)]
    pub exchange: Option<String>,
    /// minijinja template over the event fields.
    pub routing_key: String,
    /// Return unroutable messages so they are retried, not dropped.
    #[serde(default = "yes")]
    pub mandatory: bool,
}

impl MatchConfig {
    pub fn matches(&self, event: &TransferEvent) -> bool {
        self.type_matches(event) && self.task_matches(event) && self.vars_match(event)
    }

    fn type_matches(&self, event: &TransferEvent) -> bool {
        if self.transfer_type.is_empty() {
            return true;
        }
        let actual = event.transfer_type.as_deref().unwrap_or("NONE");
        let unknown = event.transfer_type.as_deref().map(TransferType::from);
        let unknown = matches!(unknown, Some(TransferType::Unknown(_)));
        self.transfer_type.iter().any(|wanted| {
            wanted.eq_ignore_ascii_case(actual)
                || (unknown && wanted.eq_ignore_ascii_case("UNKNOWN"))
        })
    }

    fn task_matches(&self, event: &TransferEvent) -> bool {
        let Some(wanted) = &self.task else {
            return true;
        };
        let Some(task) = event.current_task_name.as_deref() else {
            return false;
        };
        match glob::Pattern::new(wanted) {
            Ok(pattern) => pattern.matches(task),
            Err(_) => wanted == task,
        }
    }

    fn vars_match(&self, event: &TransferEvent) -> bool {
        self.variables
            .iter()
            .all(|(name, wanted)| match event.transfer_variables.get(name) {
                Some(Value::String(s)) => s == wanted,
                // Non-string values compare as JSON: "true" matches `true`.
                Some(other) => serde_json::from_str::<Value>(wanted).is_ok_and(|w| w == *other),
                None => false,
            })
    }
}

/// Checks `config check` reports, each with the rule's index and reason.
pub fn validate_routes(
    routes: &[RouteConfig],
    sip: &crate::sip::SipConfig,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, route) in routes.iter().enumerate() {
        check_name(&route.name, &mut seen)
            .and_then(|()| check_route(route, sip))
            .map_err(|(field, why)| ConfigError::invalid(format!("routes[{i}].{field}"), why))?;
    }
    Ok(())
}

/// A route's name: the name of its actions too, so unique, short, plain,
/// and none of the bridge's own action names.
fn check_name<'a>(
    name: &'a str,
    seen: &mut HashSet<&'a str>,
) -> Result<(), (&'static str, String)> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
        return Err((
            "name",
            "must be 1-64 characters of letters, digits, _ or -".into(),
        ));
    }
    if matches!(name, "audit" | "pbx" | "webhook") {
        return Err((
            "name",
            "audit, pbx and webhook are reserved action names".into(),
        ));
    }
    if !seen.insert(name) {
        return Err(("name", format!("duplicate route name {name:?}")));
    }
    Ok(())
}

/// A route's matcher and actions: the field at fault and why.
fn check_route(
    route: &RouteConfig,
    sip: &crate::sip::SipConfig,
) -> Result<(), (&'static str, String)> {
    if let Some(task) = &route.matcher.task
        && let Err(e) = glob::Pattern::new(task)
    {
        return Err(("match.task", format!("bad glob: {e}")));
    }
    if let Some(amqp) = &route.amqp {
        if amqp
            .exchange
            .as_ref()
            .is_some_and(|e| e.is_empty() || e.len() > 255)
        {
            return Err(("amqp.exchange", "must be 1-255 bytes".into()));
        }
        super::template::check(&amqp.routing_key).map_err(|e| ("amqp.routing_key", e))?;
    }
    if let Some(route_sip) = &route.sip {
        super::sip_action::check(route_sip, sip)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(toml_src: &str) -> RouteConfig {
        toml::from_str(toml_src).unwrap()
    }

    #[test]
    fn reports_bad_rules_with_index() {
        let good = route("name = \"a\"");
        let bad = route("name = \"b\"\nmatch = { task = \"[x\" }");
        let sip = crate::sip::SipConfig::default();
        let err = validate_routes(&[good.clone(), bad], &sip)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("routes[1].match.task: bad glob"), "{err}");
        let dup = validate_routes(&[good.clone(), good.clone()], &sip)
            .unwrap_err()
            .to_string();
        assert!(dup.contains("routes[1].name"), "{dup}");
        let tpl = route("name = \"c\"\namqp = { exchange = \"x\", routing_key = \"{{ oops\" }");
        let err = validate_routes(&[tpl], &sip).unwrap_err().to_string();
        assert!(err.starts_with("routes[0].amqp.routing_key"), "{err}");
        let profile = route("name = \"d\"\nsip = { profile = \"nope\" }");
        let err = validate_routes(&[profile], &sip).unwrap_err().to_string();
        assert!(err.starts_with("routes[0].sip.profile"), "{err}");
    }
}
