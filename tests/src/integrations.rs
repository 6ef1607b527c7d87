//! Integration endpoints on every metadata backend: credentials sealed under the tenant's
//! keys (the storage keyring) and never shown; calls with each auth method checked by a real
//! HTTP server on loopback; probes; metrics; typed errors. `tests/conformance.rs` runs it.

use crate::support::Env;
use crate::{assert_kind, member};
use ate_core::audit::AuditQuery;
use ate_core::keys::{LocalKeyProvider, SecretBytes, SecretKey};
use ate_core::{ErrorKind, NewTenant, with_pool};
use ate_orchestrate::integrations::{
    CallError, CallRequest, Egress, EndpointAuth, EndpointSpec, INTEGRATIONS_CALL,
    INTEGRATIONS_READ, IntegrationClient, SqlIntegrations,
};
use ate_storage::keyring::{KEY_DESTROY, TenantKeyring};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the loopback server saw: per request, its path, headers and body.
#[derive(Debug, Default)]
pub struct Seen {
    /// Path, headers and body of each request.
    pub requests: Vec<(String, HeaderMap, Vec<u8>)>,
    /// Requests to the OAuth 2.0 token endpoint.
    pub token_requests: usize,
}

/// What the server saw, shared with the test.
pub type Shared = Arc<Mutex<Seen>>;

async fn hook(
    State(seen): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, String) {
    seen.lock()
        .unwrap()
        .requests
        .push(("/hook".into(), headers, body.to_vec()));
    let mut out = HeaderMap::new();
    out.insert("content-type", "application/json".parse().unwrap());
    (StatusCode::OK, out, json!({"ok": true}).to_string())
}

async fn token(
    State(seen): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ate-client:client%2Fsecret")
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str())
        || !body.contains("grant_type=client_credentials")
        || !body.contains("scope=write+read")
    {
        return (StatusCode::UNAUTHORIZED, "{}".into());
    }
    let mut s = seen.lock().unwrap();
    s.token_requests += 1;
    let n = s.token_requests;
    (
        StatusCode::OK,
        json!({"access_token": format!("tok-{n}"), "expires_in": 3600}).to_string(),
    )
}

/// Serves `/hook` (200, JSON), `/token` (OAuth 2.0 client credentials), `/fail500` and
/// `/fail400` on a loopback port; returns its base URL and what it saw.
pub async fn serve() -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .route("/token", post(token))
        .route(
            "/fail500",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/fail400",
            post(|| async { (StatusCode::BAD_REQUEST, "bad") }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// A loopback port nothing listens on.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

fn secret(s: &str) -> SecretBytes {
    SecretBytes::new(s.as_bytes().to_vec())
}

fn header<'a>(seen: &'a Seen, i: usize, name: &str) -> &'a str {
    seen.requests[i]
        .1
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The storage keyring the endpoints' secrets are sealed under.
async fn keyring(env: &Env) -> Arc<TenantKeyring> {
    Arc::new(
        TenantKeyring::open(
            env.db.clone(),
            Arc::new(LocalKeyProvider::new(SecretKey::from_bytes([7; 32]))),
        )
        .await
        .unwrap(),
    )
}

/// Registration, sealed secrets, every auth method on the wire, probes, metrics, errors.
pub async fn endpoints_are_sealed_called_and_probed(env: Env) {
    let (base, seen) = serve().await;
    let t = env
        .tenants
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap()
        .id;
    let other = env
        .tenants
        .create(&env.admin, NewTenant::new("globex", "Globex"))
        .await
        .unwrap()
        .id;
    let keyring = keyring(&env).await;
    let store = SqlIntegrations::open(env.db.clone(), keyring.clone())
        .await
        .unwrap()
        .with_clock(env.clock.clone());
    let client = IntegrationClient::with_egress(store.clone(), Egress::Any).unwrap();
    let hook_url = format!("{base}/hook");
    let specs = [
        EndpointSpec::new("crm", &hook_url)
            .header("X-Team", "data")
            .auth(EndpointAuth::Bearer {
                token: secret("bearer-secret-1"),
            }),
        EndpointSpec::new("erp", &hook_url).auth(EndpointAuth::Basic {
            username: "svc".into(),
            password: secret("basic-secret"),
        }),
        EndpointSpec::new("slack", &hook_url).auth(EndpointAuth::ApiKey {
            header: "X-Api-Key".into(),
            key: secret("apikey-secret"),
        }),
        EndpointSpec::new("oauth", &hook_url).auth(EndpointAuth::OAuth2ClientCredentials {
            token_url: format!("{base}/token"),
            client_id: "ate-client".into(),
            client_secret: secret("client/secret"),
            scope: Some("write read".into()),
        }),
        EndpointSpec::new("signed", &hook_url).auth(EndpointAuth::HmacSha256 {
            header: "X-Ate-Signature".into(),
            key: secret("hmac-secret"),
        }),
        EndpointSpec::new("broken", format!("{base}/fail500")),
        EndpointSpec::new("refused", format!("{base}/fail400")),
        EndpointSpec::new("down", closed_port().await).timeout(Duration::from_secs(5)),
    ];
    let reader = member(t, &[INTEGRATIONS_READ]);
    assert_kind(
        store.create(&reader, t, &specs[0]).await,
        ErrorKind::PermissionDenied,
    );
    for spec in &specs {
        store.create(&env.admin, t, spec).await.unwrap();
    }
    assert_kind(
        store.create(&env.admin, t, &specs[0]).await,
        ErrorKind::AlreadyExists,
    );
    let bad = EndpointSpec::new("bad", "ftp://nope.example");
    assert_kind(
        store.create(&env.admin, t, &bad).await,
        ErrorKind::InvalidInput,
    );
    // Reads show no secret; the database holds none in the clear.
    let crm = store.get(&reader, t, "crm").await.unwrap();
    assert_eq!(
        (crm.auth_kind.as_str(), crm.has_secret, crm.revision),
        ("bearer", true, 1)
    );
    assert_eq!(crm.headers.get("X-Team").map(String::as_str), Some("data"));
    let listed = store.list(&reader, t).await.unwrap();
    assert_eq!(listed.len(), specs.len());
    let oauth = listed.iter().find(|e| e.name.as_str() == "oauth").unwrap();
    assert_eq!(oauth.auth_params["client_id"], "ate-client");
    let shown = format!("{listed:?}");
    let secrets = [
        "bearer-secret-1",
        "basic-secret",
        "apikey-secret",
        "client/secret",
        "hmac-secret",
    ];
    for s in secrets {
        assert!(!shown.contains(s), "{s} shown");
    }
    let stored: Vec<Option<Vec<u8>>> = with_pool!(env.db, |pool| {
        sqlx::query_scalar("SELECT secret FROM integration_endpoints")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    for s in secrets {
        assert!(
            !stored
                .iter()
                .flatten()
                .any(|b| b.windows(s.len()).any(|w| w == s.as_bytes())),
            "{s} stored in the clear"
        );
    }
    let events = env
        .audit
        .query(&env.admin, AuditQuery::tenant(t).limit(1000))
        .await
        .unwrap();
    let audited = format!("{:?}", events.items);
    assert_eq!(
        events
            .items
            .iter()
            .filter(|e| e.action.as_str() == "integration_created")
            .count(),
        specs.len()
    );
    for s in secrets {
        assert!(!audited.contains(s), "{s} in the audit log");
    }
    assert_kind(
        store
            .get(&member(other, &[INTEGRATIONS_READ]), other, "crm")
            .await,
        ErrorKind::NotFound,
    );

    // Calls: each auth method as the server received it.
    let caller = member(t, &[INTEGRATIONS_CALL, INTEGRATIONS_READ]);
    assert_kind(
        client
            .call(&reader, t, "crm", &CallRequest::default())
            .await,
        ErrorKind::PermissionDenied,
    );
    let body = json!({"event": "scan.done", "files": 3});
    for name in ["crm", "erp", "slack", "oauth", "signed", "oauth"] {
        let answer = client
            .call(&caller, t, name, &CallRequest::json(body.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (answer.status, answer.body.clone()),
            (200, json!({"ok": true})),
            "{name}"
        );
    }
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.requests.len(), 6);
        assert_eq!(header(&s, 0, "authorization"), "Bearer bearer-secret-1");
        assert_eq!(header(&s, 0, "x-team"), "data");
        assert_eq!(header(&s, 0, "content-type"), "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&s.requests[0].2).unwrap(),
            body
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("svc:basic-secret");
        assert_eq!(header(&s, 1, "authorization"), format!("Basic {basic}"));
        assert_eq!(header(&s, 2, "x-api-key"), "apikey-secret");
        assert_eq!(header(&s, 3, "authorization"), "Bearer tok-1");
        assert_eq!(
            header(&s, 5, "authorization"),
            "Bearer tok-1",
            "the token is cached"
        );
        assert_eq!(s.token_requests, 1);
        // The receiver checks the signature over "<t>.<body>".
        let sig = header(&s, 4, "x-ate-signature");
        let (t_part, v1) = sig.split_once(",v1=").unwrap();
        let ts = t_part.strip_prefix("t=").unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hmac-secret").unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&s.requests[4].2);
        mac.verify_slice(&hex::decode(v1).unwrap())
            .expect("a valid signature");
    }
    // Failures, typed and classified for retry policies.
    let broken = client
        .call(&caller, t, "broken", &CallRequest::default())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&broken, CallError::Status { status: 500, .. }) && broken.retryable(),
        "{broken}"
    );
    let refused = client
        .call(&caller, t, "refused", &CallRequest::default())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(&refused, CallError::Status { status: 400, .. }) && !refused.retryable());
    let down = client
        .call(&caller, t, "down", &CallRequest::default())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&down, CallError::Transport { .. }) && down.retryable(),
        "{down}"
    );
    assert_kind(
        client
            .call(&caller, t, "nope", &CallRequest::default())
            .await,
        ErrorKind::NotFound,
    );
    // Probes: reachability, status and latency, without a body.
    let probe = client.probe(&caller, t, "crm").await.unwrap();
    assert!(
        probe.reachable && probe.status.is_some() && probe.error.is_none(),
        "{probe:?}"
    );
    let probe = client.probe(&caller, t, "down").await.unwrap();
    assert!(
        !probe.reachable && probe.status.is_none() && probe.error.is_some(),
        "{probe:?}"
    );
    assert_eq!(
        seen.lock().unwrap().requests.len(),
        6,
        "a probe triggers no POST handler"
    );
    // Metrics per endpoint.
    let oauth_stats = client.stats(&caller, t, "oauth").await.unwrap();
    assert_eq!((oauth_stats.calls, oauth_stats.errors), (2, 0));
    assert!(oauth_stats.p50.is_some() && oauth_stats.p99 >= oauth_stats.p50);
    let broken_stats = client.stats(&caller, t, "broken").await.unwrap();
    assert_eq!((broken_stats.calls, broken_stats.errors), (1, 1));
    assert_eq!(
        client.stats(&caller, t, "crm").await.unwrap().calls,
        1,
        "probes not counted"
    );
    // A new secret: sealed again, used at once; the revision grows.
    let rotated = specs[0].clone().auth(EndpointAuth::Bearer {
        token: secret("bearer-secret-2"),
    });
    assert_eq!(
        store
            .update(&env.admin, t, &rotated)
            .await
            .unwrap()
            .revision,
        2
    );
    client
        .call(&caller, t, "crm", &CallRequest::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        header(&seen.lock().unwrap(), 6, "authorization"),
        "Bearer bearer-secret-2"
    );
    assert_kind(
        store
            .update(&env.admin, t, &EndpointSpec::new("ghost", &hook_url))
            .await,
        ErrorKind::NotFound,
    );
    // Deleted: gone. The tenant's keys destroyed: its sealed credentials are unreadable.
    store.delete(&env.admin, t, "slack").await.unwrap();
    assert_kind(
        store.delete(&env.admin, t, "slack").await,
        ErrorKind::NotFound,
    );
    assert_kind(
        client
            .call(&caller, t, "slack", &CallRequest::default())
            .await,
        ErrorKind::NotFound,
    );
    keyring
        .destroy(&member(t, &[KEY_DESTROY]), t)
        .await
        .unwrap();
    assert_kind(
        client
            .call(&caller, t, "crm", &CallRequest::default())
            .await,
        ErrorKind::NotFound,
    );
}

/// The default client connects to public addresses only: an endpoint (or OAuth 2.0 token
/// URL) on loopback, by IP literal or by a name that resolves there, is refused before any
/// byte is sent, for calls and probes alike; nothing reaches the server.
pub async fn the_default_client_refuses_internal_addresses(env: Env) {
    let (base, seen) = serve().await;
    let t = env
        .tenants
        .create(&env.admin, NewTenant::new("acme", "Acme"))
        .await
        .unwrap()
        .id;
    let store = SqlIntegrations::open(env.db.clone(), keyring(&env).await)
        .await
        .unwrap();
    let port = base.rsplit(':').next().unwrap().to_owned();
    let specs = [
        EndpointSpec::new("literal", format!("{base}/hook")),
        EndpointSpec::new("by-name", format!("http://localhost:{port}/hook")),
        EndpointSpec::new("metadata", "http://169.254.169.254/latest/meta-data/"),
        EndpointSpec::new("mapped", format!("http://[::ffff:127.0.0.1]:{port}/hook")),
        EndpointSpec::new("oauth", "https://8.8.8.8/hook").auth(
            EndpointAuth::OAuth2ClientCredentials {
                token_url: format!("{base}/token"),
                client_id: "ate-client".into(),
                client_secret: secret("client/secret"),
                scope: None,
            },
        ),
    ];
    for spec in &specs {
        store.create(&env.admin, t, spec).await.unwrap();
    }
    let client = IntegrationClient::new(store.clone()).unwrap();
    for spec in &specs {
        let out = client
            .call(
                &env.admin,
                t,
                &spec.name,
                &CallRequest::json(json!({"x": 1})),
            )
            .await
            .unwrap();
        match out {
            Err(CallError::Transport { reason, .. }) => assert!(
                reason.contains("not a public address"),
                "{}: {reason}",
                spec.name
            ),
            other => panic!("{}: expected a refusal, got {other:?}", spec.name),
        }
        let probe = client.probe(&env.admin, t, &spec.name).await.unwrap();
        assert!(!probe.reachable, "{}: {probe:?}", spec.name);
        assert!(
            probe
                .error
                .as_deref()
                .unwrap_or("")
                .contains("not a public address"),
            "{}: {probe:?}",
            spec.name
        );
    }
    {
        let s = seen.lock().unwrap();
        assert!(s.requests.is_empty() && s.token_requests == 0, "{s:?}");
    }
    // The same endpoint is reached when the host allows any address.
    let open = IntegrationClient::with_egress(store, Egress::Any).unwrap();
    let ok = open
        .call(
            &env.admin,
            t,
            "literal",
            &CallRequest::json(json!({"x": 1})),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
}
