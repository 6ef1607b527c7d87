//! The hub's background task: it follows the registry's watch (this process's changes and
//! other processes') and sweeps outlier ejections.

use super::service_state::ServiceState;
use super::shared::Inner;
use crate::registry::RegistryEvent;
use futures::StreamExt;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the hub brings ejected instances back whose ejection time has passed (their
/// `Returned` events and metrics would otherwise wait for the next outcome).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Follows the registry's changes (this process's and, for SQL stores, other processes')
/// and sweeps outlier ejections, until the hub is dropped.
/// `started` turns `true` once the watch holds its position in the change log (or failed
/// to open): picks wait for it, so no balancer is built from a read the watch cannot follow.
pub(super) async fn follow_registry(hub: Weak<Inner>, started: tokio::sync::watch::Sender<bool>) {
    let mut events = {
        let Some(inner) = hub.upgrade() else { return };
        let opened = inner.registry.store().watch().await;
        let _ = started.send(true);
        match opened {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "service hub: cannot watch the registry");
                return;
            }
        }
    };
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = events.next() => match event {
                Some(event) => event,
                None => return,
            },
            _ = sweep.tick() => {
                let Some(inner) = hub.upgrade() else { return };
                let services: Vec<Arc<ServiceState>> =
                    inner.read_services().values().cloned().collect();
                for s in services {
                    s.sweep();
                }
                continue;
            }
        };
        let Some(inner) = hub.upgrade() else { return };
        match &event {
            RegistryEvent::Registered { instance }
            | RegistryEvent::StatusChanged { instance, .. } => inner.status_written(instance),
            RegistryEvent::Deregistered { instance, .. } => inner.deregistered(instance),
            RegistryEvent::Draining { instance } | RegistryEvent::Maintenance { instance } => {
                inner.invalidate(&instance.spec.service);
            }
            RegistryEvent::PolicyChanged { service, .. } => inner.invalidate(service),
            RegistryEvent::Lagged { missed } => {
                tracing::warn!(
                    missed,
                    "service hub: registry watch lagged; rebuilding every balancer"
                );
                inner.invalidate_all();
            }
        }
    }
}
