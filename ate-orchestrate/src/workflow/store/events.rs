//! Run events: what changed in which run, published after the change commits.
//!
//! Workers use them to wake up at once when a node becomes ready (instead of waiting for
//! their poll interval), and at the moment a retry's backoff ends; hosts use
//! [`WorkflowStore::watch`](super::WorkflowStore::watch) to stream a tenant's (or one run's)
//! changes to an operator.
//!
//! Where they come from:
//! * **SQLite**: the store publishes each committed change into its own in-process feed.
//!   Every engine, worker and watcher of the process should share one store (an `Arc`).
//! * **PostgreSQL**: every change sends `NOTIFY ate_workflows` inside its transaction, so it
//!   is delivered only if it commits, to every host on the database. A store `LISTEN`s on one
//!   pooled connection from its first subscriber on (a task on the host's runtime, which ends
//!   with the store). Notifications sent while that connection is being re-established are
//!   lost: workers still poll, and a watcher notices the gap when an event's
//!   [revision](RunEvent::revision) skips one, and reads the run again.
//!
//! The pattern for an exact view of a run: subscribe first, then read the run
//! ([`get`](super::WorkflowStore::get)), then apply the events whose revision is greater than
//! the one read.

use crate::OrchestrateError;
use crate::workflow::dag::NodeId;
use crate::workflow::state::{NodeStatus, RunStatus};
use ate_core::db::{from_micros, to_micros};
use ate_core::{RunId, TenantId};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast;

/// The PostgreSQL notification channel.
pub(crate) const CHANNEL: &str = "ate_workflows";

/// How many events a slow subscriber may fall behind before it sees `Lagged`.
const CAPACITY: usize = 4096;

/// The largest notification payload sent (PostgreSQL refuses 8,000 bytes and more): an
/// event whose node list would not fit is sent without it ([`RunEvent::nodes_omitted`]).
const MAX_PAYLOAD: usize = 7_000;

/// One node's new status in a [`RunEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeChange {
    /// The node.
    pub node: NodeId,
    /// Its status after the change.
    pub status: NodeStatus,
}

/// A committed change to one run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunEvent {
    /// The run's tenant.
    pub tenant: TenantId,
    /// The run.
    pub run: RunId,
    /// The run's revision after the change (as [`Run::revision`](super::Run::revision)).
    /// A node being claimed does not change it.
    pub revision: i64,
    /// The run's status after the change.
    pub status: RunStatus,
    /// While running handlers wind down: how the run will end (as
    /// [`Run::stopping`](super::Run::stopping)). Workers cancel the run's running attempts
    /// when they see it.
    pub stopping: Option<RunStatus>,
    /// The nodes whose status changed, in definition order.
    pub nodes: Vec<NodeChange>,
    /// `true` when the change touched more nodes than one notification carries: `nodes` is
    /// empty, read the run.
    pub nodes_omitted: bool,
    /// The earliest time a node of this change can be claimed (or a delayed run started),
    /// if the change made one due: workers wake up then.
    pub due_at: Option<DateTime<Utc>>,
}

impl RunEvent {
    /// The event as a notification payload (compact JSON, under [`MAX_PAYLOAD`] bytes).
    pub(crate) fn to_payload(&self) -> String {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| json!([n.node.as_str(), n.status.as_str()]))
            .collect();
        let mut v = json!({
            "t": self.tenant.to_string(),
            "r": self.run.to_string(),
            "v": self.revision,
            "s": self.status.as_str(),
            "x": self.stopping.map(RunStatus::as_str),
            "n": nodes,
            "a": self.due_at.map(to_micros),
        });
        let text = v.to_string();
        if text.len() <= MAX_PAYLOAD && !self.nodes_omitted {
            return text;
        }
        v["n"] = Value::Null;
        v.to_string()
    }

    /// Reads a notification payload back.
    pub(crate) fn from_payload(text: &str) -> Result<Self, OrchestrateError> {
        let bad = |what: &str| {
            OrchestrateError::Core(ate_core::CoreError::Internal(format!(
                "a workflow notification has a bad {what}"
            )))
        };
        let v: Value = serde_json::from_str(text).map_err(|_| bad("payload"))?;
        let text_of = |key: &str| v[key].as_str().ok_or_else(|| bad(key));
        let tenant = text_of("t")?.parse().map_err(|_| bad("tenant"))?;
        let run = text_of("r")?.parse().map_err(|_| bad("run"))?;
        let status = RunStatus::parse(text_of("s")?).map_err(|_| bad("status"))?;
        let revision = v["v"].as_i64().ok_or_else(|| bad("revision"))?;
        let stopping = match v["x"].as_str() {
            Some(s) => Some(RunStatus::parse(s).map_err(|_| bad("stopping"))?),
            None => None,
        };
        let due_at = match v["a"].as_i64() {
            Some(micros) => Some(from_micros(micros).map_err(|_| bad("due time"))?),
            None => None,
        };
        let (nodes, nodes_omitted) = match &v["n"] {
            Value::Array(items) => {
                let nodes = items
                    .iter()
                    .map(|item| {
                        let id = item[0].as_str().ok_or_else(|| bad("node"))?;
                        let status = item[1].as_str().ok_or_else(|| bad("node status"))?;
                        Ok(NodeChange {
                            node: NodeId::new(id).map_err(|_| bad("node"))?,
                            status: NodeStatus::parse(status).map_err(|_| bad("node status"))?,
                        })
                    })
                    .collect::<Result<Vec<_>, OrchestrateError>>()?;
                (nodes, false)
            }
            _ => (Vec::new(), true),
        };
        Ok(RunEvent {
            tenant,
            run,
            revision,
            status,
            stopping,
            nodes,
            nodes_omitted,
            due_at,
        })
    }
}

/// A store's feed of run events; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    inner: Arc<FeedInner>,
}

#[derive(Debug)]
struct FeedInner {
    sender: broadcast::Sender<RunEvent>,
    /// Set once a PostgreSQL listener runs for this feed.
    listening: tokio::sync::OnceCell<()>,
}

impl Feed {
    pub(crate) fn new() -> Self {
        Feed {
            inner: Arc::new(FeedInner {
                sender: broadcast::channel(CAPACITY).0,
                listening: tokio::sync::OnceCell::new(),
            }),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.sender.subscribe()
    }

    pub(crate) fn publish(&self, event: RunEvent) {
        // Nobody listening is not an error.
        let _ = self.inner.sender.send(event);
    }

    /// Runs `start` once for this feed (the PostgreSQL listener); later calls wait for the
    /// first to finish and return at once.
    pub(crate) async fn listen_once<F, Fut>(&self, start: F) -> Result<(), OrchestrateError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), OrchestrateError>>,
    {
        self.inner.listening.get_or_try_init(start).await?;
        Ok(())
    }

    /// A handle that does not keep the feed alive (for the listener task).
    pub(crate) fn downgrade(&self) -> WeakFeed {
        WeakFeed(Arc::downgrade(&self.inner))
    }
}

/// A [`Feed`] that may have gone.
pub(crate) struct WeakFeed(std::sync::Weak<FeedInner>);

impl WeakFeed {
    /// Publishes `event` if the feed still exists; `false` once it is gone.
    pub(crate) fn publish(&self, event: RunEvent) -> bool {
        match self.0.upgrade() {
            Some(inner) => {
                let _ = inner.sender.send(event);
                true
            }
            None => false,
        }
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}

/// A stream of one tenant's run events (or one run's), from
/// [`WorkflowStore::watch`](super::WorkflowStore::watch).
#[derive(Debug)]
pub struct RunWatch {
    events: broadcast::Receiver<RunEvent>,
    tenant: TenantId,
    run: Option<RunId>,
}

/// What [`RunWatch::next`] returns instead of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchGap {
    /// The watcher fell this many events (of any tenant) behind and they were dropped: read
    /// the runs again.
    Lagged(u64),
}

impl RunWatch {
    pub(crate) fn new(
        events: broadcast::Receiver<RunEvent>,
        tenant: TenantId,
        run: Option<RunId>,
    ) -> Self {
        RunWatch {
            events,
            tenant,
            run,
        }
    }

    /// The next event of the watched tenant (or run); `None` once the store is gone.
    pub async fn next(&mut self) -> Option<Result<RunEvent, WatchGap>> {
        loop {
            match self.events.recv().await {
                Ok(event) => {
                    let wanted =
                        event.tenant == self.tenant && self.run.is_none_or(|run| run == event.run);
                    if wanted {
                        return Some(Ok(event));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(Err(WatchGap::Lagged(n)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The same as a [`futures::Stream`].
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<RunEvent, WatchGap>> + Send {
        futures::stream::unfold(self, |mut watch| async move {
            let item = watch.next().await?;
            Some((item, watch))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(nodes: usize) -> RunEvent {
        RunEvent {
            tenant: TenantId::new(),
            run: RunId::new(),
            revision: 3,
            status: RunStatus::Running,
            stopping: Some(RunStatus::Cancelled),
            nodes: (0..nodes)
                .map(|i| NodeChange {
                    node: NodeId::new(format!("node-{i}")).unwrap(),
                    status: NodeStatus::Ready,
                })
                .collect(),
            nodes_omitted: false,
            due_at: Some(from_micros(1_700_000_000_000_000).unwrap()),
        }
    }

    #[test]
    fn payloads_round_trip() {
        let e = event(3);
        assert_eq!(RunEvent::from_payload(&e.to_payload()).unwrap(), e);
        let mut none = event(0);
        none.due_at = None;
        assert_eq!(RunEvent::from_payload(&none.to_payload()).unwrap(), none);
    }

    #[test]
    fn big_changes_omit_their_nodes() {
        let e = event(1_000);
        let payload = e.to_payload();
        assert!(payload.len() < MAX_PAYLOAD, "{}", payload.len());
        let back = RunEvent::from_payload(&payload).unwrap();
        assert!(back.nodes_omitted && back.nodes.is_empty());
        assert_eq!((back.run, back.revision, back.due_at), (e.run, 3, e.due_at));
    }

    #[test]
    fn bad_payloads_are_errors() {
        for bad in ["", "{}", "[1]", r#"{"t":"x","r":"y","v":1,"s":"running"}"#] {
            assert!(RunEvent::from_payload(bad).is_err(), "{bad}");
        }
    }
}
