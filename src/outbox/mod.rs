//! The durable outbox: actions are stored with the state change that caused
//! them, then a dispatcher delivers them until a confirm or a 2xx settles them.

mod dispatcher;
mod failure;
mod handoff;
pub mod repo;
mod settle;
mod view_reads;
mod views;

pub use dispatcher::Dispatcher;
#[cfg(test)]
pub(crate) use handoff::Fresh;
pub use handoff::{Handoff, Slot};
pub use view_reads::ViewReads;
pub use views::{ActionView, Viewed, for_transfer, with_transfer, with_transfers};

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[outbox]`: how the dispatcher claims, delivers and retries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    #[serde(with = "crate::settings::duration")]
    pub poll_interval: Duration,
    pub batch_size: u32,
    pub concurrency: usize,
    #[serde(with = "crate::settings::duration")]
    pub claim_timeout: Duration,
    #[serde(with = "crate::settings::duration")]
    pub retry_initial: Duration,
    #[serde(with = "crate::settings::duration")]
    pub retry_max: Duration,
}
