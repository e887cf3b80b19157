//! The response future of the learning service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Method, Response, Uri};
use palisade_core::{Endpoint, HostPattern, Session};
use pin_project_lite::pin_project;

use crate::collector::{Collector, Origin};
use crate::observe::Observation;
use crate::service::host_of;
use crate::state::Inner;

/// What a request will be counted against once its status is known.
pub(crate) enum Pending {
    /// Nothing to learn: the layer is disabled or the path too deep.
    Nothing,
    /// A collector that exists: the common case.
    Known(Arc<Collector>),
    /// A declared or matched endpoint seen for the first time.
    NewEndpoint(Arc<Inner>, u64, Endpoint),
    /// A path whose template is not tracked yet.
    NewPath(Box<NewPath>),
}

/// What admitting a new path needs.
pub(crate) struct NewPath {
    pub(crate) state: Arc<Inner>,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) host: Option<HeaderValue>,
}

pin_project! {
    /// The response of [`LearnService`](crate::LearnService): the inner
    /// service's, unchanged, recorded when it is ready.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        pending: Pending,
        session: Option<Session>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, pending: Pending, session: Option<Session>) -> Self {
        Self {
            future,
            pending,
            session,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.future.poll(cx));
        if let Ok(response) = &response {
            let pending = std::mem::replace(this.pending, Pending::Nothing);
            record(pending, response.status(), *this.session);
        }
        Poll::Ready(response)
    }
}

fn record(pending: Pending, status: http::StatusCode, session: Option<Session>) {
    let collector = match pending {
        Pending::Nothing => return,
        Pending::Known(collector) => collector,
        Pending::NewEndpoint(..) | Pending::NewPath(_) if !status.is_success() => return,
        Pending::NewEndpoint(state, key, endpoint) => state.admit_endpoint(key, endpoint),
        Pending::NewPath(new) => {
            let host = host_of(&new.uri, new.host.as_ref());
            match new.state.admit_path(&new.method, host, new.uri.path()) {
                Some(collector) => collector,
                None => return,
            }
        }
    };
    count(&collector, status, session);
}

/// Counts a response on the request path: relaxed atomics, no allocation.
fn count(collector: &Collector, status: http::StatusCode, session: Option<Session>) {
    let shared = &collector.shared;
    let success = status.is_success();
    let now = if success {
        shared.clock.now()
    } else {
        Default::default()
    };
    let id = session.and_then(|s| s.id());
    let source_bit = match session.and_then(|s| s.source()) {
        Some(source) if success => shared.source_bit(source),
        _ => 0,
    };
    let Some(before) = collector.count(status.as_u16(), id, source_bit, now.as_secs()) else {
        return;
    };
    let endpoint = match collector.endpoint.get() {
        Some(endpoint) => *endpoint,
        None if before + 1 >= shared.report_after && collector.origin == Origin::Discovered => {
            *collector
                .endpoint
                .get_or_init(|| discovered_endpoint(collector))
        }
        None => return,
    };
    if shared.recorders.is_empty() {
        return;
    }
    let observation = Observation::new(endpoint, id, status, now);
    for recorder in &shared.recorders {
        recorder.record(&observation);
    }
}

/// The interned endpoint of a discovered template that reached the
/// reporting threshold; made once per template.
pub(crate) fn discovered_endpoint(collector: &Collector) -> Endpoint {
    let host = match &*collector.host {
        "*" => HostPattern::Any,
        host => HostPattern::parse(host).unwrap_or(HostPattern::Any),
    };
    Endpoint::new(collector.method.clone(), host, &collector.template)
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = match &self.pending {
            Pending::Nothing => "nothing",
            Pending::Known(_) => "known endpoint",
            Pending::NewEndpoint(..) => "new endpoint",
            Pending::NewPath(_) => "new path",
        };
        f.debug_struct("ResponseFuture")
            .field("pending", &pending)
            .finish_non_exhaustive()
    }
}
