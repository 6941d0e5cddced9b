//! A fresh broker connection: confirms on, the bridge's topology declared.

use futures::Stream;
use lapin::options::ConfirmSelectOptions;
use lapin::types::LongString;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use secrecy::ExposeSecret;

use super::{AmqpConfig, AuditStatus, declare_topology};

/// A fresh connection with its topology declared.
pub(super) struct Session {
    pub(super) conn: Connection,
    pub(super) channel: Channel,
    pub(super) events: std::pin::Pin<Box<dyn Stream<Item = Event> + Send>>,
    pub(super) audit: AuditStatus,
}

/// Connect, open a confirm channel and declare the bridge's topology.
pub(super) async fn connect(cfg: &AmqpConfig) -> Result<Session, lapin::Error> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(cfg.connection_name.as_str()));
    let conn = Connection::connect(cfg.url.expose_secret(), props).await?;
    // Subscribe before anything else: the broker sends connection.blocked
    // once, and an event without a listener is dropped.
    let events = Box::pin(conn.events_listener());
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let audit = declare_topology(&conn, &channel, cfg).await?.into();
    Ok(Session {
        conn,
        channel,
        events,
        audit,
    })
}
