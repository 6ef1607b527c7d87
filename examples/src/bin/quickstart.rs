//! The ATE quickstart, on the embedded defaults: a SQLite file and a data folder it creates.
//!
//! ```text
//! cargo run -p examples --bin quickstart [DATA_DIR]     # default: ./quickstart-data
//! ```
//!
//! It opens (or creates) the database, makes sure the tenant `acme` exists, records a few
//! audit events, stores a few files encrypted under the tenant's key (in `DATA_DIR/blobs`),
//! reads them back whole and by range, rotates the tenant's key and reads again, registers a
//! user with a new organization (`initech`), logs in, verifies the access token, refreshes and
//! logs out, starts two local HTTP instances of a service, registers them in the service
//! registry with HTTP health checks, waits for them to pass, picks among them, calls them
//! and prints the metrics text, runs a two-step workflow (list the tenant's files, add up
//! their sizes) on a worker in this process, verifies the tenant's hash chain and prints a
//! summary. Run
//! it as often as you like: each run adds to the same log and overwrites the same files
//! (and replaces the previous run's instances), and everything keeps verifying.

use ate_auth::password::Password;
use ate_auth::{Auth, AuthConfig, ClientInfo, NewUser};
use ate_core::audit::{AuditAction, AuditQuery, NewAuditEvent, Order, Outcome, actions};
use ate_core::keys::{KeyProvider, LocalKeyProvider, SecretKey};
use ate_core::{
    AuditSink, Classify, CoreError, Db, ErrorKind, NewTenant, Principal, SqlAuditSink,
    SqlTenantStore, Tenant, TenantStore,
};
use ate_orchestrate::health::{CheckId, CheckKind, CheckSpec};
use ate_orchestrate::hub::{PickOptions, ServiceHub};
use ate_orchestrate::registry::{
    InstanceId, InstanceSpec, Query, Scope, ServiceName, SqlRegistry, Visibility,
};
use ate_orchestrate::workflow::{
    DagSpec, LogQuery, NodeError, NodeSpec, RunSpec, RunStatus, SqlWorkflowStore, StepContext,
    WorkerConfig, WorkflowEngine, WorkflowStore,
};
use ate_storage::blob::BlobStore;
use ate_storage::keyring::{KEY_READ, KEY_ROTATE};
use ate_storage::objects::{ObjectStore, PutOptions, STORAGE_READ, STORAGE_WRITE};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "quickstart-data".into()),
    );
    std::fs::create_dir_all(&dir).map_err(|e| {
        CoreError::invalid(
            "data directory",
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;

    // 1. The database: one SQLite file, migrated on open.
    let db = Db::open(&format!("sqlite://{}/ate.db", dir.display())).await?;
    let tenants = SqlTenantStore::new(db.clone());
    let audit = SqlAuditSink::new(db.clone());
    let admin = Principal::platform_admin("system:quickstart")?;

    // 2. A tenant, created on the first run and found on later ones.
    let (acme, created) = ensure_tenant(&tenants, &admin).await?;

    // 3. Some audit events, as a host would record them.
    let ip = "203.0.113.7"
        .parse()
        .map_err(|_| CoreError::Internal("literal address".into()))?;
    for event in [
        NewAuditEvent::new(
            acme.id,
            "user:alice",
            actions::AUTHN_LOGIN_FAIL,
            Outcome::Failure,
        )
        .client_addr(ip)
        .user_agent("quickstart/1.0")
        .metadata(serde_json::json!({ "reason": "bad_password" })),
        NewAuditEvent::new(
            acme.id,
            "user:alice",
            actions::AUTHN_LOGIN_SUCCESS,
            Outcome::Success,
        )
        .client_addr(ip)
        .user_agent("quickstart/1.0"),
        NewAuditEvent::new(
            acme.id,
            "user:alice",
            AuditAction::custom("app_report_exported")?,
            Outcome::Success,
        )
        .target("report:q3-revenue"),
    ] {
        audit.append(event).await?;
    }

    // 4. The tenant's data key, wrapped under a local master key (a development key file;
    //    production hosts load theirs from the environment or a KMS).
    let master = Arc::new(LocalKeyProvider::load_or_create_file(
        dir.join("master.key"),
    )?);
    let context = format!("tenant:{}/data-key:1", acme.id);
    let data_key = SecretKey::generate()?;
    let wrapped = master.wrap_key(&data_key, context.as_bytes()).await?;
    let unwrapped = master.unwrap_key(&wrapped, context.as_bytes()).await?;
    let rebound = master
        .unwrap_key(&wrapped, b"tenant:someone-else/data-key:1")
        .await;

    // 5. Encrypted files: upload, read back, ranged read, rotate the key, read again.
    let dir_abs = std::fs::canonicalize(&dir)?;
    let blobs = BlobStore::open(&format!("fs://{}/blobs", dir_abs.display()))?;
    let objects = ObjectStore::open(db.clone(), blobs, master.clone()).await?;
    let alice = Principal::new(acme.id, "user:alice")?
        .permission(STORAGE_READ)
        .permission(STORAGE_WRITE)
        .permission(KEY_ROTATE)
        .permission(KEY_READ);
    let files: [(&str, &[u8], &str); 3] = [
        (
            "src/main.rs",
            b"fn main() {\n    println!(\"hello, tenant\");\n}\n",
            "text/x-rust",
        ),
        (
            "README.md",
            b"# Acme\n\nEncrypted at rest with Cobblestone-256.\n",
            "text/markdown",
        ),
        ("data/big.bin", &[0x5A; 100_000], "application/octet-stream"),
    ];
    for (path, bytes, content_type) in files {
        objects
            .put(
                &alice,
                acme.id,
                path,
                bytes.to_vec(),
                PutOptions::default().content_type(content_type),
            )
            .await?;
    }
    let main_rs = objects
        .get(&alice, acme.id, "src/main.rs")
        .await?
        .read_to_end(true)
        .await?;
    let middle = objects
        .get_range(&alice, acme.id, "data/big.bin", 50_000..50_016)
        .await?;
    let rotated = objects.keyring().rotate(&alice, acme.id).await?;
    objects
        .put(
            &alice,
            acme.id,
            "notes.txt",
            b"written after rotation".to_vec(),
            PutOptions::default(),
        )
        .await?;
    let readme_after = objects
        .get(&alice, acme.id, "README.md")
        .await?
        .read_to_end(true)
        .await?;
    let listing = objects.list(&alice, acme.id, "", None, None).await?;

    // 5b. A codebase: this repository's own `ate-core/` imported as a snapshot of a project
    //     (deduplicated, compressed, encrypted under the project's key), with its languages.
    let blobs = BlobStore::open(&format!("fs://{}/blobs", dir_abs.display()))?;
    let codebase = import_codebase(&db, &objects, blobs, acme.id).await?;

    // 6. Authentication: register a user with a new organization (first run), log in,
    //    verify the access token, refresh, log out.
    let auth = Auth::open(
        db.clone(),
        master.clone(),
        AuthConfig::new("https://quickstart.local", "quickstart"),
    )
    .await?;
    let email = "ana@initech.example";
    let password = Password::new("quickstart demo passphrase");
    let org = match auth
        .register(
            NewTenant::new("initech", "Initech"),
            NewUser::new(email).name("Ana"),
            &password,
        )
        .await
    {
        Ok((org, _)) => org,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            tenants.get_by_slug(&admin, "initech").await?
        }
        Err(e) => return Err(e.into()),
    };
    let client = ClientInfo::addr(ip).user_agent("quickstart/1.0");
    let login = auth.login(org.id, email, &password, &client).await?;
    let principal = auth.verify(&login.access.token).await?;
    let refreshed = auth.refresh(&login.refresh, &client).await?;
    let replay = auth.refresh(&login.refresh, &client).await;
    auth.logout(&refreshed.access.token, &client).await?;
    let after_logout = auth.verify(&refreshed.access.token).await;

    // 7. Services: two local instances, health-checked, balanced, measured.
    let services = run_services(&db, &admin).await?;

    // 8. A workflow: a two-step DAG run by a worker in this process.
    let workflow = run_workflow(&db, &admin, acme.id, &objects, &alice).await?;

    // 9. Verify the chain and summarize.
    let report = audit.verify_chain(&admin, acme.id).await?;
    let recent = audit
        .query(
            &admin,
            AuditQuery::tenant(acme.id)
                .order(Order::NewestFirst)
                .limit(5),
        )
        .await?;

    println!("ATE quickstart — data in {}", dir.display());
    println!(
        "  tenant     {} ({}) {}, id {}",
        acme.slug,
        acme.name,
        if created { "created" } else { "found" },
        acme.id
    );
    println!(
        "  audit log  {} events, chain {}, head {}…",
        report.events_checked,
        if report.is_intact() {
            "intact"
        } else {
            "BROKEN"
        },
        &hex::encode(&report.head.hash[..8])
    );
    println!("  latest events:");
    for e in &recent.items {
        println!(
            "    #{:<4} {}  {:<22} {:<8} {}",
            e.seq,
            e.occurred_at.format("%Y-%m-%d %H:%M:%S"),
            e.action.as_str(),
            e.outcome.as_str(),
            e.actor
        );
    }
    println!(
        "  keys       master {}, data key wrapped ({} bytes), unwraps {}, other tenant's context: {}",
        master.key_id(),
        wrapped.ciphertext.len(),
        if unwrapped == data_key {
            "correctly"
        } else {
            "WRONGLY"
        },
        match &rebound {
            Err(e) if e.kind() == ErrorKind::Integrity => "rejected",
            _ => "ACCEPTED (bug)",
        }
    );
    println!("  storage    {} files:", listing.items.len());
    for o in &listing.items {
        println!(
            "    {:<14} {:>7} bytes  key v{}  {}",
            o.path, o.size, o.key_version, o.content_type
        );
    }
    println!(
        "             read back src/main.rs ({} bytes, checksum verified); bytes 50000..50016 of data/big.bin: {}",
        main_rs.len(),
        if middle == [0x5A; 16] {
            "correct"
        } else {
            "WRONG"
        }
    );
    println!(
        "             rotated the tenant key to v{}; README.md (older key) still reads: {}",
        rotated.version,
        if readme_after.starts_with(b"# Acme") {
            "yes"
        } else {
            "NO"
        }
    );
    println!(
        "  codebase   ate-core/ imported as snapshot {} of project `ate-core`: {} files, {} bytes, {} new stored bytes ({} snapshot(s) so far)",
        codebase.id, codebase.files, codebase.logical_bytes, codebase.new_bytes, codebase.count,
    );
    println!("             language     files    bytes     code  comments  blanks");
    for l in codebase.stats.languages.iter().take(8) {
        println!(
            "             {:<12} {:>5} {:>8} {:>8} {:>9} {:>7}",
            l.language, l.files, l.bytes, l.code, l.comments, l.blanks
        );
    }
    println!(
        "  auth       {} in {} ({}): logged in, token verifies as {} with roles [{}]",
        email,
        org.slug,
        org.id,
        principal.subject(),
        principal.roles().collect::<Vec<_>>().join(", ")
    );
    println!(
        "             refreshed (same session {}); old refresh token retried within grace: {}; after logout the access token is {}",
        refreshed.session.id,
        match &replay {
            Ok(r) if r.refresh == refreshed.refresh => "same successor",
            Ok(_) => "DIFFERENT successor (bug)",
            Err(_) => "refused",
        },
        match &after_logout {
            Err(e) if e.kind() == ErrorKind::Unauthenticated => "rejected",
            _ => "STILL ACCEPTED (bug)",
        }
    );
    println!(
        "  services   registered {} instances of `{}` ({} from the last run replaced), both passing their HTTP checks after {} ms",
        services.instances.len(),
        services.service,
        services.replaced,
        services.waited_ms
    );
    println!(
        "             {} calls, least request: {}; p95 {:.2} ms, error rate {:.0}%",
        services.calls,
        services
            .counts
            .iter()
            .map(|(id, n)| format!("{id} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        services.p95_ms,
        services.error_rate * 100.0
    );
    println!(
        "  workflows  run {} {} in {} ms: inventory found {} files, sizes total {} bytes; {} log line(s)",
        workflow.run,
        workflow.status.as_str(),
        workflow.took_ms,
        workflow.files,
        workflow.bytes,
        workflow.log_lines
    );
    println!(
        "  metrics    OpenMetrics text of {} lines; the request and health families:",
        services.metrics.lines().count()
    );
    for line in services.metrics.lines().filter(|l| {
        l.starts_with("ate_requests_total") || l.starts_with("ate_instance_health_status")
    }) {
        println!("    {line}");
    }
    if let Some(b) = &report.first_break {
        return Err(CoreError::Integrity(b.to_string()).into());
    }
    db.close().await;
    Ok(())
}

/// What the codebase part of the quickstart made.
struct Codebase {
    id: ate_core::SnapshotId,
    files: u64,
    logical_bytes: u64,
    new_bytes: u64,
    count: usize,
    stats: ate_storage::projects::SnapshotStats,
}

/// Imports `ate-core/` (found next to this crate) into the project `ate-core` of `tenant`,
/// made on the first run; later runs import it again (nothing new to store if unchanged).
async fn import_codebase(
    db: &Db,
    objects: &ObjectStore,
    blobs: BlobStore,
    tenant: ate_core::TenantId,
) -> Result<Codebase, Box<dyn std::error::Error>> {
    use ate_storage::import::ImportOptions;
    use ate_storage::projects::{
        PROJECTS_READ, PROJECTS_WRITE, ProjectKeyring, ProjectSpec, ProjectStore, SnapshotQuery,
        SnapshotStore, SqlProjectStore, SqlSnapshotStore,
    };
    let bob = Principal::new(tenant, "user:bob")?
        .permission(PROJECTS_READ)
        .permission(PROJECTS_WRITE);
    let projects = SqlProjectStore::open(db.clone()).await?;
    let project = match projects.get_by_name(&bob, tenant, "ate-core").await {
        Ok(p) => p,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            projects
                .create(&bob, tenant, &ProjectSpec::new("ate-core"))
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    let keys = ProjectKeyring::open(db.clone(), objects.keyring().clone()).await?;
    let snapshots = SqlSnapshotStore::open(db.clone(), blobs, keys).await?;
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ate-core");
    let snap = snapshots
        .import_dir(
            &bob,
            tenant,
            project.id,
            &source,
            ImportOptions::new().label("ate-core (quickstart)"),
        )
        .await?;
    let count = snapshots
        .list(&bob, tenant, project.id, &SnapshotQuery::new().limit(1000))
        .await?
        .items
        .len();
    Ok(Codebase {
        id: snap.id,
        files: snap.files,
        logical_bytes: snap.logical_bytes,
        new_bytes: snap.new_bytes,
        count,
        stats: snap.stats,
    })
}

/// What the workflow part of the quickstart saw.
struct WorkflowRun {
    run: ate_core::RunId,
    status: RunStatus,
    took_ms: u128,
    files: u64,
    bytes: u64,
    log_lines: usize,
}

/// Registers two steps (list the tenant's objects, add up their sizes), starts a worker,
/// submits the DAG and waits for it, then shuts the worker down.
async fn run_workflow(
    db: &Db,
    admin: &Principal,
    tenant: ate_core::TenantId,
    objects: &ObjectStore,
    reader: &Principal,
) -> Result<WorkflowRun, Box<dyn std::error::Error>> {
    let store = Arc::new(SqlWorkflowStore::open(db.clone()).await?);
    let (listing, who) = (objects.clone(), reader.clone());
    let engine = WorkflowEngine::builder(store.clone())
        .step("inventory", move |ctx: StepContext, _input: Value| {
            let (objects, who) = (listing.clone(), who.clone());
            async move {
                let page = objects
                    .list(&who, ctx.tenant, "", None, None)
                    .await
                    .map_err(|e| NodeError::retryable(e.kind().as_str(), e.to_string()))?;
                ctx.info(&format!("{} objects listed", page.items.len()));
                let files: Vec<Value> = page
                    .items
                    .iter()
                    .map(|o| serde_json::json!({"path": o.path, "size": o.size}))
                    .collect();
                Ok(serde_json::json!({ "files": files }))
            }
        })?
        .step("sizes", |_ctx: StepContext, input: Value| async move {
            let files = input["deps"]["inventory"]["files"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let bytes: u64 = files.iter().filter_map(|f| f["size"].as_u64()).sum();
            Ok(serde_json::json!({ "files": files.len(), "bytes": bytes }))
        })?
        .build();
    let worker = engine
        .start_worker(WorkerConfig::new("quickstart").poll_interval(Duration::from_millis(10)))?;
    let dag = DagSpec::new()
        .node(NodeSpec::step("inventory", "inventory"))
        .node(NodeSpec::step("sizes", "sizes").depends_on("inventory"));
    let started = Instant::now();
    let run = engine
        .submit(
            admin,
            tenant,
            &RunSpec::new(dag, Value::Null).label("source", "quickstart"),
        )
        .await?
        .run;
    let done = loop {
        let now = store.get(admin, tenant, run.id).await?;
        if now.status.is_finished() {
            break now;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(CoreError::Internal("the workflow did not finish in 30 s".into()).into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took_ms = started.elapsed().as_millis();
    worker.shutdown(Duration::from_secs(5)).await;
    let sizes = done.nodes.iter().find(|n| n.id.as_str() == "sizes");
    let output = sizes.and_then(|n| n.output.clone()).unwrap_or(Value::Null);
    let logs = store.logs(admin, tenant, run.id, &LogQuery::new()).await?;
    Ok(WorkflowRun {
        run: run.id,
        status: done.status,
        took_ms,
        files: output["files"].as_u64().unwrap_or(0),
        bytes: output["bytes"].as_u64().unwrap_or(0),
        log_lines: logs.items.len(),
    })
}

async fn ensure_tenant(
    tenants: &SqlTenantStore,
    admin: &Principal,
) -> Result<(Tenant, bool), CoreError> {
    match tenants.get_by_slug(admin, "acme").await {
        Ok(t) => Ok((t, false)),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            match tenants
                .create(admin, NewTenant::new("acme", "Acme Corp"))
                .await
            {
                Ok(t) => Ok((t, true)),
                // Another run created it between our lookup and our create.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    Ok((tenants.get_by_slug(admin, "acme").await?, false))
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// What the services part of the quickstart saw.
struct ServicesRun {
    service: ServiceName,
    instances: Vec<InstanceId>,
    replaced: usize,
    waited_ms: u128,
    calls: usize,
    counts: Vec<(String, usize)>,
    p95_ms: f64,
    error_rate: f64,
    metrics: String,
}

/// Starts two HTTP instances on loopback, registers them with health checks in the SQL
/// registry, waits until both pass, calls the service through `ServiceHub::pick` and
/// returns what happened with the metrics text.
async fn run_services(
    db: &Db,
    admin: &Principal,
) -> Result<ServicesRun, Box<dyn std::error::Error>> {
    let store = Arc::new(SqlRegistry::open(db.clone()).await?);
    let hub = ServiceHub::builder(store).build()?;
    let service = ServiceName::new("quickstart-echo")?;

    // The last run's instances listened on ports that are gone: replace them.
    let stale = hub
        .discover(
            admin,
            &Query::new(Visibility::Platform)
                .service(service.clone())
                .include_unhealthy(true),
        )
        .await?;
    for old in &stale {
        hub.deregister(admin, &old.key()).await?;
    }

    let mut instances = Vec::new();
    let mut servers = Vec::new();
    for n in 1..=2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .route(
                "/echo",
                axum::routing::get(move || async move { format!("hello from echo-{n}") }),
            );
        servers.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        let id = InstanceId::new(format!("echo-{n}"))?;
        let url = format!("http://{addr}");
        let spec = InstanceSpec::new(Scope::Platform, service.clone(), id.clone(), &url)?
            .tag("quickstart");
        let check = CheckSpec::new(
            CheckId::new(format!("echo-{n}-http"))?,
            spec.key(),
            CheckKind::http(format!("{url}/health")),
        )
        .interval(Duration::from_millis(200))
        .timeout(Duration::from_millis(150));
        hub.register(admin, spec, vec![check]).await?;
        instances.push(id);
    }

    // New instances start critical; wait (at most 10 s) for both checks to pass.
    let started = Instant::now();
    let healthy = Query::new(Visibility::Platform).service(service.clone());
    while hub.discover(admin, &healthy).await?.len() < 2 {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(CoreError::Unavailable {
                message: "the quickstart's instances did not pass their health checks within 10 s"
                    .into(),
                source: None,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited_ms = started.elapsed().as_millis();

    // Call the service ten times through the balancer; each call's outcome is recorded.
    let client = reqwest::Client::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let calls = 10;
    for _ in 0..calls {
        let pick = hub.pick(admin, &service, PickOptions::new()).await?;
        let url = pick.instance().spec.endpoint.join("echo")?;
        let id = pick.instance().spec.id.to_string();
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => pick.success(),
            _ => pick.failure(ErrorKind::Unavailable),
        }
        *counts.entry(id).or_default() += 1;
    }
    let stats = hub.stats(&service, None, Duration::from_secs(60))?;
    let metrics = hub.metrics_text()?;
    hub.shutdown().await;
    for s in servers {
        s.abort();
    }
    Ok(ServicesRun {
        service,
        instances,
        replaced: stale.len(),
        waited_ms,
        calls,
        counts: counts.into_iter().collect(),
        p95_ms: stats.p95.map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        error_rate: stats.error_rate,
        metrics,
    })
}
