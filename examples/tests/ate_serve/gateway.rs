//! The gateway (`/svc/{service}/…`) against real upstream processes (`upstream_demo`, which
//! verifies the forwarded identity against the host's JWKS): balancing, identity, streaming
//! both ways, retries, a killed instance ejected (visible in `/metrics`), refusals, and
//! traffic policies and draining set over the API.

use crate::server::{Database, Reply, Server};
use crate::token;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One `upstream_demo` process.
pub(crate) struct Upstream {
    id: String,
    url: String,
    child: Child,
}

impl Upstream {
    pub(crate) fn start(server: &Server, id: &str, service: &str) -> Upstream {
        let mut child = Command::new(env!("CARGO_BIN_EXE_upstream_demo"))
            .args([
                "--id",
                id,
                "--service",
                service,
                "--issuer",
                "urn:ate:serve",
            ])
            .args(["--jwks", &format!("{}/api/auth/jwks", server.base)])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start upstream_demo");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read upstream banner");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("upstream_demo said {line:?}"))
            .to_owned();
        Upstream {
            id: id.to_owned(),
            url,
            child,
        }
    }

    /// SIGKILL: connections are refused from now on.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Registers `u` as an instance of `service` (no health check) and marks it passing, so
/// only the gateway's own observations (breakers, outlier ejection) take it out.
pub(crate) async fn register(s: &Server, token: &str, service: &str, u: &Upstream, extra: Value) {
    let mut body = json!({"service": service, "id": u.id, "endpoint": u.url});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    s.post("/api/services", Some(token), body)
        .await
        .expect(StatusCode::CREATED);
    s.put(
        &format!("/api/services/{service}/instances/{}/status", u.id),
        Some(token),
        json!({"status": "passing"}),
    )
    .await
    .expect(StatusCode::OK);
}

/// Calls `GET /svc/<path>` `n` times; counts answers per instance (`whoami`'s `instance`).
async fn spread(s: &Server, token: &str, path: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let r = s.get(&format!("/svc/{path}"), Some(token)).await;
        r.expect(StatusCode::OK);
        *seen.entry(r.str("/instance")).or_insert(0) += 1;
    }
    seen
}

async fn raw(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    s.http
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_balances_forwards_identity_streams_and_ejects_a_dead_instance() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (acme_id, email, password) = s.register("acme").await;
    let login = s.login("acme", &email, &password).await;
    let acme = token(&login);
    let ups: Vec<Upstream> = ["api-a", "api-b", "api-c"]
        .iter()
        .map(|id| Upstream::start(&s, id, "api"))
        .collect();
    for u in &ups {
        register(&s, &acme, "api", u, json!({})).await;
    }

    // Balanced over the three; the upstream verified a token naming the caller, and never
    // saw the caller's own token.
    let seen = spread(&s, &acme, "api/whoami", 30).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    // Every proxied answer counts, with its known length too (the server stops polling a
    // body of known length at its last byte: the pick finishes there, not at a drop).
    let health = s.get("/api/services/api/health", Some(&acme)).await;
    health.expect(StatusCode::OK);
    assert_eq!(
        (
            health.body["requests"].as_u64(),
            health.body["errors"].as_u64()
        ),
        (Some(30), Some(0)),
        "{}",
        health.text
    );
    let me = s.get("/api/auth/verify", Some(&acme)).await;
    let r = s.get("/svc/api/whoami?x=1&y=%20", Some(&acme)).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["subject"], me.body["subject"], "{}", r.text);
    assert_eq!(r.body["tenant"], acme_id.as_str());
    assert_eq!(r.body["authorization_seen"], false);
    assert_eq!(r.body["path"], "/whoami");
    assert_eq!(r.body["query"], "x=1&y=%20");
    assert_eq!(r.body["forwarded_prefix"], "/svc/api");
    assert_eq!(r.body["forwarded_for"], "127.0.0.1");
    assert!(r.body["request_id"].is_string());
    // A forged identity header is replaced, not passed on.
    let forged = raw(&s, reqwest::Method::GET, "/svc/api/whoami", &acme)
        .await
        .header("x-ate-identity", "forged.token.here")
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status(), StatusCode::OK);
    // Streaming up: a body larger than the API's 1 MiB JSON limit goes through whole.
    let big: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let echoed = raw(&s, reqwest::Method::POST, "/svc/api/echo", &acme)
        .await
        .body(big.clone())
        .send()
        .await
        .expect("echo");
    assert_eq!(echoed.status(), StatusCode::OK);
    let back = echoed.bytes().await.expect("echo body");
    assert_eq!(Sha256::digest(&back), Sha256::digest(&big));
    // Streaming down: the first chunk arrives while the upstream still holds the rest.
    let mut streamed = raw(&s, reqwest::Method::GET, "/svc/api/stream", &acme)
        .await
        .send()
        .await
        .expect("stream");
    let first = tokio::time::timeout(Duration::from_secs(20), streamed.chunk())
        .await
        .expect("the first chunk came through before the upstream finished")
        .expect("chunk")
        .expect("some bytes");
    assert_eq!(&first[..], b"first;");
    for u in &ups {
        let _ = reqwest::Client::new()
            .post(format!("{}/release", u.url))
            .send()
            .await;
    }
    let rest = streamed.bytes().await.expect("rest");
    assert_eq!(&rest[..], b"rest");

    // An upstream's error answer passes through as it is, not as a problem document.
    let r = s.get("/svc/api/status/404", Some(&acme)).await;
    r.expect(StatusCode::NOT_FOUND);
    assert!(r.text.starts_with("status 404 from api-"), "{}", r.text);

    // Kill one instance. A non-idempotent call that lands on it fails with 502 (never
    // retried); idempotent ones are retried on another instance until the dead one has
    // failed often enough to be ejected.
    let mut ups = ups;
    ups[1].kill();
    let mut refused = false;
    for _ in 0..60 {
        let r = raw(&s, reqwest::Method::POST, "/svc/api/echo", &acme)
            .await
            .body("x")
            .send()
            .await
            .expect("send");
        if r.status() == StatusCode::BAD_GATEWAY {
            Reply::read(r)
                .await
                .problem(StatusCode::BAD_GATEWAY, "unavailable");
            refused = true;
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert!(refused, "no POST reached the dead instance");
    let seen = spread(&s, &acme, "api/whoami", 60).await;
    assert!(!seen.contains_key("api-b"), "{seen:?}");
    let metrics = s.get("/metrics", None).await.text;
    let line = |needle: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle} in /metrics:\n{metrics}"))
            .to_owned()
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ate_outlier_ejected{")
                && l.contains("\"api-b\"")
                && l.ends_with(" 1")),
        "api-b is not ejected in /metrics:\n{metrics}"
    );
    // The registry view says so too, with each instance's breaker, for the tenant that owns
    // them; the service's health lists the breakers by instance id.
    let view = s.get("/api/registry", Some(&acme)).await;
    view.expect(StatusCode::OK);
    let api = view.body["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|svc| svc["service"] == "api")
        .expect("api in the view")
        .clone();
    assert_eq!(api["ejected"], 1, "{api}");
    for i in api["instances"].as_array().expect("instances") {
        assert_eq!(i["ejected"], i["id"] == "api-b", "{i}");
        assert!(i["breaker"].is_string(), "every instance was called: {i}");
    }
    let health = s.get("/api/services/api/health", Some(&acme)).await;
    let breakers = health.body["breakers"].as_object().expect("breakers");
    assert_eq!(
        breakers.keys().map(String::as_str).collect::<Vec<_>>(),
        ["api-a", "api-b", "api-c"],
        "{}",
        health.text
    );
    assert!(line("ate_gateway_upstream_failures_total{").contains("reason=\"connect\""));
    let retries = line("ate_gateway_retries_total{");
    assert!(
        retries.contains("service=\"api\"") && !retries.ends_with(" 0"),
        "GETs to the dead instance were not retried: {retries}"
    );
}

/// `GET path` over a plain TCP connection, the path sent exactly as given; returns the
/// status and the whole response text.
async fn raw_get(s: &Server, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    conn.read_to_string(&mut text).await.expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_what_it_must() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(
        dir.path(),
        &Database::Sqlite,
        &[("ATE_GATEWAY__UPSTREAM_TIMEOUT_SECS", "1")],
    );
    let (_, e1, p1) = s.register("acme").await;
    let acme = token(&s.login("acme", &e1, &p1).await);
    let (_, e2, p2) = s.register("globex").await;
    let globex = token(&s.login("globex", &e2, &p2).await);
    let up = Upstream::start(&s, "api-a", "api");
    register(&s, &acme, "api", &up, json!({})).await;
    s.get("/svc/api/whoami", Some(&acme))
        .await
        .expect(StatusCode::OK);

    // No token; another tenant (acme's instances are not in its view); unknown services.
    s.get("/svc/api/whoami", None)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    s.get("/svc/api/whoami", Some(&globex))
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let r = s.get("/svc/nothing-here/x", Some(&acme)).await;
    r.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(r.headers["retry-after"], "1");
    // Malformed: a bad service name, dot segments (plain and encoded). Sent raw: an HTTP
    // client would resolve the dot segments before sending.
    for bad in [
        "/svc/bad%20name/x",
        "/svc/api/../api/whoami",
        "/svc/api/%2e%2E/x",
        "/svc/api/./x",
    ] {
        let (status, text) = raw_get(&s, bad, &acme).await;
        assert_eq!(status, 400, "{bad}: {text}");
        assert!(
            text.contains("urn:ate:problem:invalid_input"),
            "{bad}: {text}"
        );
    }
    // An upstream slower than the timeout: 504.
    s.get("/svc/api/sleep/3000", Some(&acme))
        .await
        .problem(StatusCode::GATEWAY_TIMEOUT, "unavailable");
    // A TCP-registered instance cannot be called over HTTP.
    s.post(
        "/api/services",
        Some(&acme),
        json!({"service": "db", "id": "db-1", "endpoint": "tcp://127.0.0.1:5432"}),
    )
    .await
    .expect(StatusCode::CREATED);
    s.put(
        "/api/services/db/instances/db-1/status",
        Some(&acme),
        json!({"status": "passing"}),
    )
    .await
    .expect(StatusCode::OK);
    s.get("/svc/db/x", Some(&acme))
        .await
        .problem(StatusCode::BAD_GATEWAY, "unsupported");
    // A body over the gateway's limit.
    drop(s);
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(
        dir.path(),
        &Database::Sqlite,
        &[("ATE_GATEWAY__MAX_BODY_BYTES", "1024")],
    );
    let (_, e1, p1) = s.register("acme").await;
    let acme = token(&s.login("acme", &e1, &p1).await);
    let up = Upstream::start(&s, "api-a", "api");
    register(&s, &acme, "api", &up, json!({})).await;
    let r = s
        .http
        .post(format!("{}/svc/api/echo", s.base))
        .bearer_auth(&acme)
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("send");
    Reply::read(r)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_policies_and_drains_are_set_over_the_api() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &Database::Sqlite, &[]);
    let (_, email, password) = s.register("acme").await;
    let acme = token(&s.login("acme", &email, &password).await);
    let ups = [
        ("v1-a", "1", "blue"),
        ("v1-b", "1", "blue"),
        ("v2-a", "2", "green"),
    ]
    .map(|(id, version, tag)| {
        let u = Upstream::start(&s, id, "api");
        (u, version, tag)
    });
    for (u, version, tag) in &ups {
        register(
            &s,
            &acme,
            "api",
            u,
            json!({"metadata": {"version": version}, "tags": [tag]}),
        )
        .await;
    }
    s.get("/api/services/api/policy", Some(&acme))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");

    // Canary at 100 %: everything to version 2; then blue-green to blue.
    let canary = json!({"kind": "split", "groups": [
        {"selector": {"version": "2"}, "percent": 100},
        {"selector": {"version": "1"}, "percent": 0}]});
    let set = s.put("/api/services/api/policy", Some(&acme), canary).await;
    set.expect(StatusCode::OK);
    assert_eq!(set.body["policy"]["kind"], "split");
    assert_eq!(
        spread(&s, &acme, "api/whoami", 20)
            .await
            .keys()
            .collect::<Vec<_>>(),
        ["v2-a"]
    );
    let blue = json!({"kind": "blue_green", "active": {"tag": "blue"}});
    s.put("/api/services/api/policy", Some(&acme), blue)
        .await
        .expect(StatusCode::OK);
    let seen = spread(&s, &acme, "api/whoami", 20).await;
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["v1-a", "v1-b"],
        "{seen:?}"
    );
    let got = s.get("/api/services/api/policy", Some(&acme)).await;
    assert_eq!(
        got.body["policy"],
        json!({"kind": "blue_green", "active": {"tag": "blue"}})
    );

    // Bad policies say what is wrong and change nothing.
    for (bad, says) in [
        (
            json!({"kind": "split", "groups": [{"selector": {"tag": "a"}, "percent": 90}]}),
            "add up to 90",
        ),
        (json!({"kind": "split", "groups": []}), "has 0 groups"),
        (
            json!({"kind": "blue_green", "active": {}}),
            "neither a tag nor a version",
        ),
        (json!({"kind": "rolling"}), "unknown variant"),
        (
            json!({"kind": "blue_green", "active": {"tag": "x"}, "extra": 1}),
            "unknown field",
        ),
        (
            json!({"kind": "split", "groups": [{"selector": {"tag": "a"}, "percent": 300}]}),
            "percent",
        ),
    ] {
        let r = s.put("/api/services/api/policy", Some(&acme), bad).await;
        assert!(r.status.is_client_error(), "{}", r.text);
        assert!(r.text.contains(says), "{says:?} not in {}", r.text);
    }
    assert_eq!(
        s.get("/api/services/api/policy", Some(&acme)).await.body["policy"]["kind"],
        "blue_green"
    );

    // Cleared: all three again. Then drain v1-a: no more traffic, then gone.
    s.delete("/api/services/api/policy", Some(&acme))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(spread(&s, &acme, "api/whoami", 30).await.len(), 3);
    let d = s
        .post(
            "/api/services/api/instances/v1-a/drain?settle_secs=0",
            Some(&acme),
            json!(null),
        )
        .await;
    d.expect(StatusCode::ACCEPTED);
    assert!(d.body["draining_since"].is_string(), "{}", d.text);
    let seen = spread(&s, &acme, "api/whoami", 20).await;
    assert!(!seen.contains_key("v1-a"), "{seen:?}");
    let mut gone = false;
    for _ in 0..100 {
        let r = s
            .get("/api/services/api?include_unhealthy=true", Some(&acme))
            .await;
        if !r.text.contains("v1-a") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the drained instance was never deregistered");
    s.post(
        "/api/services/api/instances/v1-a/drain",
        Some(&acme),
        json!(null),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found");
    s.post(
        "/api/services/api/instances/v1-b/drain?timeout_secs=99999",
        Some(&acme),
        json!(null),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "invalid_input");
}

/// An HTTPS upstream on loopback under a fresh self-signed certificate for 127.0.0.1,
/// answering every request with the HTTP version and path it was asked; returns its URL,
/// its certificate's PEM and the task serving it.
async fn tls_upstream() -> (String, String, tokio::task::JoinHandle<()>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("generate certificate");
    let pem = ck.cert.pem();
    let key = rustls_pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key.into())
    .expect("TLS configuration");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = format!("{:?} {}", req.version(), req.uri().path());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            axum::body::Body::from(body),
                        ))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (format!("https://{addr}"), pem, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_called_over_verified_tls() {
    let (trusted_url, trusted_pem, trusted_task) = tls_upstream().await;
    let (forged_url, _, forged_task) = tls_upstream().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    // The platform's trust store, as the gateway sees it, holds the first certificate
    // (rustls-native-certs reads `SSL_CERT_FILE`); the second is signed by no one it trusts.
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, &trusted_pem).expect("write roots");
    let roots = roots.to_str().expect("utf-8 path").to_owned();
    let s = Server::start(dir.path(), &Database::Sqlite, &[("SSL_CERT_FILE", &roots)]);
    let (_, email, password) = s.register("acme").await;
    let acme = token(&s.login("acme", &email, &password).await);
    for (service, url) in [("secure", &trusted_url), ("forged", &forged_url)] {
        s.post(
            "/api/services",
            Some(&acme),
            json!({"service": service, "id": format!("{service}-1"), "endpoint": url}),
        )
        .await
        .expect(StatusCode::CREATED);
        s.put(
            &format!("/api/services/{service}/instances/{service}-1/status"),
            Some(&acme),
            json!({"status": "passing"}),
        )
        .await
        .expect(StatusCode::OK);
    }

    // Trusted: answered, over HTTP/2 (ALPN), the path forwarded.
    let r = raw(&s, reqwest::Method::GET, "/svc/secure/over/tls", &acme)
        .await
        .send()
        .await
        .expect("call the gateway");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body"), "HTTP/2.0 /over/tls");

    // A certificate the trust store does not hold: never called (one attempt: POST).
    let r = raw(&s, reqwest::Method::POST, "/svc/forged/over/tls", &acme)
        .await
        .body("x")
        .send()
        .await
        .expect("call the gateway");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let text = r.text().await.expect("body");
    assert!(text.contains("could not be reached"), "{text}");
    trusted_task.abort();
    forged_task.abort();
}
