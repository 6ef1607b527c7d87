//! Archive import through the real path: `SqlSnapshotStore::import_archive` on SQLite with
//! an in-memory blob store, small limits. Input: a mode byte, then the archive:
//! * `0`: the bytes as uploaded, format detected from them;
//! * `1`: a tar, named as such; `2`: a tar the target gzips first (so the tar parser is
//!   reached through the gzip path); `3`: a zip, named as such.
//!
//! Nothing may panic or hang; an import either commits a snapshot whose file list matches
//! its count and the limits, or is refused and leaves nothing: no new snapshot, and no blob
//! left behind.
#![no_main]

use ate_core::keys::{LocalKeyProvider, SecretKey};
use ate_core::{Db, NewTenant, Principal, ProjectId, SqlTenantStore, TenantId, TenantStore};
use ate_storage::blob::BlobStore;
use ate_storage::import::{ArchiveFormat, ImportLimits, ImportOptions};
use ate_storage::keyring::TenantKeyring;
use ate_storage::projects::{
    FileQuery, PROJECTS_DELETE, PROJECTS_READ, PROJECTS_WRITE, ProjectKeyring, ProjectSpec,
    ProjectStore, SnapshotQuery, SnapshotStore, SqlProjectStore, SqlSnapshotStore,
};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::sync::{Arc, LazyLock};
use tokio::runtime::Runtime;

const MAX_FILES: u64 = 32;

struct Env {
    rt: Runtime,
    snapshots: SqlSnapshotStore,
    blobs: BlobStore,
    owner: Principal,
    admin: Principal,
    tenant: TenantId,
    project: ProjectId,
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (snapshots, blobs, owner, admin, tenant, project) = rt.block_on(async {
        let db = Db::open("sqlite::memory:").await.expect("database");
        let admin = Principal::platform_admin("system:fuzz").expect("admin");
        let tenants = SqlTenantStore::new(db.clone());
        let tenant = tenants
            .create(&admin, NewTenant::new("fuzz", "Fuzz"))
            .await
            .expect("tenant")
            .id;
        let owner = Principal::new(tenant, "user:fuzz")
            .expect("principal")
            .permission(PROJECTS_READ)
            .permission(PROJECTS_WRITE)
            .permission(PROJECTS_DELETE);
        let blobs = BlobStore::open("memory://").expect("blobs");
        let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([5; 32])));
        let tenant_keys = TenantKeyring::open(db.clone(), master)
            .await
            .expect("keyring");
        let keys = ProjectKeyring::open(db.clone(), tenant_keys)
            .await
            .expect("project keys");
        let projects = SqlProjectStore::open(db.clone()).await.expect("projects");
        let project = projects
            .create(&owner, tenant, &ProjectSpec::new("code"))
            .await
            .expect("project")
            .id;
        let snapshots = SqlSnapshotStore::open(db, blobs.clone(), keys)
            .await
            .expect("snapshots");
        (snapshots, blobs, owner, admin, tenant, project)
    });
    Env {
        rt,
        snapshots,
        blobs,
        owner,
        admin,
        tenant,
        project,
    }
});

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip to memory");
    gz.finish().expect("gzip to memory")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (archive, format) = match mode % 4 {
        0 => (rest.to_vec(), None),
        1 => (rest.to_vec(), Some(ArchiveFormat::Tar)),
        2 => (gzip(rest), Some(ArchiveFormat::TarGz)),
        _ => (rest.to_vec(), Some(ArchiveFormat::Zip)),
    };
    let env = &*ENV;
    let limits = ImportLimits::default()
        .max_files(MAX_FILES)
        .max_entries(64)
        .max_file_bytes(1 << 20)
        .max_total_bytes(4 << 20)
        .max_archive_bytes(4 << 20)
        .max_depth(16);
    env.rt.block_on(async {
        let before = env.blobs.list(env.tenant).await.expect("list blobs").len();
        let outcome = env
            .snapshots
            .import_archive(
                &env.owner,
                env.tenant,
                env.project,
                Box::new(std::io::Cursor::new(archive)),
                format,
                ImportOptions::new().limits(limits),
            )
            .await;
        let listed = env
            .snapshots
            .list(&env.owner, env.tenant, env.project, &SnapshotQuery::new())
            .await
            .expect("list snapshots");
        match outcome {
            Ok(snapshot) => {
                assert!(
                    snapshot.files <= MAX_FILES,
                    "{} files imported",
                    snapshot.files
                );
                let files = env
                    .snapshots
                    .list_files(&env.owner, env.tenant, snapshot.id, &FileQuery::default())
                    .await
                    .expect("list files");
                assert!(files.items.len() as u64 >= snapshot.files.min(100));
                assert_eq!(listed.items.len(), 1, "one committed snapshot");
                env.snapshots
                    .delete(&env.owner, env.tenant, snapshot.id)
                    .await
                    .expect("delete");
                // Frees what the snapshot held, so memory stays flat over millions of runs.
                env.snapshots
                    .collect_garbage(
                        &env.admin,
                        env.tenant,
                        env.project,
                        chrono::TimeDelta::zero(),
                    )
                    .await
                    .expect("collect garbage");
            }
            Err(_) => {
                assert!(listed.items.is_empty(), "a refused import left a snapshot");
                let after = env.blobs.list(env.tenant).await.expect("list blobs").len();
                assert_eq!(after, before, "a refused import left blobs behind");
            }
        }
    });
});
