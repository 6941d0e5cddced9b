//! transfer-bridge: tracks GenerativeAgent call transfers until the agent is
//! done and delivers the outcome (RabbitMQ, SIP instructions, webhooks)
//! through a durable outbox.
//!
//! Dependencies point one way, from the edges down to the domain (README,
//! "Design"): `app` and `api` on top; `tracker` below them; `lifecycle`,
//! the one home of state changes, below that; then `outbox`, `routing`,
//! `store`, `upstream`, `delivery` and `sip`; `transfer` (the domain) and
//! `settings` at the bottom. `config` assembles each module's own section.

pub mod affinity;
pub mod alloc;
pub mod api;
pub mod backoff;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod lifecycle;
pub mod linger;
pub mod outbox;
pub mod retry_after;
pub mod routing;
pub mod settings;
pub mod simulator;
pub mod sip;
pub mod store;
pub mod telemetry;
pub mod tracker;
pub mod transfer;
pub mod upstream;

mod app;

pub use app::App;
