//! The detector's service and response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::layer::State;

/// A service that feeds an [`AutoDetect`](super::AutoDetect); made by
/// [`AutoDetectLayer`](super::AutoDetectLayer).
#[derive(Clone)]
pub struct AutoDetectService<S> {
    inner: S,
    state: Option<Arc<State>>,
}

impl<S> AutoDetectService<S> {
    pub(crate) fn new(inner: S, state: Option<Arc<State>>) -> Self {
        Self { inner, state }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AutoDetectService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let watch = self.state.as_ref().map(|state| Watch {
            with_auth: request.headers().contains_key(AUTHORIZATION),
            facts: state
                .should_sample()
                .then(|| state.capture(request.headers())),
            state: state.clone(),
        });
        ResponseFuture {
            future: self.inner.call(request),
            watch,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for AutoDetectService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoDetectService")
            .field("inner", &self.inner)
            .field("on", &self.state.is_some())
            .finish()
    }
}

struct Watch {
    state: Arc<State>,
    with_auth: bool,
    facts: Option<Vec<(String, u64)>>,
}

pin_project! {
    /// The response of [`AutoDetectService`]: the inner service's,
    /// observed on the way out.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        watch: Option<Watch>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let (Ok(response), Some(watch)) = (&result, this.watch.take())
            && response.status().is_success()
        {
            watch.state.observe(watch.with_auth, watch.facts);
        }
        Poll::Ready(result)
    }
}
