//! ate-orchestrate health-check scheduler: CPU used to run ~10,000 TCP checks per second.
//!
//! * `health_tcp_10k_per_s/scheduler`: one `HealthScheduler` (two tokio worker threads)
//!   running 10,000 TCP checks, each every 0.9 s plus 0 to 0.2 s of jitter, against 8
//!   loopback listeners that accept and close every connection.
//! * `health_tcp_10k_per_s/baseline`: the plainest way to do the same work: 10,000 tokio
//!   tasks, each with its own timer, connecting to the same listeners once a second (no
//!   thresholds, no history, no queue, no concurrency bound).
//!
//! Both sides run for the same window after a warm-up; the process CPU time (user +
//! system, from `/proc/self/stat`, so the listeners' accept loops count on both sides) is
//! divided by the connections the listeners accepted. Reported: CPU-seconds per 10,000
//! checks, the share of one core, and the ratio scheduler / baseline. This is a plain
//! measurement printed in criterion's style (criterion's sampling model does not fit a
//! steady-state rate); `-- --test` runs a short window once. Linux only.

use ate_orchestrate::OrchestrateError;
use ate_orchestrate::health::{
    CheckId, CheckKind, CheckSpec, DeregisterRequest, HealthReporter, HealthScheduler,
    SchedulerConfig, StatusChange,
};
use ate_orchestrate::registry::{InstanceId, InstanceKey, Scope, ServiceName};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const CHECKS: usize = 10_000;
const LISTENERS: usize = 8;

/// Ignores every report (the bench measures the scheduler, not a registry).
#[derive(Debug)]
struct Discard;

type Reply<'a> = Pin<Box<dyn Future<Output = Result<(), OrchestrateError>> + Send + 'a>>;

impl HealthReporter for Discard {
    fn status_changed<'a, 'b>(&'a self, _change: StatusChange) -> Reply<'b>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async { Ok(()) })
    }

    fn deregister_requested<'a, 'b>(&'a self, _request: DeregisterRequest) -> Reply<'b>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async { Ok(()) })
    }
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start with the state;
    // utime and stime are the 14th and 15th fields overall, 12th and 13th from there.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports in USER_HZ ticks, 100 per second on every mainstream architecture.
    Some((utime + stime) / 100.0)
}

async fn listeners(accepted: Arc<AtomicU64>) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for _ in 0..LISTENERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(listener.local_addr().expect("local addr"));
        let accepted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                drop(stream);
            }
        });
    }
    addrs
}

#[derive(Debug, Clone, Copy)]
struct Measured {
    cpu: f64,
    wall: f64,
    checks: u64,
}

impl Measured {
    fn per_10k(&self) -> f64 {
        self.cpu / self.checks.max(1) as f64 * 10_000.0
    }

    fn core_share(&self) -> f64 {
        self.cpu / self.wall
    }
}

async fn measure(accepted: &AtomicU64, warmup: Duration, window: Duration) -> Measured {
    tokio::time::sleep(warmup).await;
    let (c0, n0, t0) = (
        cpu_seconds().unwrap_or(0.0),
        accepted.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let (c1, n1) = (
        cpu_seconds().unwrap_or(0.0),
        accepted.load(Ordering::Relaxed),
    );
    Measured {
        cpu: c1 - c0,
        wall: t0.elapsed().as_secs_f64(),
        checks: n1 - n0,
    }
}

async fn scheduler_side(
    addrs: &[SocketAddr],
    accepted: &AtomicU64,
    warmup: Duration,
    window: Duration,
) -> Measured {
    let scheduler = HealthScheduler::new(
        Arc::new(Discard),
        SchedulerConfig::default().max_concurrent_checks(256),
    )
    .expect("scheduler");
    let service = ServiceName::new("bench").expect("service name");
    for i in 0..CHECKS {
        let spec = CheckSpec::new(
            CheckId::new(format!("tcp-{i}")).expect("check id"),
            InstanceKey::new(
                Scope::Platform,
                service.clone(),
                InstanceId::new(format!("i-{i}")).expect("instance id"),
            ),
            CheckKind::tcp(addrs[i % addrs.len()].to_string()),
        )
        // 0.9 s + a mean jitter of 0.1 s: one run per second on average.
        .interval(Duration::from_millis(900))
        .timeout(Duration::from_millis(500))
        .jitter(Duration::from_millis(200));
        scheduler.add_check(spec).expect("add check");
    }
    let m = measure(accepted, warmup, window).await;
    scheduler.shutdown().await;
    m
}

async fn baseline_side(
    addrs: &[SocketAddr],
    accepted: &AtomicU64,
    warmup: Duration,
    window: Duration,
) -> Measured {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CHECKS {
        let addr = addrs[i % addrs.len()];
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_nanos(
                fastrand_like(i as u64) % 1_000_000_000,
            ))
            .await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let _ = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr))
                    .await;
            }
        });
    }
    let m = measure(accepted, warmup, window).await;
    tasks.shutdown().await;
    m
}

/// A cheap deterministic spread of start times (splitmix64), so the baseline's tasks do
/// not all connect in the same millisecond either.
fn fastrand_like(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn report(name: &str, m: Measured) {
    println!(
        "{name:<40} cpu: [{:.4} s per 10k checks]  core share: [{:.1} %]  ({} checks in {:.2} s)",
        m.per_10k(),
        m.core_share() * 100.0,
        m.checks,
        m.wall
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"health_tcp_10k_per_s".contains(f.as_str())) {
        return;
    }
    if cpu_seconds().is_none() {
        println!("health_tcp_10k_per_s: skipped (needs /proc/self/stat, Linux only)");
        return;
    }
    let (warmup, window) = if test_mode {
        (Duration::from_millis(1500), Duration::from_secs(1))
    } else {
        (Duration::from_secs(3), Duration::from_secs(10))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let accepted = Arc::new(AtomicU64::new(0));
        let addrs = listeners(accepted.clone()).await;
        let ours = scheduler_side(&addrs, &accepted, warmup, window).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let base = baseline_side(&addrs, &accepted, warmup, window).await;
        report("health_tcp_10k_per_s/scheduler", ours);
        report("health_tcp_10k_per_s/baseline", base);
        println!(
            "health_tcp_10k_per_s ratio scheduler/baseline: {:.2}",
            ours.per_10k() / base.per_10k().max(f64::MIN_POSITIVE)
        );
        if test_mode {
            assert!(ours.checks > 0, "the scheduler ran no check");
            println!("Testing health_tcp_10k_per_s\nSuccess");
        }
    });
}
