//! The reporting task: delivers the scheduler's [`Event`]s to the
//! [`HealthReporter`] one at a time, in the order they happened.

use crate::health::{CheckRun, DeregisterRequest, HealthReporter, StatusChange};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

#[derive(Debug)]
/// What the scheduler tells its reporter, in order.
pub(super) enum Event {
    Status(StatusChange),
    Deregister(DeregisterRequest),
    Ran(CheckRun),
}

/// The reporting task: delivers events one at a time, in order.
pub(super) async fn report(
    reporter: Arc<dyn HealthReporter>,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => deliver(reporter.as_ref(), event).await,
                None => return,
            },
            _ = shutdown.changed() => break,
        }
    }
    while let Ok(event) = events.try_recv() {
        deliver(reporter.as_ref(), event).await;
    }
}

pub(super) async fn deliver(reporter: &dyn HealthReporter, event: Event) {
    match event {
        Event::Status(change) => {
            let what = format!("{} -> {}", change.instance, change.to);
            if let Err(e) = reporter.status_changed(change).await {
                tracing::warn!("health reporter failed to record {what}: {e}");
            }
        }
        Event::Deregister(request) => {
            let what = request.instance.to_string();
            if let Err(e) = reporter.deregister_requested(request).await {
                tracing::warn!("health reporter failed to deregister {what}: {e}");
            }
        }
        Event::Ran(run) => reporter.check_ran(run).await,
    }
}
