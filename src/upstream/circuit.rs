//! The auth circuit: refused credentials (401/403) concern every transfer,
//! so they stop the whole bridge's polling instead of failing transfers one
//! poll at a time.
//!
//! Closed -> (401/403) -> Open: polling pauses, `/readyz` fails, one probe
//! request may go at a time after a doubling backoff, and the bridge logs
//! once a minute. Any answer that proves authentication (2xx, 404, other
//! 4xx) closes it again. 429, 5xx and network errors prove nothing.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::error::UpstreamError;
use crate::backoff::Backoff;

/// How often an open circuit repeats its log line.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub struct AuthCircuit {
    probe_initial: Duration,
    probe_max: Duration,
    state: Mutex<Option<Open>>,
    /// `true` while open; the tracker waits on changes.
    changed: watch::Sender<bool>,
}

#[derive(Debug, Clone)]
struct Open {
    since: Instant,
    probe_at: Instant,
    backoff: Duration,
    last_log: Instant,
    refused: u64,
    error: String,
}

/// What the circuit says right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CircuitStatus {
    Closed,
    Open {
        /// How long requests have been refused.
        open_for: Duration,
        /// When the next probe may go (now or in the past: it may go now).
        probe_at: Instant,
        /// The last refusal, for logs and `/readyz`.
        error: String,
    },
}

impl AuthCircuit {
    pub fn new(probe_initial: Duration, probe_max: Duration) -> Self {
        Self {
            probe_initial,
            probe_max: probe_max.max(probe_initial),
            state: Mutex::new(None),
            changed: watch::channel(false).0,
        }
    }

    pub fn status(&self) -> CircuitStatus {
        match &*self.lock() {
            None => CircuitStatus::Closed,
            Some(open) => CircuitStatus::Open {
                open_for: open.since.elapsed(),
                probe_at: open.probe_at,
                error: open.error.clone(),
            },
        }
    }

    /// How long it has been open and when the next probe may go; `None`
    /// while closed. Cheap: the tracker asks on every turn of its loop.
    pub fn open_state(&self) -> Option<(Duration, Instant)> {
        self.lock()
            .as_ref()
            .map(|open| (open.since.elapsed(), open.probe_at))
    }

    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Resolves on every open/close; for loops that gate on the circuit.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changed.subscribe()
    }

    /// Learn from one upstream answer.
    pub fn record<T>(&self, result: &Result<T, UpstreamError>) {
        match result {
            Err(
                e @ UpstreamError::Status {
                    status: 401 | 403, ..
                },
            ) => self.refused(e),
            // A 429 may come before authentication: it proves nothing.
            Err(UpstreamError::Status { status: 429, .. }) => {}
            Ok(_)
            | Err(UpstreamError::Status {
                status: 400..=499, ..
            }) => self.accepted(),
            Err(_) => {}
        }
    }

    fn refused(&self, error: &UpstreamError) {
        let now = Instant::now();
        let mut state = self.lock();
        match &mut *state {
            None => {
                tracing::error!(error = %error, probe_in_ms = self.probe_initial.as_millis() as u64,
                    "upstream refused the bridge's credentials; polling paused for every transfer");
                *state = Some(Open {
                    since: now,
                    probe_at: now + self.probe_initial,
                    backoff: self.probe_initial,
                    last_log: now,
                    refused: 1,
                    error: error.to_string(),
                });
                drop(state);
                metrics::gauge!("bridge_upstream_auth_circuit_open").set(1.0);
                self.changed.send_replace(true);
            }
            Some(open) => {
                open.refused += 1;
                open.error = error.to_string();
                // Requests already in flight when the circuit opened answer
                // before the probe time; only a probe's refusal backs off.
                if now >= open.probe_at {
                    open.backoff =
                        Backoff::new(self.probe_initial, self.probe_max).next(open.backoff);
                    open.probe_at = now + open.backoff;
                }
                if now.duration_since(open.last_log) >= LOG_EVERY {
                    open.last_log = now;
                    tracing::error!(error = %error, open_for_s = open.since.elapsed().as_secs(),
                        refused = open.refused, probe_in_s = open.backoff.as_secs(),
                        "upstream still refuses the bridge's credentials; polling paused");
                }
            }
        }
    }

    fn accepted(&self) {
        let Some(open) = self.lock().take() else {
            return;
        };
        tracing::info!(
            open_for_s = open.since.elapsed().as_secs(),
            refused = open.refused,
            "upstream accepts the bridge's credentials again; polling resumes"
        );
        metrics::gauge!("bridge_upstream_auth_circuit_open").set(0.0);
        self.changed.send_replace(false);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Result<(), UpstreamError> {
        Err(UpstreamError::Status {
            status: code,
            envelope: None,
            retry_after: None,
        })
    }

    fn probe_in(circuit: &AuthCircuit) -> Duration {
        match circuit.status() {
            CircuitStatus::Open { probe_at, .. } => probe_at - Instant::now(),
            CircuitStatus::Closed => panic!("expected open"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_refusal_backs_off_and_closes_on_proof() {
        let circuit = AuthCircuit::new(Duration::from_secs(1), Duration::from_secs(4));
        let mut changes = circuit.subscribe();
        circuit.record(&status(503));
        assert_eq!(circuit.status(), CircuitStatus::Closed);
        circuit.record(&status(401));
        assert!(changes.has_changed().unwrap() && *changes.borrow_and_update());
        // Another request that was already in flight: no extra backoff.
        circuit.record(&status(401));
        let mut backoffs = Vec::new();
        for _ in 0..4 {
            let wait = probe_in(&circuit);
            backoffs.push(wait.as_secs());
            tokio::time::sleep(wait).await;
            circuit.record(&status(403));
        }
        assert_eq!(backoffs, [1, 2, 4, 4]);
        // 429 and 5xx say nothing about credentials.
        circuit.record(&status(429));
        circuit.record(&status(500));
        assert!(circuit.is_open());
        circuit.record(&status(404));
        assert_eq!(circuit.status(), CircuitStatus::Closed);
        assert!(!*changes.borrow_and_update());
    }
}
