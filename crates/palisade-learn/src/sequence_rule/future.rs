//! The response future of the sequence rule service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use http_body_util::{Either, Full};
use palisade_core::{Endpoint, SessionId};
use pin_project_lite::pin_project;

use super::layer::RuleConfig;

/// What to record when the inner service answers 2xx.
pub(crate) struct Pending {
    pub(crate) config: Arc<RuleConfig>,
    pub(crate) endpoint: Endpoint,
    pub(crate) session: Option<SessionId>,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("endpoint", &self.endpoint)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The response of [`SequenceRuleService`](super::SequenceRuleService):
    /// the inner service's, or a 403 made by the layer.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Inner { #[pin] future: F, pending: Option<Pending> },
        Rejected { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F, pending: Option<Pending>) -> Self {
        Self {
            kind: Kind::Inner { future, pending },
        }
    }

    pub(crate) fn rejected(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, pending } => {
                let response = ready!(future.poll(cx))?;
                // Only 2xx answers teach, as in the learning layer.
                if let Some(p) = pending.take()
                    && response.status().is_success()
                {
                    p.config.record(p.endpoint, p.session, response.status());
                }
                Poll::Ready(Ok(response.map(Either::Left)))
            }
            KindProj::Rejected { response } => {
                let response = response.take().expect("future polled after completion");
                Poll::Ready(Ok(response.map(Either::Right)))
            }
        }
    }
}
