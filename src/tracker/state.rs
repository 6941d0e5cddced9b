//! What the tracker keeps in memory per transfer: small on purpose, since a
//! bridge may track 100k transfers at once.

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::transfer::TransferId;
use crate::upstream::Status;

/// The upstream status, folded into what scheduling needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not seen yet (or an unknown status).
    Unknown,
    Active,
    Ongoing,
}

impl Phase {
    pub fn of(status: &Status) -> Self {
        match status {
            Status::Active => Self::Active,
            Status::Ongoing => Self::Ongoing,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrackState {
    pub id: TransferId,
    /// Registration time: the not-found grace and tracking limit count from it.
    pub registered_at: OffsetDateTime,
    pub phase: Phase,
    /// When the bridge first saw ONGOING (conversation age for policies).
    pub ongoing_since: Option<Instant>,
    /// `phoneNumber.expiresAt`, when the upstream gave one.
    pub expires_at: Option<OffsetDateTime>,
    pub polls: u32,
    /// Consecutive failed polls, for backoff.
    pub failures: u32,
    /// The PBX said the call came back: poll with priority.
    pub returned: bool,
}

impl TrackState {
    pub fn new(id: TransferId, registered_at: OffsetDateTime) -> Self {
        Self {
            id,
            registered_at,
            phase: Phase::Unknown,
            ongoing_since: None,
            expires_at: None,
            polls: 0,
            failures: 0,
            returned: false,
        }
    }

    pub fn age(&self) -> std::time::Duration {
        let age = OffsetDateTime::now_utc() - self.registered_at;
        age.try_into().unwrap_or_default()
    }
}
