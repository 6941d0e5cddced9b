//! Group commit: state changes that arrive together share one transaction.
//! So do registrations (see `register`) and the upstream statuses that
//! change without ending tracking (ACTIVE to ONGOING): nearly every polled
//! transfer has one besides its ending, and each was a commit of its own.
//!
//! Under `synchronous = FULL` every commit waits for an fsync, and SQLite
//! takes one writer at a time, so a burst of changes committed one by one
//! queues on the disk. Every `register`, `finish` and `upstream_seen` goes
//! to one committer task. It takes what is already queued (at most
//! `MAX_GROUP`) and, when the last group was not alone (the bridge is under
//! load), lingers up to `LINGER` for more; then writes the whole group in
//! one transaction and commits once: one INSERT of the registrations (those
//! not new then read in one statement, each told a repeat or a conflict)
//! and one of their actions, one UPDATE of the statuses seen (see
//! `store::seen`), and for the endings one read,
//! one UPDATE and one INSERT of their actions (see `store::ending`). An idle
//! bridge commits a lone change at once. Under a steady pace, registrations
//! alone wait a few milliseconds for another change to ride on (see `pace`).
//!
//! On SQLite every statement is a hand-off to the writer's thread and back,
//! so the statements whose answers the group does not wait for go with the
//! next one (see `store::Conn::with_next`): the registrations are taken to
//! be new (see `store::insert_taken_as_new`; if one was not, the group runs
//! again reading which are), their actions and the statuses go with the
//! next statement, and the endings' UPDATE and INSERT with the COMMIT. A
//! lone registration is one hand-off, a lone ending two (its read, then
//! the rest).
//!
//! Headers-only SIP returns join too: one INSERT registers the transfers
//! among them the bridge did not know, and each completion is one more
//! ending.
//!
//! Each change keeps its own outcome (a registration: new, an identical
//! repeat or a conflict; an ending: ended now, had already ended, or
//! unknown; a return: new to the bridge or not). If a statement or the commit fails, each change of the group
//! is run again alone, so every caller gets the answer its own transaction
//! would have given. Nobody is answered (and no dispatcher or held request
//! woken) before the commit.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::finish::as_known;
use super::job::{FinishJob, Job, RegisterJob, ReturnJob, SeenJob};
use super::pace::{PATIENCE, Pace};
use super::register::{self, Registration};
use super::sip_return::{self, SipReturned};
use super::{Finish, Finished, Lifecycle, Returned};
use crate::linger::{linger, linger_until};
use crate::outbox::{ActionView, Slot, repo};
use crate::store::{self, Conn, StoreError};
use crate::transfer::{Action, TransferId};

/// How long a group waits for company under load.
const LINGER: Duration = Duration::from_millis(2);
/// Changes per transaction at most. In a burst the groups fill up, and a
/// group hands its actions to the dispatcher only at its commit: at 128,
/// not 256, they go out in smaller, more even waves. Against 256, fourteen
/// alternating pairs of 10,000 signalled completions: the drain shorter in
/// eleven (3-5% at the median), the bridge's CPU per completion lower in ten
/// and the broker's lower too; PostgreSQL and lone commits even. 64 was
/// worse, 512 and 1,024 no better (README, "Throughput and CPU").
const MAX_GROUP: usize = 128;
/// Changes waiting for the committer; callers wait when it is full.
pub(super) const QUEUE: usize = 4096;

/// Commit groups until every sender is gone. Registrations alone wait for
/// another change to ride on when one is due (see `pace`); other groups
/// linger for company only under load.
pub(super) async fn run(lifecycle: Lifecycle, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let (mut busy, mut pace) = (false, Pace::default());
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let patient = !group.iter().any(Job::prompt) && pace.due(Instant::now());
        if patient {
            linger_until(&mut rx, &mut group, MAX_GROUP, PATIENCE, Job::prompt).await;
        } else if busy && group.len() < MAX_GROUP {
            linger(&mut rx, &mut group, MAX_GROUP, LINGER).await;
        }
        // A registration that waited and the change it rode on are not load.
        busy = !patient && group.len() > 1;
        pace.saw(
            group.iter().filter(|job| job.prompt()).count(),
            Instant::now(),
        );
        commit(&lifecycle, std::mem::take(&mut group)).await;
    }
}

/// A group split by kind.
#[derive(Default)]
struct Group {
    registers: Vec<RegisterJob>,
    finishes: Vec<FinishJob>,
    seen: Vec<SeenJob>,
    returns: Vec<ReturnJob>,
}

impl Group {
    fn len(&self) -> usize {
        self.registers.len() + self.finishes.len() + self.seen.len() + self.returns.len()
    }

    /// Every ending of the group, in order: the endings, then the returns'
    /// completions.
    fn changes(&self) -> Vec<(&TransferId, Finish<'_>)> {
        let finishes = self
            .finishes
            .iter()
            .map(|job| (&job.id, job.finish.as_finish()));
        let returns = self.returns.iter();
        let completions = returns.map(|job| (&job.new.id, sip_return::completion(&job.seen)));
        finishes.chain(completions).collect()
    }

    /// Whether [`Taken::AsGiven`] takes anything as given.
    fn takes_anything(&self) -> bool {
        let known = |job: &FinishJob| job.finish.carries_known();
        !self.registers.is_empty() || self.finishes.iter().any(known)
    }
}

/// What a group's transaction gave each registration, ending and return.
struct Outcomes {
    registered: Vec<Registration>,
    finished: Vec<Finished>,
    /// Each return's answer, how its completion went, and the views of the
    /// actions it enqueued.
    returned: Vec<(Returned, Finished, Vec<ActionView>)>,
}

async fn commit(lifecycle: &Lifecycle, jobs: Vec<Job>) {
    metrics::histogram!("bridge_lifecycle_group_size").record(jobs.len() as f64);
    let mut group = Group::default();
    for job in jobs {
        match job {
            Job::Finish(f) => group.finishes.push(*f),
            Job::Seen(s) => group.seen.push(s),
            Job::Register(r) => group.registers.push(*r),
            Job::Return(r) => group.returns.push(*r),
        }
    }
    let mut written = write_group(lifecycle, &group, Taken::AsGiven).await;
    if let Err(e) = &written
        && group.takes_anything()
    {
        // A registration that was not new (see `store::insert_taken_as_new`),
        // a transfer that changed since it was read (see `Finish::known`),
        // or any other failure: once more, reading.
        tracing::debug!(error = %e, "group taking its changes as given failed; reading them");
        written = write_group(lifecycle, &group, Taken::AsStored).await;
    }
    match written {
        Ok(outcomes) => answer(lifecycle, group, outcomes),
        Err(e) => {
            let changes = group.len();
            tracing::warn!(changes, error = %e, "group commit failed; committing each change alone");
            alone(lifecycle, group).await;
        }
    }
}

/// After the commit (and the handoff of its actions): each caller's answer.
fn answer(lifecycle: &Lifecycle, group: Group, outcomes: Outcomes) {
    for (job, registration) in group.registers.into_iter().zip(outcomes.registered) {
        register::counted(&registration.0);
        let _ = job.reply.send(Ok(registration));
    }
    for (job, finished) in group.finishes.into_iter().zip(outcomes.finished) {
        lifecycle.finished(&job.id, &finished);
        let _ = job.reply.send(Ok(finished));
    }
    for job in group.seen {
        let _ = job.reply.send(Ok(()));
    }
    for (job, (returned, finished, views)) in group.returns.into_iter().zip(outcomes.returned) {
        lifecycle.finished(&job.new.id, &finished);
        let _ = job
            .reply
            .send(Ok(SipReturned::new(returned, finished, views)));
    }
}

/// The group failed: each change again in a transaction of its own, so each
/// caller gets the answer its own transaction gives.
async fn alone(lifecycle: &Lifecycle, group: Group) {
    for job in group.registers {
        let result = lifecycle
            .register_alone(&job.new, job.created.as_ref())
            .await;
        let _ = job.reply.send(result);
    }
    for job in group.finishes {
        let result = lifecycle
            .finish_alone(&job.id, &job.finish.as_finish())
            .await;
        let _ = job.reply.send(result);
    }
    for job in group.seen {
        let _ = job.reply.send(lifecycle.seen_alone(&job.row).await);
    }
    for job in group.returns {
        let result = lifecycle.sip_return_alone(&job.new, &job.seen).await;
        let _ = job.reply.send(result);
    }
}

/// One transaction for the whole group (see [`write_in`]). A group that
/// took a repeat registration for new fails at its end: rolled back, its
/// connection kept for the try that reads (see `Conn::commit_if`).
async fn write_group(
    lifecycle: &Lifecycle,
    group: &Group,
    taken: Taken,
) -> Result<Outcomes, StoreError> {
    let slot = lifecycle.outbox.slot();
    let claimed = slot.claim().is_some();
    let mut tx = lifecycle.store.begin().await?;
    let written = write_in(lifecycle, &mut tx, group, &slot, taken).await;
    let Written {
        registered,
        mut actions,
        returned,
        mut finished,
        ended,
    } = tx.commit_if(written).await?;
    let completed = finished.split_off(group.finishes.len());
    // The endings' actions come in the order of the changes, the returns'
    // completions last.
    let skip: usize = finished.iter().map(enqueued).sum();
    let returned = with_views(returned, completed, &ended[skip..], claimed);
    actions.extend(ended);
    lifecycle.outbox.committed(slot, actions);
    Ok(Outcomes {
        registered,
        finished,
        returned,
    })
}

/// What a group's statements gave, before its commit.
struct Written {
    registered: Vec<Registration>,
    /// The registrations' actions.
    actions: Vec<Action>,
    returned: Vec<Returned>,
    finished: Vec<Finished>,
    /// The endings' actions, the returns' completions last.
    ended: Vec<Action>,
}

/// The group's statements: the registrations, the transfers returns
/// complete (registered when new), the statuses seen, the registrations'
/// actions, then every ending (the returns' completions last).
async fn write_in(
    lifecycle: &Lifecycle,
    tx: &mut Conn,
    group: &Group,
    slot: &Slot,
    taken: Taken,
) -> Result<Written, StoreError> {
    let backend = lifecycle.store.backend();
    let claimed = slot.claim().is_some();
    let (registered, actions) = register_all(lifecycle, tx, group, claimed, taken).await?;
    let news: Vec<_> = group.returns.iter().map(|job| &job.new).collect();
    let returned = lifecycle.returns_in(tx, &news).await?;
    store::record_upstream(tx, backend, group.seen.iter().map(|job| &job.row)).await?;
    repo::enqueue(tx, backend, &actions, slot.claim()).await?;
    let changes = group.changes();
    let (finished, ended) = match changes.is_empty() {
        true => Default::default(),
        false => {
            let known = match taken {
                Taken::AsGiven => as_known(&changes, tx),
                Taken::AsStored => None,
            };
            lifecycle.finish_in(tx, &changes, slot, known).await?
        }
    };
    Ok(Written {
        registered,
        actions,
        returned,
        finished,
        ended,
    })
}

/// How a group's registrations are inserted and its endings' transfers
/// found.
#[derive(Clone, Copy)]
enum Taken {
    /// Each registration taken to be new: on SQLite the INSERT goes with the
    /// next statement, and the transaction fails if one was not. Endings
    /// that came with their transfer take it (see [`as_known`]), and the
    /// transaction fails if one changed meanwhile.
    AsGiven,
    /// The INSERT's rows say which were new; the others are read, and so
    /// are the transfers the endings end.
    AsStored,
}

/// The group's registrations, in the caller's transaction: one INSERT of
/// the new ones, then each answer and the actions to enqueue for them.
async fn register_all(
    lifecycle: &Lifecycle,
    tx: &mut Conn,
    group: &Group,
    claimed: bool,
    taken: Taken,
) -> Result<(Vec<Registration>, Vec<Action>), StoreError> {
    let mut registered = Vec::with_capacity(group.registers.len());
    let mut actions = Vec::new();
    let news: Vec<_> = group.registers.iter().map(|job| &job.new).collect();
    let as_new = match taken {
        Taken::AsGiven => lifecycle.insert_taken_as_new(tx, &news).await?,
        Taken::AsStored => None,
    };
    let mut inserted = match as_new {
        Some(inserted) => inserted,
        None => lifecycle.insert_new(tx, &news).await?,
    };
    let not_new: Vec<_> = (news.iter().copied())
        .filter(|n| !inserted.contains_key(n.id.as_str()))
        .collect();
    let mut repeats = store::repeats(tx, lifecycle.store.backend(), &not_new).await?;
    for job in &group.registers {
        let sorted = (&mut inserted, &mut repeats);
        let (outcome, planned) = lifecycle
            .register_in(tx, &job.new, job.created.as_ref(), sorted)
            .await?;
        registered.push((outcome, register::views(&planned, claimed)));
        actions.extend(planned);
    }
    Ok((registered, actions))
}

/// Each return with its completion and the views of the actions it
/// enqueued, taken in order from `ended` (the returns' share of them).
fn with_views(
    returned: Vec<Returned>,
    completed: Vec<Finished>,
    mut ended: &[Action],
    claimed: bool,
) -> Vec<(Returned, Finished, Vec<ActionView>)> {
    let each = |(returned, finished): (Returned, Finished)| {
        let (own, rest) = ended.split_at(enqueued(&finished));
        ended = rest;
        (returned, finished, register::views(own, claimed))
    };
    returned.into_iter().zip(completed).map(each).collect()
}

/// How many actions a change enqueued.
fn enqueued(finished: &Finished) -> usize {
    match finished {
        Finished::Changed { actions, .. } => *actions,
        Finished::AlreadyEnded(_) | Finished::Unknown => 0,
    }
}
