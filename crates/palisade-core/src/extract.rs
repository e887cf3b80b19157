//! axum extractors for [`Session`].

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::problem::Problem;
use crate::session::Session;

/// The rejection of the `Session` extractor: the request has no session.
///
/// Answers 401 with a problem document. It happens when the request carried
/// none of the configured identifiers, or when no session layer ran.
#[derive(Debug)]
pub struct SessionRejection {
    layer_missing: bool,
}

impl SessionRejection {
    /// Whether the rejection came from a missing session layer (a wiring
    /// mistake) rather than an anonymous request.
    pub fn layer_missing(&self) -> bool {
        self.layer_missing
    }
}

impl fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.layer_missing {
            f.write_str("no session layer ran for this request")
        } else {
            f.write_str("the request carries no session")
        }
    }
}

impl std::error::Error for SessionRejection {}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        if self.layer_missing {
            // A server-side wiring mistake, not the client's fault.
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "about:blank",
                "session layer missing",
            )
            .into_response()
            .into_response();
        }
        Problem::new(StatusCode::UNAUTHORIZED, "about:blank", "session required")
            .with_detail("the request carries none of the session identifiers this API accepts")
            .into_response()
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Session>() {
            Some(session) if !session.is_anonymous() => Ok(*session),
            Some(_) => Err(SessionRejection {
                layer_missing: false,
            }),
            None => Err(SessionRejection {
                layer_missing: true,
            }),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<Session>() {
            Some(session) if !session.is_anonymous() => Ok(Some(*session)),
            Some(_) => Ok(None),
            None => Err(SessionRejection {
                layer_missing: true,
            }),
        }
    }
}
