//! What the auth circuit lets the tracker do right now.

use tokio::time::Instant;

use super::poll::PollDeps;

/// What the auth circuit allows right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Gate {
    Open,
    /// One request may go, to find out whether credentials work again.
    Probe,
    /// Past `auth_fail_after`: due transfers fail (or probe, when due).
    Fail {
        probe: bool,
    },
    /// Nothing goes before this instant (or a circuit change).
    Hold(Instant),
}

impl Gate {
    /// From the circuit's state; `probing`: a probe is in flight.
    pub(super) fn now(deps: &PollDeps, probing: bool) -> Self {
        let Some((open_for, probe_at)) = deps.upstream.budget().circuit().open_state() else {
            return Gate::Open;
        };
        let probe = !probing && probe_at <= Instant::now();
        if open_for >= deps.auth_fail_after {
            return Gate::Fail { probe };
        }
        if probe {
            return Gate::Probe;
        }
        let fail_at = Instant::now() + (deps.auth_fail_after - open_for);
        // A probe in flight settles through `inflight`, which wakes us anyway.
        Gate::Hold(if probing {
            fail_at
        } else {
            probe_at.min(fail_at)
        })
    }
}
