//! The health scheduler's verdicts, put into the registry by the hub ([`Reporter`]).

use super::shared::Inner;
use crate::OrchestrateError;
use crate::health::{CheckRun, DeregisterRequest, HealthReporter, StatusChange};
use ate_core::{Classify, ErrorKind};
use std::sync::{Arc, OnceLock, Weak};

/// Puts the scheduler's verdicts into the registry.
pub(super) struct Reporter {
    pub(super) hub: Arc<OnceLock<Weak<Inner>>>,
}

impl Reporter {
    fn hub(&self) -> Option<Arc<Inner>> {
        self.hub.get().and_then(Weak::upgrade)
    }
}

#[async_trait::async_trait]
impl HealthReporter for Reporter {
    async fn status_changed(&self, change: StatusChange) -> Result<(), OrchestrateError> {
        let Some(inner) = self.hub() else {
            return Ok(());
        };
        // The scheduler's verdict is trusted host work: no principal to check.
        let result = inner
            .registry
            .store()
            .set_status(&change.instance, change.to, &change.output)
            .await;
        match result {
            Ok(instance) => {
                inner.status_written(&instance);
                Ok(())
            }
            Err(e) => {
                inner.invalidate(change.instance.service());
                match e.kind() {
                    // Deregistered meanwhile: nothing to update.
                    ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                }
            }
        }
    }

    fn wants_check_runs(&self) -> bool {
        true
    }

    async fn check_ran(&self, run: CheckRun) {
        if let Some(inner) = self.hub() {
            inner.metrics.observe_check_duration(
                run.instance.service(),
                run.instance.id(),
                run.kind,
                run.duration,
            );
        }
    }

    async fn deregister_requested(
        &self,
        request: DeregisterRequest,
    ) -> Result<(), OrchestrateError> {
        let Some(inner) = self.hub() else {
            return Ok(());
        };
        tracing::info!(
            instance = %request.instance,
            critical_for_ms = request.critical_for.as_millis() as u64,
            "deregistering an instance critical for too long"
        );
        // The scheduler's request is trusted host work: no principal to check.
        match inner.registry.store().deregister(&request.instance).await {
            Ok(instance) => {
                inner.deregistered(&instance);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
