//! Per-request cost of the session layer over the bare router.
//!
//! Each case sends requests through an axum `Router` in process (no socket),
//! cycling over 10,000 distinct sessions, and reports the layer's overhead:
//! batches of the same requests go through the layered router and the bare
//! router in alternation, and the difference per request is what is timed. Cases: an `Authorization` header identifier,
//! and a `session` cookie inside a three-cookie field, and the session layer
//! with auto-detection watching the traffic (no identifier configured). The layer wraps the
//! router as a whole; a last case applies it with `Router::layer` instead.

mod support;

use std::hint::black_box;

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use palisade::{Identifier, SessionLayer};
use tower::{Layer, Service};

const SESSIONS: usize = 10_000;

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

fn run<S>(c: &mut Criterion, name: &str, layered: S, requests: impl Fn(usize) -> Request<Body>)
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    let rt = support::runtime();
    support::overhead(c, &rt, name, layered, router(), |i| requests(i % SESSIONS));
}

fn header_request(values: &[String]) -> impl Fn(usize) -> Request<Body> + '_ {
    move |i| {
        Request::get("/users/7")
            .header("authorization", &values[i])
            .body(Body::empty())
            .unwrap()
    }
}

fn bench(c: &mut Criterion) {
    let tokens: Vec<String> = (0..SESSIONS)
        .map(|i| format!("Bearer token-{i:08}-abcdefghijklmnop"))
        .collect();
    let cookies: Vec<String> = (0..SESSIONS)
        .map(|i| format!("theme=dark; session=s{i:08}abcdefghijkl; lang=en"))
        .collect();

    let header_layer = SessionLayer::builder()
        .identifier(Identifier::header("authorization").unwrap())
        .build()
        .unwrap();
    let cookie_layer = SessionLayer::builder()
        .identifier(Identifier::cookie("session").unwrap())
        .build()
        .unwrap();

    let cookie_request = |i: usize| {
        Request::get("/users/7")
            .header("cookie", &cookies[i])
            .body(Body::empty())
            .unwrap()
    };

    run(
        c,
        "session/control/bare_vs_bare",
        router(),
        header_request(&tokens),
    );
    run(
        c,
        "session/header/layer",
        header_layer.clone().layer(router()),
        header_request(&tokens),
    );
    run(
        c,
        "session/cookie/layer",
        cookie_layer.clone().layer(router()),
        cookie_request,
    );
    // Auto-detection on, no identifier configured yet: the session layer
    // plus the detector counting every 2xx response.
    let auto = palisade::AutoDetect::new();
    let auto_sessions = SessionLayer::builder().auto_detect(&auto).build().unwrap();
    run(
        c,
        "session/auto_detect/layer",
        auto_sessions.layer(auto.layer().layer(router())),
        header_request(&tokens),
    );

    // The lookup alone, without the router: identifier scan plus digest.
    let prebuilt: Vec<_> = (0..SESSIONS).map(cookie_request).collect();
    let mut i = 0;
    c.bench_function("session/cookie/identify_only", |b| {
        b.iter(|| {
            i = (i + 1) % SESSIONS;
            black_box(cookie_layer.identify(&prebuilt[i]))
        })
    });

    // The same layer applied with `Router::layer`, where axum boxes and
    // clones each route's service per request: the cost users of that style
    // pay, layer and wrapping together.
    run(
        c,
        "session/header/router_layer",
        router().layer(header_layer),
        header_request(&tokens),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
