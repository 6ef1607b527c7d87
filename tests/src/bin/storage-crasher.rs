//! Object-store operations in their own process, for the crash-consistency tests
//! (`tests/crash_consistency.rs`), which kill it with SIGKILL at random moments.
//!
//! ```text
//! storage-crasher <database-url> <blob-url> <journal> <seed>
//! ```
//!
//! Performs an endless stream of operations on tenant `crash`: puts of new and existing
//! paths (empty, one chunk, several chunks), deletes, data-key rotations, re-encryption
//! batches and master-key rotations (every tenant key rewrapped under the next master key,
//! [`tests::crash::master`]; the helper keeps every older master key for unwrapping, as a
//! host does until a rotation has finished). Operation *i* is chosen by `seed + i` alone, so a restarted helper carries on
//! where the journal ends. Before each operation it appends `BEGIN i op path len` to the
//! journal and after its acknowledgement `ACK i` (or `NAK i reason` when it was refused), each
//! line flushed to disk, so the test knows what was acknowledged and what was in flight.

use ate_core::{Db, Principal, SqlTenantStore, TenantId};
use ate_storage::blob::BlobStore;
use ate_storage::keyring::{KEY_READ, KEY_ROTATE};
use ate_storage::objects::{ObjectStore, PutOptions, STORAGE_DELETE, STORAGE_READ, STORAGE_WRITE};
use std::io::Write;
use std::sync::Arc;
use tests::crash::{data, master_generation, master_provider, operation};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tests::crash::helper_main("storage-crasher", |a| async move {
        run(&a.db_url, &a.blob_url, &a.journal, a.seed).await
    })
    .await
}

async fn run(
    db_url: &str,
    blob_url: &str,
    journal_path: &str,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let done = std::fs::read_to_string(journal_path).unwrap_or_default();
    // The operation after the last one begun. A line the previous process was killed while
    // writing is torn: a torn BEGIN means that operation never started.
    let mut next = done
        .lines()
        .filter_map(|line| {
            let i: u64 = line
                .strip_prefix("BEGIN ")?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let (op, path, len) = operation(seed, i);
            (line == format!("BEGIN {i} {op} {path} {len}")).then_some(i + 1)
        })
        .max()
        .unwrap_or(0);
    let db = Db::open(db_url).await?;
    // The master key of this point in the run (an interrupted rewrap counts as done: its
    // rows may be under either key, and the next rewrap finishes them).
    let open = |generation: u64| {
        let db = db.clone();
        async move {
            let master = Arc::new(master_provider(generation, 0));
            ObjectStore::open(db, BlobStore::open(blob_url)?, master).await
        }
    };
    let mut store = open(master_generation(seed, next)).await?;
    let admin = Principal::platform_admin("ops:crasher")?;
    let tenants = SqlTenantStore::new(db.clone());
    let tenant: TenantId = tests::crash::crash_tenant(&tenants, &admin).await?;
    let actor = Principal::new(tenant, "user:crasher")?
        .permission(STORAGE_READ)
        .permission(STORAGE_WRITE)
        .permission(STORAGE_DELETE)
        .permission(KEY_READ)
        .permission(KEY_ROTATE);
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal_path)?;
    // A torn last line stays a line of its own.
    if !done.is_empty() && !done.ends_with('\n') {
        writeln!(journal)?;
    }
    // A BEGIN without its ACK (the previous process died in between) stays as it is: the
    // test reads it as "in flight", and the operation is not retried.
    println!("ready");
    loop {
        let (op, path, len) = operation(seed, next);
        writeln!(journal, "BEGIN {next} {op} {path} {len}")?;
        journal.sync_data()?;
        let outcome = match op {
            "put" => store
                .put(
                    &actor,
                    tenant,
                    &path,
                    data(next, len),
                    PutOptions::default(),
                )
                .await
                .map(|_| ()),
            "delete" => store.delete(&actor, tenant, &path).await.map(|_| ()),
            "rotate" => store.keyring().rotate(&actor, tenant).await.map(|_| ()),
            "reencrypt" => store.reencrypt(&actor, tenant, 3).await.map(|_| ()),
            _ => match open(master_generation(seed, next) + 1).await {
                Ok(next_master) => {
                    store = next_master;
                    store.keyring().rotate_master(&admin).await.map(|_| ())
                }
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(()) => writeln!(journal, "ACK {next}")?,
            Err(e) => writeln!(journal, "NAK {next} {e}")?,
        }
        journal.sync_data()?;
        next += 1;
    }
}
