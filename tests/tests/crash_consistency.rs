//! Crash consistency of the object store: a helper process (`src/bin/storage-crasher.rs`)
//! puts, overwrites and deletes objects, rotates the tenant's data key, re-encrypts and
//! rotates the master key (rewrapping every tenant key), while this test kills it with SIGKILL at random moments (seeded: set
//! `ATE_CRASH_SEED` to replay a run; the seed is printed), then checks, after every kill:
//!
//! * every acknowledged write is readable and correct (checksum verified), every
//!   acknowledged delete is gone, and the one operation in flight is either done or not;
//! * after an acknowledged master-key rotation no tenant key is wrapped under an older
//!   master key: the check reads everything with a provider that holds only the master keys
//!   still needed (an interrupted rotation leaves keys under either; nothing is lost);
//! * nothing else exists; `ObjectStore::verify` (reading every byte) finds nothing wrong
//!   but orphan blobs of the interrupted upload, garbage collection removes exactly those
//!   and nothing referenced;
//! * the tenant's audit chain verifies.
//!
//! Codebase projects the same way: a second helper (`src/bin/project-crasher.rs`) imports
//! snapshots of project `code`, deletes its oldest snapshot, deletes the whole project, runs
//! garbage collection, rotates the project key and repacks; after every kill:
//!
//! * exactly the acknowledged snapshots exist (the operation in flight done or not), each
//!   holding exactly the files its import added, byte for byte;
//! * `SnapshotStore::verify` (reading every byte) finds nothing wrong but orphan blobs: the
//!   projects' stored bytes (what the quota is charged) and every snapshot's totals equal
//!   what exists, every chunk a file names is indexed and opens;
//! * garbage collection (once the killed import's lease ran out) and repair leave no import
//!   in progress, no deleted project half purged and no blob without a row;
//! * the tenant's audit chain verifies.
//!
//! On a SQLite file and on PostgreSQL, with blobs on the file system. `CI=true` fails
//! instead of skipping when PostgreSQL is missing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretKey};
use ate_core::{
    ManualClock, Principal, ProjectId, SnapshotId, SqlAuditSink, SqlTenantStore, TenantStore,
    with_pool,
};
use ate_storage::blob::BlobStore;
use ate_storage::keyring::TenantKeyring;
use ate_storage::objects::{ObjectStore, STORAGE_READ};
use ate_storage::projects::{
    FileQuery, PROJECTS_READ, ProjectKeyring, ProjectStore, SnapshotQuery, SnapshotStore,
    SqlProjectStore, SqlSnapshotStore,
};
use ate_storage::verify::{ProblemKind, VerifyOptions};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tests::crash::{
    MASTER, assert_chain_intact, data, label_index, master, master_generation, master_provider,
    operation, project_operation, seed_and_kills, tree,
};
use tests::support::{Backend, TestDb};

/// Kills per backend (`ATE_CRASH_KILLS` for more).
const KILLS: u32 = 12;

/// What the journal says: the state of each path after the acknowledged operations, and
/// the operation in flight when the helper died (if any).
struct Journal {
    /// path → the operation index whose bytes it holds (`None`: deleted).
    state: BTreeMap<String, Option<(u64, usize)>>,
    pending: Option<(u64, &'static str, String, usize)>,
    acknowledged: u64,
    /// The oldest master key generation a tenant key may still be wrapped under: the one
    /// the last completed master-key rotation moved to.
    oldest_master: u64,
    /// Operations begun, and the seed (for failure messages).
    begun: u64,
    seed: u64,
    /// The journal's lines about the last few operations.
    tail: String,
}

/// Applies an operation to the model.
fn apply(journal: &mut Journal, i: u64, op: &str, path: String, len: usize) {
    let state = &mut journal.state;
    match op {
        "rewrap" => journal.oldest_master = master_generation(journal.seed, i) + 1,
        "put" => {
            state.insert(path, Some((i, len)));
        }
        "delete" => {
            state.insert(path, None);
        }
        _ => {}
    }
}

/// Reads the journal. An operation that was in flight at an earlier kill may or may not
/// have committed (a database commits what it was asked to commit even if the client then
/// dies): `applied` holds what the check after that kill observed for each of them.
fn read_journal(path: &Path, seed: u64, applied: &BTreeMap<u64, bool>) -> Journal {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut journal = Journal {
        state: BTreeMap::new(),
        pending: None,
        acknowledged: 0,
        oldest_master: 0,
        begun: 0,
        seed,
        tail: String::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    journal.tail = lines[lines.len().saturating_sub(60)..].join("\n");
    for line in text.lines() {
        let mut words = line.split(' ');
        match (
            words.next(),
            words.next().and_then(|i| i.parse::<u64>().ok()),
        ) {
            (Some("BEGIN"), Some(i)) => {
                let (op, p, len) = operation(seed, i);
                let expected = format!("BEGIN {i} {op} {p} {len}");
                if line != expected {
                    // Torn by the kill: that operation never started.
                    assert!(
                        expected.starts_with(line),
                        "the journal does not match the seed: {line}"
                    );
                    continue;
                }
                if let Some((j, op, p, len)) = journal.pending.take() {
                    // Never acknowledged: its process was killed.
                    let seen = applied.get(&j).copied();
                    assert!(
                        seen.is_some(),
                        "operation {j} was in flight at a kill nobody checked"
                    );
                    if seen == Some(true) {
                        apply(&mut journal, j, op, p, len);
                    }
                }
                journal.pending = Some((i, op, p, len));
                journal.begun = i + 1;
            }
            // Only a whole `ACK i` line acknowledges (a torn one may be the start of
            // `ACK i0`); a refused operation had no effect.
            (Some(ack @ ("ACK" | "NAK")), Some(i))
                if journal.pending.as_ref().is_some_and(|p| p.0 == i)
                    && (ack == "NAK" || line == format!("ACK {i}")) =>
            {
                let Some((_, op, p, len)) = journal.pending.take() else {
                    unreachable!("checked by the guard")
                };
                journal.acknowledged += 1;
                if ack == "ACK" {
                    apply(&mut journal, i, op, p, len);
                }
            }
            // A torn line (the helper died while writing it): an ACK cut short leaves its
            // operation in flight, which it was.
            _ => assert!(
                ["ACK ", "NAK ", "BEGIN "]
                    .iter()
                    .any(|w| w.starts_with(line) || line.starts_with(w)),
                "an unexpected journal line: {line:?}"
            ),
        }
    }
    journal
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn start(helper: &str, db_url: &str, blob_url: &str, journal: &Path, seed: u64) -> Child {
    Command::new(helper)
        .args([
            db_url,
            blob_url,
            &journal.display().to_string(),
            &seed.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the crash helper process")
}

/// Starts `helper`, waits until it runs, lets it work for a random while and kills it.
async fn run_and_kill(
    helper: &str,
    test_db: &TestDb,
    blob_url: &str,
    journal: &Path,
    seed: u64,
    rng: &mut fastrand::Rng,
    round: u32,
) {
    let mut child = start(helper, &test_db.url, blob_url, journal, seed);
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "round {round}");
    tokio::time::sleep(Duration::from_millis(rng.u64(20..400))).await;
    child.kill().expect("SIGKILL the helper"); // Child::kill is SIGKILL on Unix
    child.wait().unwrap();
}

/// A scratch directory with the blob store's URL and the journal's path in it.
fn scratch() -> (tempfile::TempDir, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let blob_url = format!("fs://{}", dir.path().join("blobs").display());
    let journal = dir.path().join("journal");
    (dir, blob_url, journal)
}

/// After a kill: every tenant key is wrapped under a master key generation from
/// `journal.oldest_master` to the current one, and an object store that holds only those
/// master keys (to read everything with). An in-flight rotation counts as applied when it
/// left no key under the older master key.
async fn store_with_needed_masters(
    test_db: &TestDb,
    blob_url: &str,
    tenant: ate_core::TenantId,
    journal: &Journal,
    round: u32,
    applied: &mut BTreeMap<u64, bool>,
) -> ObjectStore {
    let current = master_generation(journal.seed, journal.begun);
    let id = |g: u64| {
        LocalKeyProvider::new(SecretKey::from_bytes(master(g)))
            .key_id()
            .to_owned()
    };
    let allowed: BTreeMap<String, u64> = (journal.oldest_master..=current)
        .map(|g| (id(g), g))
        .collect();
    let wrapped_under: Vec<String> = with_pool!(test_db.db, |pool| {
        sqlx::query_scalar(
            "SELECT DISTINCT master_key_id FROM tenant_keys \
             WHERE tenant_id = $1 AND master_key_id IS NOT NULL",
        )
        .bind(tenant.as_uuid())
        .fetch_all(pool)
        .await
        .unwrap()
    });
    let generations: BTreeSet<u64> = wrapped_under
        .iter()
        .map(|key_id| {
            *allowed.get(key_id).unwrap_or_else(|| {
                panic!(
                    "round {round}: a tenant key is wrapped under master key {key_id}, \
                     expected generations {}..={current}; journal:\n{}",
                    journal.oldest_master, journal.tail
                )
            })
        })
        .collect();
    if let Some((i, "rewrap", ..)) = &journal.pending {
        applied.insert(*i, generations.iter().all(|&g| g == current));
    }
    let master = Arc::new(master_provider(current, journal.oldest_master));
    ObjectStore::open(
        test_db.db.clone(),
        BlobStore::open(blob_url).unwrap(),
        master,
    )
    .await
    .unwrap()
}

/// Checks the invariants after a kill; returns how many orphan blobs were repaired.
async fn check(
    test_db: &TestDb,
    blob_url: &str,
    audit: &SqlAuditSink,
    journal: &Journal,
    round: u32,
    applied: &mut BTreeMap<u64, bool>,
) -> usize {
    let admin = Principal::platform_admin("ops:test").unwrap();
    let Ok(tenant) = SqlTenantStore::new(test_db.db.clone())
        .get_by_slug(&admin, "crash")
        .await
    else {
        assert_eq!(journal.acknowledged, 0, "round {round}: the tenant is gone");
        return 0;
    };
    let store =
        &store_with_needed_masters(test_db, blob_url, tenant.id, journal, round, applied).await;
    let reader = Principal::new(tenant.id, "user:checker")
        .unwrap()
        .permission(STORAGE_READ);
    let listed = store
        .list(&reader, tenant.id, "", Some(1000), None)
        .await
        .unwrap();
    let mut paths: Vec<String> = listed.items.iter().map(|i| i.path.clone()).collect();
    paths.extend(journal.state.keys().cloned());
    paths.sort();
    paths.dedup();
    for path in paths {
        let acked = journal.state.get(&path).copied().flatten();
        let in_flight = journal
            .pending
            .as_ref()
            .filter(|(_, op, p, _)| *p == path && matches!(*op, "put" | "delete"));
        let actual = match store.get(&reader, tenant.id, &path).await {
            Ok(r) => Some(r.read_to_end(true).await.unwrap_or_else(|e| {
                panic!("round {round}: {path} is listed but does not read back: {e}")
            })),
            Err(e) => {
                assert_eq!(
                    ate_core::Classify::kind(&e),
                    ate_core::ErrorKind::NotFound,
                    "round {round}: {path}: {e}"
                );
                None
            }
        };
        let matches = |expected: Option<(u64, usize)>| match (&actual, expected) {
            (None, None) => true,
            (Some(bytes), Some((i, len))) => sha(bytes) == sha(&data(i, len)),
            _ => false,
        };
        let after_in_flight = in_flight.map(|(i, op, _, len)| match *op {
            "put" => Some((*i, *len)),
            _ => None,
        });
        if let Some((i, ..)) = in_flight {
            applied.insert(*i, after_in_flight.is_some_and(&matches));
        }
        if !(matches(acked) || after_in_flight.is_some_and(&matches)) {
            // Which operation's bytes are these? (For the failure message.)
            let holder = actual.as_ref().and_then(|bytes| {
                (0..journal.begun).find(|&i| {
                    let (op, p, len) = operation(journal.seed, i);
                    op == "put" && p == path && sha(&data(i, len)) == sha(bytes)
                })
            });
            panic!(
                "round {round}: {path} holds {:?} bytes, those of operation {holder:?}; \
                 acknowledged {acked:?}, in flight {in_flight:?}; journal:\n{}",
                actual.as_ref().map(Vec::len),
                journal.tail
            );
        }
    }
    // Nothing but the interrupted upload's orphan is wrong; GC removes it and only it.
    let verify = |options: VerifyOptions| {
        let (store, admin) = (store.clone(), admin.clone());
        async move {
            let options = options.grace(chrono::TimeDelta::zero());
            store.verify(&admin, tenant.id, &options).await.unwrap()
        }
    };
    let report = verify(VerifyOptions::default().read_all(true)).await;
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.kind == ProblemKind::OrphanBlob),
        "round {round}: {:#?}",
        report.problems
    );
    assert!(
        report.problems.len() <= 1,
        "round {round}: more than one orphan: {:#?}",
        report.problems
    );
    let repaired = verify(VerifyOptions::default().repair(true)).await;
    assert!(
        repaired.is_clean(),
        "round {round}: {:#?}",
        repaired.problems
    );
    let after = verify(VerifyOptions::default().read_all(true)).await;
    assert!(
        after.problems.is_empty(),
        "round {round}: {:#?}",
        after.problems
    );
    assert_eq!(
        after.objects, after.blobs,
        "round {round}: one blob per object after GC"
    );
    assert_chain_intact(audit, tenant.id, round).await;
    report.problems.len()
}

async fn kill_at_random_moments(backend: Backend) {
    let Some(test_db) = TestDb::open(backend).await else {
        return;
    };
    let (seed, kills) = seed_and_kills("objects", backend, KILLS);
    let (_dir, blob_url, journal_path) = scratch();
    let audit = SqlAuditSink::new(test_db.db.clone());
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut last, mut orphans, mut in_flight, mut rewraps_in_flight) = (0, 0, 0, 0);
    let mut generation = 0;
    let mut applied = BTreeMap::new();
    for round in 0..kills {
        run_and_kill(
            env!("CARGO_BIN_EXE_storage-crasher"),
            &test_db,
            &blob_url,
            &journal_path,
            seed,
            &mut rng,
            round,
        )
        .await;
        let journal = read_journal(&journal_path, seed, &applied);
        in_flight += usize::from(journal.pending.is_some());
        if let Some((i, ..)) = &journal.pending {
            applied.entry(*i).or_insert(false); // rotate/reencrypt, or a path not checked
            rewraps_in_flight +=
                usize::from(journal.pending.as_ref().is_some_and(|p| p.1 == "rewrap"));
        }
        orphans += check(&test_db, &blob_url, &audit, &journal, round, &mut applied).await;
        last = journal.acknowledged;
        generation = master_generation(seed, journal.begun);
    }
    assert!(
        last >= u64::from(kills),
        "only {last} operations acknowledged in {kills} rounds"
    );
    println!(
        "{last} operations acknowledged over {kills} kills; {in_flight} kills hit an operation \
         in flight ({rewraps_in_flight} a master-key rotation), {orphans} left an orphan blob \
         that verify found and repaired; master key generation {generation} at the end"
    );
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_sigkill_on_a_sqlite_file() {
    kill_at_random_moments(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_sigkill_on_postgres() {
    kill_at_random_moments(Backend::Postgres).await;
}

/// Lines a kill tore (the helper died while writing them) are read as what they are: a torn
/// `BEGIN` never started, a torn `ACK` leaves its operation in flight (resolved by what the
/// check after that kill saw), and a refused operation has no effect.
#[test]
fn torn_journal_lines_are_read_safely() {
    let seed = 42;
    let line = |i: u64| {
        let (op, p, len) = operation(seed, i);
        format!("BEGIN {i} {op} {p} {len}")
    };
    let puts: Vec<u64> = (0..200)
        .filter(|&i| operation(seed, i).0 == "put")
        .take(4)
        .collect();
    let [a, b, c, d] = puts[..] else {
        panic!("four puts in the first 200 operations")
    };
    let torn_begin = &line(d)[..line(d).len() - 3];
    let text = [
        line(a),
        format!("ACK {a}"),
        line(b),
        "AC".to_owned(), // torn: b was in flight at a kill, and the check saw it applied
        line(c),
        format!("NAK {c} refused"),
        torn_begin.to_owned(), // torn: d never started
        line(d),
        format!("ACK {}", d / 10), // torn `ACK d` (a prefix): still in flight
    ]
    .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    std::fs::write(&path, text).unwrap();
    let applied = BTreeMap::from([(b, true)]);
    let journal = read_journal(&path, seed, &applied);
    let holds = |i: u64| Some((i, operation(seed, i).2));
    let (pa, pb) = (operation(seed, a).1, operation(seed, b).1);
    if pa != pb {
        assert_eq!(journal.state.get(&pa).copied().flatten(), holds(a));
    }
    assert_eq!(journal.state.get(&pb).copied().flatten(), holds(b));
    let pc = operation(seed, c).1;
    if pc != pa && pc != pb {
        assert_eq!(journal.state.get(&pc), None, "a refused put has no effect");
    }
    assert_eq!(journal.pending.as_ref().map(|p| p.0), Some(d));
    assert_eq!(journal.acknowledged, 2);
}

// ---------------------------------------------------------------------------------------
// Codebase projects.

/// What a codebase journal says: the imports whose snapshots should exist, and the
/// operation in flight when the helper died (if any).
struct ProjectJournal {
    /// Imports acknowledged (or seen applied) and not deleted since, by operation index.
    live: BTreeSet<u64>,
    /// `(index, operation, what)`: what a delete removes (a label), a drop deletes (an id).
    pending: Option<(u64, &'static str, String)>,
    acknowledged: u64,
    tail: String,
}

fn apply_project(live: &mut BTreeSet<u64>, i: u64, op: &str, what: &str) {
    match op {
        "import" => {
            live.insert(i);
        }
        "delete" => {
            if let Some(j) = label_index(what) {
                live.remove(&j);
            }
        }
        "drop" => live.clear(),
        _ => {}
    }
}

/// Reads a codebase journal (whole lines only: a kill may have cut the last one short; the
/// next helper cuts it off). `applied` says, for each operation in flight at an earlier
/// kill, whether the check after it saw it done.
fn read_project_journal(path: &Path, seed: u64, applied: &BTreeMap<u64, bool>) -> ProjectJournal {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = &text[..text.rfind('\n').map_or(0, |n| n + 1)];
    let lines: Vec<&str> = whole.lines().collect();
    let mut journal = ProjectJournal {
        live: BTreeSet::new(),
        pending: None,
        acknowledged: 0,
        tail: lines[lines.len().saturating_sub(40)..].join("\n"),
    };
    for line in lines {
        let mut words = line.splitn(4, ' ');
        let (word, i) = (
            words.next(),
            words.next().and_then(|i| i.parse::<u64>().ok()),
        );
        match (word, i) {
            (Some("BEGIN"), Some(i)) => {
                let op = project_operation(seed, i);
                assert_eq!(
                    words.next(),
                    Some(op),
                    "the journal does not match the seed: {line}"
                );
                let what = words.next().unwrap_or("").to_owned();
                if let Some((j, op, what)) = journal.pending.take() {
                    let seen = applied.get(&j).copied();
                    assert!(
                        seen.is_some(),
                        "operation {j} was in flight at a kill nobody checked"
                    );
                    if seen == Some(true) {
                        apply_project(&mut journal.live, j, op, &what);
                    }
                }
                journal.pending = Some((i, op, what));
            }
            (Some(ack @ ("ACK" | "NAK")), Some(i))
                if journal.pending.as_ref().is_some_and(|p| p.0 == i) =>
            {
                let Some((_, op, what)) = journal.pending.take() else {
                    unreachable!("checked by the guard")
                };
                journal.acknowledged += 1;
                if ack == "ACK" {
                    apply_project(&mut journal.live, i, op, &what);
                }
            }
            _ => panic!("an unexpected journal line: {line:?}"),
        }
    }
    journal
}

/// What the codebase checks use.
struct ProjectStores {
    db: ate_core::Db,
    projects: SqlProjectStore,
    snapshots: SqlSnapshotStore,
    audit: SqlAuditSink,
}

/// Checks the invariants after a kill; returns how many orphan blobs verify found.
async fn check_projects(
    s: &ProjectStores,
    journal: &ProjectJournal,
    seed: u64,
    round: u32,
    applied: &mut BTreeMap<u64, bool>,
) -> usize {
    let admin = Principal::platform_admin("ops:test").unwrap();
    let Ok(tenant) = SqlTenantStore::new(s.db.clone())
        .get_by_slug(&admin, "crash")
        .await
    else {
        assert_eq!(journal.acknowledged, 0, "round {round}: the tenant is gone");
        return 0;
    };
    let t = tenant.id;
    let reader = Principal::new(t, "user:checker")
        .unwrap()
        .permission(PROJECTS_READ);
    // The snapshots of project `code`, by the import that made them.
    let mut actual: BTreeMap<u64, SnapshotId> = BTreeMap::new();
    if let Ok(project) = s.projects.get_by_name(&reader, t, "code").await {
        let mut query = SnapshotQuery::new().limit(100);
        loop {
            let page = s
                .snapshots
                .list(&reader, t, project.id, &query)
                .await
                .unwrap();
            for snap in page.items {
                let j = label_index(&snap.label).unwrap_or_else(|| {
                    panic!("round {round}: a snapshot labelled {:?}", snap.label)
                });
                actual.insert(j, snap.id);
            }
            match page.next_cursor {
                Some(cursor) => query = SnapshotQuery::new().limit(100).cursor(cursor),
                None => break,
            }
        }
    }
    // The operation in flight happened or not: which, as seen now.
    let mut expected = journal.live.clone();
    if let Some((i, op, what)) = &journal.pending {
        let happened = match *op {
            "import" => actual.contains_key(i),
            "delete" => label_index(what).is_some_and(|j| !actual.contains_key(&j)),
            "drop" => match what.parse::<uuid::Uuid>() {
                Ok(id) => {
                    let project = ProjectId::from_uuid(id).unwrap();
                    s.projects.get(&reader, t, project).await.is_err()
                }
                Err(_) => false,
            },
            _ => false, // gc, rotate, repack: no snapshot comes or goes
        };
        if happened {
            apply_project(&mut expected, *i, op, what);
        }
        applied.insert(*i, happened);
    }
    let found: BTreeSet<u64> = actual.keys().copied().collect();
    assert_eq!(
        found, expected,
        "round {round}: the snapshots that exist are not the acknowledged ones (in flight: \
         {:?}); journal:\n{}",
        journal.pending, journal.tail
    );
    // Each holds exactly what its import added.
    for (j, id) in &actual {
        let want = tree(seed, *j);
        let files = s
            .snapshots
            .list_files(&reader, t, *id, &FileQuery::new())
            .await
            .unwrap();
        let paths: Vec<&str> = files.items.iter().map(|f| f.path.as_str()).collect();
        let wanted: Vec<&str> = want.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, wanted, "round {round}: the files of op-{j}");
        for (path, content) in &want {
            let got = s
                .snapshots
                .read_file(&reader, t, *id, path, None)
                .await
                .unwrap_or_else(|e| panic!("round {round}: op-{j} {path}: {e}"));
            assert!(
                sha(&got) == sha(content),
                "round {round}: op-{j} {path} reads back other bytes"
            );
        }
    }
    // Nothing is wrong but orphan blobs of what was interrupted.
    let verify = |options: VerifyOptions| {
        let (snapshots, admin) = (s.snapshots.clone(), admin.clone());
        async move {
            let options = options.grace(chrono::TimeDelta::zero());
            snapshots.verify(&admin, t, None, &options).await.unwrap()
        }
    };
    let report = verify(VerifyOptions::default().read_all(true)).await;
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.kind == ProblemKind::OrphanBlob),
        "round {round}: {:#?}\njournal:\n{}",
        report.problems,
        journal.tail
    );
    // Garbage collection of every project the tenant has (this store's clock is hours
    // ahead: the killed import's lease has run out) and of what deleted projects left
    // leaves nothing: no orphan, no import in progress, no half-purged project.
    let ids: Vec<uuid::Uuid> = with_pool!(s.db, |pool| {
        sqlx::query_scalar("SELECT id FROM projects WHERE tenant_id = $1")
            .bind(t.as_uuid())
            .fetch_all(pool)
            .await
            .unwrap()
    });
    for id in ids {
        let project = ProjectId::from_uuid(id).unwrap();
        let gc = s
            .snapshots
            .collect_garbage(&admin, t, project, chrono::TimeDelta::zero())
            .await
            .unwrap();
        assert!(!gc.busy, "round {round}: {gc:?}");
    }
    s.snapshots
        .collect_deleted_projects(&admin, t)
        .await
        .unwrap();
    let after = verify(VerifyOptions::default().read_all(true)).await;
    assert!(
        after.problems.is_empty() && after.in_progress == 0,
        "round {round}: {after:#?}"
    );
    let unfinished: i64 = with_pool!(s.db, |pool| {
        sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM snapshots WHERE tenant_id = $1 AND state <> 'committed') \
             + (SELECT COUNT(*) FROM projects WHERE tenant_id = $1 AND deleted_at IS NOT NULL)",
        )
        .bind(t.as_uuid())
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(
        unfinished, 0,
        "round {round}: imports or project deletions left unfinished"
    );
    assert_chain_intact(&s.audit, t, round).await;
    report.problems.len()
}

async fn projects_kill_at_random_moments(backend: Backend) {
    let Some(test_db) = TestDb::open(backend).await else {
        return;
    };
    let (seed, kills) = seed_and_kills("codebase projects", backend, KILLS);
    let (_dir, blob_url, journal_path) = scratch();
    let master = Arc::new(LocalKeyProvider::new(SecretKey::from_bytes(MASTER)));
    let tenant_keys = TenantKeyring::open(test_db.db.clone(), master)
        .await
        .unwrap();
    let keys = ProjectKeyring::open(test_db.db.clone(), tenant_keys)
        .await
        .unwrap();
    let snapshots = SqlSnapshotStore::open(
        test_db.db.clone(),
        BlobStore::open(&blob_url).unwrap(),
        keys,
    )
    .await
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut last, mut orphans, mut in_flight, mut most) = (0, 0, 0, 0);
    let mut applied = BTreeMap::new();
    for round in 0..kills {
        run_and_kill(
            env!("CARGO_BIN_EXE_project-crasher"),
            &test_db,
            &blob_url,
            &journal_path,
            seed,
            &mut rng,
            round,
        )
        .await;
        let journal = read_project_journal(&journal_path, seed, &applied);
        in_flight += usize::from(journal.pending.is_some());
        most = most.max(journal.live.len());
        // Hours ahead of the helper: leases it took have run out for garbage collection.
        let clock = Arc::new(ManualClock::new(
            chrono::Utc::now() + chrono::TimeDelta::hours(3),
        ));
        let stores = ProjectStores {
            db: test_db.db.clone(),
            projects: SqlProjectStore::open(test_db.db.clone()).await.unwrap(),
            snapshots: snapshots.clone().with_clock(clock),
            audit: SqlAuditSink::new(test_db.db.clone()),
        };
        orphans += check_projects(&stores, &journal, seed, round, &mut applied).await;
        last = journal.acknowledged;
    }
    assert!(
        last >= u64::from(kills),
        "only {last} operations acknowledged in {kills} rounds"
    );
    println!(
        "{last} operations acknowledged over {kills} kills (at most {most} snapshots at once); \
         {in_flight} kills hit an operation in flight, {orphans} orphan blob(s) found"
    );
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_survive_sigkill_on_a_sqlite_file() {
    projects_kill_at_random_moments(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_survive_sigkill_on_postgres() {
    projects_kill_at_random_moments(Backend::Postgres).await;
}
