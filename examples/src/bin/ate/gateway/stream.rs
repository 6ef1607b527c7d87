//! The upstream's response going back to the client: streamed, and holding the instance's
//! pick until the body ends, so the pick counts as in flight (a drain waits for it) and
//! its outcome and latency cover the whole response.

use super::Proxied;
use super::forward::strip_hop_by_hop;
use ate_core::ErrorKind;
use ate_orchestrate::hub::Pick;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The response to send back for `upstream`, answered on `pick`'s instance.
pub(crate) fn respond(upstream: reqwest::Response, pick: Pick) -> Response {
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    strip_hop_by_hop(&mut headers);
    let body = PickedBody {
        inner: Box::pin(upstream.bytes_stream()),
        pick: Some(pick),
        server_error: status.is_server_error(),
    };
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response.extensions_mut().insert(Proxied);
    response
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The upstream body, finishing the pick at its end: a success (a failure for a 5xx
/// answer), a failure if the upstream breaks off mid-body. Dropped early (the client went
/// away), the pick is dropped unfinished: cancelled, counted against no one.
struct PickedBody {
    inner: ByteStream,
    pick: Option<Pick>,
    server_error: bool,
}

impl Stream for PickedBody {
    type Item = Result<Bytes, reqwest::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(None) => {
                if let Some(pick) = self.pick.take() {
                    if self.server_error {
                        pick.failure(ErrorKind::Unavailable);
                    } else {
                        pick.success();
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::info!(error = %e, "gateway: upstream body broke off");
                if let Some(pick) = self.pick.take() {
                    pick.failure(ErrorKind::Unavailable);
                }
            }
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        next
    }
}
