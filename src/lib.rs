//! transfer-bridge: tracks GenerativeAgent call transfers until the agent is
//! done and delivers the outcome (RabbitMQ, SIP instructions, webhooks)
//! through a durable outbox.
//!
//! Data flows one way: api -> store -> tracker -> upstream -> routing ->
//! outbox -> delivery.

pub mod api;
pub mod backoff;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod lifecycle;
pub mod outbox;
pub mod routing;
pub mod simulator;
pub mod sip;
pub mod store;
pub mod telemetry;
pub mod tracker;
pub mod transfer;
pub mod upstream;

mod app;

pub use app::App;
