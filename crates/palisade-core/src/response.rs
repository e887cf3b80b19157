//! The response future of a layer that either calls the inner service or
//! answers by itself.
//!
//! The JWT and session layers answer a refused request with a problem
//! document instead of calling the application; their services share this
//! future and its response body, `Either<B, Full<Bytes>>`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

pin_project! {
    /// The response of a layer that may answer by itself: the inner
    /// service's, or a response the layer made.
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
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> ResponseFuture<F> {
    /// Waits for the inner service's response.
    pub fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    /// Answers with `response`, made by the layer.
    pub fn rejected(response: Response<Full<Bytes>>) -> Self {
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
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(Either::Left)))
            }
            KindProj::Rejected { response } => {
                let response = response.take().expect("future polled after completion");
                Poll::Ready(Ok(response.map(Either::Right)))
            }
        }
    }
}
