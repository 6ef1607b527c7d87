//! The layer over a fake transport keyed by authority (the real-server test is the
//! `mesh_client` example's self-test).

use super::*;
use crate::OrchestrateError;
use crate::balance::{Balancer, Endpoint, Strategy};
use crate::breaker::{BreakerConfig, BreakerRegistry, BreakerState, SlidingWindow};
use crate::endpoint::EndpointId;
use crate::outcome::{Outcome, OutcomeObserver};
use crate::retry::{Jitter, RetryBudget, RetryPolicy};
use ate_core::ErrorKind;
use http::{HeaderName, Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use url::Url;

#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    Refuse,
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused by {0}")]
struct Refused(String);

/// A client that answers by the request's authority and logs every URI it was sent.
#[derive(Debug, Clone, Default)]
struct FakeTransport {
    replies: Arc<Mutex<HashMap<String, Reply>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl FakeTransport {
    fn new(replies: &[(&str, Reply)]) -> Self {
        let t = FakeTransport::default();
        for (authority, reply) in replies {
            t.set(authority, *reply);
        }
        t
    }

    fn set(&self, authority: &str, reply: Reply) {
        self.replies
            .lock()
            .unwrap()
            .insert(authority.to_owned(), reply);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn calls_to(&self, authority: &str) -> usize {
        self.log()
            .iter()
            .filter(|u| u.contains(&format!("//{authority}/")))
            .count()
    }
}

impl Service<Request<String>> for FakeTransport {
    type Response = Response<String>;
    type Error = Refused;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Refused>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        let uri = req.uri().to_string();
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        self.log.lock().unwrap().push(uri.clone());
        let reply = self.replies.lock().unwrap().get(&authority).copied();
        Box::pin(async move {
            match reply {
                Some(Reply::Status(code)) => {
                    let mut response = Response::new(format!("{uri} {}", req.body()));
                    *response.status_mut() = StatusCode::from_u16(code).unwrap();
                    Ok(response)
                }
                Some(Reply::Refuse) | None => Err(Refused(authority)),
            }
        })
    }
}

/// Records every finished pick.
#[derive(Debug, Default)]
struct Outcomes(Mutex<Vec<(String, Outcome)>>);

impl OutcomeObserver for Outcomes {
    fn on_outcome(&self, endpoint: &EndpointId, outcome: Outcome, _: Duration) {
        self.0.lock().unwrap().push((endpoint.to_string(), outcome));
    }
}

impl Outcomes {
    fn all(&self) -> Vec<(String, Outcome)> {
        self.0.lock().unwrap().clone()
    }
}

struct Fixture {
    balancer: Arc<Balancer<Url>>,
    breakers: Arc<BreakerRegistry>,
    outcomes: Arc<Outcomes>,
}

/// Endpoints `name` at `http://name:80<path>` behind breakers (count window of 4, opening
/// at 50% failures after 4 calls, open for an hour).
fn fixture(strategy: Strategy, endpoints: &[(&str, &str)]) -> Fixture {
    let breakers = Arc::new(
        BreakerRegistry::new(
            BreakerConfig::default()
                .window(SlidingWindow::Count { calls: 4 })
                .minimum_calls(4)
                .wait_in_open(Duration::from_secs(3600)),
        )
        .unwrap(),
    );
    let outcomes = Arc::new(Outcomes::default());
    let balancer = Arc::new(
        Balancer::builder("billing", strategy)
            .availability(breakers.clone())
            .observer(outcomes.clone())
            .build()
            .unwrap(),
    );
    balancer
        .update(
            endpoints
                .iter()
                .map(|(id, url)| Endpoint::new(*id, Url::parse(url).unwrap())),
        )
        .unwrap();
    Fixture {
        balancer,
        breakers,
        outcomes,
    }
}

impl Fixture {
    fn layer(&self) -> BalanceLayer<Url> {
        BalanceLayer::new(Arc::new(GuardedBalancer::new(
            self.balancer.clone(),
            self.breakers.clone(),
        )))
        .retry_policy(fast_policy(3))
    }
}

fn fast_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(
        attempts,
        Duration::from_millis(10),
        Duration::from_millis(100),
    )
    .unwrap()
    .jitter(Jitter::None)
}

fn get(path: &str) -> Request<String> {
    Request::get(path).body(String::new()).unwrap()
}

fn served(response: &Response<String>) -> (String, u32) {
    let s = response
        .extensions()
        .get::<Served>()
        .expect("Served extension");
    (s.endpoint().to_string(), s.attempts())
}

#[tokio::test(start_paused = true)]
async fn requests_are_rewritten_to_each_picked_endpoint() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a:81"), ("b", "http://b:82/api/")],
    );
    let transport =
        FakeTransport::new(&[("a:81", Reply::Status(200)), ("b:82", Reply::Status(200))]);
    let mut service = f.layer().layer(transport.clone());
    let mut answered = Vec::new();
    for _ in 0..4 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(get("/users?page=2"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        answered.push(served(&response));
    }
    assert_eq!(
        transport.log(),
        [
            "http://a:81/users?page=2",
            "http://b:82/api/users?page=2",
            "http://a:81/users?page=2",
            "http://b:82/api/users?page=2",
        ]
    );
    assert_eq!(
        answered,
        [
            ("a".into(), 1),
            ("b".into(), 1),
            ("a".into(), 1),
            ("b".into(), 1)
        ]
    );
    let outcomes = f.outcomes.all();
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes.iter().all(|(_, o)| *o == Outcome::Success));
    assert_eq!(f.balancer.in_flight("a"), Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_retried_on_another_endpoint() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Refuse), ("b", Reply::Status(200))]);
    let response = f
        .layer()
        .layer(transport.clone())
        .oneshot(Request::put("/doc/1").body("v2".to_owned()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(served(&response), ("b".into(), 2));
    // The retry sent the same method, path and body.
    assert_eq!(response.body(), "http://b/doc/1 v2");
    assert_eq!(transport.log(), ["http://a/doc/1", "http://b/doc/1"]);
    assert_eq!(
        f.outcomes.all(),
        [
            ("a".into(), Outcome::Failure(ErrorKind::Unavailable)),
            ("b".into(), Outcome::Success)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_fails_the_last_response_is_returned() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Status(503)), ("b", Reply::Status(502))]);
    let response = f
        .layer()
        .layer(transport.clone())
        .oneshot(get("/x"))
        .await
        .unwrap();
    assert_eq!(transport.log().len(), 3, "max_attempts is 3");
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a, b, then a again"
    );
    assert_eq!(served(&response), ("a".into(), 3));
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_errors_the_last_error_is_returned() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Refuse), ("b", Reply::Refuse)]);
    let err = f
        .layer()
        .layer(transport.clone())
        .oneshot(get("/x"))
        .await
        .unwrap_err();
    assert_eq!(transport.log().len(), 3);
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    match &err {
        LayerError::Inner {
            endpoint: Some(endpoint),
            source,
        } => {
            assert_eq!(endpoint.as_str(), "a");
            assert_eq!(source.0, "a");
        }
        other => panic!("expected the inner error, got {other:?}"),
    }
    assert!(err.to_string().contains("call to a failed"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_unless_allowed() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Refuse), ("b", Reply::Status(201))]);
    let post = || Request::post("/orders").body("{}".to_owned()).unwrap();
    let err = f
        .layer()
        .layer(transport.clone())
        .oneshot(post())
        .await
        .unwrap_err();
    assert!(matches!(err, LayerError::Inner { .. }), "{err:?}");
    assert_eq!(transport.log(), ["http://a/orders"]);

    // The round-robin cursor is on b now; move it back to a with one GET.
    let _ = f
        .layer()
        .layer(transport.clone())
        .oneshot(get("/"))
        .await
        .unwrap();
    let layer = f.layer().retry_methods([Method::POST]);
    let response = layer
        .layer(transport.clone())
        .oneshot(post())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(served(&response), ("b".into(), 2));
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_successes_and_not_retried() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Status(404)), ("b", Reply::Status(404))]);
    let mut service = f.layer().layer(transport.clone());
    for _ in 0..8 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(get("/missing"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(transport.log().len(), 8);
    assert!(f.outcomes.all().iter().all(|(_, o)| *o == Outcome::Success));
    assert_eq!(f.breakers.state("a"), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn too_many_requests_is_a_rate_limited_failure_and_is_retried() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Status(429)), ("b", Reply::Status(200))]);
    let response = f.layer().layer(transport).oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        f.outcomes.all()[0],
        ("a".into(), Outcome::Failure(ErrorKind::RateLimited))
    );
}

#[tokio::test(start_paused = true)]
async fn a_custom_classifier_decides_what_fails() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Status(409)), ("b", Reply::Status(200))]);
    let layer = f
        .layer()
        .classify_with(|status| (status == StatusCode::CONFLICT).then_some(ErrorKind::Unavailable));
    let response = layer.layer(transport).oneshot(get("/")).await.unwrap();
    assert_eq!(served(&response), ("b".into(), 2));
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_trips_its_breaker_and_stops_getting_traffic() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b"), ("c", "http://c")],
    );
    let transport = FakeTransport::new(&[
        ("a", Reply::Status(200)),
        ("b", Reply::Status(200)),
        ("c", Reply::Status(200)),
    ]);
    let mut service = f.layer().layer(transport.clone());
    for _ in 0..6 {
        service.ready().await.unwrap().call(get("/")).await.unwrap();
    }
    transport.set("c", Reply::Refuse);
    let mut opened_after = None;
    for i in 0..60 {
        let response = service.ready().await.unwrap().call(get("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {i} failed");
        if opened_after.is_none() && f.breakers.state("c") == BreakerState::Open {
            opened_after = Some(transport.calls_to("c"));
        }
    }
    let opened_after = opened_after.expect("c's breaker opened");
    assert_eq!(f.breakers.state("c"), BreakerState::Open);
    assert_eq!(
        transport.calls_to("c"),
        opened_after,
        "no call to c once open"
    );
    assert!(
        transport.calls_to("a") >= 20 && transport.calls_to("b") >= 20,
        "a {} b {} c {}",
        transport.calls_to("a"),
        transport.calls_to("b"),
        opened_after
    );
    assert_eq!(f.breakers.state("a"), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn no_endpoint_fails_fast_without_calling_the_client() {
    let f = fixture(Strategy::RoundRobin, &[]);
    let transport = FakeTransport::new(&[]);
    let err = f
        .layer()
        .layer(transport.clone())
        .oneshot(get("/"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LayerError::Orchestrate(OrchestrateError::NoAvailableInstance { .. })
        ),
        "{err:?}"
    );
    assert!(transport.log().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_stops_retries() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Status(503)), ("b", Reply::Status(200))]);
    let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap());
    let response = f
        .layer()
        .retry_budget(budget)
        .layer(transport.clone())
        .oneshot(get("/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(transport.log().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn every_first_attempt_deposits_into_the_budget() {
    let f = fixture(
        Strategy::RoundRobin,
        &[("a", "http://a"), ("b", "http://b")],
    );
    let transport = FakeTransport::new(&[("a", Reply::Status(200)), ("b", Reply::Status(200))]);
    // No floor, one retry per two requests.
    let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap());
    let mut service = f.layer().retry_budget(budget.clone()).layer(transport);
    for _ in 0..4 {
        service.ready().await.unwrap().call(get("/")).await.unwrap();
    }
    assert_eq!(budget.remaining(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_key_header_keeps_a_tenant_on_one_endpoint() {
    let f = fixture(
        Strategy::ConsistentHash,
        &[("a", "http://a"), ("b", "http://b"), ("c", "http://c")],
    );
    let transport = FakeTransport::new(&[
        ("a", Reply::Status(200)),
        ("b", Reply::Status(200)),
        ("c", Reply::Status(200)),
    ]);
    let tenant = HeaderName::from_static("x-tenant");
    let mut service = f.layer().key_header(tenant.clone()).layer(transport);
    let mut homes = HashMap::new();
    for round in 0..3 {
        for t in 0..20 {
            let request = Request::get("/")
                .header(&tenant, format!("tenant-{t}"))
                .body(String::new())
                .unwrap();
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            let (endpoint, _) = served(&response);
            let home = homes.entry(t).or_insert_with(|| endpoint.clone());
            assert_eq!(*home, endpoint, "tenant-{t} moved in round {round}");
        }
    }
    let distinct: std::collections::HashSet<_> = homes.values().collect();
    assert!(
        distinct.len() >= 2,
        "20 tenants all on one endpoint: {homes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn non_http_endpoints_are_refused_without_a_call() {
    let f = fixture(Strategy::RoundRobin, &[("db", "tcp://db:5432")]);
    let transport = FakeTransport::new(&[("db:5432", Reply::Status(200))]);
    let err = f
        .layer()
        .layer(transport.clone())
        .oneshot(get("/"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(transport.log().is_empty());
    assert_eq!(f.outcomes.all(), [("db".into(), Outcome::Cancelled)]);
}

#[test]
fn guarded_balancer_picks_again_past_an_open_circuit() {
    let breakers = Arc::new(BreakerRegistry::new(BreakerConfig::default()).unwrap());
    // No availability hook: the balancer offers open circuits, the permit refuses them.
    let balancer = Arc::new(
        Balancer::builder("billing", Strategy::RoundRobin)
            .build()
            .unwrap(),
    );
    balancer
        .update([Endpoint::new("a", ()), Endpoint::new("b", ())])
        .unwrap();
    breakers.get(&EndpointId::new("a")).force_open();
    let guarded = GuardedBalancer::new(balancer.clone(), breakers.clone());
    for _ in 0..4 {
        let guard = guarded.pick_now(None).unwrap();
        assert_eq!(guard.id().as_str(), "b");
        guard.success();
    }
    breakers.get(&EndpointId::new("b")).force_open();
    let err = guarded.with_max_picks(5).pick_now(None).unwrap_err();
    assert!(
        matches!(err, OrchestrateError::CircuitOpen { .. }),
        "{err:?}"
    );
    assert_eq!(balancer.in_flight("a"), Some(0));
}

#[tokio::test]
async fn guarded_picks_carry_the_breaker_permit() {
    let breakers = Arc::new(
        BreakerRegistry::new(
            BreakerConfig::default()
                .window(SlidingWindow::Count { calls: 2 })
                .minimum_calls(2),
        )
        .unwrap(),
    );
    let balancer = Arc::new(
        Balancer::builder("billing", Strategy::RoundRobin)
            .build()
            .unwrap(),
    );
    balancer.update([Endpoint::new("a", ())]).unwrap();
    let picker: Arc<dyn Picker<()>> = Arc::new(GuardedBalancer::new(balancer, breakers.clone()));
    for _ in 0..2 {
        picker
            .pick(None)
            .await
            .unwrap()
            .failure(ErrorKind::Unavailable);
    }
    assert_eq!(breakers.state("a"), BreakerState::Open);
}

#[tokio::test]
async fn instances_and_urls_give_their_base_url() {
    use crate::registry::{InstanceSpec, MemoryRegistry, RegistryStore, Scope};
    let url = Url::parse("http://10.0.0.1:8080/v1").unwrap();
    assert_eq!(url.base_url().as_str(), "http://10.0.0.1:8080/v1");
    let spec = InstanceSpec::new(
        Scope::Platform,
        "billing".try_into().unwrap(),
        "billing-1".try_into().unwrap(),
        "http://10.0.0.2:9000/",
    )
    .unwrap();
    let instance = MemoryRegistry::new().register(spec).await.unwrap();
    assert_eq!(instance.base_url().as_str(), "http://10.0.0.2:9000/");
}
