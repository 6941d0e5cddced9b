//! A change on its way to the group committer (see `group`): what it
//! carries, and where its caller waits for the answer.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Finished;
use super::finish::OwnedFinish;
use super::register::Registration;
use super::sip_return::SipReturned;
use crate::store::{NewTransfer, StoreError, Upstream};
use crate::transfer::TransferId;
use crate::upstream::{CallTransfer, Fetched};

/// A change waiting for the committer.
pub(super) enum Job {
    /// Boxed: it holds the whole upstream resource, a status needs a tenth.
    Finish(Box<FinishJob>),
    Seen(SeenJob),
    Register(Box<RegisterJob>),
    Return(Box<ReturnJob>),
}

/// A headers-only SIP return (see `sip_return`).
pub(super) struct ReturnJob {
    pub new: NewTransfer,
    /// The completed resource the return stands for, and its JSON.
    pub seen: Arc<Fetched>,
    pub reply: oneshot::Sender<Result<SipReturned, StoreError>>,
}

/// A registration.
pub(super) struct RegisterJob {
    pub new: NewTransfer,
    /// The upstream's answer when the bridge created the transfer upstream.
    pub created: Option<CallTransfer>,
    pub reply: oneshot::Sender<Result<Registration, StoreError>>,
}

/// A transfer leaving TRACKING.
pub(super) struct FinishJob {
    pub id: TransferId,
    pub finish: OwnedFinish,
    pub reply: oneshot::Sender<Result<Finished, StoreError>>,
}

/// A new upstream status that does not end tracking.
pub(super) struct SeenJob {
    pub row: Upstream,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Hand a change to the committer and wait for its answer; `None` when
/// there is no committer, or it is gone or stopped without answering: then
/// nothing was committed, and the caller runs the change alone.
pub(super) async fn submit<T>(
    committer: Option<&mpsc::Sender<Job>>,
    job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
) -> Option<Result<T, StoreError>> {
    let committer = committer?;
    let (reply, answer) = oneshot::channel();
    committer.send(job(reply)).await.ok()?;
    answer.await.ok()
}

impl Job {
    /// Everything but a registration commits without waiting for company
    /// of its own kind (see `pace`).
    pub(super) fn prompt(&self) -> bool {
        !matches!(self, Job::Register(_))
    }
}
