//! The response future of the rate limit service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

use crate::service::Report;

/// What to do once a networked store has answered.
pub(crate) enum Next<F> {
    Call(F, Option<Report>),
    Refused(Response<Full<Bytes>>),
}

type Deciding<F> = Pin<Box<dyn Future<Output = Next<F>> + Send>>;

pin_project! {
    /// The response of [`RateLimit`](crate::RateLimit): the inner
    /// service's with the rate limit fields, or a 429 made by the layer.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F, report: Option<Report> },
        Refused { response: Option<Response<Full<Bytes>>> },
        // Only a networked store that did not answer at once gets here.
        Waiting { deciding: Deciding<F> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F, report: Option<Report>) -> Self {
        Self {
            kind: Kind::Inner { future, report },
        }
    }

    pub(crate) fn refused(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }

    pub(crate) fn waiting(deciding: Deciding<F>) -> Self {
        Self {
            kind: Kind::Waiting { deciding },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().kind.project() {
                KindProj::Inner { future, report } => {
                    let mut response = ready!(future.poll(cx))?.map(Either::Left);
                    if let Some(report) = report.take() {
                        report.add_fields(response.headers_mut());
                        response.extensions_mut().insert(report.decision);
                    }
                    return Poll::Ready(Ok(response));
                }
                KindProj::Refused { response } => {
                    let response = response.take().expect("future polled after completion");
                    return Poll::Ready(Ok(response.map(Either::Right)));
                }
                KindProj::Waiting { deciding } => match ready!(deciding.as_mut().poll(cx)) {
                    Next::Call(future, report) => {
                        self.as_mut()
                            .project()
                            .kind
                            .set(Kind::Inner { future, report });
                    }
                    Next::Refused(response) => {
                        self.as_mut().project().kind.set(Kind::Refused {
                            response: Some(response),
                        });
                    }
                },
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Refused { .. } => "refused",
            Kind::Waiting { .. } => "waiting for the store",
        };
        f.debug_tuple("ResponseFuture").field(&state).finish()
    }
}
