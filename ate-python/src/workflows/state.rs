//! What a client keeps for `a.workflows` (held by its `Core`, which knows nothing else of
//! workflows): the store, opened on first use, and the step handlers registered.

use super::handler::PyStep;
use ate_orchestrate::workflow::SqlWorkflowStore;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The workflow side of one client: its store (opened on first use) and the step handlers
/// registered on it.
#[derive(Default)]
pub(crate) struct WorkflowsState {
    pub(super) store: tokio::sync::OnceCell<Arc<SqlWorkflowStore>>,
    pub(super) steps: Mutex<BTreeMap<String, Arc<PyStep>>>,
}
