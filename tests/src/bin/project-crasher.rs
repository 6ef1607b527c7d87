//! Codebase-project operations in their own process, for the crash-consistency tests
//! (`tests/crash_consistency.rs`), which kill it with SIGKILL at random moments.
//!
//! ```text
//! project-crasher <database-url> <blob-url> <journal> <seed>
//! ```
//!
//! Performs an endless stream of operations on project `code` of tenant `crash`: imports of
//! small trees (files shared between imports, so chunks deduplicate), deletions of the
//! oldest snapshot, deletions of the whole project (the next import makes a new one),
//! garbage collection, project-key rotations and repacks (which re-encrypt under the new
//! key). Operation *i* is chosen by `seed + i` alone ([`tests::crash::project_operation`]).
//! Before each operation it appends `BEGIN i op [what]` to the journal (`what`: the label of
//! the snapshot a delete removes, the id of the project a drop deletes) and after it `ACK i`
//! or `NAK i reason`, each line synced to disk. A line the previous process was killed
//! while writing (no newline yet) is cut off before anything else is written.

use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{Db, Principal, ProjectId, SqlTenantStore, TenantId};
use ate_storage::blob::BlobStore;
use ate_storage::import::ImportOptions;
use ate_storage::keyring::{KEY_READ, KEY_ROTATE, TenantKeyring};
use ate_storage::projects::{
    PROJECTS_DELETE, PROJECTS_READ, PROJECTS_WRITE, ProjectKeyring, ProjectSpec, ProjectStore,
    RepackOptions, SnapshotQuery, SnapshotStore, SqlProjectStore, SqlSnapshotStore,
};
use std::io::Write;
use std::sync::Arc;
use tests::crash::{MASTER, label, project_operation, tree};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tests::crash::helper_main("project-crasher", |a| async move {
        run(&a.db_url, &a.blob_url, &a.journal, a.seed).await
    })
    .await
}

/// The stores and principals the operations use.
struct Stores {
    tenant: TenantId,
    owner: Principal,
    admin: Principal,
    projects: SqlProjectStore,
    snapshots: SqlSnapshotStore,
    keys: ProjectKeyring,
}

impl Stores {
    async fn code(&self) -> Option<ProjectId> {
        self.projects
            .get_by_name(&self.owner, self.tenant, "code")
            .await
            .ok()
            .map(|p| p.id)
    }

    async fn code_or_new(&self) -> Result<ProjectId, Box<dyn std::error::Error>> {
        if let Some(p) = self.code().await {
            return Ok(p);
        }
        Ok(self
            .projects
            .create(&self.owner, self.tenant, &ProjectSpec::new("code"))
            .await?
            .id)
    }
}

async fn run(
    db_url: &str,
    blob_url: &str,
    journal_path: &str,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut done = std::fs::read_to_string(journal_path).unwrap_or_default();
    let whole = done.rfind('\n').map_or(0, |n| n + 1);
    if whole < done.len() {
        // Killed while writing this line: it never happened.
        done.truncate(whole);
        std::fs::write(journal_path, &done)?;
    }
    let mut next = done
        .lines()
        .filter_map(|line| line.strip_prefix("BEGIN ")?.split(' ').next()?.parse().ok())
        .max()
        .map_or(0, |i: u64| i + 1);
    let db = Db::open(db_url).await?;
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes(MASTER)));
    let tenant_keys = TenantKeyring::open(db.clone(), master).await?;
    let keys = ProjectKeyring::open(db.clone(), tenant_keys).await?;
    let admin = Principal::platform_admin("ops:crasher")?;
    let tenants = SqlTenantStore::new(db.clone());
    let tenant: TenantId = tests::crash::crash_tenant(&tenants, &admin).await?;
    let stores = Stores {
        tenant,
        owner: Principal::new(tenant, "user:crasher")?
            .permission(PROJECTS_READ)
            .permission(PROJECTS_WRITE)
            .permission(PROJECTS_DELETE)
            .permission(KEY_READ)
            .permission(KEY_ROTATE),
        admin,
        projects: SqlProjectStore::open(db.clone()).await?,
        snapshots: SqlSnapshotStore::open(db, BlobStore::open(blob_url)?, keys.clone()).await?,
        keys,
    };
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal_path)?;
    println!("ready");
    loop {
        let op = project_operation(seed, next);
        let mut begun = false;
        let outcome = step(&stores, &mut journal, &mut begun, seed, next, op).await;
        if !begun {
            // It failed before it began: say so, so every ACK or NAK follows its BEGIN.
            writeln!(journal, "BEGIN {next} {op} -")?;
        }
        match outcome {
            Ok(()) => writeln!(journal, "ACK {next}")?,
            Err(e) => writeln!(journal, "NAK {next} {}", e.to_string().replace('\n', " "))?,
        }
        journal.sync_data()?;
        next += 1;
    }
}

/// Journals and performs operation `i`.
async fn step(
    s: &Stores,
    journal: &mut std::fs::File,
    begun: &mut bool,
    seed: u64,
    i: u64,
    op: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let (t, o) = (s.tenant, &s.owner);
    let mut begin = |journal: &mut std::fs::File, what: &str| -> std::io::Result<()> {
        *begun = true;
        writeln!(journal, "BEGIN {i} {op}{what}")?;
        journal.sync_data()
    };
    match op {
        "import" => {
            let project = s.code_or_new().await?;
            begin(journal, "")?;
            let mut import = s
                .snapshots
                .begin_import(o, t, project, ImportOptions::new().label(label(i)))
                .await?;
            for (path, content) in tree(seed, i) {
                import.add_file(&path, 0o644, &mut &content[..]).await?;
            }
            import.commit().await?;
        }
        "delete" => {
            let oldest = match s.code().await {
                Some(project) => oldest(s, project).await?,
                None => None,
            };
            let Some((id, name)) = oldest else {
                begin(journal, " -")?;
                return Err("no snapshot to delete".into());
            };
            begin(journal, &format!(" {name}"))?;
            s.snapshots.delete(o, t, id).await?;
        }
        "drop" => {
            let Some(project) = s.code().await else {
                begin(journal, " -")?;
                return Err("no project to delete".into());
            };
            begin(journal, &format!(" {project}"))?;
            s.projects.delete(o, t, project, None).await?;
        }
        other => {
            let Some(project) = s.code().await else {
                begin(journal, "")?;
                return Err("no project".into());
            };
            begin(journal, "")?;
            match other {
                "gc" => {
                    let grace = chrono::TimeDelta::zero();
                    s.snapshots
                        .collect_garbage(&s.admin, t, project, grace)
                        .await?;
                }
                "rotate" => {
                    s.keys.rotate(o, t, project).await?;
                }
                _ => {
                    s.snapshots
                        .repack(o, t, project, RepackOptions::new().min_dead_share(0.2))
                        .await?;
                }
            }
        }
    }
    Ok(())
}

/// The project's oldest committed snapshot: its id and label.
async fn oldest(
    s: &Stores,
    project: ProjectId,
) -> Result<Option<(ate_core::SnapshotId, String)>, Box<dyn std::error::Error>> {
    let mut query = SnapshotQuery::new().limit(100);
    let mut last = None;
    loop {
        let page = s
            .snapshots
            .list(&s.owner, s.tenant, project, &query)
            .await?;
        if let Some(snap) = page.items.last() {
            last = Some((snap.id, snap.label.clone()));
        }
        match page.next_cursor {
            Some(cursor) => query = SnapshotQuery::new().limit(100).cursor(cursor),
            None => return Ok(last),
        }
    }
}
