//! The durable outbox: actions are stored with the state change that caused
//! them, then a dispatcher delivers them until a confirm or a 2xx settles them.

mod action;
mod dispatcher;
pub mod repo;

pub use action::{Action, ActionStatus, AmqpTarget, Target};
pub use dispatcher::Dispatcher;
pub use repo::ActionView;
