//! The operator's commands: they open the same stores as `ate serve` (from the same
//! configuration) and act as the host's platform principal, like `vault operator`: whoever
//! runs them holds the database and the master key already.
//!
//! Output is a table for people, or JSON with `--json` for scripts. Long work shows a
//! progress bar with bytes/s and ETA on a terminal, and plain lines otherwise. The exit
//! status says what kind of failure ended the command ([`exit_code`]).

mod maintenance;
mod progress;
mod workflows;

pub(crate) use maintenance::{GcArgs, KeysCmd, VerifyArgs};
pub(crate) use workflows::WorkflowsCmd;

use crate::config::Config;
use crate::host::{BoxError, Host};
use ate_auth::password::Password;
use ate_auth::{NewUser, Role};
use ate_core::{AuditSink, Classify, ErrorKind, ListTenants, NewTenant, TenantId, TenantStore};
use ate_storage::import::{ArchiveFormat, ImportOptions};
use ate_storage::projects::{ProjectSpec, ProjectStore, SnapshotQuery, SnapshotStore};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub(crate) enum TenantsCmd {
    /// List tenants.
    List,
    /// Create a tenant (without users).
    Create { slug: String, name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCmd {
    /// List the users of a tenant.
    List {
        /// The tenant's slug or id.
        #[arg(long)]
        tenant: String,
    },
    /// Create a user; the password is read from the environment variable `--password-env`
    /// names (never from the command line, where other users could see it).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// `user` (default) or `admin`; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectsCmd {
    /// Import a directory or an archive (tar, tar.gz, tar.zst, zip) as a new snapshot of
    /// a project (created if the tenant has none of that name).
    Import {
        source: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Export a snapshot (default: the newest) as a tar file.
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        snapshot: Option<String>,
        /// Where to write the tar file.
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Recompute a tenant's audit hash chain; exits 1 (kind `integrity`) when it is broken.
    Verify {
        #[arg(long)]
        tenant: String,
    },
}

/// One operator command.
#[derive(Debug)]
pub(crate) enum Operator {
    Tenants(TenantsCmd),
    Users(UsersCmd),
    Projects(ProjectsCmd),
    Audit(AuditCmd),
    Keys(KeysCmd),
    Gc(GcArgs),
    Verify(VerifyArgs),
    Workflows(WorkflowsCmd),
}

/// A failure with the kind that picks the exit status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CliError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    /// What to print before failing (a report whose findings are the failure).
    output: Option<Box<(Value, String)>>,
}

impl CliError {
    pub(super) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            output: None,
        }
    }

    /// The same failure, printing `value` (with `--json`) or `table` first.
    pub(super) fn with_output(mut self, value: Value, table: String) -> Self {
        self.output = Some(Box::new((value, table)));
        self
    }
}

fn classified<E: Classify>(e: E) -> CliError {
    CliError::new(e.kind(), e.to_string())
}

/// Exit statuses by kind: 2 is clap's usage error; 1 anything unclassified.
pub(crate) fn exit_code(kind: Option<ErrorKind>) -> u8 {
    match kind {
        Some(ErrorKind::InvalidInput) => 3,
        Some(ErrorKind::NotFound) => 4,
        Some(ErrorKind::AlreadyExists | ErrorKind::Conflict) => 5,
        Some(ErrorKind::Unauthenticated | ErrorKind::PermissionDenied) => 6,
        Some(ErrorKind::QuotaExceeded) => 7,
        Some(ErrorKind::Unavailable | ErrorKind::RateLimited) => 8,
        Some(ErrorKind::Integrity) => 9,
        _ => 1,
    }
}

/// Runs `cmd` and prints its result (JSON when `json`).
pub(crate) async fn run(config: Config, cmd: Operator, json_out: bool) -> Result<(), BoxError> {
    let host = Host::open(config).await?;
    let result = dispatch(&host, cmd, json_out).await;
    host.close().await;
    let print = |value: &Value, table: &str| -> Result<(), BoxError> {
        if json_out {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            print!("{table}");
        }
        Ok(())
    };
    match result {
        Ok((value, table)) => print(&value, &table),
        Err(mut e) => {
            if let Some(output) = e.output.take() {
                print(&output.0, &output.1)?;
            }
            Err(e.into())
        }
    }
}

/// Every tenant, as the platform sees them.
pub(super) async fn all_tenants(host: &Host) -> Result<Vec<ate_core::Tenant>, CliError> {
    let mut rows = Vec::new();
    let mut query = ListTenants::new();
    loop {
        let page = host
            .tenants
            .list(&host.system, query.clone())
            .await
            .map_err(classified)?;
        rows.extend(page.items);
        match page.next_cursor {
            Some(c) => query = query.cursor(Some(c)),
            None => return Ok(rows),
        }
    }
}

async fn tenant_id(host: &Host, given: &str) -> Result<TenantId, CliError> {
    if let Ok(id) = given.parse::<TenantId>() {
        return Ok(id);
    }
    host.tenant_by_slug(given)
        .await
        .map_err(classified)?
        .ok_or_else(|| CliError::new(ErrorKind::NotFound, format!("no tenant {given:?}")))
}

async fn dispatch(host: &Host, cmd: Operator, json_out: bool) -> Result<(Value, String), CliError> {
    let p = &host.system;
    match cmd {
        Operator::Tenants(TenantsCmd::List) => {
            let rows = all_tenants(host).await?;
            let table = rows
                .iter()
                .map(|t| {
                    format!(
                        "{}  {:<24} {:<10} {}\n",
                        t.id,
                        t.slug.as_str(),
                        t.status,
                        t.name
                    )
                })
                .collect();
            Ok((serde_json::to_value(&rows).unwrap_or(Value::Null), table))
        }
        Operator::Tenants(TenantsCmd::Create { slug, name }) => {
            let t = host
                .tenants
                .create(p, NewTenant::new(slug, name))
                .await
                .map_err(classified)?;
            let line = format!("created tenant {} ({})\n", t.slug.as_str(), t.id);
            Ok((serde_json::to_value(&t).unwrap_or(Value::Null), line))
        }
        Operator::Users(UsersCmd::List { tenant }) => {
            let tenant = tenant_id(host, &tenant).await?;
            let mut users = Vec::new();
            let mut cursor = None;
            loop {
                let page = host
                    .auth
                    .users()
                    .list(p, tenant, Some(1000), cursor)
                    .await
                    .map_err(classified)?;
                users.extend(page.items);
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let value = json!(users.iter().map(user_json).collect::<Vec<_>>());
            let table = users
                .iter()
                .map(|u| {
                    let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
                    format!(
                        "{}  {:<32} {:<9} {}\n",
                        u.id,
                        u.email,
                        u.status.as_str(),
                        roles.join(",")
                    )
                })
                .collect();
            Ok((value, table))
        }
        Operator::Users(UsersCmd::Create {
            tenant,
            email,
            name,
            roles,
            password_env,
        }) => {
            let tenant = tenant_id(host, &tenant).await?;
            let mut new = NewUser::new(email).name(name);
            if !roles.is_empty() {
                let roles = roles
                    .iter()
                    .map(|r| Role::parse(r).map_err(classified))
                    .collect::<Result<Vec<_>, _>>()?;
                new = new.roles(roles);
            }
            let password = match password_env {
                Some(var) => Some(Password::new(std::env::var(&var).map_err(|_| {
                    CliError::new(ErrorKind::InvalidInput, format!("${var} is not set"))
                })?)),
                None => None,
            };
            let user = host
                .auth
                .create_user(p, tenant, new, password.as_ref())
                .await
                .map_err(classified)?;
            let line = format!("created user {} ({})\n", user.email, user.id);
            Ok((user_json(&user), line))
        }
        Operator::Projects(cmd) => projects(host, cmd, json_out).await,
        Operator::Keys(cmd) => maintenance::keys(host, cmd, json_out).await,
        Operator::Gc(args) => maintenance::gc(host, args, json_out).await,
        Operator::Verify(args) => maintenance::verify(host, args, json_out).await,
        Operator::Workflows(cmd) => workflows::workflows(host, cmd, json_out).await,
        Operator::Audit(AuditCmd::Verify { tenant }) => {
            let tenant = tenant_id(host, &tenant).await?;
            let report = host
                .audit
                .verify_chain(p, tenant)
                .await
                .map_err(classified)?;
            if let Some(b) = &report.first_break {
                return Err(CliError::new(
                    ErrorKind::Integrity,
                    format!("the audit chain of {tenant} is broken: {b}"),
                ));
            }
            let line = format!(
                "audit chain of {tenant} intact: {} events verified\n",
                report.events_checked
            );
            Ok((serde_json::to_value(&report).unwrap_or(Value::Null), line))
        }
    }
}

fn user_json(u: &ate_auth::User) -> Value {
    json!({
        "id": u.id.to_string(),
        "tenant_id": u.tenant.to_string(),
        "email": u.email,
        "name": u.name,
        "status": u.status.as_str(),
        "roles": u.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    })
}

async fn projects(
    host: &Host,
    cmd: ProjectsCmd,
    json_out: bool,
) -> Result<(Value, String), CliError> {
    let p = &host.system;
    match cmd {
        ProjectsCmd::Import {
            source,
            tenant,
            project,
            label,
        } => {
            let tenant = tenant_id(host, &tenant).await?;
            let project = match host.projects.get_by_name(p, tenant, &project).await {
                Ok(found) => found,
                Err(e) if e.kind() == ErrorKind::NotFound => host
                    .projects
                    .create(p, tenant, &ProjectSpec::new(&project))
                    .await
                    .map_err(classified)?,
                Err(e) => return Err(classified(e)),
            };
            let meta = std::fs::metadata(&source).map_err(|e| {
                CliError::new(
                    ErrorKind::InvalidInput,
                    format!("{}: {e}", source.display()),
                )
            })?;
            let bar = progress::Bar::new("import", json_out, progress::Unit::Bytes);
            let options = ImportOptions::new().label(label);
            let snapshot = if meta.is_dir() {
                bar.set_total(progress::dir_size(&source));
                let options = options.progress(Arc::new(bar.entries()));
                host.snapshots
                    .import_dir(p, tenant, project.id, &source, options)
                    .await
            } else {
                bar.set_total(meta.len());
                let format = source
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(ArchiveFormat::from_name);
                let file = tokio::fs::File::open(&source).await.map_err(|e| {
                    CliError::new(
                        ErrorKind::InvalidInput,
                        format!("{}: {e}", source.display()),
                    )
                })?;
                host.snapshots
                    .import_archive(
                        p,
                        tenant,
                        project.id,
                        Box::new(bar.reader(file)),
                        format,
                        options,
                    )
                    .await
            };
            let snapshot = snapshot.map_err(classified)?;
            bar.finish();
            let line = format!(
                "imported {} files ({} bytes, {} new) into {} as snapshot {}\n",
                snapshot.files,
                snapshot.logical_bytes,
                snapshot.new_bytes,
                project.name.as_str(),
                snapshot.id
            );
            let value = json!({
                "project_id": project.id.to_string(),
                "snapshot_id": snapshot.id.to_string(),
                "files": snapshot.files,
                "logical_bytes": snapshot.logical_bytes,
                "new_bytes": snapshot.new_bytes,
            });
            Ok((value, line))
        }
        ProjectsCmd::Export {
            tenant,
            project,
            snapshot,
            out,
        } => {
            let tenant = tenant_id(host, &tenant).await?;
            let project = host
                .projects
                .get_by_name(p, tenant, &project)
                .await
                .map_err(classified)?;
            let snap = match snapshot {
                Some(s) => host
                    .snapshots
                    .get(
                        p,
                        tenant,
                        s.parse().map_err(|_| {
                            CliError::new(
                                ErrorKind::InvalidInput,
                                "--snapshot is not a snapshot id",
                            )
                        })?,
                    )
                    .await
                    .map_err(classified)?,
                None => host
                    .snapshots
                    .list(p, tenant, project.id, &SnapshotQuery::new().limit(1))
                    .await
                    .map_err(classified)?
                    .items
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        CliError::new(ErrorKind::NotFound, "the project has no snapshot")
                    })?,
            };
            let bar = progress::Bar::new("export", json_out, progress::Unit::Bytes);
            // The tar adds a 512-byte header and up to 511 bytes of padding per entry.
            bar.set_total(snap.logical_bytes + snap.files * 1024 + 1024);
            // Written next to the target and renamed into place: never half a file.
            let partial = out.with_extension("tar.partial");
            let file = tokio::fs::File::create(&partial).await.map_err(|e| {
                CliError::new(
                    ErrorKind::InvalidInput,
                    format!("{}: {e}", partial.display()),
                )
            })?;
            let mut writer = bar.writer(file);
            let written = host
                .snapshots
                .export_tar(p, tenant, snap.id, &mut writer)
                .await;
            let written = match written {
                Ok(n) => n,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(classified(e));
                }
            };
            tokio::io::AsyncWriteExt::shutdown(&mut writer)
                .await
                .and_then(|()| std::fs::rename(&partial, &out))
                .map_err(|e| {
                    CliError::new(ErrorKind::Internal, format!("{}: {e}", out.display()))
                })?;
            bar.finish();
            let line = format!(
                "exported snapshot {} ({written} bytes) to {}\n",
                snap.id,
                out.display()
            );
            Ok((
                json!({"snapshot_id": snap.id.to_string(), "bytes": written}),
                line,
            ))
        }
    }
}
