//! `mesh_client`: outgoing HTTP calls balanced, broken and retried by
//! [`ate_orchestrate::layer::BalanceLayer`], against three local servers, one of which dies.
//!
//! ```text
//! cargo run -p examples --bin mesh_client -- [--requests N] [--self-test]
//! ```
//!
//! What it does:
//!
//! 1. starts three axum servers on `127.0.0.1` (free ports), each answering `GET /hello`
//!    with its name;
//! 2. registers them in a [`MemoryRegistry`] as instances of the service `greeter`, marks
//!    them passing (as a health check would), and feeds a round-robin [`Balancer`] from
//!    discovery (and from then on from the registry's watch stream);
//! 3. wraps a `reqwest::Client` (one connection per request, so a dead server is noticed at
//!    once) in the layer: a [`GuardedBalancer`] with a [`BreakerRegistry`], up to 3 attempts
//!    per call with a short backoff, under the default retry budget;
//! 4. sends `N` requests (default 60) one after the other, and after a third of them kills
//!    `greeter-3` (its server task is aborted: connections are refused from then on);
//! 5. prints who answered and how often, each instance's breaker state and the failed
//!    attempts the retries absorbed.
//!
//! `--self-test` also checks the outcome and exits non-zero if any check fails: every
//! request answered 200, the dead instance's breaker is open, it got no attempt once its
//! breaker opened, and both live instances served requests after the kill.

use ate_orchestrate::balance::{Balancer, Endpoint, Strategy};
use ate_orchestrate::breaker::{BreakerConfig, BreakerRegistry, BreakerState, SlidingWindow};
use ate_orchestrate::layer::{BalanceLayer, GuardedBalancer, Served};
use ate_orchestrate::registry::{
    HealthStatus, Instance, InstanceSpec, MemoryRegistry, Query, RegistryStore, Scope, ServiceName,
    Visibility,
};
use ate_orchestrate::retry::RetryPolicy;
use ate_orchestrate::{EndpointId, Outcome, OutcomeObserver};
use axum::Router;
use axum::routing::get;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tower::{Layer, Service, ServiceExt};

const USAGE: &str = "usage: mesh_client [--requests N] [--self-test]";
const SERVICE: &str = "greeter";
const DOOMED: &str = "greeter-3";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
struct Args {
    requests: usize,
    self_test: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut requests = 60;
    let mut self_test = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => {
                let n = args.next().ok_or("--requests needs a number")?;
                requests = n
                    .parse()
                    .ok()
                    .filter(|n| (30..=100_000).contains(n))
                    .ok_or(format!("--requests {n:?}: expected 30 to 100000"))?;
            }
            "--self-test" => self_test = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        requests,
        self_test,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("mesh_client: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(report) => {
            report.print();
            if !args.self_test {
                return ExitCode::SUCCESS;
            }
            match report.check() {
                Ok(()) => {
                    println!("self-test passed");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mesh_client: self-test failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("mesh_client: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---- the servers ----

/// Starts a server answering `GET /hello` with `name`; aborting the task closes its port.
async fn start_server(name: &'static str) -> Result<(SocketAddr, JoinHandle<()>), BoxError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/hello", get(move || async move { name }));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("mesh_client: server {name} stopped: {e}");
        }
    });
    Ok((addr, task))
}

// ---- the client the layer wraps ----

/// `reqwest::Client` as a `Service<http::Request<String>>` answering
/// `http::Response<String>` (the whole body read).
#[derive(Debug, Clone)]
struct ReqwestClient(reqwest::Client);

impl Service<http::Request<String>> for ReqwestClient {
    type Response = http::Response<String>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<String>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut out = http::Response::new(response.text().await?);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

// ---- what the balancer saw ----

/// Attempts per instance, by outcome (a balancer [`OutcomeObserver`]).
#[derive(Debug, Default)]
struct Tally(Mutex<BTreeMap<String, [u64; 2]>>);

impl OutcomeObserver for Tally {
    fn on_outcome(&self, endpoint: &EndpointId, outcome: Outcome, _latency: Duration) {
        let column = match outcome {
            Outcome::Success => 0,
            Outcome::Failure(_) => 1,
            _ => return,
        };
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(endpoint.to_string()).or_default()[column] += 1;
    }
}

impl Tally {
    fn attempts(&self, endpoint: &str) -> u64 {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(endpoint).map_or(0, |[ok, failed]| ok + failed)
    }

    fn snapshot(&self) -> BTreeMap<String, [u64; 2]> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Replaces the balancer's set with the healthy `greeter` instances.
async fn feed(store: &MemoryRegistry, balancer: &Balancer<Instance>) -> Result<(), BoxError> {
    let query = Query::new(Visibility::Platform).service(ServiceName::new(SERVICE)?);
    let instances = store.discover(&query).await?;
    balancer.update(instances.into_iter().map(Endpoint::from_instance))?;
    Ok(())
}

// ---- the run ----

#[derive(Debug)]
struct Report {
    requests: usize,
    killed_after: usize,
    /// Requests answered 200, and the other outcomes (status or error) by request number.
    ok: usize,
    failed: Vec<(usize, String)>,
    /// Who answered, in all and after the kill.
    served: BTreeMap<String, usize>,
    served_after_kill: BTreeMap<String, usize>,
    retried: usize,
    /// The request after which the doomed instance's breaker was first seen open, and its
    /// attempts by then.
    opened: Option<(usize, u64)>,
    doomed_attempts: u64,
    attempts: BTreeMap<String, [u64; 2]>,
    breakers: Vec<(EndpointId, BreakerState)>,
}

async fn run(args: &Args) -> Result<Report, BoxError> {
    // 1. Three servers.
    let mut servers = BTreeMap::new();
    for name in ["greeter-1", "greeter-2", DOOMED] {
        let (addr, task) = start_server(name).await?;
        println!("{name} listening on http://{addr}");
        servers.insert(name, (addr, task));
    }

    // 2. The registry, and a balancer fed from discovery.
    let store = Arc::new(MemoryRegistry::new());
    let mut watch = store.watch().await?;
    let service = ServiceName::new(SERVICE)?;
    for (name, (addr, _)) in &servers {
        let spec = InstanceSpec::new(
            Scope::Platform,
            service.clone(),
            name.to_string().try_into()?,
            &format!("http://{addr}/"),
        )?;
        let instance = store.register(spec).await?;
        store
            .set_status(
                &instance.key(),
                HealthStatus::Passing,
                "started by mesh_client",
            )
            .await?;
    }
    let breakers = Arc::new(BreakerRegistry::new(
        BreakerConfig::default()
            .window(SlidingWindow::Count { calls: 6 })
            .minimum_calls(4)
            .failure_rate_threshold(50.0)
            .wait_in_open(Duration::from_secs(60)),
    )?);
    let tally = Arc::new(Tally::default());
    let balancer = Arc::new(
        Balancer::builder(SERVICE, Strategy::RoundRobin)
            .availability(breakers.clone())
            .observer(tally.clone())
            .build::<Instance>()?,
    );
    feed(&store, &balancer).await?;
    // From now on, every registry change re-reads the set.
    let feeder = {
        let (store, balancer) = (Arc::clone(&store), Arc::clone(&balancer));
        tokio::spawn(async move {
            while watch.next().await.is_some() {
                if let Err(e) = feed(&store, &balancer).await {
                    eprintln!("mesh_client: discovery failed: {e}");
                }
            }
        })
    };
    println!(
        "balancer over {} instances: {:?}",
        balancer.len(),
        balancer.eligible()
    );

    // 3. The client stack.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()?;
    let layer = BalanceLayer::new(Arc::new(GuardedBalancer::new(
        Arc::clone(&balancer),
        Arc::clone(&breakers),
    )))
    .retry_policy(RetryPolicy::new(
        3,
        Duration::from_millis(5),
        Duration::from_millis(50),
    )?);
    let mut mesh = layer.layer(ReqwestClient(client));

    // 4. The traffic, and the death of one server.
    let killed_after = args.requests / 3;
    let mut report = Report {
        requests: args.requests,
        killed_after,
        ok: 0,
        failed: Vec::new(),
        served: BTreeMap::new(),
        served_after_kill: BTreeMap::new(),
        retried: 0,
        opened: None,
        doomed_attempts: 0,
        attempts: BTreeMap::new(),
        breakers: Vec::new(),
    };
    for i in 1..=args.requests {
        let request = http::Request::get("/hello").body(String::new())?;
        match mesh.ready().await?.call(request).await {
            Ok(response) if response.status() == http::StatusCode::OK => {
                report.ok += 1;
                if let Some(served) = response.extensions().get::<Served>() {
                    let name = served.endpoint().to_string();
                    if response.body() != &name {
                        report
                            .failed
                            .push((i, format!("{name} answered {:?}", response.body())));
                    }
                    *report.served.entry(name.clone()).or_default() += 1;
                    if i > killed_after {
                        *report.served_after_kill.entry(name).or_default() += 1;
                    }
                    if served.attempts() > 1 {
                        report.retried += 1;
                    }
                }
            }
            Ok(response) => report
                .failed
                .push((i, format!("status {}", response.status()))),
            Err(e) => report.failed.push((i, e.to_string())),
        }
        if i == killed_after {
            if let Some((_, task)) = servers.remove(DOOMED) {
                task.abort();
                // Wait until the task is gone, so its port is closed.
                let _ = task.await;
            }
            println!("killed {DOOMED} after request {i}");
        }
        if report.opened.is_none() && breakers.state(DOOMED) == BreakerState::Open {
            let attempts = tally.attempts(DOOMED);
            println!("breaker of {DOOMED} open after request {i} ({attempts} attempts)");
            report.opened = Some((i, attempts));
        }
    }

    // 5. The figures.
    report.doomed_attempts = tally.attempts(DOOMED);
    report.attempts = tally.snapshot();
    report.breakers = breakers.states();
    feeder.abort();
    for (_, (_, task)) in servers {
        task.abort();
    }
    Ok(report)
}

impl Report {
    fn print(&self) {
        println!(
            "\n{} requests, {} answered 200, {} failed, {} needed a retry; {DOOMED} killed after request {}",
            self.requests,
            self.ok,
            self.failed.len(),
            self.retried,
            self.killed_after
        );
        println!(
            "{:<10} {:>7} {:>12} {:>9} {:>8}  breaker",
            "instance", "served", "after kill", "attempts", "failed"
        );
        for (id, state) in &self.breakers {
            let [ok, failed] = self.attempts.get(id.as_str()).copied().unwrap_or_default();
            println!(
                "{:<10} {:>7} {:>12} {:>9} {:>8}  {state}",
                id.as_str(),
                self.served.get(id.as_str()).copied().unwrap_or(0),
                self.served_after_kill
                    .get(id.as_str())
                    .copied()
                    .unwrap_or(0),
                ok + failed,
                failed,
            );
        }
        for (i, why) in &self.failed {
            println!("request {i} failed: {why}");
        }
    }

    /// The self-test's checks, each printed as it passes.
    fn check(&self) -> Result<(), String> {
        let check = |ok: bool, what: String| {
            if ok {
                println!("ok  {what}");
                Ok(())
            } else {
                Err(what)
            }
        };
        check(
            self.failed.is_empty() && self.ok == self.requests,
            format!(
                "every request answered 200 ({} of {})",
                self.ok, self.requests
            ),
        )?;
        check(
            self.retried > 0,
            format!(
                "retries absorbed the dead instance's failures ({} requests retried)",
                self.retried
            ),
        )?;
        let state = self
            .breakers
            .iter()
            .find(|(id, _)| id.as_str() == DOOMED)
            .map(|(_, s)| *s);
        check(
            state == Some(BreakerState::Open),
            format!("breaker of {DOOMED} is open (state {state:?})"),
        )?;
        let (opened_at, attempts_then) = self
            .opened
            .ok_or_else(|| format!("breaker of {DOOMED} never seen open"))?;
        check(
            self.doomed_attempts == attempts_then,
            format!(
                "{DOOMED} got no attempt after its breaker opened at request {opened_at} ({} attempts then, {} at the end)",
                attempts_then, self.doomed_attempts
            ),
        )?;
        check(
            !self.served_after_kill.contains_key(DOOMED),
            format!("{DOOMED} served nothing after it was killed"),
        )?;
        for live in ["greeter-1", "greeter-2"] {
            let n = self.served_after_kill.get(live).copied().unwrap_or(0);
            check(n > 0, format!("{live} served {n} requests after the kill"))?;
        }
        Ok(())
    }
}
