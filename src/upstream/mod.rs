//! The GenerativeAgent call-transfer API: typed model, client, request budget.

pub mod budget;
pub mod circuit;
pub mod client;
mod config;
pub mod create;
pub mod error;
pub mod model;

pub use budget::{Budget, BudgetSnapshot, Grant, Ledger, MemoryLedger, Priority};
pub use circuit::{AuthCircuit, CircuitStatus};
pub use client::{Fetched, UpstreamClient};
pub use config::UpstreamConfig;
pub use create::CreateCallTransfer;
pub use error::{Disposition, ErrorBody, ErrorEnvelope, UpstreamError};
pub use model::{CallTransfer, Status, TransferType};
