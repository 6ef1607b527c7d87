//! `load_baseline`: the bare axum handler the load benchmark (`benches/load/run.sh`)
//! compares `ate serve` against. `GET /verify` answers a fixed JSON body shaped like
//! `GET /api/auth/verify`'s, with no authentication, no layers and no logging: what axum
//! and the machine can do, so `ate serve`'s figure is read as a ratio of it.
//!
//! ```text
//! load_baseline [--listen ADDR]      (default 127.0.0.1:0; prints "listening on http://ADDR")
//! ```

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};
use std::process::ExitCode;

fn body() -> Value {
    json!({
        "subject": "0196a4b2-7c1e-7c3a-9f00-6d7e8f901234",
        "tenant_id": "0196a4b2-7c1e-7c3a-9f00-6d7e8f905678",
        "platform_admin": false,
        "roles": ["admin"],
        "permissions": ["analysis:read", "analysis:write", "projects:read", "projects:write"],
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut listen = String::from("127.0.0.1:0");
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            _ => {
                eprintln!("usage: load_baseline [--listen ADDR]");
                return ExitCode::from(2);
            }
        }
    }
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("load_baseline: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(addr) = listener.local_addr() else {
        return ExitCode::FAILURE;
    };
    println!("listening on http://{addr}");
    let app = axum::Router::new().route("/verify", get(|| async { Json(body()) }));
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load_baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
