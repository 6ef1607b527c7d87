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
use hyper::body::Incoming;
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The response to send back for `upstream`, answered on `pick`'s instance.
pub(crate) fn respond(upstream: hyper::Response<Incoming>, pick: Pick) -> Response {
    let (mut parts, body) = upstream.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let server_error = parts.status.is_server_error();
    let mut body = PickedBody {
        inner: body,
        pick: Some(pick),
        server_error,
    };
    // No body at all (a 204, a `HEAD`, `Content-Length: 0`): the answer is complete now,
    // and the server may never poll the body.
    if hyper::body::Body::is_end_stream(&body.inner) {
        body.finish();
    }
    parts.extensions = axum::http::Extensions::new();
    parts.extensions.insert(Proxied);
    Response::from_parts(parts, Body::new(body))
}

/// The upstream body, finishing the pick at its end: a success (a failure for a 5xx
/// answer), a failure if the upstream breaks off mid-body. Dropped early (the client went
/// away), the pick is dropped unfinished: cancelled, counted against no one.
struct PickedBody {
    inner: Incoming,
    pick: Option<Pick>,
    server_error: bool,
}

impl PickedBody {
    /// The answer is complete: a success, or a failure for a 5xx answer.
    fn finish(&mut self) {
        if let Some(pick) = self.pick.take() {
            if self.server_error {
                pick.failure(ErrorKind::Unavailable);
            } else {
                pick.success();
            }
        }
    }
}

impl hyper::body::Body for PickedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let next = Pin::new(&mut self.inner).poll_frame(cx);
        match &next {
            Poll::Ready(None) => self.finish(),
            // With a known length the server stops polling once it has sent that many bytes
            // (it never asks for the end): the last frame finishes the pick.
            Poll::Ready(Some(Ok(_))) if hyper::body::Body::is_end_stream(&self.inner) => {
                self.finish();
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

    // Not `is_end_stream`: a chunked body is polled to its end, which finishes the pick
    // (a known length finishes it at the last frame). The size hint is the upstream's, so a
    // known length is sent as such.
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
