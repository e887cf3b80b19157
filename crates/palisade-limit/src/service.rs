//! The rate limit service: check the rules, then pass or refuse.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{HOST, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use palisade_core::problem::Problem;
use palisade_core::{Endpoint, RateLimitDecision, RateLimitOutcome, Session, SessionId};
use tower_service::Service;

use crate::future::{Next, ResponseFuture};
use crate::key::RequestView;
use crate::layer::{Compiled, RuleSet, Shared};
use crate::rule::{Action, ceil_secs};
use crate::store::{RateLimitStore, StoreError, Verdict};

/// The stable tracing target of refusals, shadow hits and store errors.
pub const TRACE_TARGET: &str = "palisade::limit";

/// The `RateLimit-Policy` field name.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The `RateLimit` field name.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A service that checks requests against rate limit rules; made by
/// [`RateLimitLayer`](crate::RateLimitLayer).
pub struct RateLimit<S, St: RateLimitStore> {
    inner: S,
    shared: Arc<Shared<St>>,
    rules: Arc<RuleSet<St>>,
    generation: u64,
}

impl<S, St: RateLimitStore> RateLimit<S, St> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St>>) -> Self {
        let generation = shared.generation.load(Ordering::Acquire);
        let rules = shared.rules();
        Self {
            inner,
            shared,
            rules,
            generation,
        }
    }

    /// Picks up replaced rules.
    fn refresh(&mut self) {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.rules = self.shared.rules();
            self.generation = generation;
        }
    }
}

impl<S: Clone, St: RateLimitStore> Clone for RateLimit<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            rules: self.rules.clone(),
            generation: self.generation,
        }
    }
}

impl<S: fmt::Debug, St: RateLimitStore> fmt::Debug for RateLimit<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("rules", &self.rules.rules.len())
            .finish_non_exhaustive()
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    St: RateLimitStore,
    ReqBody: Send + 'static,
{
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        self.refresh();
        if self.rules.rules.is_empty() {
            return ResponseFuture::inner(self.inner.call(request), None);
        }

        // Resolved once and left in the extensions for the layers inside;
        // skipped when no rule reads it (they resolve it themselves).
        let endpoint = if self.rules.needs_endpoint {
            self.shared.catalogue.endpoint_of(&mut request)
        } else {
            request.extensions().get::<Endpoint>().copied()
        };
        let mut evaluation = Evaluation::new(&request);
        let mut pending = Vec::new();
        {
            let view = RequestView {
                headers: request.headers(),
                extensions: request.extensions(),
                uri: request.uri(),
                endpoint,
                proxies: &self.shared.proxies,
            };
            let host = if self.rules.needs_host {
                request_host(&request)
            } else {
                None
            };
            let mut cx = Context::from_waker(Waker::noop());
            for (index, compiled) in self.rules.rules.iter().enumerate() {
                let rule = &compiled.rule;
                if !rule.applies(endpoint, host) {
                    continue;
                }
                let Some(key) = rule.key(&view, &self.shared.key) else {
                    continue;
                };
                let tier = rule.tier(&view);
                // The in-memory store answers on this first poll; only a
                // networked store's answer may have to be waited for.
                let mut check = self.shared.store.check(&compiled.counter, key, tier);
                match Pin::new(&mut check).poll(&mut cx) {
                    Poll::Ready(result) => evaluation.record(compiled, tier, result),
                    Poll::Pending => pending.push((index, tier, check)),
                }
            }
        }

        if !evaluation.hits.is_empty() {
            // Only refusals are logged, so only they pay for the endpoint.
            let endpoint = endpoint.or_else(|| self.shared.catalogue.endpoint_of(&mut request));
            evaluation.log(endpoint);
        }

        if pending.is_empty() {
            // Decided here and now: the request is not moved until the call.
            return match evaluation.report() {
                None => ResponseFuture::inner(self.inner.call(request), None),
                Some(report) if report.decision.outcome == RateLimitOutcome::Refused => {
                    ResponseFuture::refused(refusal(&self.shared, &report))
                }
                Some(report) => {
                    request.extensions_mut().insert(report.decision);
                    ResponseFuture::inner(self.inner.call(request), Some(report))
                }
            };
        }

        // Keep the service that was made ready for this request; leave a
        // clone for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let rules = self.rules.clone();
        ResponseFuture::waiting(Box::pin(async move {
            // The hits of the first poll were logged already.
            evaluation.hits.clear();
            for (index, tier, check) in pending {
                let result = check.await;
                evaluation.record(&rules.rules[index], tier, result);
            }
            if !evaluation.hits.is_empty() {
                let endpoint = shared.catalogue.endpoint_of(&mut request);
                evaluation.log(endpoint);
            }
            match evaluation.next(&shared, request) {
                Decided::Call(request, report) => Next::Call(inner.call(request), report),
                Decided::Refused(response) => Next::Refused(response),
            }
        }))
    }
}

enum Decided<B> {
    Call(Request<B>, Option<Report>),
    Refused(Response<Full<Bytes>>),
}

/// The decision to report, with its rule's `RateLimit-Policy` member.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    pub(crate) decision: RateLimitDecision,
    pub(crate) policy: HeaderValue,
}

impl Report {
    /// Adds `RateLimit-Policy` and `RateLimit`, unless present.
    pub(crate) fn add_fields(&self, headers: &mut HeaderMap) {
        headers
            .entry(RATELIMIT_POLICY)
            .or_insert_with(|| self.policy.clone());
        if let http::header::Entry::Vacant(slot) = headers.entry(RATELIMIT) {
            // Written by hand: this runs on every limited response, and
            // `format!` costs more than the rest of the layer.
            let d = &self.decision;
            let reset = d.reset.as_secs() + u64::from(d.reset.subsec_nanos() > 0);
            let mut buf = [0u8; 128];
            let mut len = 0;
            for part in [b"\"".as_slice(), d.rule.as_bytes(), b"\";r="] {
                buf[len..len + part.len()].copy_from_slice(part);
                len += part.len();
            }
            len += write_u64(&mut buf[len..], u64::from(d.remaining));
            buf[len..len + 3].copy_from_slice(b";t=");
            len += 3;
            len += write_u64(&mut buf[len..], reset);
            if let Ok(value) = HeaderValue::from_bytes(&buf[..len]) {
                slot.insert(value);
            }
        }
    }
}

/// Writes `n` in decimal at the start of `out` (at least 20 bytes) and
/// returns its length.
fn write_u64(out: &mut [u8], mut n: u64) -> usize {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out[..len].copy_from_slice(&digits[i..]);
    len
}

/// The answers of the matching rules, folded into one decision.
struct Evaluation {
    session: Option<SessionId>,
    /// Refusals and shadow hits, to be logged.
    hits: Vec<RateLimitDecision>,
    refused: Option<Report>,
    shadowed: Option<Report>,
    /// The allowed rule with the least of its burst left, as a fraction.
    closest: Option<(f64, Report)>,
}

impl Evaluation {
    fn new<B>(request: &Request<B>) -> Self {
        Self {
            session: request.extensions().get::<Session>().and_then(Session::id),
            hits: Vec::new(),
            refused: None,
            shadowed: None,
            closest: None,
        }
    }

    fn record<St: RateLimitStore>(
        &mut self,
        compiled: &Compiled<St>,
        tier: usize,
        result: Result<Verdict, StoreError>,
    ) {
        let rule = &compiled.rule;
        let verdict = match result {
            Ok(verdict) => verdict,
            Err(error) => return store_failed(rule.name, &error),
        };
        let tier = tier.min(rule.quotas.len() - 1);
        let quota = rule.quotas[tier];
        let outcome = match (verdict.allowed, rule.action) {
            (true, _) => RateLimitOutcome::Allowed,
            (false, Action::Block) => RateLimitOutcome::Refused,
            (false, Action::Log) => RateLimitOutcome::Shadowed,
        };
        let mut decision =
            RateLimitDecision::new(rule.name, outcome, quota.requests().get(), quota.period());
        decision.remaining = verdict.remaining;
        decision.reset = verdict.reset;
        decision.retry_after = verdict.retry_after;
        let report = Report {
            decision,
            policy: rule.policies[tier].clone(),
        };

        match outcome {
            RateLimitOutcome::Allowed => {
                let left = f64::from(verdict.remaining) / f64::from(quota.burst().get());
                if self
                    .closest
                    .as_ref()
                    .is_none_or(|(closest, _)| left < *closest)
                {
                    self.closest = Some((left, report));
                }
            }
            _ => {
                self.hits.push(decision);
                let slot = if outcome == RateLimitOutcome::Refused {
                    &mut self.refused
                } else {
                    &mut self.shadowed
                };
                slot.get_or_insert(report);
            }
        }
    }

    fn log(&self, endpoint: Option<Endpoint>) {
        for decision in &self.hits {
            let endpoint = endpoint.map(tracing::field::display);
            let session = self.session.map(tracing::field::display);
            tracing::debug!(
                target: TRACE_TARGET,
                rule = decision.rule,
                outcome = %decision.outcome,
                endpoint,
                session,
                retry_after_ms = decision.retry_after.as_millis() as u64,
                "rate limit exceeded"
            );
        }
    }

    fn report(self) -> Option<Report> {
        self.refused
            .or(self.shadowed)
            .or(self.closest.map(|(_, report)| report))
    }

    fn next<B, St: RateLimitStore>(
        self,
        shared: &Shared<St>,
        mut request: Request<B>,
    ) -> Decided<B> {
        match self.report() {
            None => Decided::Call(request, None),
            Some(report) if report.decision.outcome == RateLimitOutcome::Refused => {
                Decided::Refused(refusal(shared, &report))
            }
            Some(report) => {
                request.extensions_mut().insert(report.decision);
                Decided::Call(request, Some(report))
            }
        }
    }
}

/// Logs a store failure: the first, then one in a thousand.
fn store_failed(rule: &str, error: &StoreError) {
    static FAILURES: AtomicU64 = AtomicU64::new(0);
    let n = FAILURES.fetch_add(1, Ordering::Relaxed);
    if n.is_multiple_of(1000) {
        tracing::warn!(
            target: TRACE_TARGET,
            rule,
            %error,
            failures = n + 1,
            "rate limit store failed; request let through"
        );
    }
}

/// The 429 response: the user's, or a problem document naming the rule.
fn refusal<St: RateLimitStore>(shared: &Shared<St>, report: &Report) -> Response<Full<Bytes>> {
    let d = &report.decision;
    let mut response = match &shared.refusal {
        Some(make) => make(d),
        None => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "https://palisade.invalid/problems/rate-limited",
            "too many requests",
        )
        .with_detail(format!(
            "rule \"{}\" allows {} requests per {} s; retry after {} s",
            d.rule,
            d.limit,
            ceil_secs(d.window),
            ceil_secs(d.retry_after)
        ))
        .with_rule(d.rule)
        .into_response(),
    };
    let headers = response.headers_mut();
    if !headers.contains_key(RETRY_AFTER) {
        headers.insert(RETRY_AFTER, HeaderValue::from(ceil_secs(d.retry_after)));
    }
    report.add_fields(headers);
    response.extensions_mut().insert(*d);
    response
}

/// The host a request was sent to, without port.
fn request_host<B>(request: &Request<B>) -> Option<&str> {
    let host = match request.uri().host() {
        Some(host) => host,
        None => request.headers().get(HOST)?.to_str().ok()?,
    };
    // An IPv6 literal keeps its brackets; only a trailing `:digits` goes.
    Some(match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            if name.starts_with('[') && !name.ends_with(']') {
                host
            } else {
                name
            }
        }
        _ => host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fields_are_written_as_structured_fields() {
        let mut decision = RateLimitDecision::new(
            "per-session",
            RateLimitOutcome::Allowed,
            100,
            Duration::from_secs(60),
        );
        decision.remaining = 4_294_967_295;
        decision.reset = Duration::from_millis(10_001);
        let report = Report {
            decision,
            policy: HeaderValue::from_static("\"per-session\";q=100;w=60"),
        };
        let mut headers = HeaderMap::new();
        report.add_fields(&mut headers);
        assert_eq!(headers[RATELIMIT], "\"per-session\";r=4294967295;t=11");
        assert_eq!(headers[RATELIMIT_POLICY], "\"per-session\";q=100;w=60");

        // Fields the application set are kept.
        let mut headers = HeaderMap::new();
        headers.insert(RATELIMIT, HeaderValue::from_static("\"app\";r=1;t=1"));
        report.add_fields(&mut headers);
        assert_eq!(headers[RATELIMIT], "\"app\";r=1;t=1");
        let mut digits = [0; 20];
        let len = write_u64(&mut digits, 0);
        assert_eq!(&digits[..len], b"0");
        let len = write_u64(&mut digits, u64::MAX);
        assert_eq!(&digits[..len], b"18446744073709551615");
    }
}
