//! A scripted transfer: its timeline and the resource it shows at any moment.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

/// One step of a timeline: `status` for `forMs` milliseconds (the last step
/// lasts forever and needs no `forMs`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub status: String,
    #[serde(default)]
    pub for_ms: Option<u64>,
}

/// What a test or benchmark scripts for one transfer (`PUT /_sim/transfers/{id}`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Script {
    #[serde(default)]
    pub external_conversation_id: Option<String>,
    #[serde(default = "phone")]
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "default_timeline")]
    pub timeline: Vec<Step>,
    /// Shown once COMPLETED; `null` scripts a completion without one.
    #[serde(default)]
    pub output_context: Option<Value>,
    #[serde(default)]
    pub input_context: Option<Value>,
    #[serde(default)]
    pub sip: Option<Value>,
    /// GETs answer 404 for this long first (a create not yet visible).
    #[serde(default)]
    pub visible_after_ms: u64,
    /// Speak the vendor guides' dialect: lowercase status, `returnURI`,
    /// `expireAt`, `variables`.
    #[serde(default)]
    pub quirks: bool,
    /// `phoneNumber.expiresAt` this long after the start, instead of at the
    /// end of the first step: a number that outlives (or dies before) its
    /// ACTIVE phase.
    #[serde(default)]
    pub expires_in_ms: Option<u64>,
}

fn phone() -> String {
    "PHONE_NUMBER".into()
}

/// A created transfer with no script waits for a call and then expires.
fn default_timeline() -> Vec<Step> {
    vec![
        Step {
            status: "ACTIVE".into(),
            for_ms: Some(60_000),
        },
        Step {
            status: "EXPIRED".into(),
            for_ms: None,
        },
    ]
}

impl Default for Script {
    fn default() -> Self {
        serde_json::from_value(json!({})).expect("all fields have defaults")
    }
}

/// A transfer the simulator serves.
#[derive(Debug, Clone)]
pub struct SimTransfer {
    pub id: String,
    pub script: Script,
    pub started: Instant,
    pub started_wall: OffsetDateTime,
}

impl SimTransfer {
    pub fn new(id: String, script: Script) -> Self {
        Self {
            id,
            script,
            started: Instant::now(),
            started_wall: OffsetDateTime::now_utc(),
        }
    }

    pub fn visible(&self) -> bool {
        self.started.elapsed().as_millis() as u64 >= self.script.visible_after_ms
    }

    /// The current step and when it began (ms since start).
    fn current(&self) -> (&Step, Option<u64>, u64) {
        let elapsed = self.started.elapsed().as_millis() as u64;
        let mut begin = 0u64;
        let mut ongoing_at = None;
        let steps = &self.script.timeline;
        for (i, step) in steps.iter().enumerate() {
            if step.status.eq_ignore_ascii_case("ONGOING") && ongoing_at.is_none() {
                ongoing_at = Some(begin);
            }
            let last = i + 1 == steps.len();
            match step.for_ms {
                Some(ms) if !last && elapsed >= begin + ms => begin += ms,
                _ => return (step, ongoing_at, begin),
            }
        }
        unreachable!("timelines are validated non-empty")
    }

    /// The GET body at this moment.
    pub fn resource(&self) -> Value {
        let (step, ongoing_at, began) = self.current();
        let status = step.status.to_ascii_uppercase();
        let mut body = Map::new();
        body.insert("id".into(), self.id.clone().into());
        let conv = self
            .script
            .external_conversation_id
            .clone()
            .unwrap_or_else(|| format!("conv-{}", self.id));
        body.insert("externalConversationId".into(), conv.into());
        let shown = if self.script.quirks {
            status.to_ascii_lowercase()
        } else {
            status.clone()
        };
        body.insert("status".into(), shown.into());
        body.insert("createdAt".into(), self.at(0).into());
        body.insert("type".into(), self.script.kind.clone().into());
        if let Some(at) = ongoing_at.filter(|_| status != "ACTIVE") {
            body.insert("callReceivedAt".into(), self.at(at).into());
        }
        if let Some(input) = &self.script.input_context {
            body.insert("inputContext".into(), self.dialect_input(input));
        }
        if self.script.kind == "PHONE_NUMBER" {
            body.insert("phoneNumber".into(), self.phone_number());
        }
        if let Some(sip) = &self.script.sip {
            body.insert("sip".into(), self.dialect_sip(sip));
        }
        if status == "COMPLETED" {
            body.insert("completedAt".into(), self.at(began).into());
            if let Some(output) = &self.script.output_context {
                body.insert("outputContext".into(), output.clone());
            }
        }
        Value::Object(body)
    }

    fn at(&self, ms: u64) -> String {
        let when = self.started_wall + time::Duration::milliseconds(ms as i64);
        when.format(&Rfc3339).unwrap_or_default()
    }

    fn phone_number(&self) -> Value {
        let expires_ms = self.script.expires_in_ms.unwrap_or_else(|| {
            let first = self.script.timeline.first();
            first.and_then(|s| s.for_ms).unwrap_or(60_000)
        });
        let key = if self.script.quirks {
            "expireAt"
        } else {
            "expiresAt"
        };
        let digits = self
            .id
            .bytes()
            .fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(b.into()))
            % 10_000;
        json!({"transferNumber": format!("+1999555{digits:04}"), "country": "US", key: self.at(expires_ms)})
    }

    fn dialect_input(&self, input: &Value) -> Value {
        let mut input = input.clone();
        if self.script.quirks
            && let Some(obj) = input.as_object_mut()
            && let Some(vars) = obj.remove("inputVariables")
        {
            obj.insert("variables".into(), vars);
        }
        input
    }

    fn dialect_sip(&self, sip: &Value) -> Value {
        let mut sip = sip.clone();
        if self.script.quirks
            && let Some(obj) = sip.as_object_mut()
            && let Some(uri) = obj.remove("returnUri")
        {
            obj.insert("returnURI".into(), uri);
        }
        sip
    }
}
