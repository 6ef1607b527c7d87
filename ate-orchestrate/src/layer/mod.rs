//! A tower [`Layer`](tower_layer::Layer) that balances, breaks and retries outgoing HTTP
//! calls (feature `tower`).
//!
//! [`BalanceLayer`] wraps the host's HTTP client (any
//! `Service<http::Request<B>, Response = http::Response<RB>>`: a hyper client, an adapter
//! over `reqwest::Client`) in a [`BalanceService`]. For each attempt of a call it asks a
//! [`Picker`] for an endpoint, points the request at that endpoint's base URL
//! ([`EndpointUrl`]), calls the client, reports the outcome on the pick's guard (so
//! balancer observers, metrics, outlier detection and the circuit breaker see it) and, when
//! the attempt failed and may be retried, waits the [`RetryPolicy`](crate::retry::RetryPolicy)'s
//! backoff and tries again on a new pick, under a shared
//! [`RetryBudget`](crate::retry::RetryBudget).
//!
//! ```
//! use ate_orchestrate::balance::{Balancer, Endpoint, Strategy};
//! use ate_orchestrate::breaker::{BreakerConfig, BreakerRegistry};
//! use ate_orchestrate::layer::{BalanceLayer, GuardedBalancer};
//! use std::sync::Arc;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let breakers = Arc::new(BreakerRegistry::new(BreakerConfig::default())?);
//! let balancer = Arc::new(
//!     Balancer::builder("billing", Strategy::RoundRobin)
//!         .availability(breakers.clone())
//!         .build()?,
//! );
//! balancer.update([
//!     Endpoint::new("a", url::Url::parse("http://10.0.0.1:8080")?),
//!     Endpoint::new("b", url::Url::parse("http://10.0.0.2:8080/v1")?),
//! ])?;
//! let picker = Arc::new(GuardedBalancer::new(balancer, breakers));
//!
//! // The host's HTTP client; this one just echoes the URI it was asked to call.
//! let client = service_fn(|req: http::Request<()>| async move {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(req.uri().to_string()))
//! });
//! let service = BalanceLayer::new(picker).layer(client);
//! let request = http::Request::get("/invoices?page=2").body(())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.body(), "http://10.0.0.1:8080/invoices?page=2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Behaviour
//!
//! | situation | what the layer does | the caller gets |
//! | --- | --- | --- |
//! | the response's status is not a failure for the [`StatusClassifier`] (default [`default_classifier`]: `1xx`–`4xx` except `429`) | guard completed as success | the response |
//! | a `5xx` response ([`ErrorKind::Unavailable`](ate_core::ErrorKind)) or `429` (`RateLimited`) | guard completed as a failure of that kind; retried if allowed (below) | the response of the last attempt |
//! | the inner client fails (connection refused, reset, timeout) | guard completed as an `Unavailable` failure; retried if allowed | [`LayerError::Inner`] with the endpoint, from the last attempt |
//! | the picker finds no endpoint (none registered or healthy, every circuit open) on the first attempt | nothing sent | [`LayerError::Orchestrate`] (`NoAvailableInstance` or `CircuitOpen`) |
//! | the picker finds no endpoint on a retry | retries stop | the previous attempt's response or error |
//! | the endpoint's URL is not `http`/`https`, or the URI cannot be rewritten | nothing sent, guard dropped unrecorded, no retry | [`LayerError::Orchestrate`] (`InvalidInput`) |
//! | the inner client's `poll_ready` fails | nothing sent | [`LayerError::Inner`] without an endpoint |
//!
//! **When a failed attempt is retried.** All of: the request's method is in the retry set
//! (default [`idempotent_methods`]: `GET HEAD OPTIONS TRACE PUT DELETE`; never `POST` or
//! `PATCH` unless the host adds them with [`BalanceLayer::retry_methods`]), the policy's
//! `max_attempts` is not reached, the policy's predicate accepts the failure's kind (the
//! default: retryable kinds, so `Unavailable` and `RateLimited`), and the budget grants a
//! withdrawal. Every call deposits one request in the budget on its first attempt, retried
//! or not. Each retry is a new pick, so it usually lands on another endpoint; with an
//! affinity key and consistent hashing it lands on the same one until that endpoint's
//! breaker opens or it is ejected.
//!
//! **Replaying the request.** Retries resend the same request, so the request body type
//! must be `Clone` (`String`, `Vec<u8>`, `bytes::Bytes`, `http_body_util::Full<Bytes>`…);
//! the [`Service`](tower_service::Service) impl requires it. A streaming body must be
//! buffered into such a type first. Requests that are not retried are sent without a copy.
//!
//! **Addressing.** The request's scheme and authority are replaced by the endpoint's; the
//! endpoint URL's path (without a trailing `/`) is prefixed to the request's path; the
//! request's query is kept. Headers are not touched: clients derive `Host` from the URI
//! when the request has none.
//!
//! **Responses** carry a [`Served`] extension naming the endpoint that answered and the
//! number of attempts.
//!
//! **When everything is down.** Breakers open on the failures, pickers skip open circuits,
//! and calls fail fast with `NoAvailableInstance`/`CircuitOpen` instead of waiting on dead
//! endpoints; retries cannot add more than the budget's share of the traffic meanwhile.
//!
//! The service is `Clone` (the shared settings sit behind an `Arc`), delegates `poll_ready`
//! to the inner service, calls the instance that was polled ready (clone-and-swap) and
//! waits for the same instance to be ready again before each retry; its future is `Send`.

mod config;
mod error;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod picker;
mod service;

pub use config::{StatusClassifier, default_classifier, idempotent_methods};
pub use error::LayerError;
pub use future::ResponseFuture;
pub use layer::BalanceLayer;
pub use picker::{DEFAULT_MAX_PICKS, EndpointUrl, GuardedBalancer, PickFuture, Picker};
pub use service::{BalanceService, Served};

#[cfg(test)]
mod tests;
