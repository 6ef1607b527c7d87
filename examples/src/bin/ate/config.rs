//! The host's configuration: built-in defaults, then a TOML file, then `ATE_*` environment
//! variables (later layers win), read with figment.
//!
//! With no file and no variables the host runs on the embedded defaults: SQLite and blobs
//! under `./ate-data`, a development master key file there, listening on 127.0.0.1:8080.
//! Nested keys take a double underscore in the environment: `ATE_HTTP__MAX_BODY_BYTES`,
//! `ATE_TLS__CERT_FILE`; top-level ones a single name: `ATE_DATABASE_URL`. Variables whose
//! first segment is not a configuration key (`ATE_TEST_POSTGRES_URL`, `ATE_CONFIG`) are
//! ignored; an unknown key *inside* a known section, or in the file, is an error, so a typo
//! never silently falls back to a default.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// Top-level keys; an `ATE_*` variable whose first segment is not one of them is not ours.
const KEYS: [&str; 15] = [
    "listen",
    "data_dir",
    "database_url",
    "storage_url",
    "master_key_file",
    "log_format",
    "auth",
    "admin",
    "http",
    "tls",
    "gateway",
    "workflows",
    "integrations",
    "monitoring",
    "history",
];

/// Everything `ate serve` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Address to listen on.
    pub(crate) listen: SocketAddr,
    /// Where the embedded defaults keep their files.
    pub(crate) data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: `sqlite://<data_dir>/ate.db`.
    pub(crate) database_url: Option<String>,
    /// `fs://…`, `s3://…` or `memory://`; default: `fs://<data_dir>/blobs`.
    pub(crate) storage_url: Option<String>,
    /// The master key file; default `<data_dir>/master.key`, created (mode 0600) on first
    /// start. Development only: production keeps the master key in a KMS.
    pub(crate) master_key_file: Option<PathBuf>,
    /// `json` (one object per line) or `text`.
    pub(crate) log_format: LogFormat,
    pub(crate) auth: AuthSection,
    pub(crate) admin: AdminSection,
    pub(crate) http: HttpSection,
    pub(crate) tls: TlsSection,
    pub(crate) gateway: GatewaySection,
    pub(crate) workflows: WorkflowsSection,
    pub(crate) integrations: IntegrationsSection,
    pub(crate) monitoring: MonitoringSection,
    pub(crate) history: HistorySection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("ate-data"),
            database_url: None,
            storage_url: None,
            master_key_file: None,
            log_format: LogFormat::Json,
            auth: AuthSection::default(),
            admin: AdminSection::default(),
            http: HttpSection::default(),
            tls: TlsSection::default(),
            gateway: GatewaySection::default(),
            workflows: WorkflowsSection::default(),
            integrations: IntegrationsSection::default(),
            monitoring: MonitoringSection::default(),
            history: HistorySection::default(),
        }
    }
}

/// How access logs and messages are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Json,
    Text,
}

/// `[auth]`: token issuer and audience, open registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuthSection {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    /// Whether anyone may register an organization (`POST /api/auth/register`).
    pub(crate) open_registration: bool,
    /// Permissions each role (`user`, `admin`) carries beyond ate-auth's built-in ones.
    pub(crate) role_permissions: BTreeMap<String, Vec<String>>,
    /// Fast, weak password hashing: tests only.
    pub(crate) insecure_fast_hashing_for_tests: bool,
    /// How long an access token is valid (refresh tokens renew it).
    pub(crate) access_token_secs: u64,
    /// Clock skew allowed when checking a token's times.
    pub(crate) token_leeway_secs: u64,
    /// Logins per client address per minute (counted in the database, across hosts); 0: no
    /// limit.
    pub(crate) logins_per_client_per_min: u32,
    /// Logins per organization per minute; 0: no limit.
    pub(crate) logins_per_tenant_per_min: u32,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            issuer: "urn:ate:serve".into(),
            audience: "ate".into(),
            open_registration: true,
            role_permissions: default_role_permissions(),
            insecure_fast_hashing_for_tests: false,
            access_token_secs: 900,
            token_leeway_secs: 30,
            logins_per_client_per_min: 20,
            logins_per_tenant_per_min: 300,
        }
    }
}

/// Members work with codebases; administrators also delete them, manage storage and keys.
fn default_role_permissions() -> BTreeMap<String, Vec<String>> {
    let member = [
        "projects:read",
        "projects:write",
        "analysis:read",
        "analysis:write",
        "registry:read",
        "storage:read",
        "storage:write",
        "workflows:read",
        "workflows:run",
        "integrations:read",
        "integrations:call",
        "history:read",
    ];
    let admin = [
        "projects:delete",
        "analysis:delete",
        "registry:write",
        "storage:delete",
        "backup:export",
        "backup:restore",
        "retention:manage",
        "key:rotate",
        "integrations:write",
    ];
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    BTreeMap::from([
        ("user".to_owned(), owned(&member)),
        (
            "admin".to_owned(),
            owned(&[&member[..], &admin[..]].concat()),
        ),
    ])
}

/// `[admin]`: the platform administrator bootstrapped on first start.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AdminSection {
    /// The slug of the platform's own tenant, which holds the administrator.
    pub(crate) tenant: String,
    pub(crate) email: String,
    /// The first password; generated and printed once when absent.
    pub(crate) password: Option<Secret>,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            tenant: "operators".into(),
            email: "admin@ate.example".into(),
            password: None,
        }
    }
}

impl fmt::Debug for AdminSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminSection")
            .field("tenant", &self.tenant)
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A configured secret: zeroized on drop, never printed (serialized as `<redacted>`).
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<String>);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(Zeroizing::new(String::deserialize(d)?)))
    }
}

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[http]`: limits and cross-cutting behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpSection {
    /// Largest JSON body accepted.
    pub(crate) max_body_bytes: usize,
    /// Largest upload (codebase archive) accepted.
    pub(crate) max_upload_bytes: u64,
    /// Requests taking longer are answered `503` (uploads excepted).
    pub(crate) request_timeout_secs: u64,
    /// Requests in flight at most; beyond it new ones are shed with `503`.
    pub(crate) max_concurrency: usize,
    /// Origins allowed by CORS (none by default).
    pub(crate) cors_origins: Vec<String>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub(crate) shutdown_grace_secs: u64,
    /// Requests per second each client address may make (IPv6 per /64); 0: no limit.
    pub(crate) client_rate_per_sec: u32,
    /// Requests per second each tenant's principals may make together; 0: no limit.
    pub(crate) tenant_rate_per_sec: u32,
    /// How many requests above the rate a client or tenant may burst.
    pub(crate) rate_burst: u32,
    /// Mark the dashboard's session cookies `Secure` although this host serves plain HTTP
    /// (a proxy in front terminates TLS). With `[tls]` set they always are.
    pub(crate) secure_cookies: bool,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            max_body_bytes: 1 << 20,
            max_upload_bytes: 1 << 30,
            request_timeout_secs: 30,
            max_concurrency: 512,
            cors_origins: Vec::new(),
            shutdown_grace_secs: 30,
            client_rate_per_sec: 100,
            tenant_rate_per_sec: 500,
            rate_burst: 200,
            secure_cookies: false,
        }
    }
}

impl HttpSection {
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// `[gateway]`: how `/svc/{service}/…` calls upstream instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GatewaySection {
    /// Connecting to an instance may take this long (milliseconds).
    pub(crate) connect_timeout_ms: u64,
    /// An instance must start its response (status and headers) within this long; the body
    /// then streams without a limit.
    pub(crate) upstream_timeout_secs: u64,
    /// Attempts per request, 1 to 5: an idempotent request without a body is tried again on
    /// another pick after a connection failure or a 502/503/504, within the retry budget.
    pub(crate) max_attempts: u32,
    /// The retry budget per service: retries may add this share of the requests...
    pub(crate) retry_ratio: f64,
    /// ...plus this many per second.
    pub(crate) retry_min_per_sec: u32,
    /// Lifetime of the identity token forwarded upstream (`x-ate-identity`), 1 to 300 s.
    pub(crate) identity_token_secs: u64,
    /// Largest request body forwarded (streamed).
    pub(crate) max_body_bytes: u64,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            connect_timeout_ms: 2_000,
            upstream_timeout_secs: 30,
            max_attempts: 3,
            retry_ratio: 0.2,
            retry_min_per_sec: 10,
            identity_token_secs: 60,
            max_body_bytes: 1 << 30,
        }
    }
}

/// `[workflows]`: this host's workflow worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WorkflowsSection {
    /// Steps this host runs at once; 0: no worker here (the host serves the API only and
    /// other hosts on the same database run the steps).
    pub(crate) concurrency: usize,
    /// A claimed step's lease, renewed while it runs; a crashed host's steps are taken
    /// over once it expires.
    pub(crate) lease_secs: u64,
}

impl Default for WorkflowsSection {
    fn default() -> Self {
        WorkflowsSection {
            concurrency: 8,
            lease_secs: 30,
        }
    }
}

/// `[integrations]`: the tenants' external endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct IntegrationsSection {
    /// Let integration calls reach loopback, private, link-local (cloud metadata) and other
    /// non-public addresses. Off by default: tenants choose the URLs, and must not reach
    /// this host's network through them.
    pub(crate) allow_private_networks: bool,
}

/// `[monitoring]`: alert rules and history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MonitoringSection {
    /// How often the stored alert rules are synced into this host's engine, to pick up
    /// changes made through other hosts (changes through this host apply at once).
    pub(crate) rule_sync_secs: u64,
    /// How long alert events are kept.
    pub(crate) history_days: u32,
}

impl Default for MonitoringSection {
    fn default() -> Self {
        MonitoringSection {
            rule_sync_secs: 5,
            history_days: 30,
        }
    }
}

/// `[history]`: the coarse history the dashboard's charts and reports read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HistorySection {
    /// One point per series every this many seconds (must divide an hour).
    pub(crate) sample_secs: u64,
    /// Storage use per tenant is read every this many samples (it costs a query per tenant).
    pub(crate) storage_every: u32,
    /// Points finer than an hour are kept this long, then merged into hourly ones.
    pub(crate) fine_days: u32,
    /// Hourly points are kept this long.
    pub(crate) hourly_days: u32,
    /// Where full-resolution history lives (a Prometheus that scrapes `/metrics`); the
    /// dashboard links to it.
    pub(crate) prometheus_url: Option<String>,
}

impl Default for HistorySection {
    fn default() -> Self {
        HistorySection {
            sample_secs: 60,
            storage_every: 5,
            fine_days: 30,
            hourly_days: 400,
            prometheus_url: None,
        }
    }
}

/// `[tls]`: HTTPS when both files are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TlsSection {
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
    /// Also accept TLS 1.2 (TLS 1.3 only by default).
    pub(crate) allow_tls12: bool,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub(crate) struct ConfigError(pub(crate) String);

impl Config {
    /// Reads the layers: defaults, the file (when given; it must exist), the environment.
    pub(crate) fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let env = Env::prefixed("ATE_").split("__").filter(|key| {
            let first = key.as_str().split('.').next().unwrap_or("");
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(first))
        });
        let mut config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        // An empty variable (`ATE_ADMIN__PASSWORD=`) means "not set".
        if config
            .admin
            .password
            .as_ref()
            .is_some_and(|p| p.expose().is_empty())
        {
            config.admin.password = None;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: consistent TLS files, non-zero limits, URL schemes.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return fail("tls.cert_file and tls.key_file must be set together".into());
        }
        for file in [&self.tls.cert_file, &self.tls.key_file]
            .into_iter()
            .flatten()
        {
            if !file.is_file() {
                return fail(format!("TLS file {} does not exist", file.display()));
            }
        }
        if self.http.max_body_bytes == 0 || self.http.max_upload_bytes == 0 {
            return fail("http.max_body_bytes and http.max_upload_bytes must be above 0".into());
        }
        if self.http.max_concurrency == 0 || self.http.request_timeout_secs == 0 {
            return fail(
                "http.max_concurrency and http.request_timeout_secs must be above 0".into(),
            );
        }
        let db = self.database_url();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return fail("database_url must start with sqlite: or postgres://".into());
        }
        let blobs = self.storage_url();
        if !["fs://", "s3://", "memory://"]
            .iter()
            .any(|s| blobs.starts_with(s))
        {
            return fail("storage_url must start with fs://, s3:// or memory://".into());
        }
        let g = &self.gateway;
        if g.connect_timeout_ms == 0 || g.upstream_timeout_secs == 0 || g.max_body_bytes == 0 {
            return fail(
                "gateway.connect_timeout_ms, gateway.upstream_timeout_secs and \
                 gateway.max_body_bytes must be above 0"
                    .into(),
            );
        }
        if !(1..=3600).contains(&self.monitoring.rule_sync_secs)
            || !(1..=3650).contains(&self.monitoring.history_days)
        {
            return Err(ConfigError(format!(
                "monitoring.rule_sync_secs is {} and monitoring.history_days {}; use 1 to 3600 and 1 to 3650",
                self.monitoring.rule_sync_secs, self.monitoring.history_days
            )));
        }
        if !(30..=86_400).contains(&self.auth.access_token_secs)
            || self.auth.token_leeway_secs > 300
        {
            return fail(format!(
                "auth.access_token_secs is {} and auth.token_leeway_secs {}; use 30 to 86400 and 0 to 300",
                self.auth.access_token_secs, self.auth.token_leeway_secs
            ));
        }
        let h = &self.history;
        if h.sample_secs == 0
            || h.sample_secs > 3600
            || 3600 % h.sample_secs != 0
            || h.storage_every == 0
            || h.fine_days == 0
            || h.hourly_days < h.fine_days
        {
            return fail(format!(
                "history.sample_secs is {} (must divide 3600), history.storage_every {} (at least 1), \
                 history.fine_days {} and history.hourly_days {} (at least 1, hourly at least fine)",
                h.sample_secs, h.storage_every, h.fine_days, h.hourly_days
            ));
        }
        if let Some(url) = &h.prometheus_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return fail(format!(
                "history.prometheus_url {url:?} is not an http(s) URL"
            ));
        }
        if !(5..=3600).contains(&self.workflows.lease_secs) || self.workflows.concurrency > 1024 {
            return fail(format!(
                "workflows.lease_secs is {} and workflows.concurrency {}; use 5 to 3600 and 0 to 1024",
                self.workflows.lease_secs, self.workflows.concurrency
            ));
        }
        if !(1..=5).contains(&g.max_attempts) {
            return fail(format!(
                "gateway.max_attempts is {}; use 1 to 5",
                g.max_attempts
            ));
        }
        if !(1..=300).contains(&g.identity_token_secs) {
            return fail(format!(
                "gateway.identity_token_secs is {}; use 1 to 300",
                g.identity_token_secs
            ));
        }
        if !(0.0..=1000.0).contains(&g.retry_ratio) {
            return fail(format!(
                "gateway.retry_ratio is {}; use 0 to 1000",
                g.retry_ratio
            ));
        }
        if self.admin.tenant.trim().is_empty() || !self.admin.email.contains('@') {
            return fail("admin.tenant must be a slug and admin.email an email address".into());
        }
        Ok(())
    }

    /// The database URL, defaulting to SQLite in the data directory.
    pub(crate) fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("ate.db").display()
            )
        })
    }

    /// The blob store URL, defaulting to files in the data directory.
    pub(crate) fn storage_url(&self) -> String {
        self.storage_url
            .clone()
            .unwrap_or_else(|| format!("fs://{}", absolute(&self.data_dir.join("blobs")).display()))
    }

    /// The master key file.
    pub(crate) fn master_key_file(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// Whether the defaults need the data directory.
    pub(crate) fn uses_data_dir(&self) -> bool {
        self.database_url.is_none() || self.storage_url.is_none() || self.master_key_file.is_none()
    }

    /// What `--check-config` prints: the effective settings, secrets and URL credentials
    /// hidden.
    pub(crate) fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "listen": self.listen.to_string(),
            "database": redact_url(&self.database_url()),
            "storage": redact_url(&self.storage_url()),
            "master_key_file": self.master_key_file().display().to_string(),
            "tls": self.tls.cert_file.is_some(),
            "admin": { "tenant": self.admin.tenant, "email": self.admin.email },
            "open_registration": self.auth.open_registration,
        })
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `scheme://user:password@host/…` without the credentials.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}
