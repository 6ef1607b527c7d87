//! The dashboard's server side: the page and its assets (CSP, validators), browser sign-in
//! with cookies (flags, CSRF, refresh, sign-out), and the registry view a tenant sees. The
//! pages themselves are tested in Chromium (`examples/dashboard/tests`).

use super::on_every_database;
use crate::server::{Reply, Server};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

/// A browser's cookie jar, kept by hand so each test sees exactly what is sent.
#[derive(Debug, Default, Clone)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take(&mut self, headers: &HeaderMap) {
        for v in headers.get_all("set-cookie") {
            let v = v.to_str().expect("ascii cookie");
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() && !v.contains("Max-Age=0") {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self) -> HeaderValue {
        let s: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        HeaderValue::from_str(&s.join("; ")).expect("cookie header")
    }
}

async fn send(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    jar: &Jar,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.base))
        .header("cookie", jar.header());
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Reply::read(req.send().await.expect("send")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(dir.path(), &crate::server::Database::Sqlite, &[]);
    for path in [
        "/",
        "/login",
        "/ui/services",
        "/ui/tenants/00000000-0000-0000-0000-000000000000",
    ] {
        let page = s.get(path, None).await;
        page.expect(StatusCode::OK);
        assert!(
            page.headers["content-type"]
                .to_str()
                .expect("type")
                .starts_with("text/html")
        );
        let csp = page.headers["content-security-policy"]
            .to_str()
            .expect("csp");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(page.text.contains("/assets/js/main.js"), "{}", page.text);
    }
    let js = s.get("/assets/js/main.js", None).await;
    js.expect(StatusCode::OK);
    assert_eq!(js.headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(js.headers["cache-control"], "no-cache");
    let tag = js.headers["etag"].clone();
    let again = s
        .http
        .get(format!("{}/assets/js/main.js", s.base))
        .header("if-none-match", tag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // The vendored chart library and its licence travel with the binary.
    s.get("/assets/vendor/uplot/uPlot.esm.js", None)
        .await
        .expect(StatusCode::OK);
    assert!(
        s.get("/assets/vendor/uplot/LICENSE", None)
            .await
            .text
            .contains("MIT License")
    );
    for missing in ["/assets/nope.js", "/assets/../Cargo.toml", "/assets/js/"] {
        s.get(missing, None)
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_live_in_httponly_cookies_and_changes_need_the_csrf_token() {
    on_every_database(|s| async move {
        let (tenant, email, password) = s.register("acme").await;
        let mut jar = Jar::default();
        let login = json!({"tenant": "acme", "email": email, "password": password});

        // Bad sign-ins: wrong password, unknown organization, missing field, not JSON.
        let wrong = json!({"tenant": "acme", "email": email, "password": "nope"});
        let r = send(
            &s,
            reqwest::Method::POST,
            "/api/session",
            &jar,
            None,
            Some(wrong),
        )
        .await;
        r.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
        assert!(r.headers.get("set-cookie").is_none());
        let unknown = json!({"tenant": "nobody", "email": email, "password": password});
        send(
            &s,
            reqwest::Method::POST,
            "/api/session",
            &jar,
            None,
            Some(unknown),
        )
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
        send(
            &s,
            reqwest::Method::POST,
            "/api/session",
            &jar,
            None,
            Some(json!({"tenant": "acme"})),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");

        let signed = send(
            &s,
            reqwest::Method::POST,
            "/api/session",
            &jar,
            None,
            Some(login.clone()),
        )
        .await;
        signed.expect(StatusCode::OK);
        assert_eq!(signed.body["tenant_id"], tenant);
        assert_eq!(signed.headers["cache-control"], "no-store");
        // The body names the principal and the CSRF token, never a session token.
        assert!(
            signed.body.get("access_token").is_none() && signed.body.get("refresh_token").is_none()
        );
        let csrf = signed.str("/csrf_token");
        assert_eq!(csrf.len(), 64);
        let cookies: Vec<&str> = signed
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect();
        assert_eq!(cookies.len(), 3, "{cookies:?}");
        for (name, path) in [
            ("ate_session=", "Path=/api;"),
            ("ate_refresh=", "Path=/api/session;"),
            ("ate_csrf=", "Path=/api;"),
        ] {
            let c = cookies.iter().find(|c| c.starts_with(name)).expect(name);
            assert!(c.contains(path), "{c}");
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
            // Plain HTTP here: `Secure` would make the browser drop the cookie.
            assert!(!c.contains("Secure"), "{c}");
        }
        jar.take(&signed.headers);
        assert_eq!(jar.get("ate_csrf"), Some(csrf.as_str()));

        // The cookie authenticates reads without any header.
        let me = send(&s, reqwest::Method::GET, "/api/session", &jar, None, None).await;
        me.expect(StatusCode::OK);
        assert_eq!(me.body["csrf_token"], csrf);
        send(
            &s,
            reqwest::Method::GET,
            "/api/users/profile",
            &jar,
            None,
            None,
        )
        .await
        .expect(StatusCode::OK);
        // A bearer token wins over the cookie, and then no CSRF token is handed out.
        let bearer = s.login("acme", &email, &password).await;
        let by_bearer = s
            .http
            .get(format!("{}/api/session", s.base))
            .bearer_auth(bearer["access_token"].as_str().expect("token"))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("send");
        let by_bearer = Reply::read(by_bearer).await;
        by_bearer.expect(StatusCode::OK);
        assert!(by_bearer.body["csrf_token"].is_null(), "{}", by_bearer.text);

        // A change with the cookie needs the CSRF header, and the right one.
        let rename = json!({"name": "Ada"});
        for bad in [None, Some("0".repeat(64)), Some(String::new())] {
            send(
                &s,
                reqwest::Method::PUT,
                "/api/users/profile",
                &jar,
                bad.as_deref(),
                Some(rename.clone()),
            )
            .await
            .problem(StatusCode::FORBIDDEN, "permission_denied");
        }
        let renamed = send(
            &s,
            reqwest::Method::PUT,
            "/api/users/profile",
            &jar,
            Some(&csrf),
            Some(rename),
        )
        .await;
        renamed.expect(StatusCode::OK);
        assert_eq!(renamed.body["name"], "Ada");

        // Refresh: needs the CSRF token; rotates the tokens and keeps the CSRF token.
        send(
            &s,
            reqwest::Method::POST,
            "/api/session/refresh",
            &jar,
            None,
            None,
        )
        .await
        .problem(StatusCode::FORBIDDEN, "permission_denied");
        let old = jar.clone();
        let refreshed = send(
            &s,
            reqwest::Method::POST,
            "/api/session/refresh",
            &jar,
            Some(&csrf),
            None,
        )
        .await;
        refreshed.expect(StatusCode::OK);
        jar.take(&refreshed.headers);
        assert_ne!(jar.get("ate_session"), old.get("ate_session"));
        assert_ne!(jar.get("ate_refresh"), old.get("ate_refresh"));
        assert_eq!(refreshed.body["csrf_token"], csrf);
        send(&s, reqwest::Method::GET, "/api/session", &jar, None, None)
            .await
            .expect(StatusCode::OK);
        // Replaying the old refresh cookie at once is a retry (a lost answer, or two tabs
        // refreshing together): within ate-auth's reuse grace it is answered, not punished.
        send(
            &s,
            reqwest::Method::POST,
            "/api/session/refresh",
            &old,
            Some(&csrf),
            None,
        )
        .await
        .expect(StatusCode::OK);
        // A refresh without the refresh cookie is refused.
        let mut no_refresh = jar.clone();
        no_refresh.0.retain(|(n, _)| n != "ate_refresh");
        send(
            &s,
            reqwest::Method::POST,
            "/api/session/refresh",
            &no_refresh,
            Some(&csrf),
            None,
        )
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");

        // Sign in again, then sign out: the server ends the session and clears the cookies.
        let mut jar = Jar::default();
        let signed = send(
            &s,
            reqwest::Method::POST,
            "/api/session",
            &jar,
            None,
            Some(login),
        )
        .await;
        jar.take(&signed.headers);
        let csrf = signed.str("/csrf_token");
        let kept = jar.clone();
        send(
            &s,
            reqwest::Method::DELETE,
            "/api/session",
            &jar,
            None,
            None,
        )
        .await
        .problem(StatusCode::FORBIDDEN, "permission_denied");
        let out = send(
            &s,
            reqwest::Method::DELETE,
            "/api/session",
            &jar,
            Some(&csrf),
            None,
        )
        .await;
        out.expect(StatusCode::NO_CONTENT);
        jar.take(&out.headers);
        assert!(jar.0.is_empty(), "{:?}", jar.0);
        send(&s, reqwest::Method::GET, "/api/session", &kept, None, None)
            .await
            .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
        // Signing out without a session is not an error.
        send(
            &s,
            reqwest::Method::DELETE,
            "/api/session",
            &jar,
            None,
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_view_shows_a_tenant_only_its_instances() {
    on_every_database(|s| async move {
        let (acme, acme_email, acme_pw) = s.register("acme").await;
        let (globex, globex_email, globex_pw) = s.register("globex").await;
        let acme_t = super::token(&s.login("acme", &acme_email, &acme_pw).await);
        let globex_t = super::token(&s.login("globex", &globex_email, &globex_pw).await);
        let admin = s.admin_token().await;
        for (t, id) in [(&acme_t, "acme-1"), (&globex_t, "globex-1")] {
            s.post(
                "/api/services",
                Some(t),
                json!({"service": "billing", "id": id, "endpoint": "http://127.0.0.1:9",
                       "check": {"kind": "ttl", "ttl_secs": 60}}),
            )
            .await
            .expect(StatusCode::CREATED);
        }
        s.post(
            "/api/services",
            Some(&admin),
            json!({"service": "auth", "id": "auth-1", "endpoint": "http://127.0.0.1:9"}),
        )
        .await
        .expect(StatusCode::CREATED);
        let ids = |r: &Reply| -> Vec<String> {
            let mut v: Vec<String> = r.body["services"]
                .as_array()
                .expect("services")
                .iter()
                .flat_map(|svc| svc["instances"].as_array().expect("instances").clone())
                .map(|i| i["id"].as_str().expect("id").to_owned())
                .collect();
            v.sort();
            v
        };
        let mine = s.get("/api/registry", Some(&acme_t)).await;
        mine.expect(StatusCode::OK);
        assert_eq!(ids(&mine), ["acme-1", "auth-1"]);
        let billing = &mine.body["services"][1];
        assert_eq!(billing["service"], "billing");
        assert_eq!(
            (billing["critical"].as_u64(), billing["passing"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(billing["traffic"]["requests"], 0);
        // A tenant may name only its own scope; another tenant's id is "not found".
        s.get(&format!("/api/registry?scope={acme}"), Some(&acme_t))
            .await
            .expect(StatusCode::OK);
        s.get(&format!("/api/registry?scope={globex}"), Some(&acme_t))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        s.get("/api/registry?scope=nonsense", Some(&acme_t))
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_input");
        s.get("/api/registry?unknown=1", Some(&acme_t))
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_input");
        // The platform administrator sees every scope, or one tenant's view.
        let all = s.get("/api/registry", Some(&admin)).await;
        assert_eq!(ids(&all), ["acme-1", "auth-1", "globex-1"]);
        let one = s
            .get(&format!("/api/registry?scope={globex}"), Some(&admin))
            .await;
        assert_eq!(ids(&one), ["auth-1", "globex-1"]);
        s.get("/api/registry", None)
            .await
            .problem(StatusCode::UNAUTHORIZED, "unauthenticated");

        // The live stream starts with the whole view, and follows a change.
        let mut events = s
            .http
            .get(format!("{}/api/registry/events", s.base))
            .bearer_auth(&acme_t)
            .send()
            .await
            .expect("stream");
        assert_eq!(events.headers()["content-type"], "text/event-stream");
        let first = next_event(&mut events).await;
        assert!(
            first.contains("acme-1") && !first.contains("globex-1"),
            "{first}"
        );
        s.put(
            "/api/services/billing/instances/acme-1/status",
            Some(&acme_t),
            json!({"status": "passing", "output": "set by the test"}),
        )
        .await
        .expect(StatusCode::OK);
        let changed = next_event(&mut events).await;
        assert!(
            changed.contains("\"passing\":1") && changed.contains("set by the test"),
            "{changed}"
        );
        // Another tenant's change is not news to acme: the next event (if any) still shows
        // only acme's instances.
        s.put(
            "/api/services/billing/instances/globex-1/status",
            Some(&globex_t),
            json!({"status": "passing", "output": "globex"}),
        )
        .await
        .expect(StatusCode::OK);
        let quiet =
            tokio::time::timeout(std::time::Duration::from_secs(3), next_event(&mut events)).await;
        if let Ok(e) = quiet {
            assert!(!e.contains("globex"), "{e}");
        }
    })
    .await;
}

/// The next `data:` line of an event stream.
async fn next_event(r: &mut reqwest::Response) -> String {
    let mut buf = String::new();
    loop {
        if let Some(at) = buf.find("\n\n") {
            let event: String = buf[..at].to_owned();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                return data.to_owned();
            }
            buf.drain(..at + 2);
            continue;
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), r.chunk())
            .await
            .expect("an event within 20 s")
            .expect("read stream")
            .expect("stream open");
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_reports_are_scoped_validated_and_downloadable() {
    super::on_every_database_with(&[("ATE_HISTORY__SAMPLE_SECS", "1")], |s| async move {
        let (acme, email, password) = s.register("acme").await;
        let (globex, _, _) = s.register("globex").await;
        let t = super::token(&s.login("acme", &email, &password).await);
        let admin = s.admin_token().await;
        // A few samples: the API's own traffic and acme's workflows and storage.
        for _ in 0..5 {
            s.get("/api/auth/verify", Some(&t))
                .await
                .expect(StatusCode::OK);
        }
        tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
        let from = (chrono::Utc::now() - chrono::TimeDelta::minutes(5)).to_rfc3339();
        let from = url_escape(&from);
        let api = s
            .get(
                &format!("/api/history?series=api&step_secs=1&from={from}"),
                Some(&admin),
            )
            .await;
        api.expect(StatusCode::OK);
        let served: u64 = api.body["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| p["count"].as_u64().expect("count"))
            .sum();
        assert!(served >= 5, "{}", api.text);
        let storage = s
            .get(
                &format!("/api/history?series=storage&step_secs=1&from={from}"),
                Some(&t),
            )
            .await;
        storage.expect(StatusCode::OK);
        assert_eq!(storage.body["tenant_id"], acme);
        assert!(
            !storage.body["points"]
                .as_array()
                .expect("points")
                .is_empty(),
            "{}",
            storage.text
        );
        // Scoping: a tenant reads only its own series; the platform's are the administrator's.
        s.get("/api/history?series=api", Some(&t))
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_input");
        s.get(
            &format!("/api/history?series=storage&tenant_id={globex}"),
            Some(&t),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
        s.get(
            &format!("/api/history?series=storage&tenant_id={globex}"),
            Some(&admin),
        )
        .await
        .expect(StatusCode::OK);
        // Bad input.
        for bad in [
            "/api/history?series=nope",
            "/api/history?series=service&step_secs=7",
            "/api/history?series=service&from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "/api/history?series=service&step_secs=1&from=2020-01-01T00:00:00Z",
            "/api/history?series=storage",
            "/api/history",
            "/api/reports?format=xml",
            "/api/reports?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        ] {
            let token = if bad.contains("series=storage") {
                &admin
            } else {
                &t
            };
            let r = s.get(bad, Some(token)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        }
        // Reports: a tenant's, as JSON and CSV; the platform's covers every tenant.
        let report = s.get("/api/reports", Some(&t)).await;
        report.expect(StatusCode::OK);
        assert_eq!(report.body["scope"], acme);
        assert_eq!(report.body["tenants"].as_array().map(Vec::len), Some(1));
        let csv = s.get("/api/reports?format=csv", Some(&t)).await;
        csv.expect(StatusCode::OK);
        assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
        assert!(
            csv.headers["content-disposition"]
                .to_str()
                .expect("ascii")
                .starts_with("attachment; filename=\"ate-report-"),
            "{:?}",
            csv.headers
        );
        assert!(
            csv.text
                .starts_with("section,tenant,subject,metric,value\n"),
            "{}",
            csv.text
        );
        assert!(csv.text.contains("usage,acme,,projects,0"), "{}", csv.text);
        assert!(!csv.text.contains("globex"), "{}", csv.text);
        s.get(&format!("/api/reports?tenant_id={globex}"), Some(&t))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        let platform = s.get("/api/reports", Some(&admin)).await;
        platform.expect(StatusCode::OK);
        assert_eq!(platform.body["scope"], "platform");
        let slugs: Vec<&str> = platform.body["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .map(|t| t["slug"].as_str().expect("slug"))
            .collect();
        assert!(
            slugs.contains(&"acme") && slugs.contains(&"globex"),
            "{slugs:?}"
        );
        assert!(
            platform.body["platform_services"]
                .as_array()
                .expect("services")
                .iter()
                .any(|s| s["service"] == "api"),
            "{}",
            platform.text
        );
    })
    .await;
}

fn url_escape(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_are_configurable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = Server::start(
        dir.path(),
        &crate::server::Database::Sqlite,
        &[("ATE_AUTH__LOGINS_PER_CLIENT_PER_MIN", "2")],
    );
    let (_, email, password) = s.register("acme").await;
    let body = json!({"tenant": "acme", "email": email, "password": password});
    for _ in 0..2 {
        s.post("/api/auth/login", None, body.clone())
            .await
            .expect(StatusCode::OK);
    }
    let limited = s.post("/api/auth/login", None, body.clone()).await;
    limited.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(
        limited.headers.contains_key("retry-after"),
        "{:?}",
        limited.headers
    );
    // The same limit holds for browser sign-ins.
    send(
        &s,
        reqwest::Method::POST,
        "/api/session",
        &Jar::default(),
        None,
        Some(body),
    )
    .await
    .problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}
