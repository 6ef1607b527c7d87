//! `ate keys rotate|rewrap|reencrypt`, `ate gc` and `ate verify`: key maintenance, garbage
//! collection and integrity checks over the host's stores, with progress for the long ones.

use super::progress::{Bar, Unit};
use super::{CliError, all_tenants, classified, tenant_id};
use crate::host::Host;
use ate_core::{AuditSink, ErrorKind, TenantId};
use ate_storage::projects::{ProjectQuery, ProjectStore, RepackOptions, SnapshotStore};
use ate_storage::verify::{VerifyOptions, VerifyReport};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCmd {
    /// Start a new data-key version for a tenant (new writes use it; `reencrypt` moves the
    /// old objects).
    Rotate {
        #[arg(long)]
        tenant: String,
        /// Also start a new key version for every project of the tenant.
        #[arg(long)]
        projects: bool,
    },
    /// Rewrap every tenant key under the current master key (after the master key file
    /// changed), and with `--tenant` that tenant's project keys under its newest key.
    Rewrap {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Re-encrypt a tenant's objects still under an older data-key version, in batches,
    /// then repack its projects' chunks still under an older project key (resumable: run
    /// it again after an interruption).
    Reencrypt {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value_t = 100)]
        batch: u32,
    },
}

/// `ate gc`: collect a tenant's storage garbage (unreferenced blobs, expired imports,
/// chunks and packs no snapshot needs) older than the grace period.
#[derive(Debug, clap::Args)]
pub(crate) struct GcArgs {
    #[arg(long)]
    tenant: String,
    /// Keep garbage younger than this many seconds (work in flight may still need it).
    #[arg(long, default_value_t = 3600)]
    grace_secs: i64,
}

/// `--grace-secs`: 0 to 100 years.
fn grace(secs: i64) -> Result<chrono::TimeDelta, CliError> {
    const MAX: i64 = 100 * 366 * 86_400;
    if !(0..=MAX).contains(&secs) {
        return Err(CliError::new(
            ErrorKind::InvalidInput,
            format!("--grace-secs must be between 0 and {MAX} (100 years), got {secs}"),
        ));
    }
    Ok(chrono::TimeDelta::seconds(secs))
}

/// `ate verify`: check one tenant or every tenant: its objects, its codebase projects and its
/// audit chain.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Only this tenant (slug or id); every tenant when left out.
    #[arg(long)]
    tenant: Option<String>,
    /// Read and decrypt every byte and compare checksums (default: sizes and headers only).
    #[arg(long)]
    read_all: bool,
    /// Delete orphan blobs older than the grace period (the only repair; everything else is
    /// reported and left as it is).
    #[arg(long)]
    repair: bool,
    /// Blobs without an index row younger than this many seconds may be uploads in
    /// progress: counted, never reported or repaired.
    #[arg(long, default_value_t = 3600)]
    grace_secs: i64,
}

pub(crate) async fn verify(
    host: &Host,
    args: VerifyArgs,
    json_out: bool,
) -> Result<(Value, String), CliError> {
    let p = &host.system;
    let grace = grace(args.grace_secs)?;
    let tenants: Vec<TenantId> = match &args.tenant {
        Some(t) => vec![tenant_id(host, t).await?],
        None => all_tenants(host).await?.iter().map(|t| t.id).collect(),
    };
    let options = VerifyOptions::default()
        .read_all(args.read_all)
        .repair(args.repair)
        .grace(grace);
    let bar = Bar::new("verify", json_out, Unit::Items);
    bar.set_total(tenants.len() as u64);
    let (mut reports, mut table, mut broken) = (Vec::new(), String::new(), 0usize);
    for (i, &tenant) in tenants.iter().enumerate() {
        let objects = host
            .objects
            .verify(p, tenant, &options)
            .await
            .map_err(classified)?;
        let projects = host
            .snapshots
            .verify(p, tenant, None, &options)
            .await
            .map_err(classified)?;
        let audit = host
            .audit
            .verify_chain(p, tenant)
            .await
            .map_err(classified)?;
        let unrepaired =
            objects.unrepaired() + projects.unrepaired() + usize::from(audit.first_break.is_some());
        broken += unrepaired;
        table.push_str(&verify_lines(&objects, &projects, &audit));
        reports.push(json!({
            "tenant_id": tenant.to_string(),
            "objects": report_json(&objects),
            "projects": report_json(&projects),
            "audit": serde_json::to_value(&audit).unwrap_or(Value::Null),
            "problems": unrepaired,
        }));
        bar.set_done_items(i as u64 + 1);
    }
    bar.finish();
    let value = json!({"tenants": reports, "problems": broken, "read_all": args.read_all});
    if broken > 0 {
        table.push_str(&format!("{broken} problem(s) found\n"));
        return Err(CliError::new(
            ErrorKind::Integrity,
            format!("{broken} problem(s) found; see the report above"),
        )
        .with_output(value, table));
    }
    table.push_str(&format!(
        "{} tenant(s) verified: no problems\n",
        tenants.len()
    ));
    Ok((value, table))
}

fn verify_lines(
    objects: &VerifyReport,
    projects: &VerifyReport,
    audit: &ate_core::audit::ChainReport,
) -> String {
    let mut out = format!(
        "tenant {}: {} objects; {} projects, {} snapshots, {} files, {} chunks, {} packs, {} \
         payloads; {} blobs, {} bytes read, {} in progress; audit chain: {}\n",
        objects.tenant,
        objects.objects,
        projects.projects,
        projects.snapshots,
        projects.files,
        projects.chunks,
        projects.packs,
        projects.payloads,
        objects.blobs + projects.blobs,
        objects.bytes_read + projects.bytes_read,
        objects.in_progress + projects.in_progress,
        match &audit.first_break {
            None => format!("{} events intact", audit.events_checked),
            Some(b) => format!("BROKEN: {b}"),
        }
    );
    for p in objects.problems.iter().chain(&projects.problems) {
        // Where: the object, or the project (and snapshot), then the path or blob.
        let whom = match (p.object, p.project, p.snapshot) {
            (Some(o), _, _) => o.to_string(),
            (None, Some(project), Some(snapshot)) => {
                format!("project {project} snapshot {snapshot}")
            }
            (None, Some(project), None) => format!("project {project}"),
            _ => String::new(),
        };
        let what = p
            .path
            .as_deref()
            .or(p.blob.as_deref())
            .map(|w| format!("{w}: "))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<17} {whom} {what}{}{}\n",
            p.kind.as_str(),
            p.detail,
            if p.repaired { " (repaired)" } else { "" }
        ));
    }
    out
}

fn report_json(r: &VerifyReport) -> Value {
    json!({
        "objects": r.objects,
        "projects": r.projects,
        "snapshots": r.snapshots,
        "files": r.files,
        "chunks": r.chunks,
        "packs": r.packs,
        "payloads": r.payloads,
        "blobs": r.blobs,
        "bytes_read": r.bytes_read,
        "in_progress": r.in_progress,
        "problems": r.problems.iter().map(|p| json!({
            "kind": p.kind.as_str(),
            "object_id": p.object.map(|o| o.to_string()),
            "project_id": p.project.map(|o| o.to_string()),
            "snapshot_id": p.snapshot.map(|o| o.to_string()),
            "path": p.path,
            "blob": p.blob,
            "detail": p.detail,
            "repaired": p.repaired,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) async fn keys(
    host: &Host,
    cmd: KeysCmd,
    json_out: bool,
) -> Result<(Value, String), CliError> {
    let p = &host.system;
    let keyring = host.objects.keyring();
    match cmd {
        KeysCmd::Rotate { tenant, projects } => {
            let tenant = tenant_id(host, &tenant).await?;
            let info = keyring.rotate(p, tenant).await.map_err(classified)?;
            let mut line = format!(
                "tenant {tenant} now encrypts with key version {}\n",
                info.version
            );
            let mut rotated = 0u64;
            if projects {
                for project in all_projects(host, tenant).await? {
                    host.project_keys
                        .rotate(p, tenant, project.id)
                        .await
                        .map_err(classified)?;
                    rotated += 1;
                }
                line.push_str(&format!("{rotated} project keys rotated\n"));
            }
            let value = json!({"tenant_id": tenant.to_string(), "version": info.version, "project_keys_rotated": rotated});
            Ok((value, line))
        }
        KeysCmd::Rewrap { tenant } => {
            let master = keyring.rotate_master(p).await.map_err(classified)?;
            let mut value = json!({"tenant_keys_rewrapped": master.rewrapped});
            let mut line = format!(
                "{} tenant keys rewrapped under the current master key\n",
                master.rewrapped
            );
            if let Some(t) = tenant {
                let t = tenant_id(host, &t).await?;
                let n = host.project_keys.rewrap(p, t).await.map_err(classified)?;
                value["project_keys_rewrapped"] = json!(n);
                line.push_str(&format!(
                    "{n} project keys of {t} rewrapped under its newest key\n"
                ));
            }
            Ok((value, line))
        }
        KeysCmd::Reencrypt { tenant, batch } => {
            let tenant = tenant_id(host, &tenant).await?;
            reencrypt(host, tenant, batch, json_out).await
        }
    }
}

async fn reencrypt(
    host: &Host,
    tenant: TenantId,
    batch: u32,
    json_out: bool,
) -> Result<(Value, String), CliError> {
    let p = &host.system;
    let bar = Bar::new("reencrypt", json_out, Unit::Items);
    let (mut done, mut skipped) = (0u64, 0u64);
    let version = loop {
        let step = host
            .objects
            .reencrypt(p, tenant, batch)
            .await
            .map_err(classified)?;
        done += step.reencrypted;
        skipped += step.skipped;
        bar.set_total(done + step.remaining);
        bar.set_done_items(done);
        if step.remaining == 0 {
            break step.key_version;
        }
        if step.reencrypted == 0 && step.skipped == 0 {
            return Err(CliError::new(
                ErrorKind::Conflict,
                format!(
                    "{} objects remain but none could be re-encrypted; run again",
                    step.remaining
                ),
            ));
        }
    };
    bar.finish();
    let projects = all_projects(host, tenant).await?;
    let bar = Bar::new("repack", json_out, Unit::Items);
    bar.set_total(projects.len() as u64);
    let mut chunks = 0u64;
    for (i, project) in projects.iter().enumerate() {
        let r = host
            .snapshots
            .repack(p, tenant, project.id, RepackOptions::new().reencrypt(true))
            .await
            .map_err(classified)?;
        chunks += r.chunks_moved;
        bar.set_done_items(i as u64 + 1);
    }
    bar.finish();
    let line = format!(
        "{done} objects re-encrypted under key version {version} ({skipped} rewritten meanwhile); {} projects repacked ({chunks} chunks re-encrypted)\n",
        projects.len()
    );
    let value = json!({
        "reencrypted": done,
        "skipped": skipped,
        "key_version": version,
        "projects": projects.len(),
        "chunks_reencrypted": chunks,
    });
    Ok((value, line))
}

/// Every project of `tenant`.
async fn all_projects(
    host: &Host,
    tenant: TenantId,
) -> Result<Vec<ate_storage::Project>, CliError> {
    let mut projects = Vec::new();
    let mut query = ProjectQuery::new().limit(1000);
    loop {
        let page = host
            .projects
            .list(&host.system, tenant, &query)
            .await
            .map_err(classified)?;
        projects.extend(page.items);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return Ok(projects),
        }
    }
}

pub(crate) async fn gc(
    host: &Host,
    args: GcArgs,
    json_out: bool,
) -> Result<(Value, String), CliError> {
    let p = &host.system;
    let tenant = tenant_id(host, &args.tenant).await?;
    let grace = grace(args.grace_secs)?;
    let objects = host
        .objects
        .collect_garbage(p, tenant, grace)
        .await
        .map_err(classified)?;
    let projects = all_projects(host, tenant).await?;
    let bar = Bar::new("gc", json_out, Unit::Items);
    bar.set_total(projects.len() as u64);
    let (mut chunks, mut packs, mut freed) = (0u64, 0u64, 0u64);
    for (i, project) in projects.iter().enumerate() {
        let r = host
            .snapshots
            .collect_garbage(p, tenant, project.id, grace)
            .await
            .map_err(classified)?;
        chunks += r.chunks_deleted;
        packs += r.packs_deleted;
        freed += r.bytes_freed;
        bar.set_done_items(i as u64 + 1);
    }
    bar.finish();
    // What deleted projects left (nothing names them any more).
    let deleted = host
        .snapshots
        .collect_deleted_projects(p, tenant)
        .await
        .map_err(classified)?;
    let line = format!(
        "{} object blobs and {} staging blobs deleted; {} projects: {chunks} chunks, {packs} packs, {freed} bytes freed; deleted projects: {} pack and {} payload blobs\n",
        objects.deleted,
        objects.staging_deleted,
        projects.len(),
        deleted.packs_deleted,
        deleted.payloads_deleted,
    );
    let value = json!({
        "objects_deleted": objects.deleted,
        "staging_deleted": objects.staging_deleted,
        "projects": projects.len(),
        "chunks_deleted": chunks,
        "packs_deleted": packs,
        "bytes_freed": freed,
        "deleted_project_packs": deleted.packs_deleted,
        "deleted_project_payloads": deleted.payloads_deleted,
    });
    Ok((value, line))
}
