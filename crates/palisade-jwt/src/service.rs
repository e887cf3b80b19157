//! The JWT validation service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use palisade_core::problem::Problem;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::{JwtLayer, JwtState};
use crate::rejection::{JwtRejection, RejectionKind};

/// A service that verifies the JWTs of every request; made by
/// [`JwtLayer`].
#[derive(Clone)]
pub struct JwtService<S> {
    inner: S,
    state: Arc<JwtState>,
}

impl<S> JwtService<S> {
    pub(crate) fn new(inner: S, state: Arc<JwtState>) -> Self {
        Self { inner, state }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JwtService<S>
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
        // Unconfigured: one branch, nothing else.
        if self.state.is_empty() {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let endpoint = self.state.endpoint_of(&mut request);
        let decision = self
            .state
            .decide(request.method(), endpoint, request.headers());
        if let Some(rejection) = JwtLayer::apply(request.extensions_mut(), decision) {
            return ResponseFuture::rejected(unauthorized(rejection));
        }
        ResponseFuture::inner(self.inner.call(request))
    }
}

impl<S: fmt::Debug> fmt::Debug for JwtService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The 401 answer: `WWW-Authenticate: Bearer` (with `error="invalid_token"`
/// when a token was sent) and a problem document that names the reason,
/// never the token.
fn unauthorized(rejection: JwtRejection) -> Response<Full<Bytes>> {
    let (kind, title, challenge) = match rejection.kind {
        RejectionKind::Missing => ("token-required", "token required", "Bearer"),
        _ => (
            "invalid-token",
            "invalid token",
            "Bearer error=\"invalid_token\"",
        ),
    };
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        &format!("https://palisade.invalid/problems/{kind}"),
        title,
    )
    .with_detail(format!(
        "{} ({}; token configuration {})",
        rejection.kind.description(),
        rejection.kind.code(),
        rejection.config
    ))
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response.extensions_mut().insert(rejection);
    response
}
