//! Per-request cost of learning rates and sequences, and of sequence rules,
//! over the bare router.
//!
//! Each case sends requests through an axum `Router` in process (no socket),
//! cycling over 10,000 distinct sessions and three endpoints (`/users/{id}`,
//! `/cart`, `/checkout`), so histories change on most requests. The
//! `Session` is put in the request's extensions when the request is built,
//! outside the timed region, as the session layer would: only the layer
//! under test is measured. The baseline is the same router without the
//! layer, in the same run; the cost is the difference of the medians.
//!
//! - `record`: the sequence layer with no rules, recording each 2xx answer
//!   into a `SequenceTracker` and a `RateRecommender`.
//! - `rules`: the same, plus two sequence rules on `/checkout` and `/cart`
//!   (log action, so every request reaches the router).
//! - `record_only`: the two `record` calls alone, without router or layer.
//!
//! The machine is shared, so load moves between cases; the `*_overhead`
//! cases time batches of the layered router and of the bare router in
//! alternation and report the per-request difference, which load shifts
//! affect far less than two separate medians.

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use palisade::learn::{Observation, Recorder, SequenceRuleLayer};
use palisade::{
    EndpointCatalogue, RateRecommender, RuleAction, SequenceRule, SequenceTracker, Session,
    SessionId, SessionSource,
};
use tower::{Layer, Service};

const SESSIONS: usize = 10_000;
const PATHS: [&str; 3] = ["/users/7", "/cart", "/checkout"];

fn router() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "ok" }))
        .route("/cart", get(|| async { "ok" }))
        .route("/checkout", get(|| async { "ok" }))
}

fn catalogue() -> EndpointCatalogue {
    EndpointCatalogue::builder()
        .endpoint("GET", "/users/{id}")
        .and_then(|c| c.endpoint("GET", "/cart"))
        .and_then(|c| c.endpoint("GET", "/checkout"))
        .and_then(|c| c.build())
        .unwrap()
}

fn request(i: usize) -> Request<Body> {
    let session = i % SESSIONS;
    // Each pass over the sessions moves every session to its next path.
    let path = PATHS[(session + i / SESSIONS) % PATHS.len()];
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    request.extensions_mut().insert(Session::identified(
        SessionId::from_u128(session as u128 * 0x9e37_79b9_7f4a_7c15 + 1),
        SessionSource::header("authorization"),
    ));
    request
}

fn run<S>(c: &mut Criterion, name: &str, svc: S)
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    support::median(c, &support::runtime(), name, svc, request);
}

fn run_overhead<S>(c: &mut Criterion, name: &str, layered: S)
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    let rt = support::runtime();
    support::overhead(c, &rt, name, layered, router(), request);
}

fn recording_layer(rules: &[SequenceRule]) -> SequenceRuleLayer {
    let mut builder = SequenceRuleLayer::builder()
        .tracker(SequenceTracker::new())
        .recorder(Arc::new(RateRecommender::new()))
        .catalogue(catalogue());
    for rule in rules {
        builder = builder.rule(rule.clone());
    }
    builder.build().unwrap()
}

struct Noop;

impl Recorder for Noop {
    fn record(&self, observation: &Observation) {
        black_box(observation);
    }
}

fn bench(c: &mut Criterion) {
    let rules = [
        SequenceRule::allow("checkout-after-cart", "GET /cart", "GET /checkout")
            .unwrap()
            .action(RuleAction::Log),
        SequenceRule::block("no-cart-after-checkout", "GET /checkout", "GET /cart")
            .unwrap()
            .action(RuleAction::Log)
            .priority(1),
    ];

    run(c, "sequence/bare_router", router());
    // The layer's own work (endpoint, session, future) with a recorder
    // that does nothing: the rest of `record` is the collectors.
    let noop = SequenceRuleLayer::builder()
        .recorder(Arc::new(Noop))
        .catalogue(catalogue())
        .build()
        .unwrap();
    run(c, "sequence/layer_noop", noop.layer(router()));
    run(c, "sequence/record", recording_layer(&[]).layer(router()));
    run(c, "sequence/rules", recording_layer(&rules).layer(router()));
    let noop = SequenceRuleLayer::builder()
        .recorder(Arc::new(Noop))
        .catalogue(catalogue())
        .build()
        .unwrap();
    run_overhead(c, "sequence/layer_noop_overhead", noop.layer(router()));
    run_overhead(
        c,
        "sequence/record_overhead",
        recording_layer(&[]).layer(router()),
    );
    run_overhead(
        c,
        "sequence/rules_overhead",
        recording_layer(&rules).layer(router()),
    );

    // The two collectors alone, fed prepared observations.
    let tracker = SequenceTracker::new();
    let rates = RateRecommender::new();
    let endpoints = catalogue().endpoints().to_vec();
    let start = palisade::SystemClock::shared().now();
    let observations: Vec<_> = (0..SESSIONS * 3)
        .map(|i| Observation {
            endpoint: endpoints[(i % SESSIONS + i / SESSIONS) % 3],
            session: Some(SessionId::from_u128((i % SESSIONS) as u128 + 1)),
            status: http::StatusCode::OK,
            at: start + Duration::from_millis(i as u64),
        })
        .collect();
    let mut i = 0;
    c.bench_function("sequence/record_only", |b| {
        b.iter(|| {
            i = (i + 1) % observations.len();
            tracker.record(&observations[i]);
            rates.record(&observations[i]);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
