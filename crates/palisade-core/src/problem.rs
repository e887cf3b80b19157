//! `application/problem+json` responses (RFC 9457).
//!
//! Every Palisade rejection answers with a problem document, so clients get
//! one shape whatever refused them. The body never repeats what the client
//! sent: a rejection explains, it does not echo a credential.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem document: what went wrong, in terms a client can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI reference naming the problem type; `about:blank` when the
    /// status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// An explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The name of the rule that refused the request, when a rule did: an
    /// extension member, so clients need not parse `detail` for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Problem {
    /// A problem with the given status, type URI and title.
    pub fn new(status: StatusCode, kind: &str, title: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            rule: None,
        }
    }

    /// Names the rule that refused the request.
    #[must_use]
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Adds an explanation specific to this occurrence.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The problem as a JSON body.
    pub fn to_bytes(&self) -> Bytes {
        // Serialising a struct of strings and a number cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The problem as a complete response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = Response::new(Full::new(self.to_bytes()));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_has_status_type_and_json_body() {
        let response = Problem::new(StatusCode::UNAUTHORIZED, "about:blank", "no session")
            .with_detail("send a session")
            .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body: serde_json::Value =
            serde_json::from_slice(&Problem::new(StatusCode::UNAUTHORIZED, "x", "y").to_bytes())
                .unwrap();
        assert_eq!(body["status"], 401);
        assert_eq!(body["type"], "x");
        assert!(body.get("detail").is_none());
        assert!(body.get("rule").is_none());
        let named = Problem::new(StatusCode::FORBIDDEN, "x", "y").with_rule("r1");
        let body: serde_json::Value = serde_json::from_slice(&named.to_bytes()).unwrap();
        assert_eq!(body["rule"], "r1");
    }
}
