//! A real `ate serve` process on loopback for one test, and a small JSON client for it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The platform administrator's password in every test server.
pub(crate) const ADMIN_PASSWORD: &str = "operator passphrase for tests";
/// The platform administrator's email.
pub(crate) const ADMIN_EMAIL: &str = "admin@ate.example";

/// Where a test server keeps its metadata.
#[derive(Debug, Clone)]
pub(crate) enum Database {
    /// The embedded default: SQLite in the data directory.
    Sqlite,
    /// This PostgreSQL URL (a fresh schema).
    Postgres(String),
}

/// A running `ate serve`, stopped with SIGTERM on drop.
#[derive(Debug)]
pub(crate) struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// Everything the server printed on stdout before it listened.
    pub(crate) banner: String,
    pub(crate) http: reqwest::Client,
}

/// The `ate` binary with a test's environment: no stray `ATE_*` variables from the caller.
pub(crate) fn ate(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(data_dir)
        .env("ATE_AUTH__INSECURE_FAST_HASHING_FOR_TESTS", "true")
        .env("ATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn");
    cmd
}

impl Server {
    /// Starts a server in `dir` on `db`, with extra environment `env`.
    pub(crate) fn start(dir: &Path, db: &Database, env: &[(&str, &str)]) -> Server {
        let mut cmd = ate(dir);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("ATE_ADMIN__PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Database::Postgres(url) = db {
            cmd.env("ATE_DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start ate serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let base = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("ate serve exited before listening:\n{banner}"))
                .expect("read stdout");
            banner.push_str(&line);
            banner.push('\n');
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child: Some(child),
            base,
            banner,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    /// Sends a JSON request (or none) with an optional bearer token.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Reply::read(req.send().await.expect("send request")).await
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Registers an organization; returns (tenant id, admin email, password).
    pub(crate) async fn register(&self, slug: &str) -> (String, String, String) {
        let email = format!("owner@{slug}.example");
        let password = format!("{slug} owner passphrase");
        let r = self
            .post(
                "/api/auth/register",
                None,
                json!({"organization": {"slug": slug, "name": slug}, "email": email, "password": password}),
            )
            .await;
        r.expect(StatusCode::CREATED);
        (r.str("/tenant/id"), email, password)
    }

    /// Logs in and returns the token response.
    pub(crate) async fn login(&self, tenant: &str, email: &str, password: &str) -> Value {
        let r = self
            .post(
                "/api/auth/login",
                None,
                json!({"tenant": tenant, "email": email, "password": password}),
            )
            .await;
        r.expect(StatusCode::OK);
        r.body
    }

    /// The platform administrator's access token.
    pub(crate) async fn admin_token(&self) -> String {
        self.login("operators", ADMIN_EMAIL, ADMIN_PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited successfully.
    pub(crate) fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// A response: status, headers and the body parsed as JSON (`Null` when empty or not JSON,
/// with the text kept).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) async fn read(r: reqwest::Response) -> Reply {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("read body");
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// Panics with the body unless the status is `want`.
    #[track_caller]
    pub(crate) fn expect(&self, want: StatusCode) -> &Self {
        assert_eq!(self.status, want, "body: {}", self.text);
        self
    }

    /// Checks that this is a problem document of `status` and `kind`.
    #[track_caller]
    pub(crate) fn problem(&self, status: StatusCode, kind: &str) -> &Self {
        self.expect(status);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status.as_u16(), "{}", self.text);
        assert_eq!(self.body["kind"], kind, "{}", self.text);
        assert_eq!(self.body["type"], format!("urn:ate:problem:{kind}"));
        assert!(self.body["request_id"].is_string(), "{}", self.text);
        self
    }

    /// The string at JSON pointer `ptr`.
    #[track_caller]
    pub(crate) fn str(&self, ptr: &str) -> String {
        self.body
            .pointer(ptr)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string at {ptr} in {}", self.text))
            .to_owned()
    }
}

/// The repository's `examples/` directory.
pub(crate) fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A gzipped tar of `files` (path, content).
pub(crate) fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, content) in files {
        // The name is written raw: the tar crate refuses `..`, and tests need hostile names.
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_gnu_mut().expect("gnu header").name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, *content).expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

impl Server {
    /// Uploads `archive` with query `query`; returns the reply.
    pub(crate) async fn upload(&self, token: &str, query: &str, archive: Vec<u8>) -> Reply {
        let r = self
            .http
            .post(format!("{}/api/storage/upload?{query}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(archive)
            .send()
            .await
            .expect("upload");
        Reply::read(r).await
    }
}
