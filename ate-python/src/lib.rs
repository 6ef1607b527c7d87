//! The native half of the `ate` Python package (`ate._ate`).
//!
//! The only ATE crate that depends on PyO3. Layout (arrows point one way: the domain modules
//! stand on `core`, and `client` stands on them):
//!
//! * `runtime`: the shared tokio runtime, entered blocking (GIL released) or as an asyncio
//!   awaitable, and `dispatch!`, which picks one for each generated class;
//! * `error`: the single mapping from ATE errors to the `ate.AteError` tree;
//! * `convert`: Python values ⇄ Rust types (JSON, aware datetimes, ids, names, seconds);
//! * `types`: immutable result objects, one file per domain (`Tenant`, `ObjectInfo`, …);
//! * `options`: the constructor's keywords (domains to enable, master key, host principal);
//! * `core`: the stores of one client (`Core`) and the principal a call acts as (`View`);
//! * `hub`: the client's service hub and the sink its alerts go to;
//! * `tenants`, `audit`: `a.tenants` and `a.audit`;
//! * `storage`: `a.storage`, encrypted objects (bytes or streamed file objects);
//! * `streams`: paths and file objects as the byte streams imports and exports use;
//! * `projects`, `analysis`: `a.projects` (codebase projects, snapshots, files, statistics,
//!   backups) and `a.analysis` (analysis results and payloads);
//! * `auth`: `a.auth`, users, logins, tokens and sessions; `ate.auth.JwtVerifier`;
//! * `registry`: `a.registry`, service discovery, health checks, balancing, metrics, alerts;
//! * `workflows`: `a.workflows`, the durable workflow engine with Python step handlers;
//! * `client`: `Ate` (blocking) and `AsyncAte` (asyncio), and their `acting_as` views;
//! * `crypto`: `ate.crypto`, Cobblestone-256 one-shot.
//!
//! Every API class exists twice, generated from one macro: blocking (each call runs on the
//! shared runtime with the GIL released, so other Python threads keep running) and asyncio
//! (each call returns an awaitable). Each holds its client's `View`, so every domain acts
//! as the same principal.

#[macro_use]
mod runtime;
mod analysis;
mod audit;
mod auth;
mod buffer;
mod client;
mod convert;
mod core;
mod crypto;
mod error;
mod hub;
mod object_io;
mod options;
mod projects;
mod registry;
mod storage;
mod streams;
mod tenants;
mod types;
mod workflows;

use pyo3::prelude::*;

#[pymodule]
fn _ate(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::Ate>()?;
    m.add_class::<client::AsyncAte>()?;
    m.add_class::<tenants::Tenants>()?;
    m.add_class::<tenants::AsyncTenants>()?;
    m.add_class::<types::tenants::Tenant>()?;
    m.add_class::<types::tenants::TenantPage>()?;
    m.add_class::<audit::Audit>()?;
    m.add_class::<audit::AsyncAudit>()?;
    m.add_class::<types::audit::AuditEvent>()?;
    m.add_class::<types::audit::AuditPage>()?;
    m.add_class::<types::audit::ChainHead>()?;
    m.add_class::<types::audit::ChainBreak>()?;
    m.add_class::<types::audit::ChainReport>()?;
    m.add_class::<storage::Storage>()?;
    m.add_class::<storage::AsyncStorage>()?;
    m.add_class::<object_io::ObjectReader>()?;
    m.add_class::<object_io::AsyncObjectReader>()?;
    m.add_class::<object_io::ObjectWriter>()?;
    m.add_class::<object_io::AsyncObjectWriter>()?;
    m.add_class::<types::storage::ObjectInfo>()?;
    m.add_class::<types::storage::ObjectPage>()?;
    m.add_class::<types::storage::DirPage>()?;
    m.add_class::<types::storage::KeyInfo>()?;
    m.add_class::<types::storage::ReencryptProgress>()?;
    m.add_class::<types::storage::GcReport>()?;
    m.add_class::<types::storage::VerifyReport>()?;
    m.add_class::<types::storage::VerifyProblem>()?;
    m.add_class::<projects::Projects>()?;
    m.add_class::<projects::AsyncProjects>()?;
    m.add_class::<analysis::Analysis>()?;
    m.add_class::<analysis::AsyncAnalysis>()?;
    m.add_class::<types::projects::Project>()?;
    m.add_class::<types::projects::ProjectPage>()?;
    m.add_class::<types::projects::Snapshot>()?;
    m.add_class::<types::projects::SnapshotPage>()?;
    m.add_class::<types::projects::LanguageStats>()?;
    m.add_class::<types::projects::DirectoryStats>()?;
    m.add_class::<types::projects::FileEntry>()?;
    m.add_class::<types::projects::FilePage>()?;
    m.add_class::<types::projects::SnapshotDiff>()?;
    m.add_class::<types::projects::ProjectStats>()?;
    m.add_class::<types::projects::TenantUsage>()?;
    m.add_class::<types::projects::ImportProgress>()?;
    m.add_class::<types::projects::AnalysisResult>()?;
    m.add_class::<types::projects::AnalysisPage>()?;
    m.add_class::<types::projects::Payload>()?;
    m.add_class::<types::projects::BackupSummary>()?;
    m.add_class::<types::projects::RestoreReport>()?;
    m.add_class::<auth::Auth>()?;
    m.add_class::<auth::AsyncAuth>()?;
    m.add_class::<auth::JwtVerifier>()?;
    m.add_class::<types::auth::Principal>()?;
    m.add_class::<types::auth::User>()?;
    m.add_class::<types::auth::UserPage>()?;
    m.add_class::<types::auth::Session>()?;
    m.add_class::<types::auth::Tokens>()?;
    m.add_class::<types::auth::SigningKeyInfo>()?;
    m.add_class::<registry::Registry>()?;
    m.add_class::<registry::AsyncRegistry>()?;
    m.add_class::<registry::Pick>()?;
    m.add_class::<registry::PendingPick>()?;
    m.add_class::<registry::CheckDefinition>()?;
    m.add_class::<types::registry::Instance>()?;
    m.add_class::<types::registry::Stats>()?;
    m.add_class::<types::registry::CheckResult>()?;
    m.add_class::<types::registry::AlertEvent>()?;
    m.add_class::<workflows::Workflows>()?;
    m.add_class::<workflows::AsyncWorkflows>()?;
    m.add_class::<workflows::StepDecorator>()?;
    m.add_class::<workflows::StepContext>()?;
    m.add_class::<workflows::Worker>()?;
    m.add_class::<workflows::AsyncWorker>()?;
    m.add_class::<workflows::RunEvents>()?;
    m.add_class::<workflows::AsyncRunEvents>()?;
    m.add_class::<types::workflows::Run>()?;
    m.add_class::<types::workflows::RunNode>()?;
    m.add_class::<types::workflows::RunPage>()?;
    m.add_class::<types::workflows::RunEvent>()?;
    m.add_class::<types::workflows::LogEntry>()?;
    m.add_class::<types::workflows::LogPage>()?;
    m.add_function(wrap_pyfunction!(registry::http_check, m)?)?;
    m.add_function(wrap_pyfunction!(registry::tcp_check, m)?)?;
    m.add_function(wrap_pyfunction!(registry::ttl_check, m)?)?;
    m.add_function(wrap_pyfunction!(error::_error_classes, m)?)?;
    crypto::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
