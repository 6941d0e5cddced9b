//! `?wait=<duration>`: long-poll reads, so a dialplan gets the answer in the
//! one request it makes when the call comes back.
//!
//! The pull is the signal: holding a TRACKING transfer's request polls it
//! now in the returned-call lane, and the request answers when the state
//! change that ends TRACKING wakes it (see `transfer::Waiters`), or when the
//! wait runs out.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::{AppState, Found};
use crate::tracker::Signal;
use crate::transfer::{Transfer, TransferId};

/// Digits allowed before and after the point: a day is 5 digits, so
/// anything near 20 is a typo or an attack, not a wait.
const MAX_DIGITS: usize = 9;
/// Units a wait may carry (humantime's short forms), in seconds each.
const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("sec", 1.0),
    ("m", 60.0),
    ("min", 60.0),
    ("h", 3600.0),
];
/// The grammar `parse` accepts, for the OpenAPI document (so a fuzzer's
/// schema-valid values are exactly the accepted ones).
pub const PATTERN: &str = "^[0-9]{1,9}(\\.[0-9]{1,9})?(ns|us|ms|s|sec|m|min|h)?$";

/// `?wait=` on the reads that may be held.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Hold a TRACKING transfer's request until it leaves TRACKING, at most
    /// this long (capped by `http.max_wait`): `5s`, `750ms`, or seconds (`2.5`).
    pub wait: Option<String>,
}

/// Parse `?wait=`: seconds (`5`, `2.5`) or a number with one humantime unit
/// (`5s`, `750ms`, `1m`), capped at `max`.
pub fn parse(raw: Option<&str>, max: Duration) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let wait = duration(raw).map_err(|why| {
        ApiError::Invalid(format!(
            "wait: {why} (got {raw:?}; give seconds such as 5 or 2.5, or a duration such as 5s, 750ms or 1m)"
        ))
    })?;
    Ok(Some(wait.min(max)))
}

fn duration(raw: &str) -> Result<Duration, &'static str> {
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return Err("not a number");
    }
    if whole.len() > MAX_DIGITS || fraction.len() > MAX_DIGITS {
        return Err("too many digits");
    }
    let scale = match unit {
        "" => 1.0,
        unit => UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or("unknown unit")?,
    };
    let seconds: f64 = number.parse().map_err(|_| "not a number")?;
    Duration::try_from_secs_f64(seconds * scale).map_err(|_| "out of range")
}

/// The transfer and its actions as they stand after at most `wait`. A
/// TRACKING transfer's request counts as a returned-call signal and is held
/// until the transfer leaves TRACKING, the wait runs out (it is then still
/// TRACKING) or the bridge shuts down (503).
pub async fn settle(
    app: &AppState,
    id: &TransferId,
    wait: Option<Duration>,
) -> Result<Found, ApiError> {
    match settled(app, id, wait).await? {
        Settled::Read(found) => Ok(*found),
        Settled::Ended(_) | Settled::Unread => app.find_full(id).await,
    }
}

/// [`settle`] for a request that needs only the transfer (the PBX's SIP
/// instruction): when the change that ended TRACKING woke it, the transfer
/// that change committed answers, with no read after it.
pub async fn settle_transfer(
    app: &AppState,
    id: &TransferId,
    wait: Option<Duration>,
) -> Result<Transfer, ApiError> {
    Ok(match settled(app, id, wait).await? {
        Settled::Read(found) => found.transfer,
        Settled::Ended(ended) => Arc::unwrap_or_clone(ended),
        Settled::Unread => app.find_full(id).await?.transfer,
    })
}

/// What [`settled`] found.
enum Settled {
    /// A read that answers as it is: no wait, already ended, or the tracker
    /// let go of the transfer.
    Read(Box<Found>),
    /// Woken by the change that ended TRACKING, as it committed it.
    Ended(Arc<Transfer>),
    /// The wait ran out, or a wake-up came without the transfer: read it.
    Unread,
}

/// Read the transfer, and while it is TRACKING signal it and hold the
/// request until it ends, the wait runs out or the bridge shuts down.
async fn settled(
    app: &AppState,
    id: &TransferId,
    wait: Option<Duration>,
) -> Result<Settled, ApiError> {
    let Some(wait) = wait.filter(|w| !w.is_zero()) else {
        return app.find_full(id).await.map(|f| Settled::Read(Box::new(f)));
    };
    if app.draining.is_cancelled() {
        return Err(shutting_down());
    }
    // Hold before reading: a state change between the read and the wait
    // still wakes this request.
    let mut waiter = app.waiters.hold(id).map_err(|full| {
        ApiError::Unavailable(format!("too many held requests: {full}; retry shortly"))
    })?;
    let found = app.find_full(id).await?;
    if found.transfer.state.is_terminal() {
        return Ok(Settled::Read(Box::new(found)));
    }
    let transfer = found.transfer;
    if app
        .cluster
        .poll_now(&transfer, Signal::Returned)
        .await
        .is_none()
    {
        // The tracker lets go of a transfer once it ended it: read again.
        let found = app.find_full(id).await?;
        return match found.transfer.state.is_terminal() {
            true => Ok(Settled::Read(Box::new(found))),
            false => Err(ApiError::Unavailable("the tracker is not running".into())),
        };
    }
    let outcome = hold(app, &transfer, &mut waiter, wait).await;
    let ended = waiter.ended();
    drop(waiter);
    metrics::counter!("bridge_held_requests_total", "outcome" => outcome).increment(1);
    match (outcome, ended) {
        ("shutdown", _) => Err(shutting_down()),
        ("changed", Some(ended)) => Ok(Settled::Ended(ended)),
        _ => Ok(Settled::Unread),
    }
}

/// Wait for the change, the deadline or shutdown. While another instance
/// polls the transfer, ask it again every second: its tracker does not know
/// a caller is held here (it re-polls held transfers that often itself).
/// Every few nudges, read who owns it now: an owner that died meanwhile is
/// adopted from, and the nudges go to its adopter.
async fn hold(
    app: &AppState,
    transfer: &Transfer,
    waiter: &mut crate::transfer::Waiter,
    wait: Duration,
) -> &'static str {
    let remote = transfer
        .owner
        .as_deref()
        .is_some_and(|o| o != app.cluster.instance());
    let mut transfer = std::borrow::Cow::Borrowed(transfer);
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let mut nudge = tokio::time::interval(HELD_NUDGE);
    nudge.reset();
    let mut nudges = 0u32;
    loop {
        tokio::select! {
            _ = waiter.changed() => return "changed",
            _ = &mut deadline => return "timeout",
            _ = app.draining.cancelled() => return "shutdown",
            _ = nudge.tick(), if remote => {
                nudges = nudges.wrapping_add(1);
                if nudges.is_multiple_of(OWNER_RECHECK) {
                    reread_owner(app, &mut transfer).await;
                }
                app.cluster.poll_now(&transfer, Signal::Held).await;
            }
        }
    }
}

/// How often a request held on a non-owner asks the owner to poll again.
const HELD_NUDGE: Duration = Duration::from_secs(1);

/// Every how many nudges a held request reads the transfer's owner again.
const OWNER_RECHECK: u32 = 5;

async fn reread_owner(app: &AppState, transfer: &mut std::borrow::Cow<'_, Transfer>) {
    match app.store.get(&transfer.id).await {
        Ok(Some(now)) if now.owner != transfer.owner => transfer.to_mut().owner = now.owner,
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "cannot read a held transfer's owner"),
    }
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable("shutting down; ask another instance or retry shortly".into())
}

/// Mark an answer given while the transfer is still TRACKING: ask again.
pub fn retry_soon(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(super::error::RETRY_SOON_SECS),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(30);

    fn ok(raw: &str) -> Duration {
        parse(Some(raw), MAX).unwrap().unwrap()
    }

    #[test]
    fn humantime_and_plain_seconds_are_read_and_capped() {
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("750ms"), Duration::from_millis(750));
        assert_eq!(ok("5"), Duration::from_secs(5));
        assert_eq!(ok("2.5"), Duration::from_millis(2500));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("1h"), MAX);
        assert_eq!(ok("3600"), MAX);
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("1m"), MAX);
        assert_eq!(parse(None, MAX).unwrap(), None);
    }

    #[test]
    fn bad_values_are_refused_with_422() {
        for raw in [
            "",
            "-5",
            "-5s",
            "abc",
            "5 parsecs",
            "5x",
            "1e309",
            "inf",
            "NaN",
            "1.2.3",
            ".",
            "99999999999999999999",
            "99999999999999999999s",
            "1e3",
        ] {
            match parse(Some(raw), MAX) {
                Err(e @ ApiError::Invalid(_)) => {
                    assert!(e.to_string().starts_with("wait: "), "{raw:?}: {e}")
                }
                other => panic!("{raw:?} was accepted: {other:?}"),
            }
        }
    }
}
