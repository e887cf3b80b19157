//! The learning service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use palisade_core::Session;
use tower_service::Service;

use crate::future::{NewPath, Pending, ResponseFuture};
use crate::state::{HostSlot, Inner};

/// A service that records every request and its response status; made by
/// [`LearnLayer`](crate::LearnLayer).
#[derive(Clone)]
pub struct LearnService<S> {
    inner: S,
    state: Option<Arc<Inner>>,
}

impl<S> LearnService<S> {
    pub(crate) fn new(inner: S, state: Option<Arc<Inner>>) -> Self {
        Self { inner, state }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LearnService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let Some(state) = &self.state else {
            return ResponseFuture::new(self.inner.call(request), Pending::Nothing, None);
        };
        let session = request.extensions().get::<Session>().copied();
        let pending = pending(state, &mut request);
        ResponseFuture::new(self.inner.call(request), pending, session)
    }
}

/// Finds the collector of a request: no allocation when it exists.
fn pending<B>(state: &Arc<Inner>, request: &mut Request<B>) -> Pending {
    if let Some(endpoint) = state.catalogue.endpoint_of(request) {
        let key = Inner::endpoint_key(endpoint);
        return match state.lookup(key) {
            Some(collector) => Pending::Known(collector),
            None => Pending::NewEndpoint(state.clone(), key, endpoint),
        };
    }
    let host = request_host(request);
    if let HostSlot::Known(host_index) = state.host_slot(host) {
        let path = request.uri().path();
        let Some(key) = state.walk_path(request.method(), host_index, path, |_| {}) else {
            return Pending::Nothing;
        };
        if let Some(collector) = state.lookup(key) {
            return Pending::Known(collector);
        }
    }
    // Unknown so far: keep what admission needs; cloning a URI and a
    // header value shares their bytes.
    Pending::NewPath(Box::new(NewPath {
        state: state.clone(),
        method: request.method().clone(),
        uri: request.uri().clone(),
        host: request.headers().get(http::header::HOST).cloned(),
    }))
}

/// The host a request was sent to, without port.
pub(crate) fn request_host<B>(request: &Request<B>) -> Option<&str> {
    host_of(request.uri(), request.headers().get(http::header::HOST))
}

pub(crate) fn host_of<'a>(
    uri: &'a http::Uri,
    header: Option<&'a http::HeaderValue>,
) -> Option<&'a str> {
    let host = match uri.host() {
        Some(host) => host,
        None => header?.to_str().ok()?,
    };
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    };
    (!host.is_empty()).then_some(host)
}

impl<S: fmt::Debug> fmt::Debug for LearnService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnService")
            .field("inner", &self.inner)
            .field("enabled", &self.state.is_some())
            .finish()
    }
}
