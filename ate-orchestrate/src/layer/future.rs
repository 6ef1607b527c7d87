//! The response future of [`BalanceService`](super::BalanceService).

use super::LayerError;
use http::Response;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed<RB, E> = Pin<Box<dyn Future<Output = Result<Response<RB>, LayerError<E>>> + Send>>;

/// The future of [`BalanceService`](super::BalanceService): every attempt, its backoff and
/// its retries. `Send`; dropping it cancels the attempt in flight (its pick is reported as
/// [`Outcome::Cancelled`](crate::Outcome::Cancelled)).
pub struct ResponseFuture<RB, E> {
    inner: Boxed<RB, E>,
}

impl<RB, E> ResponseFuture<RB, E> {
    pub(super) fn new(inner: Boxed<RB, E>) -> Self {
        ResponseFuture { inner }
    }
}

impl<RB, E> fmt::Debug for ResponseFuture<RB, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<RB, E> Future for ResponseFuture<RB, E> {
    type Output = Result<Response<RB>, LayerError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().inner.as_mut().poll(cx)
    }
}
