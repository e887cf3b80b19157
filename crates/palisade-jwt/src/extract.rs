//! The axum extractor for verified claims.

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use palisade_core::VerifiedClaims;
use palisade_core::problem::Problem;
use serde::de::DeserializeOwned;

/// The claims of the request's verified token, deserialised into `T`.
///
/// Reads the [`VerifiedClaims`] the JWT layer put in the extensions: the
/// token of the first configuration (in the layer's order) that verified
/// one. With several configurations, read `VerifiedClaims` from the
/// extensions to pick one by id. As `Option<Claims<T>>`, a request without a
/// verified token gives `None` instead of a 401.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims<T>(pub T);

/// Why [`Claims`] could not be extracted.
#[derive(Debug)]
pub struct ClaimsRejection {
    shape: Option<String>,
}

impl ClaimsRejection {
    /// Whether a token was verified but its claims did not fit the type.
    pub fn is_shape_mismatch(&self) -> bool {
        self.shape.is_some()
    }
}

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shape {
            None => f.write_str("the request carries no verified token"),
            Some(e) => write!(f, "the token's claims do not have the expected shape: {e}"),
        }
    }
}

impl std::error::Error for ClaimsRejection {}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        let (kind, title) = match self.shape {
            None => ("token-required", "token required"),
            Some(_) => ("invalid-claims", "invalid claims"),
        };
        let problem = Problem::new(
            StatusCode::UNAUTHORIZED,
            &format!("https://palisade.invalid/problems/{kind}"),
            title,
        )
        .with_detail(self.to_string());
        let mut response = problem.into_response().map(axum::body::Body::new);
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

fn claims_of<T: DeserializeOwned>(parts: &Parts) -> Option<Result<T, ClaimsRejection>> {
    let verified = parts.extensions.get::<VerifiedClaims>()?;
    let config = verified.configs().next()?;
    let value = verified.get(config)?;
    Some(T::deserialize(value).map_err(|e| ClaimsRejection {
        shape: Some(e.to_string()),
    }))
}

impl<T, S> FromRequestParts<S> for Claims<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match claims_of(parts) {
            Some(result) => result.map(Claims),
            None => Err(ClaimsRejection { shape: None }),
        }
    }
}

impl<T, S> OptionalFromRequestParts<S> for Claims<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        claims_of(parts).transpose().map(|c| c.map(Claims))
    }
}
