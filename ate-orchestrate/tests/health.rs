//! Health checks against real HTTP and TCP servers on loopback, started by each test.
//!
//! Real-network tests use short intervals and bounded wait loops, never timing asserts;
//! threshold, TTL and deregistration timing run on tokio's paused clock, where time only
//! moves when every task is idle, so they are exact.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use async_trait::async_trait;
use ate_orchestrate::OrchestrateError;
use ate_orchestrate::health::{
    CheckId, CheckKind, CheckSpec, CustomCheck, DeregisterRequest, HealthReporter, HealthScheduler,
    SchedulerConfig, StatusChange,
};
use ate_orchestrate::registry::{HealthStatus, InstanceId, InstanceKey, Scope, ServiceName};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use HealthStatus::{Critical, Passing, Warning};

// ---------------------------------------------------------------------------------------
// Fixtures

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Status(StatusChange),
    Deregister(DeregisterRequest),
}

#[derive(Debug, Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
}

#[async_trait]
impl HealthReporter for Recorder {
    async fn status_changed(&self, change: StatusChange) -> Result<(), OrchestrateError> {
        self.events.lock().unwrap().push(Event::Status(change));
        Ok(())
    }

    async fn deregister_requested(
        &self,
        request: DeregisterRequest,
    ) -> Result<(), OrchestrateError> {
        self.events.lock().unwrap().push(Event::Deregister(request));
        Ok(())
    }
}

impl Recorder {
    /// The `(from, to)` transitions reported for one instance, in order.
    fn transitions(&self, instance: &str) -> Vec<(Option<HealthStatus>, HealthStatus)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Status(c) if c.instance.id().as_str() == instance => Some((c.from, c.to)),
                _ => None,
            })
            .collect()
    }

    fn deregistrations(&self) -> Vec<DeregisterRequest> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Deregister(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }
}

fn scheduler(config: SchedulerConfig) -> (HealthScheduler, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let s = HealthScheduler::new(recorder.clone(), config).unwrap();
    (s, recorder)
}

fn service() -> ServiceName {
    ServiceName::new("web").unwrap()
}

fn inst(id: &str) -> InstanceId {
    InstanceId::new(id).unwrap()
}

fn cid(id: &str) -> CheckId {
    CheckId::new(id).unwrap()
}

/// Instance `id` of service `web` in the platform scope.
fn key(id: &str) -> InstanceKey {
    InstanceKey::new(Scope::Platform, service(), inst(id))
}

/// A check `id` on instance `instance` of service `web`, every 50 ms with a 40 ms timeout.
fn spec(id: &str, instance: &str, kind: CheckKind) -> CheckSpec {
    CheckSpec::new(cid(id), key(instance), kind)
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(40))
}

/// Polls `cond` every 5 ms for up to 15 s (on a paused clock: virtual seconds).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// What a test HTTP server does with request number `n` (from 0).
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    Garbage,
    Hang,
}

/// An HTTP/1.1 server on 127.0.0.1 answering by `reply`; returns its address and the
/// number of requests it has read.
async fn http_server(
    reply: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                if !read_request(&mut stream).await {
                    return;
                }
                let n = counter.fetch_add(1, Ordering::SeqCst);
                match reply(n) {
                    Reply::Status(code) => {
                        let response = format!(
                            "HTTP/1.1 {code} Whatever\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                    Reply::Garbage => {
                        let _ = stream
                            .write_all(b"\x00\x7fSSH-2.0-definitely not http\r\n\r\n")
                            .await;
                        let _ = stream.shutdown().await;
                    }
                    Reply::Hang => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        drop(stream);
                    }
                }
            });
        }
    });
    (addr, requests)
}

/// Reads one request head (up to 16 KiB); false if the peer closed first.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < 16 * 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
    }
    true
}

/// An address nothing listens on (bound, then released).
async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A TCP listener accepting (and closing) every connection until the handle is aborted.
async fn tcp_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    (addr, task)
}

fn outputs(s: &HealthScheduler, id: &str) -> Vec<(HealthStatus, String)> {
    s.results(&cid(id))
        .unwrap()
        .into_iter()
        .map(|r| (r.status, r.output))
        .collect()
}

/// A custom check answering from a script (the last entry repeats), counting its runs.
#[derive(Debug)]
struct Scripted {
    script: Vec<(HealthStatus, &'static str)>,
    runs: AtomicUsize,
}

impl Scripted {
    fn new(script: Vec<(HealthStatus, &'static str)>) -> Arc<Self> {
        Arc::new(Scripted {
            script,
            runs: AtomicUsize::new(0),
        })
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CustomCheck for Scripted {
    async fn check(&self) -> (HealthStatus, String) {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let (status, output) = self.script[n.min(self.script.len() - 1)];
        (status, output.to_owned())
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

#[tokio::test]
async fn http_2xx_turns_a_new_instance_passing_and_keeps_the_last_results() {
    let (addr, requests) = http_server(|_| Reply::Status(200)).await;
    let (s, rec) = scheduler(SchedulerConfig::default().results_kept(3));
    s.add_check(spec(
        "h",
        "web-1",
        CheckKind::http(format!("http://{addr}/health")),
    ))
    .unwrap();
    // New checks start critical, before any result.
    assert_eq!(s.check_status(&cid("h")).unwrap(), Critical);

    wait_until("passing", || s.check_status(&cid("h")).unwrap() == Passing).await;
    assert_eq!(s.instance_status(&key("web-1")), Some(Passing));
    wait_until("5 requests", || requests.load(Ordering::SeqCst) >= 5).await;
    wait_until("history", || s.results(&cid("h")).unwrap().len() == 3).await;
    let results = s.results(&cid("h")).unwrap();
    assert!(
        results.windows(2).all(|w| w[0].at <= w[1].at),
        "oldest first"
    );
    for r in &results {
        assert_eq!((r.status, r.output.as_str()), (Passing, "HTTP 200 OK"));
    }
    wait_until("reported", || rec.transitions("web-1").len() == 2).await;
    assert_eq!(
        rec.transitions("web-1"),
        [(None, Critical), (Some(Critical), Passing)]
    );
    s.shutdown().await;
}

#[tokio::test]
async fn http_refused_connection_is_critical() {
    let addr = refused_addr().await;
    let (s, rec) = scheduler(SchedulerConfig::default());
    s.add_check(spec(
        "h",
        "web-1",
        CheckKind::http(format!("http://{addr}/")),
    ))
    .unwrap();
    wait_until("two results", || s.results(&cid("h")).unwrap().len() >= 2).await;
    for (status, output) in outputs(&s, "h") {
        assert_eq!(status, Critical);
        assert_eq!(output, "connection refused");
    }
    assert_eq!(rec.transitions("web-1"), [(None, Critical)]);
    s.shutdown().await;
}

#[tokio::test]
async fn http_endpoint_that_hangs_times_out() {
    let (addr, requests) = http_server(|_| Reply::Hang).await;
    let (s, _rec) = scheduler(SchedulerConfig::default());
    s.add_check(
        spec("h", "web-1", CheckKind::http(format!("http://{addr}/")))
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_millis(30)),
    )
    .unwrap();
    wait_until("two results", || s.results(&cid("h")).unwrap().len() >= 2).await;
    assert!(
        requests.load(Ordering::SeqCst) >= 1,
        "the server saw the request"
    );
    for (status, output) in outputs(&s, "h") {
        assert_eq!(
            (status, output.as_str()),
            (Critical, "timed out after 30 ms")
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn http_garbage_answer_is_critical() {
    let (addr, _) = http_server(|_| Reply::Garbage).await;
    let (s, _rec) = scheduler(SchedulerConfig::default());
    s.add_check(spec(
        "h",
        "web-1",
        CheckKind::http(format!("http://{addr}/")),
    ))
    .unwrap();
    wait_until("a result", || !s.results(&cid("h")).unwrap().is_empty()).await;
    let (status, output) = outputs(&s, "h").remove(0);
    assert_eq!(status, Critical);
    assert!(output.starts_with("invalid HTTP response"), "{output}");
    s.shutdown().await;
}

#[tokio::test]
async fn http_429_is_warning_and_other_codes_critical() {
    let (warn_addr, _) = http_server(|_| Reply::Status(429)).await;
    let (err_addr, _) = http_server(|_| Reply::Status(503)).await;
    let (s, rec) = scheduler(SchedulerConfig::default());
    s.add_check(spec(
        "w",
        "web-1",
        CheckKind::http(format!("http://{warn_addr}/")),
    ))
    .unwrap();
    s.add_check(spec(
        "e",
        "web-2",
        CheckKind::http(format!("http://{err_addr}/")),
    ))
    .unwrap();
    wait_until("warning", || s.check_status(&cid("w")).unwrap() == Warning).await;
    assert_eq!(outputs(&s, "w")[0].1, "HTTP 429 Too Many Requests");
    wait_until("a result", || !s.results(&cid("e")).unwrap().is_empty()).await;
    assert_eq!(
        outputs(&s, "e")[0],
        (Critical, "HTTP 503 Service Unavailable".to_owned())
    );
    wait_until("reported", || rec.transitions("web-1").len() == 2).await;
    assert_eq!(
        rec.transitions("web-1"),
        [(None, Critical), (Some(Critical), Warning)]
    );
    assert_eq!(rec.transitions("web-2"), [(None, Critical)]);
    s.shutdown().await;
}

#[tokio::test]
async fn http_method_is_configurable() {
    // The server answers 200 only to HEAD; it sees the method in the request line.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4];
            let _ = stream.read_exact(&mut buf).await;
            let code = if &buf == b"HEAD" { 200 } else { 405 };
            let _ = stream
                .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
        }
    });
    let (s, _rec) = scheduler(SchedulerConfig::default());
    s.add_check(spec(
        "head",
        "web-1",
        CheckKind::http_with_method("HEAD", format!("http://{addr}/")),
    ))
    .unwrap();
    s.add_check(spec(
        "get",
        "web-2",
        CheckKind::http(format!("http://{addr}/")),
    ))
    .unwrap();
    wait_until("head passing", || {
        s.check_status(&cid("head")).unwrap() == Passing
    })
    .await;
    wait_until("get result", || !s.results(&cid("get")).unwrap().is_empty()).await;
    assert_eq!(outputs(&s, "get")[0].0, Critical);
    s.shutdown().await;
}

#[tokio::test]
async fn flapping_endpoint_does_not_flip_status_with_thresholds_3_3() {
    // Three 200s to become passing, then 500, 200, 500, 200 …
    let flapping = |n: usize| {
        if n < 3 || n.is_multiple_of(2) {
            Reply::Status(200)
        } else {
            Reply::Status(500)
        }
    };
    let (addr, requests) = http_server(flapping).await;
    let (eager_addr, _) = http_server(flapping).await;
    let (s, rec) = scheduler(SchedulerConfig::default().results_kept(50));
    s.add_check(spec("flap", "web-1", CheckKind::http(format!("http://{addr}/"))).thresholds(3, 3))
        .unwrap();
    // The same answers with thresholds 1/1: follows every result.
    s.add_check(spec(
        "eager",
        "web-2",
        CheckKind::http(format!("http://{eager_addr}/")),
    ))
    .unwrap();
    wait_until("passing", || {
        s.check_status(&cid("flap")).unwrap() == Passing
    })
    .await;
    let seen = requests.load(Ordering::SeqCst);
    wait_until("many flaps", || {
        requests.load(Ordering::SeqCst) >= seen + 20
    })
    .await;
    let results = outputs(&s, "flap");
    assert!(
        results.iter().any(|r| r.0 == Critical),
        "raw results flap: {results:?}"
    );
    assert_eq!(s.check_status(&cid("flap")).unwrap(), Passing);
    assert_eq!(
        rec.transitions("web-1"),
        [(None, Critical), (Some(Critical), Passing)],
        "the thresholds hold"
    );
    // The eager check did flip back and forth on the same answers.
    wait_until("eager flips", || rec.transitions("web-2").len() >= 4).await;
    s.shutdown().await;
}

#[tokio::test]
async fn recovering_endpoint_turns_passing_after_enough_successes() {
    let (addr, _) = http_server(|n| {
        if n < 3 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let (s, rec) = scheduler(SchedulerConfig::default().results_kept(50));
    s.add_check(spec("h", "web-1", CheckKind::http(format!("http://{addr}/"))).thresholds(3, 1))
        .unwrap();
    wait_until("passing", || s.check_status(&cid("h")).unwrap() == Passing).await;
    let results = outputs(&s, "h");
    let statuses: Vec<_> = results.iter().map(|r| r.0).collect();
    assert_eq!(&statuses[..3], [Critical; 3]);
    assert!(
        statuses.len() >= 6,
        "passing after 3 successes: {statuses:?}"
    );
    assert!(statuses[3..].iter().all(|s| *s == Passing));
    assert_eq!(results[0].1, "HTTP 500 Internal Server Error");
    wait_until("reported", || rec.transitions("web-1").len() == 2).await;
    assert_eq!(
        rec.transitions("web-1"),
        [(None, Critical), (Some(Critical), Passing)]
    );
    s.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// TCP

#[tokio::test]
async fn tcp_check_follows_a_listener_up_and_down() {
    let (addr, listener) = tcp_listener().await;
    let (s, rec) = scheduler(SchedulerConfig::default());
    s.add_check(spec("t", "db-1", CheckKind::tcp(addr.to_string())))
        .unwrap();
    wait_until("passing", || s.check_status(&cid("t")).unwrap() == Passing).await;
    assert_eq!(
        outputs(&s, "t")[0].1,
        format!("TCP connect {addr}: success")
    );
    listener.abort();
    wait_until("critical", || {
        s.check_status(&cid("t")).unwrap() == Critical
    })
    .await;
    let last = outputs(&s, "t").pop().unwrap();
    assert_eq!(last.1, format!("TCP connect {addr}: connection refused"));
    wait_until("reported", || rec.transitions("db-1").len() == 3).await;
    assert_eq!(
        rec.transitions("db-1"),
        [
            (None, Critical),
            (Some(Critical), Passing),
            (Some(Passing), Critical)
        ]
    );
    s.shutdown().await;
}

#[tokio::test]
async fn tcp_check_resolves_host_names() {
    let (addr, _listener) = tcp_listener().await;
    let (s, _rec) = scheduler(SchedulerConfig::default());
    s.add_check(spec(
        "t",
        "db-1",
        CheckKind::tcp(format!("localhost:{}", addr.port())),
    ))
    .unwrap();
    wait_until("a result", || !s.results(&cid("t")).unwrap().is_empty()).await;
    // localhost may resolve to ::1 first, where nothing listens; tokio tries every address.
    wait_until("passing", || s.check_status(&cid("t")).unwrap() == Passing).await;
    s.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// TTL, custom, thresholds and deregistration on tokio's paused clock

#[tokio::test(start_paused = true)]
async fn ttl_expires_without_heartbeat_and_revives_with_one() {
    let (s, rec) = scheduler(SchedulerConfig::default());
    let ttl = CheckSpec::new(
        cid("ttl"),
        key("worker-1"),
        CheckKind::ttl(Duration::from_secs(10)),
    );
    s.add_check(ttl).unwrap();
    assert_eq!(s.check_status(&cid("ttl")).unwrap(), Critical);

    s.heartbeat(&cid("ttl")).unwrap();
    assert_eq!(s.check_status(&cid("ttl")).unwrap(), Passing);
    tokio::time::sleep(Duration::from_secs(6)).await;
    s.heartbeat(&cid("ttl")).unwrap();
    // 12 s after the first heartbeat, 6 s after the second: still valid.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(s.check_status(&cid("ttl")).unwrap(), Passing);
    // 11 s after the last heartbeat: expired.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(s.check_status(&cid("ttl")).unwrap(), Critical);
    let (status, output) = outputs(&s, "ttl").pop().unwrap();
    assert_eq!(status, Critical);
    assert_eq!(output, "TTL expired: no update within 10000 ms");

    s.update_ttl(&cid("ttl"), Warning, "disk 91% full").unwrap();
    assert_eq!(s.check_status(&cid("ttl")).unwrap(), Warning);
    assert_eq!(outputs(&s, "ttl").pop().unwrap().1, "disk 91% full");
    wait_until("reported", || rec.transitions("worker-1").len() == 4).await;
    assert_eq!(
        rec.transitions("worker-1"),
        [
            (None, Critical),
            (Some(Critical), Passing),
            (Some(Passing), Critical),
            (Some(Critical), Warning)
        ]
    );
    s.shutdown().await;
}

#[tokio::test]
async fn ttl_updates_need_a_ttl_check() {
    let (s, _rec) = scheduler(SchedulerConfig::default());
    let check = Scripted::new(vec![(Passing, "ok")]);
    s.add_check(spec("c", "w-1", CheckKind::custom(check)))
        .unwrap();
    assert!(matches!(
        s.heartbeat(&cid("c")),
        Err(OrchestrateError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.heartbeat(&cid("missing")),
        Err(OrchestrateError::NotFound { .. })
    ));
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn thresholds_count_consecutive_results_in_the_scheduler() {
    let (s, _rec) = scheduler(SchedulerConfig::default().results_kept(20));
    // 3 failures, then successes.
    let check = Scripted::new(vec![
        (Critical, "down"),
        (Critical, "down"),
        (Critical, "down"),
        (Passing, "up"),
    ]);
    s.add_check(
        CheckSpec::new(cid("c"), key("w-1"), CheckKind::custom(check.clone()))
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(500))
            .thresholds(3, 3),
    )
    .unwrap();
    // Runs at t = 0, 1, 2, … s. After the run at t = 4 s: 3 failures, 2 successes.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(check.runs(), 5);
    assert_eq!(s.check_status(&cid("c")).unwrap(), Critical);
    // The run at t = 5 s is the third success.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(check.runs(), 6);
    assert_eq!(s.check_status(&cid("c")).unwrap(), Passing);
    s.shutdown().await;
}

#[derive(Debug)]
struct Panicky;

#[async_trait]
impl CustomCheck for Panicky {
    async fn check(&self) -> (HealthStatus, String) {
        panic!("host bug");
    }
}

#[derive(Debug)]
struct Slow;

#[async_trait]
impl CustomCheck for Slow {
    async fn check(&self) -> (HealthStatus, String) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        (Passing, "too late".into())
    }
}

#[tokio::test(start_paused = true)]
async fn custom_checks_report_their_status_and_survive_panics_and_timeouts() {
    let (s, rec) = scheduler(SchedulerConfig::default());
    let ok = Scripted::new(vec![(Warning, "queue depth 900")]);
    let every = |id: &str, kind| {
        CheckSpec::new(cid(id), key(id), kind)
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(200))
    };
    s.add_check(every("ok", CheckKind::custom(ok.clone())))
        .unwrap();
    s.add_check(every("panics", CheckKind::custom(Arc::new(Panicky))))
        .unwrap();
    s.add_check(every("slow", CheckKind::custom(Arc::new(Slow))))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    assert_eq!(s.check_status(&cid("ok")).unwrap(), Warning);
    assert_eq!(
        outputs(&s, "ok")[0],
        (Warning, "queue depth 900".to_owned())
    );
    // A panic is a critical result, and the check keeps being scheduled.
    assert_eq!(
        outputs(&s, "panics"),
        vec![(Critical, "custom check panicked".to_owned()); 3]
    );
    assert_eq!(
        outputs(&s, "slow"),
        vec![(Critical, "timed out after 200 ms".to_owned()); 3]
    );
    wait_until("reported", || rec.transitions("ok").len() == 2).await;
    assert_eq!(
        rec.transitions("ok"),
        [(None, Critical), (Some(Critical), Warning)]
    );
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn instance_status_is_the_worst_of_its_checks() {
    let (s, rec) = scheduler(SchedulerConfig::default());
    let up = Scripted::new(vec![(Passing, "up")]);
    let down = Scripted::new(vec![(Critical, "down")]);
    let on_api = |id: &str, check: Arc<Scripted>| {
        CheckSpec::new(cid(id), key("api-1"), CheckKind::custom(check))
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(100))
    };
    s.add_check(on_api("up", up)).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.instance_status(&key("api-1")), Some(Passing));
    // A new check starts critical, and so does the instance.
    s.add_check(on_api("down", down)).unwrap();
    assert_eq!(s.instance_status(&key("api-1")), Some(Critical));
    assert_eq!(s.instance_checks(&key("api-1")), [cid("down"), cid("up")]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.instance_status(&key("api-1")), Some(Critical));
    s.remove_check(&cid("down")).unwrap();
    assert!(matches!(
        s.results(&cid("down")),
        Err(OrchestrateError::NotFound { .. })
    ));
    assert!(matches!(
        s.remove_check(&cid("down")),
        Err(OrchestrateError::NotFound { .. })
    ));
    assert_eq!(s.instance_status(&key("api-1")), Some(Passing));
    wait_until("reported", || rec.transitions("api-1").len() == 4).await;
    assert_eq!(
        rec.transitions("api-1"),
        [
            (None, Critical),
            (Some(Critical), Passing),
            (Some(Passing), Critical),
            (Some(Critical), Passing)
        ]
    );
    // Removing the last check forgets the instance.
    s.remove_check(&cid("up")).unwrap();
    assert_eq!(s.instance_status(&key("api-1")), None);
    assert!(s.is_empty());
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn critical_too_long_requests_deregistration_once() {
    let (s, rec) = scheduler(SchedulerConfig::default());
    let dead = Scripted::new(vec![(Critical, "dead")]);
    let flaky = Scripted::new(
        std::iter::repeat_n((Critical, "down"), 10)
            .chain([(Passing, "up")])
            .collect(),
    );
    let check = |id: &str, instance: &str, c: Arc<Scripted>| {
        CheckSpec::new(cid(id), key(instance), CheckKind::custom(c))
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(100))
            .deregister_critical_after(Duration::from_secs(30))
    };
    s.add_check(check("dead", "web-dead", dead.clone()))
        .unwrap();
    // A second check of the same instance goes away with it.
    s.add_check(check(
        "dead-ttl",
        "web-dead",
        Scripted::new(vec![(Passing, "")]),
    ))
    .unwrap();
    s.add_check(check("flaky", "web-flaky", flaky)).unwrap();

    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(rec.deregistrations().is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_until("deregistration", || !rec.deregistrations().is_empty()).await;
    let requests = rec.deregistrations();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].instance, key("web-dead"));
    assert_eq!(requests[0].check, cid("dead"));
    assert!(requests[0].critical_for >= Duration::from_secs(30));
    // The scheduler stopped checking the deregistered instance.
    assert_eq!(s.instance_status(&key("web-dead")), None);
    assert_eq!(s.len(), 1);
    let runs = dead.runs();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(dead.runs(), runs);
    // The flaky instance recovered in time and stays.
    assert_eq!(rec.deregistrations().len(), 1);
    assert_eq!(s.check_status(&cid("flaky")).unwrap(), Passing);
    s.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Bad input

#[tokio::test]
async fn bad_check_definitions_are_rejected_with_typed_errors() {
    let (s, _rec) = scheduler(SchedulerConfig::default());
    let ok_url = CheckKind::http("http://127.0.0.1:9/health");
    let ms = Duration::from_millis;
    let cases: Vec<(CheckSpec, &str)> = vec![
        (
            spec("a", "w", ok_url.clone()).interval(Duration::ZERO),
            "interval",
        ),
        (
            spec("a", "w", ok_url.clone()).timeout(Duration::ZERO),
            "timeout",
        ),
        (spec("a", "w", ok_url.clone()).timeout(ms(50)), "timeout"),
        (spec("a", "w", ok_url.clone()).timeout(ms(60)), "timeout"),
        (spec("a", "w", ok_url.clone()).jitter(ms(51)), "jitter"),
        (
            spec("a", "w", ok_url.clone()).thresholds(0, 1),
            "success_before_passing",
        ),
        (
            spec("a", "w", ok_url.clone()).thresholds(1, 0),
            "failures_before_critical",
        ),
        (
            spec("a", "w", CheckKind::http("ftp://127.0.0.1/")),
            "HTTP check URL",
        ),
        (
            spec("a", "w", CheckKind::http("https://127.0.0.1/")),
            "HTTP check URL",
        ),
        (
            spec("a", "w", CheckKind::http("http//missing-colon")),
            "HTTP check URL",
        ),
        (spec("a", "w", CheckKind::http("")), "HTTP check URL"),
        (
            spec("a", "w", CheckKind::tcp("127.0.0.1")),
            "TCP check address",
        ),
        (
            spec("a", "w", CheckKind::tcp("127.0.0.1:99999")),
            "TCP check address",
        ),
        (
            spec("a", "w", CheckKind::tcp("not an address:80")),
            "TCP check address",
        ),
        (spec("a", "w", CheckKind::ttl(Duration::ZERO)), "ttl"),
    ];
    for (bad, field) in cases {
        let shown = format!("{bad:?}");
        match s.add_check(bad) {
            Err(OrchestrateError::InvalidInput { what, reason }) => {
                assert_eq!(what, field, "{shown}: {reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{shown} gave {other:?}"),
        }
    }
    // Nothing half-added.
    assert!(s.is_empty());
    assert!(matches!(
        s.results(&cid("a")),
        Err(OrchestrateError::NotFound { .. })
    ));
    // Jitter equal to the interval is fine; a duplicate id is not.
    s.add_check(spec("a", "w", ok_url.clone()).jitter(ms(50)))
        .unwrap();
    assert!(matches!(
        s.add_check(spec("a", "other", ok_url)),
        Err(OrchestrateError::AlreadyExists { .. })
    ));
    assert_eq!(s.len(), 1);
    assert!(matches!(
        CheckId::new("has space"),
        Err(OrchestrateError::InvalidInput { .. })
    ));
    assert!(matches!(
        HealthScheduler::new(
            Arc::new(Recorder::default()),
            SchedulerConfig::default().max_concurrent_checks(0)
        ),
        Err(OrchestrateError::InvalidInput { .. })
    ));
    s.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Scale and lifecycle

/// A custom check tracking how many of its kind run at once.
#[derive(Debug)]
struct Gauge {
    in_flight: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

#[async_trait]
impl CustomCheck for Gauge {
    async fn check(&self) -> (HealthStatus, String) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        (Passing, "ok".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_checks_run_with_bounded_concurrency() {
    const BOUND: usize = 8;
    let (s, _rec) = scheduler(SchedulerConfig::default().max_concurrent_checks(BOUND));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    for i in 0..500 {
        let gauge = Arc::new(Gauge {
            in_flight: in_flight.clone(),
            max: max.clone(),
        });
        s.add_check(
            spec(
                &format!("c{i}"),
                &format!("w-{i}"),
                CheckKind::custom(gauge),
            )
            .interval(Duration::from_millis(500))
            .timeout(Duration::from_millis(400)),
        )
        .unwrap();
    }
    wait_until("every check ran", || {
        (0..500).all(|i| s.check_status(&cid(&format!("c{i}"))).unwrap() == Passing)
    })
    .await;
    let max = max.load(Ordering::SeqCst);
    assert!(max <= BOUND, "{max} checks ran at once, bound {BOUND}");
    assert!(max >= 2, "checks never overlapped ({max})");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_http_checks_against_one_listener() {
    let (addr, requests) = http_server(|_| Reply::Status(204)).await;
    let (s, rec) = scheduler(SchedulerConfig::default().max_concurrent_checks(16));
    for i in 0..500 {
        s.add_check(
            spec(
                &format!("h{i}"),
                &format!("w-{i}"),
                CheckKind::http(format!("http://{addr}/")),
            )
            .interval(Duration::from_secs(2))
            .timeout(Duration::from_secs(1))
            .jitter(Duration::from_millis(500)),
        )
        .unwrap();
    }
    wait_until("every check passing", || {
        (0..500).all(|i| s.check_status(&cid(&format!("h{i}"))).unwrap() == Passing)
    })
    .await;
    assert!(requests.load(Ordering::SeqCst) >= 500);
    wait_until("all reported", || rec.events.lock().unwrap().len() == 1000).await;
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_checks_and_rejects_new_ones() {
    let (s, _rec) = scheduler(SchedulerConfig::default());
    let check = Scripted::new(vec![(Passing, "up")]);
    s.add_check(
        CheckSpec::new(cid("c"), key("w"), CheckKind::custom(check.clone()))
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(100)),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(check.runs(), 3);
    s.shutdown().await;
    s.shutdown().await; // idempotent
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(check.runs(), 3);
    assert!(matches!(
        s.add_check(spec("d", "w", CheckKind::tcp("127.0.0.1:1"))),
        Err(OrchestrateError::Unavailable(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_scheduler_leaves_no_task_behind() {
    let (s, _rec) = scheduler(SchedulerConfig::default());
    let check = Scripted::new(vec![(Passing, "up")]);
    s.add_check(
        CheckSpec::new(cid("c"), key("w"), CheckKind::custom(check.clone()))
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(100)),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(Arc::strong_count(&check) > 1);
    drop(s);
    // Every clone of the check lived in the scheduler's tasks; they are all gone.
    wait_until("tasks dropped", || Arc::strong_count(&check) == 1).await;
    let runs = check.runs();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(check.runs(), runs);
}
