//! The sequence rule service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use palisade_core::Session;
use palisade_core::problem::Problem;
use tower_service::Service;

use super::future::{Pending, ResponseFuture};
use super::layer::{RuleConfig, SequenceRuleViolation, blocks};
use super::rule::SequenceRule;

/// The stable tracing target of sequence rule decisions.
pub const TRACE_TARGET: &str = "palisade::sequence";

/// The problem type of a refusal by a sequence rule.
pub const PROBLEM_TYPE: &str = "https://palisade.invalid/problems/sequence-rule";

/// A service that enforces sequence rules and records histories; made by
/// [`SequenceRuleLayer`](super::SequenceRuleLayer).
#[derive(Clone)]
pub struct SequenceRuleService<S> {
    inner: S,
    config: Arc<RuleConfig>,
}

impl<S> SequenceRuleService<S> {
    pub(crate) fn new(inner: S, config: Arc<RuleConfig>) -> Self {
        Self { inner, config }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SequenceRuleService<S>
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
        if !self.config.active {
            return ResponseFuture::inner(self.inner.call(request), None);
        }
        let Some(endpoint) = self.config.endpoint_of(&mut request) else {
            return ResponseFuture::inner(self.inner.call(request), None);
        };
        let session = request.extensions().get::<Session>().and_then(Session::id);

        if let Some(rule) = self.config.check(endpoint, session) {
            // Formatted only when the event is enabled.
            let shown = ShownSession(session);
            if blocks(rule) {
                tracing::debug!(
                    target: TRACE_TARGET,
                    rule = rule.name(),
                    endpoint = %endpoint,
                    session = %shown,
                    "request refused"
                );
                return ResponseFuture::rejected(refusal(rule));
            }
            tracing::debug!(
                target: TRACE_TARGET,
                rule = rule.name(),
                endpoint = %endpoint,
                session = %shown,
                "request would be refused (log only)"
            );
        }
        let pending = Pending {
            config: self.config.clone(),
            endpoint,
            session,
        };
        ResponseFuture::inner(self.inner.call(request), Some(pending))
    }
}

impl<S: fmt::Debug> fmt::Debug for SequenceRuleService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceRuleService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// A session as a log field: its digest, or `anonymous`.
struct ShownSession(Option<palisade_core::SessionId>);

impl fmt::Display for ShownSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => fmt::Display::fmt(&id, f),
            None => f.write_str("anonymous"),
        }
    }
}

fn refusal(rule: &SequenceRule) -> Response<Full<Bytes>> {
    let problem = Problem::new(
        StatusCode::FORBIDDEN,
        PROBLEM_TYPE,
        "refused by a sequence rule",
    )
    .with_detail(rule.explain())
    .with_rule(rule.name());
    let mut response = problem.into_response();
    response
        .extensions_mut()
        .insert(SequenceRuleViolation::new(rule));
    response
}
