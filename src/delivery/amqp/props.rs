//! The message properties DESIGN.md promises on every publish.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use super::PublishError;
use crate::transfer::{AmqpTarget, TransferId};

const APP_ID: &str = "transfer-bridge";
/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// `message_id` is the action's id; `transfer` is its transfer's id, a field
/// of the action (ids may contain `.`, so neither is cut out of the other).
pub(super) fn properties(
    target: &AmqpTarget,
    message_id: &str,
    transfer: &TransferId,
) -> Result<BasicProperties, PublishError> {
    let mut headers = FieldTable::default();
    headers.insert("x-call-transfer-id".into(), long(transfer.as_str()));
    headers.insert(
        "x-transfer-type".into(),
        long(target.transfer_type.as_deref().unwrap_or("")),
    );
    headers.insert(
        "x-current-task".into(),
        long(target.current_task.as_deref().unwrap_or("")),
    );
    let mut props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(PERSISTENT)
        .with_message_id(short("message id", message_id)?)
        .with_type(short("event type", &target.event_type)?)
        .with_app_id(APP_ID.into())
        .with_timestamp(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64)
        .with_headers(headers);
    if let Some(correlation) = &target.correlation_id {
        // An over-long conversation id is still in the body; the property is
        // a convenience, so it is left out rather than failing the publish.
        if let Ok(value) = ShortString::try_new(correlation.as_str()) {
            props = props.with_correlation_id(value);
        }
    }
    Ok(props)
}

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// `ShortString::from` panics past 255 bytes; this reports instead.
pub(super) fn short(field: &'static str, value: &str) -> Result<ShortString, PublishError> {
    ShortString::try_new(value).map_err(|_| PublishError::TooLong {
        field,
        len: value.len(),
    })
}
