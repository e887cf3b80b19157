//! The session service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use palisade_core::problem::Problem;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::SessionConfig;

/// The stable tracing target of session rejections.
pub const TRACE_TARGET: &str = "palisade::session";

/// A service that puts the request's [`Session`](palisade_core::Session) in
/// its extensions; made by [`SessionLayer`](crate::SessionLayer).
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    config: Arc<SessionConfig>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, config: Arc<SessionConfig>) -> Self {
        Self { inner, config }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let session = self
            .config
            .identify(request.headers(), request.extensions());
        if session.is_anonymous() && self.config.require {
            tracing::debug!(target: TRACE_TARGET, reason = "no session", "request refused");
            return ResponseFuture::rejected(session_required());
        }
        request.extensions_mut().insert(session);
        ResponseFuture::inner(self.inner.call(request))
    }
}

impl<S: fmt::Debug> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Why the session layer refused a request; found in the extensions of the
/// 401 response it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRequired;

fn session_required() -> Response<Full<Bytes>> {
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "https://palisade.invalid/problems/session-required",
        "session required",
    )
    .with_detail("the request carries none of the session identifiers this API accepts")
    .into_response();
    response.extensions_mut().insert(SessionRequired);
    response
}
