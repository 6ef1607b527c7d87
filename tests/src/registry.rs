//! The [`RegistryStore`] conformance suite. Every case runs unchanged against every
//! registry backend (memory, SQLite in memory, SQLite file, PostgreSQL); see
//! `tests/registry.rs`. The [`Registry`] facade's tenancy rules are checked over each
//! backend too.

use crate::assert_kind;
use crate::support::{Backend, TestDb, epoch};
use ate_core::{Clock, Db, ErrorKind, ManualClock, Principal, TenantId};
use ate_orchestrate::registry::{
    DeregisterReason, Environment, HealthStatus, Instance, InstanceId, InstanceKey, InstanceSpec,
    MAX_METADATA_ENTRIES, MAX_METADATA_VALUE_LEN, MAX_NAME_LEN, MAX_STATUS_OUTPUT_LEN, MAX_TAGS,
    MAX_WEIGHT, MemoryRegistry, Query, REGISTRY_READ, REGISTRY_WRITE, Registry, RegistryEvent,
    RegistryStore, RegistryWatch, Scope, ServiceName, SqlRegistry, Visibility,
};
use chrono::TimeDelta;
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use crate::registry_traffic::{
    drain_hides_the_instance_once, facade_guards_traffic,
    maintenance_takes_an_instance_out_and_back, policies_round_trip,
};

/// How often SQL watches poll in these tests.
pub const TEST_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The longest a case waits for a watch event before failing (a bound, not a timing
/// assertion: events normally arrive within one poll interval).
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// A registry backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryBackend {
    /// [`MemoryRegistry`].
    Memory,
    /// [`SqlRegistry`] on a metadata backend.
    Sql(Backend),
}

/// Everything a registry case needs.
#[derive(Debug, Clone)]
pub struct RegistryEnv {
    /// Which backend this is.
    pub backend: RegistryBackend,
    /// The store under test.
    pub store: Arc<dyn RegistryStore>,
    /// A second handle on the same registry: for a SQLite file and PostgreSQL, a separate
    /// database connection pool (what another host process would open); for in-memory
    /// SQLite, a second store over the same pool; for memory, a clone.
    pub other: Arc<dyn RegistryStore>,
    /// The clock both handles use.
    pub clock: Arc<ManualClock>,
    /// The database, for SQL backends.
    pub db: Option<Db>,
}

impl RegistryEnv {
    /// The clock's current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// A fresh store whose watchers fall behind after `window` events (memory: a new empty
    /// registry with that watch capacity; SQL: a handle on the same database keeping only
    /// `window` changes in its log).
    pub async fn store_with_window(&self, window: usize) -> Arc<dyn RegistryStore> {
        match &self.db {
            None => Arc::new(
                MemoryRegistry::new()
                    .with_watch_capacity(window)
                    .with_clock(self.clock.clone()),
            ),
            Some(db) => Arc::new(
                SqlRegistry::open(db.clone())
                    .await
                    .unwrap()
                    .with_clock(self.clock.clone())
                    .with_poll_interval(TEST_POLL_INTERVAL)
                    .with_change_log_capacity(window as u64),
            ),
        }
    }
}

async fn sql_store(db: Db, clock: Arc<ManualClock>) -> Arc<dyn RegistryStore> {
    Arc::new(
        SqlRegistry::open(db)
            .await
            .unwrap()
            .with_clock(clock)
            .with_poll_interval(TEST_POLL_INTERVAL),
    )
}

/// Runs one registry case against `backend`, then cleans up. PostgreSQL is skipped (or
/// fails under `CI=true`) exactly as in [`crate::support`].
pub async fn run<F, Fut>(backend: RegistryBackend, case: F)
where
    F: FnOnce(RegistryEnv) -> Fut,
    Fut: Future<Output = ()>,
{
    let clock = Arc::new(ManualClock::new(epoch()));
    match backend {
        RegistryBackend::Memory => {
            let store = MemoryRegistry::new().with_clock(clock.clone());
            let env = RegistryEnv {
                backend,
                store: Arc::new(store.clone()),
                other: Arc::new(store),
                clock,
                db: None,
            };
            case(env).await;
        }
        RegistryBackend::Sql(kind) => {
            let Some(test_db) = TestDb::open(kind).await else {
                return;
            };
            let store = sql_store(test_db.db.clone(), clock.clone()).await;
            let other_db = match kind {
                Backend::SqliteMemory => None,
                Backend::SqliteFile | Backend::Postgres => {
                    Some(Db::open(&test_db.url).await.unwrap())
                }
            };
            let other = sql_store(
                other_db.clone().unwrap_or_else(|| test_db.db.clone()),
                clock.clone(),
            )
            .await;
            let env = RegistryEnv {
                backend,
                store,
                other,
                clock,
                db: Some(test_db.db.clone()),
            };
            case(env).await;
            if let Some(db) = other_db {
                db.close().await;
            }
            test_db.cleanup().await;
        }
    }
}

pub(crate) fn svc(name: &str) -> ServiceName {
    ServiceName::new(name).unwrap()
}

pub(crate) fn iid(id: &str) -> InstanceId {
    InstanceId::new(id).unwrap()
}

pub(crate) fn key(scope: Scope, service: &str, id: &str) -> InstanceKey {
    InstanceKey::new(scope, svc(service), iid(id))
}

pub(crate) fn spec(scope: Scope, service: &str, id: &str) -> InstanceSpec {
    InstanceSpec::new(scope, svc(service), iid(id), "http://127.0.0.1:8080").unwrap()
}

pub(crate) async fn register_with(
    store: &dyn RegistryStore,
    spec: InstanceSpec,
    status: HealthStatus,
) -> Instance {
    let i = store.register(spec).await.unwrap();
    if status == HealthStatus::Critical {
        return i;
    }
    store
        .set_status(&i.key(), status, "set by test")
        .await
        .unwrap()
}

fn ids(instances: &[Instance]) -> Vec<String> {
    instances
        .iter()
        .map(|i| i.spec.id.as_str().to_owned())
        .collect()
}

async fn everything(store: &dyn RegistryStore) -> Vec<Instance> {
    store
        .discover(&Query::new(Visibility::All).include_unhealthy(true))
        .await
        .unwrap()
}

pub(crate) async fn next_event(watch: &mut RegistryWatch) -> RegistryEvent {
    tokio::time::timeout(EVENT_WAIT, watch.next())
        .await
        .unwrap_or_else(|_| panic!("no registry event within {EVENT_WAIT:?}"))
        .expect("a registry watch never ends while its store lives")
}

/// Registering returns every field as given plus the observed state, and `get` (through
/// either handle) reads back exactly the same instance.
pub async fn register_get_round_trip(env: RegistryEnv) {
    let tenant = TenantId::new();
    let spec = InstanceSpec::new(
        Scope::Tenant(tenant),
        svc("billing.v2"),
        iid("billing-1:8443"),
        "https://billing.internal:8443/api?x=1",
    )
    .unwrap()
    .tag("primary")
    .tag("eu-west")
    .capability("pdf-render")
    .capability("gpu")
    .meta("version", "1.2.3")
    .meta("owner", "team billing \u{2014} \"quoted\" \\ and \u{0} nul")
    .weight(MAX_WEIGHT)
    .environment(Environment::Staging);

    let created = env.store.register(spec.clone()).await.unwrap();
    assert_eq!(created.spec, spec);
    assert_eq!(created.status, HealthStatus::Critical);
    assert_eq!(created.status_output, "");
    assert_eq!(created.registered_at, env.now());
    assert_eq!(created.last_heartbeat, env.now());
    assert_eq!(created.status_since, env.now());

    let got = env.store.get(&spec.key()).await.unwrap();
    assert_eq!(got, created);
    let via_other = env.other.get(&spec.key()).await.unwrap();
    assert_eq!(via_other, created);

    // Default fields survive too.
    let plain = env
        .store
        .register(spec_in_platform("plain", "p-1"))
        .await
        .unwrap();
    assert_eq!(plain.spec.weight, 1);
    assert_eq!(plain.spec.environment, Environment::Production);
    let got = env
        .store
        .get(&key(Scope::Platform, "plain", "p-1"))
        .await
        .unwrap();
    assert_eq!(got, plain);
}

fn spec_in_platform(service: &str, id: &str) -> InstanceSpec {
    spec(Scope::Platform, service, id)
}

/// New instances start critical and stay out of discovery until passing or warning,
/// unless the query includes unhealthy instances; turning critical removes them again.
pub async fn new_instances_start_critical(env: RegistryEnv) {
    let s = &*env.store;
    let created = s.register(spec_in_platform("api", "api-1")).await.unwrap();
    assert_eq!(created.status, HealthStatus::Critical);
    let healthy = Query::new(Visibility::Platform).service(svc("api"));
    assert!(s.discover(&healthy).await.unwrap().is_empty());
    let all = healthy.clone().include_unhealthy(true);
    assert_eq!(ids(&s.discover(&all).await.unwrap()), ["api-1"]);

    for (status, visible) in [
        (HealthStatus::Passing, true),
        (HealthStatus::Warning, true),
        (HealthStatus::Critical, false),
        (HealthStatus::Passing, true),
    ] {
        s.set_status(&key(Scope::Platform, "api", "api-1"), status, "")
            .await
            .unwrap();
        let found = s.discover(&healthy).await.unwrap();
        assert_eq!(found.len(), usize::from(visible), "{status}");
        // The other handle (another process for SQL files and PostgreSQL) agrees.
        assert_eq!(
            env.other.discover(&healthy).await.unwrap().len(),
            usize::from(visible),
            "{status} via the other handle"
        );
    }
}

/// Discovery filters by name, capability, every required tag, environment and scope:
/// two tenants never see each other's instances, both see the platform's.
pub async fn discover_filters(env: RegistryEnv) {
    let s = &*env.store;
    let (a, b) = (TenantId::new(), TenantId::new());
    let pass = HealthStatus::Passing;
    let a_api = register_with(
        s,
        spec(Scope::Tenant(a), "api", "a-api")
            .tag("eu")
            .tag("primary")
            .capability("pdf"),
        pass,
    )
    .await;
    register_with(
        s,
        spec(Scope::Tenant(a), "api", "a-api-stg")
            .tag("eu")
            .environment(Environment::Staging),
        pass,
    )
    .await;
    register_with(
        s,
        spec(Scope::Tenant(b), "api", "b-api")
            .tag("eu")
            .tag("primary")
            .capability("pdf"),
        pass,
    )
    .await;
    register_with(s, spec(Scope::Tenant(b), "search", "b-search"), pass).await;
    register_with(
        s,
        spec(Scope::Platform, "api", "p-api")
            .tag("us")
            .capability("gpu"),
        HealthStatus::Warning,
    )
    .await;
    register_with(s, spec(Scope::Platform, "mail", "p-mail"), pass).await;
    // Critical: only with include_unhealthy.
    s.register(spec(Scope::Tenant(a), "api", "a-api-down").tag("eu"))
        .await
        .unwrap();

    let ta = Query::new(Visibility::Tenant(a));
    let tb = Query::new(Visibility::Tenant(b));
    // Sorted by service, then scope (platform first), then id.
    assert_eq!(
        ids(&s.discover(&ta).await.unwrap()),
        ["p-api", "a-api", "a-api-stg", "p-mail"]
    );
    assert_eq!(
        ids(&s.discover(&tb).await.unwrap()),
        ["p-api", "b-api", "p-mail", "b-search"]
    );
    assert_eq!(
        ids(&s.discover(&Query::new(Visibility::Platform)).await.unwrap()),
        ["p-api", "p-mail"]
    );
    assert_eq!(
        ids(&s
            .discover(&ta.clone().include_unhealthy(true))
            .await
            .unwrap()),
        ["p-api", "a-api", "a-api-down", "a-api-stg", "p-mail"]
    );
    assert_eq!(everything(s).await.len(), 7);

    // Name.
    assert_eq!(
        ids(&s.discover(&ta.clone().service(svc("api"))).await.unwrap()),
        ["p-api", "a-api", "a-api-stg"]
    );
    // Tenant a cannot find b's service by name: empty, as for any unknown service.
    assert!(
        s.discover(&ta.clone().service(svc("search")))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.discover(&ta.clone().service(svc("no-such-service")))
            .await
            .unwrap()
            .is_empty()
    );
    // Capability.
    assert_eq!(
        ids(&s.discover(&ta.clone().capability("pdf")).await.unwrap()),
        ["a-api"]
    );
    assert_eq!(
        ids(&s.discover(&tb.clone().capability("gpu")).await.unwrap()),
        ["p-api"]
    );
    // Tags: all must match.
    assert_eq!(
        ids(&s.discover(&ta.clone().tag("eu")).await.unwrap()),
        ["a-api", "a-api-stg"]
    );
    assert_eq!(
        ids(&s
            .discover(&ta.clone().tag("eu").tag("primary"))
            .await
            .unwrap()),
        ["a-api"]
    );
    assert!(
        s.discover(&ta.clone().tag("eu").tag("us"))
            .await
            .unwrap()
            .is_empty()
    );
    // Environment.
    assert_eq!(
        ids(&s
            .discover(&ta.clone().environment(Environment::Staging))
            .await
            .unwrap()),
        ["a-api-stg"]
    );
    assert_eq!(
        ids(&s
            .discover(&ta.clone().environment(Environment::Development))
            .await
            .unwrap()),
        Vec::<String>::new()
    );
    // Everything at once.
    let exact = ta
        .clone()
        .service(svc("api"))
        .capability("pdf")
        .tag("primary")
        .environment(Environment::Production);
    let found = s.discover(&exact).await.unwrap();
    assert_eq!(found, [s.get(&a_api.key()).await.unwrap()]);

    // Services, per visibility (critical-only services count).
    let names = |v: Vec<ServiceName>| {
        v.into_iter()
            .map(|n| n.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(s.services(&Visibility::Tenant(a)).await.unwrap()),
        ["api", "mail"]
    );
    assert_eq!(
        names(s.services(&Visibility::Tenant(b)).await.unwrap()),
        ["api", "mail", "search"]
    );
    assert_eq!(
        names(s.services(&Visibility::Platform).await.unwrap()),
        ["api", "mail"]
    );
    assert_eq!(
        names(s.services(&Visibility::All).await.unwrap()),
        ["api", "mail", "search"]
    );
}

/// A second registration of the same (scope, service, id) is `AlreadyExists` and leaves
/// the first one exactly as it was; the same id in another scope or service is distinct.
pub async fn duplicate_id_is_rejected(env: RegistryEnv) {
    let s = &*env.store;
    let tenant = TenantId::new();
    let first = register_with(
        s,
        spec(Scope::Tenant(tenant), "api", "api-1").tag("first"),
        HealthStatus::Passing,
    )
    .await;
    env.clock.advance(TimeDelta::seconds(5));
    let again = InstanceSpec::new(
        Scope::Tenant(tenant),
        svc("api"),
        iid("api-1"),
        "http://10.0.0.9:9999",
    )
    .unwrap()
    .tag("second");
    assert_kind(s.register(again.clone()).await, ErrorKind::AlreadyExists);
    assert_kind(env.other.register(again).await, ErrorKind::AlreadyExists);
    let stored = s
        .get(&key(Scope::Tenant(tenant), "api", "api-1"))
        .await
        .unwrap();
    assert_eq!(stored, first);
    assert_eq!(stored.status, HealthStatus::Passing);

    // Same id elsewhere is another instance.
    s.register(spec(Scope::Platform, "api", "api-1"))
        .await
        .unwrap();
    s.register(spec(Scope::Tenant(TenantId::new()), "api", "api-1"))
        .await
        .unwrap();
    s.register(spec(Scope::Tenant(tenant), "web", "api-1"))
        .await
        .unwrap();
    assert_eq!(everything(s).await.len(), 4);
}

/// Of many concurrent registrations of one key (through both handles), exactly one wins
/// and the stored instance is the winner's.
pub async fn concurrent_duplicate_registers(env: RegistryEnv) {
    let tenant = TenantId::new();
    let mut tasks = Vec::new();
    for n in 0..12u16 {
        let store = if n % 2 == 0 {
            env.store.clone()
        } else {
            env.other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let spec = InstanceSpec::new(
                Scope::Tenant(tenant),
                svc("api"),
                iid("api-1"),
                &format!("http://127.0.0.1:{}", 9000 + n),
            )
            .unwrap();
            store.register(spec).await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(instance) => winners.push(instance),
            Err(e) => assert_eq!(
                ate_core::Classify::kind(&e),
                ErrorKind::AlreadyExists,
                "{e}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one registration wins");
    let stored = env
        .store
        .get(&key(Scope::Tenant(tenant), "api", "api-1"))
        .await
        .unwrap();
    assert_eq!(stored, winners[0]);
    assert_eq!(everything(&*env.store).await.len(), 1);
}

/// Every kind of bad input is `InvalidInput` and writes nothing.
pub async fn invalid_input_writes_nothing(env: RegistryEnv) {
    let s = &*env.store;
    let p = Scope::Platform;
    // Endpoints rejected when the spec is built.
    for bad in [
        "not a url",
        "http://",
        "",
        "/relative/path",
        "mailto:ops@example.com",
        "http://user:secret@127.0.0.1:80",
        "http://user@127.0.0.1:80",
    ] {
        let err = InstanceSpec::new(p, svc("api"), iid("api-1"), bad).unwrap_err();
        assert_eq!(
            ate_core::Classify::kind(&err),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    // Names rejected when built.
    let long = "x".repeat(MAX_NAME_LEN + 1);
    for bad in [
        "",
        "has space",
        "-leading",
        "ünïcode",
        "a/b",
        "a\nb",
        long.as_str(),
    ] {
        assert_kind(ServiceName::new(bad), ErrorKind::InvalidInput);
        assert_kind(InstanceId::new(bad), ErrorKind::InvalidInput);
    }
    assert!(ServiceName::new("x".repeat(MAX_NAME_LEN)).is_ok());

    // Specs whose public fields were set to bad values: the store validates.
    let base = spec(p, "api", "api-1");
    let mut with_credentials = base.clone();
    with_credentials.endpoint.set_username("admin").unwrap();
    with_credentials
        .endpoint
        .set_password(Some("secret"))
        .unwrap();
    let mut too_many_meta = base.clone();
    for n in 0..=MAX_METADATA_ENTRIES {
        too_many_meta = too_many_meta.meta(format!("k{n}"), "v");
    }
    let mut too_many_tags = base.clone();
    for n in 0..=MAX_TAGS {
        too_many_tags = too_many_tags.tag(format!("t{n}"));
    }
    let bad_specs = [
        ("weight 0", base.clone().weight(0)),
        ("weight too high", base.clone().weight(MAX_WEIGHT + 1)),
        ("weight max u32", base.clone().weight(u32::MAX)),
        ("credentials", with_credentials),
        ("empty tag", base.clone().tag("")),
        ("tag with space", base.clone().tag("eu west")),
        ("oversized tag", base.clone().tag(long.clone())),
        ("odd capability", base.clone().capability("gpu!")),
        ("empty capability", base.clone().capability("")),
        ("bad metadata key", base.clone().meta("a key", "v")),
        (
            "oversized metadata value",
            base.clone()
                .meta("k", "v".repeat(MAX_METADATA_VALUE_LEN + 1)),
        ),
        ("too many metadata entries", too_many_meta),
        ("too many tags", too_many_tags),
    ];
    for (what, bad) in bad_specs {
        assert_kind(s.register(bad.clone()).await, ErrorKind::InvalidInput);
        assert_kind(env.other.register(bad).await, ErrorKind::InvalidInput);
        assert!(everything(s).await.is_empty(), "{what} wrote something");
    }
    assert!(s.services(&Visibility::All).await.unwrap().is_empty());

    // Bad query filters.
    assert_kind(
        s.discover(&Query::new(Visibility::Platform).tag("bad tag"))
            .await,
        ErrorKind::InvalidInput,
    );
    assert_kind(
        s.discover(&Query::new(Visibility::Platform).capability(""))
            .await,
        ErrorKind::InvalidInput,
    );

    // The boundaries themselves are fine.
    s.register(
        base.clone()
            .weight(MAX_WEIGHT)
            .meta("k", "v".repeat(MAX_METADATA_VALUE_LEN)),
    )
    .await
    .unwrap();
    assert_eq!(everything(s).await.len(), 1);
}

/// Operations on an instance that does not exist are `NotFound` and create nothing.
pub async fn unknown_instance_is_not_found(env: RegistryEnv) {
    let s = &*env.store;
    let ghost = key(Scope::Tenant(TenantId::new()), "ghost", "g-1");
    let in_platform = key(Scope::Platform, "ghost", "g-1");
    assert_kind(s.deregister(&ghost).await, ErrorKind::NotFound);
    assert_kind(s.heartbeat(&ghost).await, ErrorKind::NotFound);
    assert_kind(
        s.set_status(&ghost, HealthStatus::Passing, "ok").await,
        ErrorKind::NotFound,
    );
    assert_kind(s.get(&ghost).await, ErrorKind::NotFound);
    assert!(everything(s).await.is_empty());

    // Registered in another scope is still unknown here; deregistered twice is NotFound.
    s.register(spec(Scope::Platform, "ghost", "g-1"))
        .await
        .unwrap();
    assert_kind(s.get(&ghost).await, ErrorKind::NotFound);
    let removed = s.deregister(&in_platform).await.unwrap();
    assert_eq!(removed.spec.scope, Scope::Platform);
    assert_kind(s.deregister(&in_platform).await, ErrorKind::NotFound);
    assert_kind(s.heartbeat(&in_platform).await, ErrorKind::NotFound);
    assert!(everything(s).await.is_empty());
}

/// A heartbeat moves `last_heartbeat` to now and nothing else.
pub async fn heartbeat_updates_time(env: RegistryEnv) {
    let s = &*env.store;
    let t0 = env.now();
    let created = register_with(s, spec_in_platform("api", "api-1"), HealthStatus::Passing).await;
    env.clock.advance(TimeDelta::seconds(7));
    let beat = s
        .heartbeat(&key(Scope::Platform, "api", "api-1"))
        .await
        .unwrap();
    assert_eq!(beat.last_heartbeat, t0 + TimeDelta::seconds(7));
    assert_eq!(beat.registered_at, t0);
    assert_eq!(beat.status, HealthStatus::Passing);
    assert_eq!(beat.status_since, created.status_since);
    assert_eq!(beat.status_output, created.status_output);
    env.clock.advance(TimeDelta::seconds(3));
    env.other
        .heartbeat(&key(Scope::Platform, "api", "api-1"))
        .await
        .unwrap();
    let got = s.get(&key(Scope::Platform, "api", "api-1")).await.unwrap();
    assert_eq!(got.last_heartbeat, t0 + TimeDelta::seconds(10));
}

/// `status_since` moves only when the status changes; output is always replaced, without
/// NUL characters and cut to the documented limit.
pub async fn status_transitions(env: RegistryEnv) {
    let s = &*env.store;
    let api1 = key(Scope::Platform, "api", "api-1");
    let t0 = env.now();
    s.register(spec_in_platform("api", "api-1")).await.unwrap();

    env.clock.advance(TimeDelta::seconds(1));
    let same = s
        .set_status(&api1, HealthStatus::Critical, "connection refused")
        .await
        .unwrap();
    assert_eq!(same.status_since, t0, "critical again is no change");
    assert_eq!(same.status_output, "connection refused");

    env.clock.advance(TimeDelta::seconds(1));
    let t2 = env.now();
    let up = s
        .set_status(&api1, HealthStatus::Passing, "HTTP 200 OK")
        .await
        .unwrap();
    assert_eq!((up.status, up.status_since), (HealthStatus::Passing, t2));

    env.clock.advance(TimeDelta::seconds(1));
    let still = s
        .set_status(&api1, HealthStatus::Passing, "HTTP 204")
        .await
        .unwrap();
    assert_eq!(still.status_since, t2);
    assert_eq!(still.status_output, "HTTP 204");

    env.clock.advance(TimeDelta::seconds(1));
    let t4 = env.now();
    let warn = env
        .other
        .set_status(&api1, HealthStatus::Warning, "HTTP 429")
        .await
        .unwrap();
    assert_eq!(
        (warn.status, warn.status_since),
        (HealthStatus::Warning, t4)
    );
    assert_eq!(s.get(&api1).await.unwrap(), warn);

    let noisy = format!("a\0b{}", "é".repeat(MAX_STATUS_OUTPUT_LEN));
    let cut = s
        .set_status(&api1, HealthStatus::Warning, &noisy)
        .await
        .unwrap();
    assert!(cut.status_output.starts_with("abé"));
    assert!(!cut.status_output.contains('\0'));
    assert!(cut.status_output.len() <= MAX_STATUS_OUTPUT_LEN);
    assert!(cut.status_output.len() >= MAX_STATUS_OUTPUT_LEN - 1);
    assert_eq!(s.get(&api1).await.unwrap(), cut);
}

/// `deregister_critical` removes exactly the instances that have been critical for at
/// least the given time, in every scope, and only once.
pub async fn deregister_critical_reaps(env: RegistryEnv) {
    let s = &*env.store;
    let limit = Duration::from_secs(60);
    let tenant = TenantId::new();
    // t0: `old` (critical), `healthy` (passing), `tenant-old` (critical, tenant scope).
    s.register(spec_in_platform("api", "old")).await.unwrap();
    register_with(s, spec_in_platform("api", "healthy"), HealthStatus::Passing).await;
    s.register(spec(Scope::Tenant(tenant), "api", "tenant-old"))
        .await
        .unwrap();
    env.clock.advance(TimeDelta::seconds(30));
    // t0+30: `young` registers (critical).
    s.register(spec_in_platform("api", "young")).await.unwrap();
    env.clock.advance(TimeDelta::seconds(29));
    // t0+59: nothing is critical for 60 s yet.
    assert!(s.deregister_critical(limit).await.unwrap().is_empty());
    env.clock.advance(TimeDelta::seconds(1));
    // t0+60: `old` and `tenant-old` have been critical for exactly 60 s.
    let reaped = s.deregister_critical(limit).await.unwrap();
    assert_eq!(ids(&reaped), ["old", "tenant-old"]);
    assert!(reaped.iter().all(|i| i.status == HealthStatus::Critical));
    // Reaped once: a second run (from the other handle) finds nothing.
    assert!(
        env.other
            .deregister_critical(limit)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ids(&everything(s).await), ["healthy", "young"]);

    // `healthy` turns critical at t0+60; `young` recovers before its time.
    s.set_status(
        &key(Scope::Platform, "api", "healthy"),
        HealthStatus::Critical,
        "down",
    )
    .await
    .unwrap();
    env.clock.advance(TimeDelta::seconds(20));
    s.set_status(
        &key(Scope::Platform, "api", "young"),
        HealthStatus::Passing,
        "up",
    )
    .await
    .unwrap();
    env.clock.advance(TimeDelta::seconds(39));
    // t0+119: `healthy` critical for 59 s.
    assert!(s.deregister_critical(limit).await.unwrap().is_empty());
    env.clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        ids(&s.deregister_critical(limit).await.unwrap()),
        ["healthy"]
    );
    assert_eq!(ids(&everything(s).await), ["young"]);
    // An absurdly long limit reaps nothing (and does not fail).
    s.set_status(
        &key(Scope::Platform, "api", "young"),
        HealthStatus::Critical,
        "",
    )
    .await
    .unwrap();
    assert!(
        s.deregister_critical(Duration::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.deregister_critical(Duration::ZERO).await.unwrap().len() == 1);
}

fn expect_registered(event: RegistryEvent, id: &str) -> Instance {
    match event {
        RegistryEvent::Registered { instance } => {
            assert_eq!(instance.spec.id.as_str(), id);
            assert_eq!(instance.status, HealthStatus::Critical);
            instance
        }
        other => panic!("expected Registered({id}), got {other:?}"),
    }
}

fn expect_status(event: RegistryEvent, id: &str, from: HealthStatus, to: HealthStatus) {
    match event {
        RegistryEvent::StatusChanged {
            instance,
            from: f,
            to: t,
        } => {
            assert_eq!(instance.spec.id.as_str(), id);
            assert_eq!((f, t), (from, to));
            assert_eq!(instance.status, to);
        }
        other => panic!("expected StatusChanged({id}: {from} -> {to}), got {other:?}"),
    }
}

fn expect_deregistered(event: RegistryEvent, id: &str, reason: DeregisterReason) {
    match event {
        RegistryEvent::Deregistered {
            instance,
            reason: r,
        } => {
            assert_eq!(instance.spec.id.as_str(), id);
            assert_eq!(r, reason);
        }
        other => panic!("expected Deregistered({id}, {reason:?}), got {other:?}"),
    }
}

/// A watch delivers Registered, StatusChanged and Deregistered in order, on the handle
/// that made the changes and on the other handle (another process for a SQLite file and
/// PostgreSQL); heartbeats and same-status updates are not events.
pub async fn watch_delivers_changes_in_order(env: RegistryEnv) {
    let mut local = env.store.watch().await.unwrap();
    let mut remote = env.other.watch().await.unwrap();
    let s = &*env.store;
    let api1 = key(Scope::Platform, "api", "api-1");

    let created = s.register(spec_in_platform("api", "api-1")).await.unwrap();
    s.set_status(&api1, HealthStatus::Passing, "ok")
        .await
        .unwrap();
    s.heartbeat(&api1).await.unwrap();
    s.set_status(&api1, HealthStatus::Passing, "still ok")
        .await
        .unwrap();
    s.set_status(&api1, HealthStatus::Critical, "down")
        .await
        .unwrap();
    env.clock.advance(TimeDelta::minutes(5));
    s.register(spec_in_platform("api", "api-2")).await.unwrap();
    s.deregister(&api1).await.unwrap();
    env.clock.advance(TimeDelta::minutes(5));
    env.other
        .deregister_critical(Duration::from_secs(60))
        .await
        .unwrap();

    for (name, watch) in [("local", &mut local), ("remote", &mut remote)] {
        let first = expect_registered(next_event(watch).await, "api-1");
        assert_eq!(first, created, "{name}");
        expect_status(
            next_event(watch).await,
            "api-1",
            HealthStatus::Critical,
            HealthStatus::Passing,
        );
        expect_status(
            next_event(watch).await,
            "api-1",
            HealthStatus::Passing,
            HealthStatus::Critical,
        );
        expect_registered(next_event(watch).await, "api-2");
        expect_deregistered(
            next_event(watch).await,
            "api-1",
            DeregisterReason::Requested,
        );
        expect_deregistered(
            next_event(watch).await,
            "api-2",
            DeregisterReason::CriticalTooLong,
        );
    }

    // Changes made through the other handle reach this one's watch too.
    env.other
        .register(spec_in_platform("api", "api-3"))
        .await
        .unwrap();
    expect_registered(next_event(&mut local).await, "api-3");
    expect_registered(next_event(&mut remote).await, "api-3");

    // A watch opened later sees only later changes.
    let mut late = env.store.watch().await.unwrap();
    s.set_status(
        &key(Scope::Platform, "api", "api-3"),
        HealthStatus::Warning,
        "slow",
    )
    .await
    .unwrap();
    expect_status(
        next_event(&mut late).await,
        "api-3",
        HealthStatus::Critical,
        HealthStatus::Warning,
    );
}

/// A watcher that falls further behind than the store keeps gets `Lagged` with the number
/// of lost events, then the events still available, in order.
pub async fn slow_watcher_is_told_it_lagged(env: RegistryEnv) {
    let store = env.store_with_window(2).await;
    let mut watch = store.watch().await.unwrap();
    for n in 1..=5 {
        store
            .register(spec_in_platform("api", &format!("api-{n}")))
            .await
            .unwrap();
    }
    match next_event(&mut watch).await {
        RegistryEvent::Lagged { missed } => assert_eq!(missed, 3),
        other => panic!("expected Lagged, got {other:?}"),
    }
    expect_registered(next_event(&mut watch).await, "api-4");
    expect_registered(next_event(&mut watch).await, "api-5");
}

/// The [`Registry`] facade: tenants write only their own scope, the platform scope needs a
/// platform administrator, and reads never reveal another tenant's instances.
pub async fn facade_enforces_tenancy(env: RegistryEnv) {
    let registry = Registry::new(env.store.clone());
    let (a, b) = (TenantId::new(), TenantId::new());
    let admin = Principal::platform_admin("system:ops").unwrap();
    let a_writer = crate::member(a, &[REGISTRY_WRITE]);
    let a_reader = crate::member(a, &[REGISTRY_READ]);
    let a_nobody = crate::member(a, &[]);
    let b_writer = crate::member(b, &[REGISTRY_WRITE]);
    let (ta, tb, p) = (Scope::Tenant(a), Scope::Tenant(b), Scope::Platform);
    let mut a_watch = registry
        .watch(&a_reader, Visibility::Tenant(a))
        .await
        .unwrap();

    // Writes.
    registry
        .register(&a_writer, spec(ta, "api", "a-1"))
        .await
        .unwrap();
    assert_kind(
        registry
            .register(&a_writer, spec(tb, "api", "sneaky"))
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        registry.register(&a_writer, spec(p, "api", "sneaky")).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        registry.register(&a_reader, spec(ta, "api", "ro")).await,
        ErrorKind::PermissionDenied,
    );
    registry
        .register(&b_writer, spec(tb, "api", "b-1"))
        .await
        .unwrap();
    registry
        .register(&b_writer, spec(tb, "secret", "b-2"))
        .await
        .unwrap();
    registry
        .register(&admin, spec(p, "api", "p-1"))
        .await
        .unwrap();
    assert_eq!(
        ids(&everything(&*env.store).await),
        ["p-1", "a-1", "b-1", "b-2"]
    );
    for (scope, id) in [(ta, "a-1"), (tb, "b-1"), (tb, "b-2"), (p, "p-1")] {
        let service = if id == "b-2" { "secret" } else { "api" };
        registry
            .set_status(&admin, &key(scope, service, id), HealthStatus::Passing, "")
            .await
            .unwrap();
    }
    assert_kind(
        registry
            .set_status(
                &a_writer,
                &key(tb, "api", "b-1"),
                HealthStatus::Critical,
                "",
            )
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        registry.heartbeat(&a_writer, &key(p, "api", "p-1")).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        registry.deregister(&a_writer, &key(tb, "api", "b-1")).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        registry.deregister(&a_writer, &key(p, "api", "p-1")).await,
        ErrorKind::PermissionDenied,
    );
    registry
        .heartbeat(&a_writer, &key(ta, "api", "a-1"))
        .await
        .unwrap();
    // Nothing of b's or the platform's changed.
    assert_eq!(
        ids(&everything(&*env.store).await),
        ["p-1", "a-1", "b-1", "b-2"]
    );
    let b1 = env.store.get(&key(tb, "api", "b-1")).await.unwrap();
    assert_eq!(b1.status, HealthStatus::Passing);

    // Reads.
    for reader in [&a_reader, &a_writer] {
        let found = registry
            .discover(reader, &Query::new(Visibility::Tenant(a)))
            .await
            .unwrap();
        assert_eq!(ids(&found), ["p-1", "a-1"]);
        let platform = registry
            .discover(reader, &Query::new(Visibility::Platform))
            .await
            .unwrap();
        assert_eq!(ids(&platform), ["p-1"]);
        for v in [Visibility::Tenant(b), Visibility::All] {
            assert_kind(
                registry.discover(reader, &Query::new(v)).await,
                ErrorKind::PermissionDenied,
            );
            assert_kind(
                registry.services(reader, &v).await,
                ErrorKind::PermissionDenied,
            );
        }
        // Another tenant's instance reads exactly like a missing one.
        assert_kind(
            registry.get(reader, &key(tb, "api", "b-1")).await,
            ErrorKind::NotFound,
        );
        assert_kind(
            registry
                .get(reader, &key(tb, "api", "does-not-exist"))
                .await,
            ErrorKind::NotFound,
        );
        registry.get(reader, &key(p, "api", "p-1")).await.unwrap();
        registry.get(reader, &key(ta, "api", "a-1")).await.unwrap();
        let services = registry
            .services(reader, &Visibility::Tenant(a))
            .await
            .unwrap();
        assert_eq!(services, [svc("api")], "b's `secret` service stays hidden");
    }
    assert_kind(
        registry.get(&a_nobody, &key(ta, "api", "a-1")).await,
        ErrorKind::PermissionDenied,
    );
    assert_kind(
        registry
            .discover(&a_nobody, &Query::new(Visibility::Tenant(a)))
            .await,
        ErrorKind::PermissionDenied,
    );
    assert_eq!(
        ids(&registry
            .discover(&admin, &Query::new(Visibility::All))
            .await
            .unwrap()),
        ["p-1", "a-1", "b-1", "b-2"]
    );

    // Reaping spans every scope: platform administrators only.
    assert_kind(
        registry
            .deregister_critical(&a_writer, Duration::ZERO)
            .await,
        ErrorKind::PermissionDenied,
    );
    assert!(
        registry
            .deregister_critical(&admin, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );

    // a's watch saw its own and the platform's changes, none of b's.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        if let Some(i) = next_event(&mut a_watch).await.instance() {
            assert_ne!(i.spec.scope, tb, "a's watch leaked b's instance {i:?}");
            seen.push(i.spec.id.as_str().to_owned());
        }
    }
    assert_eq!(seen, ["a-1", "p-1", "a-1", "p-1"]);
    assert_kind(
        registry
            .watch(&a_reader, Visibility::Tenant(b))
            .await
            .map(|_| ()),
        ErrorKind::PermissionDenied,
    );

    // The writer deregisters its own instance.
    registry
        .deregister(&a_writer, &key(ta, "api", "a-1"))
        .await
        .unwrap();
    assert_eq!(ids(&everything(&*env.store).await), ["p-1", "b-1", "b-2"]);
}
