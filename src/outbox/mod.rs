//! The durable outbox: actions are stored with the state change that caused
//! them, then a dispatcher delivers them until a confirm or a 2xx settles them.

mod dispatcher;
pub mod repo;

pub use dispatcher::Dispatcher;
pub use repo::ActionView;
