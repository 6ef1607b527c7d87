//! What the crash-consistency helper (`src/bin/storage-crasher.rs`) does, shared with the
//! test that kills it (`tests/crash_consistency.rs`) so both agree on every operation.

/// What a crash helper is started with: `<database-url> <blob-url> <journal> <seed>`.
#[derive(Debug)]
pub struct HelperArgs {
    /// The database.
    pub db_url: String,
    /// The blob store.
    pub blob_url: String,
    /// The journal file.
    pub journal: String,
    /// The run's seed.
    pub seed: u64,
}

/// Runs a crash helper's `run` with the process's arguments: exit status 2 for bad
/// arguments, 1 (with the error on stderr) when `run` fails.
pub async fn helper_main<F, Fut>(name: &str, run: F) -> std::process::ExitCode
where
    F: FnOnce(HelperArgs) -> Fut,
    Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let args: Vec<String> = std::env::args().collect();
    let [_, db_url, blob_url, journal, seed] = args.as_slice() else {
        eprintln!("usage: {name} <database-url> <blob-url> <journal> <seed>");
        return std::process::ExitCode::from(2);
    };
    let Ok(seed) = seed.parse::<u64>() else {
        eprintln!("{name}: the seed must be a number");
        return std::process::ExitCode::from(2);
    };
    let args = HelperArgs {
        db_url: db_url.clone(),
        blob_url: blob_url.clone(),
        journal: journal.clone(),
        seed,
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The master key both the helper and the test use.
pub const MASTER: [u8; 32] = [0x5a; 32];

/// What operation `i` of a run seeded with `seed` does: `(op, path, len)`, where `op` is
/// `put`, `delete`, `rotate` (a new tenant data key), `reencrypt` (a batch of objects onto
/// the active key) or `rewrap` (the tenant keys onto the next [`master`] key).
pub fn operation(seed: u64, i: u64) -> (&'static str, String, usize) {
    let mut rng =
        fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i));
    let path = format!("p{}", rng.u8(0..6));
    let len = [0, 100, 20_000, 70_000][rng.usize(0..4)];
    match rng.u8(0..20) {
        0..=11 => ("put", path, len),
        12..=16 => ("delete", path, 0),
        17 => ("rotate", String::new(), 0),
        18 => ("reencrypt", String::new(), 0),
        _ => ("rewrap", String::new(), 0),
    }
}

/// The bytes operation `i` puts.
pub fn data(i: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(i);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// What operation `i` of a codebase run (`src/bin/project-crasher.rs`) seeded with `seed`
/// does: `import` a new snapshot of project `code` (creating the project if it is missing),
/// `delete` its oldest snapshot, `drop` (delete) the project, `gc` it, `rotate` its key or
/// `repack` it.
pub fn project_operation(seed: u64, i: u64) -> &'static str {
    let mut rng =
        fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i));
    match rng.u8(0..20) {
        0..=8 => "import",
        9..=12 => "delete",
        13 => "drop",
        14..=15 => "gc",
        16 => "rotate",
        _ => "repack",
    }
}

/// The files import `i` holds, by path: one to four of `f0`..`f7`, each one of ten
/// contents cut to one of five lengths (so imports share whole files and chunk prefixes).
pub fn tree(seed: u64, i: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = fastrand::Rng::with_seed(seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let n = rng.usize(1..5);
    let mut names: Vec<u8> = (0..8).collect();
    rng.shuffle(&mut names);
    let mut files: Vec<(String, Vec<u8>)> = names[..n]
        .iter()
        .map(|k| {
            let len = [0, 10, 3000, 70_000, 200_000][rng.usize(0..5)];
            (format!("f{k}"), data(rng.u64(0..10), len))
        })
        .collect();
    files.sort();
    files
}

/// The label of the snapshot operation `i` imports.
pub fn label(i: u64) -> String {
    format!("op-{i}")
}

/// The operation index of a snapshot labelled by [`label`].
pub fn label_index(label: &str) -> Option<u64> {
    label.strip_prefix("op-")?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Master keys (object helper) and workflow runs (`src/bin/workflow-crasher.rs`).

/// Master key generation `g`: operation `rewrap` moves the tenant keys from generation `g`
/// to `g + 1` (generation 0 is [`MASTER`]).
pub fn master(generation: u64) -> [u8; 32] {
    if generation == 0 {
        return MASTER;
    }
    let mut key = MASTER;
    key[..8].copy_from_slice(&generation.to_be_bytes());
    key[8] ^= 0xa5;
    key
}

/// The master generation current when operation `i` of a run seeded with `seed` starts:
/// how many `rewrap` operations came before it.
pub fn master_generation(seed: u64, i: u64) -> u64 {
    (0..i).filter(|&j| operation(seed, j).0 == "rewrap").count() as u64
}

/// A master-key provider whose current key is generation `current` and which still
/// unwraps generations `oldest..current`, and no others.
pub fn master_provider(current: u64, oldest: u64) -> ate_core::keys::LocalKeyProvider {
    use ate_core::keys::{LocalKeyProvider, SecretKey};
    (oldest..current).fold(
        LocalKeyProvider::new(SecretKey::from_bytes(master(current))),
        |provider, g| provider.with_retired(SecretKey::from_bytes(master(g))),
    )
}

/// One node of a workflow crash run: its id, its step (`work`, or `flaky`: fails its first
/// attempt with a retryable error) and the nodes it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashNode {
    /// Its id.
    pub id: String,
    /// `work` or `flaky`.
    pub step: &'static str,
    /// The nodes it waits for.
    pub depends_on: Vec<String>,
}

/// The run submission `i` of a workflow crash run seeded with `seed` makes: its nodes (a
/// chain, a diamond or a fan-out/fan-in; one node in three is flaky) and how long each
/// attempt of its steps works, in milliseconds.
pub fn workflow_run(seed: u64, i: u64) -> (Vec<CrashNode>, u64) {
    let mut rng =
        fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i));
    let edges: &[(&str, &[&str])] = match rng.u8(0..3) {
        0 => &[("a", &[]), ("b", &["a"]), ("c", &["b"])],
        1 => &[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])],
        _ => &[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a"]),
            ("d", &["a"]),
            ("e", &["b", "c", "d"]),
        ],
    };
    let nodes = edges
        .iter()
        .map(|(id, deps)| CrashNode {
            id: (*id).to_owned(),
            step: if rng.u8(0..3) == 0 { "flaky" } else { "work" },
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
        })
        .collect();
    (nodes, rng.u64(0..150))
}

/// The idempotency key of workflow submission `i`.
pub fn workflow_key(i: u64) -> String {
    format!("crash-{i}")
}

/// The tenant's audit chain verifies (after round `round` of a crash test).
pub async fn assert_chain_intact(
    audit: &ate_core::SqlAuditSink,
    tenant: ate_core::TenantId,
    round: u32,
) {
    use ate_core::AuditSink;
    let admin = ate_core::Principal::platform_admin("ops:test").expect("a valid principal");
    let chain = audit
        .verify_chain(&admin, tenant)
        .await
        .expect("the audit chain can be read");
    assert!(
        chain.first_break.is_none(),
        "round {round}: {:?}",
        chain.first_break
    );
}

/// The seed (`ATE_CRASH_SEED`, else random, printed so a failure can be replayed) and the
/// number of kills (`ATE_CRASH_KILLS`, else `default_kills`) of a crash test of `what`.
pub fn seed_and_kills(
    what: &str,
    backend: crate::support::Backend,
    default_kills: u32,
) -> (u64, u32) {
    let seed: u64 = std::env::var("ATE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("crash consistency of {what} on {backend:?}: ATE_CRASH_SEED={seed}");
    let kills: u32 = std::env::var("ATE_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_kills);
    (seed, kills)
}

/// The crash helpers' tenant, `crash`, created by the first helper that finds it missing.
pub async fn crash_tenant(
    tenants: &ate_core::SqlTenantStore,
    admin: &ate_core::Principal,
) -> Result<ate_core::TenantId, ate_core::CoreError> {
    use ate_core::TenantStore;
    match tenants.get_by_slug(admin, "crash").await {
        Ok(t) => Ok(t.id),
        Err(_) => Ok(tenants
            .create(admin, ate_core::NewTenant::new("crash", "Crash"))
            .await?
            .id),
    }
}
