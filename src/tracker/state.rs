//! What the tracker keeps in memory per transfer: small on purpose, since a
//! bridge may track 100k transfers at once.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::integrations::IntegrationId;
use crate::transfer::{Transfer, TransferId};
use crate::upstream::model::parse_time;
use crate::upstream::{CallTransfer, Status};

/// The upstream status, folded into what scheduling needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not seen yet (or an unknown status).
    Unknown,
    Active,
    Ongoing,
}

impl Phase {
    /// The `status` label of the tracked-transfers gauge.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Active => "active",
            Self::Ongoing => "ongoing",
        }
    }

    pub fn of(status: &Status) -> Self {
        match status {
            Status::Active => Self::Active,
            Status::Ongoing => Self::Ongoing,
            _ => Self::Unknown,
        }
    }
}

/// How many tracked transfers are in each [`Phase`], for the
/// `bridge_tracked_transfers` gauge.
#[derive(Debug, Default)]
pub struct PhaseCounts([usize; 3]);

impl PhaseCounts {
    /// Move one transfer between counts (`None`: in or out of tracking) and
    /// publish them.
    pub fn moved(&mut self, from: impl Into<Option<Phase>>, to: impl Into<Option<Phase>>) {
        let (from, to) = (from.into(), to.into());
        if from == to {
            return;
        }
        if let Some(phase) = from {
            self.0[phase as usize] -= 1;
        }
        if let Some(phase) = to {
            self.0[phase as usize] += 1;
        }
        for phase in [Phase::Unknown, Phase::Active, Phase::Ongoing] {
            let n = self.0[phase as usize] as f64;
            metrics::gauge!("bridge_tracked_transfers", "status" => phase.label()).set(n);
        }
    }
}

/// What asks for a poll now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The call came back (`/returned`, or a `?wait=` pull's first look):
    /// at once the first time, then spaced (see [`TrackState::pull_gap`]).
    Returned,
    /// A request held on another instance asks again (its once-a-second
    /// nudge): polled at most once per [`HELD_REPOLL`] while it waits, as
    /// for a request held here, and not counted as a pull.
    Held,
}

/// While a request is held for the transfer (`?wait=`), a caller is on the
/// line: re-poll at least this often, not at ever-doubling intervals, until
/// the transfer ends or the request gives up.
pub const HELD_REPOLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct TrackState {
    pub id: TransferId,
    /// Registration time: the not-found grace and tracking limit count from it.
    pub registered_at: OffsetDateTime,
    pub phase: Phase,
    /// When the conversation began: upstream `callReceivedAt`, else when the
    /// bridge first saw ONGOING. Policies schedule by the conversation's age.
    pub ongoing_since: Option<Instant>,
    /// `phoneNumber.expiresAt`, when the upstream gave one.
    pub expires_at: Option<OffsetDateTime>,
    pub polls: u32,
    /// Consecutive failed polls, for backoff.
    pub failures: u32,
    /// When the last returned-call signal pulled a poll forward (or will:
    /// a pull put off by [`TrackState::next_pull`] is in the future). Within
    /// `polling.returned_window` of it, polls go first and re-poll quickly.
    pub signalled_at: Option<Instant>,
    /// Polls pulled forward by signals so far: their spacing grows with it.
    pub pulls: u8,
    /// When the last GET of it was sent.
    pub last_sent: Option<Instant>,
    /// Who registered it: signal trust is learned per integration.
    pub integration: IntegrationId,
    /// The registration's `returnSignal`, overriding the learned trust.
    pub return_signal: Option<bool>,
    /// The transfer as the read that answered a signal showed it, until the
    /// poll the signal brought: if that poll ends it, the ending needs no
    /// read of its own (see `lifecycle::Finish::known`).
    pub known: Option<Arc<Transfer>>,
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
            signalled_at: None,
            pulls: 0,
            last_sent: None,
            integration: IntegrationId::SHARED,
            return_signal: None,
            known: None,
        }
    }

    /// A transfer a previous run left TRACKING, with what its last stored
    /// resource says, so the policy can schedule it without a GET first.
    pub fn resumed(transfer: &Transfer, integration: IntegrationId) -> Self {
        let mut state = Self::new(transfer.id.clone(), transfer.created_at);
        state.polls = transfer.polls;
        state.integration = integration;
        state.return_signal = transfer.return_signal;
        let resource = transfer
            .upstream
            .as_ref()
            .and_then(|raw| serde_json::from_value::<CallTransfer>(raw.clone()).ok());
        if let Some(resource) = resource {
            state.phase = state.learn(&resource);
        }
        state
    }

    /// Take what scheduling needs from a resource; returns the new phase.
    pub fn learn(&mut self, resource: &CallTransfer) -> Phase {
        let phase = Phase::of(&resource.status);
        if let Some(expires) = resource.expires_at() {
            self.expires_at = Some(expires);
        }
        if phase == Phase::Ongoing && self.ongoing_since.is_none() {
            let received = resource.call_received_at.as_deref().and_then(parse_time);
            self.ongoing_since = Some(received.map_or_else(Instant::now, instant_of));
        }
        phase
    }

    pub fn age(&self) -> std::time::Duration {
        let age = OffsetDateTime::now_utc() - self.registered_at;
        age.try_into().unwrap_or_default()
    }

    /// How long after the last GET a signal may pull the next poll forward:
    /// the first at once, the second and third `interval` later, then
    /// doubling up to `max`. A PBX that signals a call once or twice never
    /// waits, while one looping on `/returned` for a call the upstream still
    /// shows ONGOING spends a GET per `max` once the gap has grown, not one
    /// per signal, from the daily budget.
    pub fn pull_gap(&self, interval: Duration, max: Duration) -> Duration {
        match self.pulls {
            0 => Duration::ZERO,
            n => {
                let doublings = u32::from(n.saturating_sub(2)).min(20);
                interval
                    .saturating_mul(1 << doublings)
                    .min(max.max(interval))
            }
        }
    }

    /// When a signal arriving `now` may pull a poll: at once for the first,
    /// and whenever no GET was sent within the gap.
    pub fn next_pull(&self, now: Instant, interval: Duration, max: Duration) -> Instant {
        match self.last_sent {
            Some(sent) if self.pulls > 0 => (sent + self.pull_gap(interval, max)).max(now),
            _ => now,
        }
    }

    /// When a nudge for a request held elsewhere may poll: no GET within
    /// [`HELD_REPOLL`].
    pub fn next_held_poll(&self, now: Instant) -> Instant {
        self.last_sent
            .map_or(now, |sent| (sent + HELD_REPOLL).max(now))
    }

    /// A signal pulls a poll forward to `at`.
    pub fn pull(&mut self, at: Instant) {
        self.signalled_at = Some(at);
        self.pulls = self.pulls.saturating_add(1);
    }

    /// Within `window` of a returned-call signal.
    pub fn in_signal_window(&self, window: Duration) -> bool {
        self.signalled_at.is_some_and(|at| at.elapsed() <= window)
    }
}

/// The tokio instant at which the wall clock read `wall` (now, if later).
fn instant_of(wall: OffsetDateTime) -> Instant {
    let ago: Duration = (OffsetDateTime::now_utc() - wall)
        .try_into()
        .unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_resumed_transfer_keeps_what_its_last_resource_said() {
        let received = OffsetDateTime::now_utc() - time::Duration::seconds(90);
        let raw = json!({"id": "t1", "externalConversationId": "c", "status": "ONGOING",
            "createdAt": "2030-01-01T00:00:00Z", "type": "PHONE_NUMBER",
            "callReceivedAt": received.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "phoneNumber": {"expiresAt": "2030-01-01T00:01:00Z"}});
        let transfer = Transfer {
            id: TransferId::parse("t1").unwrap(),
            state: crate::transfer::BridgeState::Tracking,
            upstream_status: Some("ONGOING".into()),
            upstream: Some(raw),
            callback_url: None,
            metadata: Default::default(),
            polls: 7,
            reason: None,
            sip: None,
            integration: None,
            return_signal: Some(true),
            owner: None,
            created_at: OffsetDateTime::now_utc(),
            updated_at: OffsetDateTime::now_utc(),
        };
        let state = TrackState::resumed(&transfer, IntegrationId::SHARED);
        assert_eq!(state.phase, Phase::Ongoing);
        assert_eq!(state.return_signal, Some(true));
        assert_eq!(state.polls, 7);
        assert!(state.expires_at.is_some());
        let age = state.ongoing_since.unwrap().elapsed().as_secs();
        assert!((89..=91).contains(&age), "{age}");
    }

    #[test]
    fn signals_pull_at_once_then_at_a_growing_gap_up_to_the_cap() {
        let (interval, max) = (Duration::from_millis(250), Duration::from_secs(30));
        let mut state = TrackState::new(TransferId::parse("t").unwrap(), OffsetDateTime::now_utc());
        let now = Instant::now();
        assert_eq!(
            state.next_pull(now, interval, max),
            now,
            "the first at once"
        );
        let mut gaps = Vec::new();
        for _ in 0..12 {
            let at = state.next_pull(now, interval, max);
            state.pull(at);
            gaps.push(state.pull_gap(interval, max).as_millis());
        }
        let expected = [
            250, 250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000,
        ];
        assert_eq!(gaps, expected);
        state.pulls = u8::MAX;
        assert_eq!(state.pull_gap(interval, max), max, "no overflow");
        // Once a signal has pulled, the next waits out the gap from the last GET.
        let mut state = TrackState::new(TransferId::parse("t").unwrap(), OffsetDateTime::now_utc());
        state.last_sent = Some(now);
        assert_eq!(
            state.next_pull(now, interval, max),
            now,
            "the first at once"
        );
        state.pull(now);
        assert_eq!(state.next_pull(now, interval, max), now + interval);
        let later = now + Duration::from_secs(1);
        assert_eq!(state.next_pull(later, interval, max), later);
    }
}
