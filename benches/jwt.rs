//! Per-request cost of the JWT layer over the bare router.
//!
//! Each case sends requests with `Authorization: Bearer <token>` through an
//! axum `Router` in process (no socket); the baseline is the same router
//! without the layer, with the same header, measured in the same run. The
//! cost of the layer is the difference of the medians. For RS256, ES256,
//! HS256 and EdDSA:
//!
//! - `repeated`: the same token on every request, so after the first one
//!   each costs a keyed hash of the token and a cache lookup;
//! - `first`: a clock that jumps an hour on every reading makes every
//!   cached verdict stale, so each request pays a full verification (header
//!   and payload decoding, signature check, claims) and a cache insert, as
//!   the first request with a token does.
//!
//! A last case runs the whole `Shield` with the session taken from the
//! token's `sub` claim, repeated ES256 token.
//!
//! The machine is shared, so load moves between cases; the `overhead`
//! cases time batches of the layered router and of the bare router in
//! alternation and report the per-request difference, which load shifts
//! affect far less than two separate medians.

#[path = "../crates/palisade-jwt/tests/support/mod.rs"]
mod keys;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jsonwebtoken::Algorithm;
use palisade::core::Clock;
use palisade::{Identifier, JwtLayer, ManualClock, Shield, TokenConfig};
use tower::{Layer, Service};

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

/// A clock that moves an hour forward every time it is read.
#[derive(Debug)]
struct Leaping(AtomicU64);

impl Clock for Leaping {
    fn now(&self) -> Duration {
        Duration::from_secs(self.0.fetch_add(3600, Ordering::Relaxed))
    }
}

fn run<S>(c: &mut Criterion, name: &str, svc: S, header: &str)
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    support::median(c, &support::runtime(), name, svc, |_| request(header));
}

fn request(header: &str) -> Request<Body> {
    Request::get("/users/7")
        .header("authorization", header)
        .body(Body::empty())
        .unwrap()
}

fn run_overhead<S, B>(c: &mut Criterion, name: &str, layered: S, bare: B, header: &str)
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
    B: Service<Request<Body>>,
    B::Error: std::fmt::Debug,
{
    let rt = support::runtime();
    support::overhead(c, &rt, name, layered, bare, |_| request(header));
}

fn config(key: &keys::TestKey) -> TokenConfig {
    TokenConfig::builder("bench")
        .header("authorization")
        .jwks(keys::jwks(&[key]))
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    // Far-future expiry, so that the leaping clock never expires the token.
    let claims = serde_json::json!({
        "sub": "user-1234", "exp": 32_503_680_000u64, "iat": keys::NOW,
        "iss": "https://id.example", "scope": "read write",
    });
    let es = keys::key(Algorithm::ES256, "es");
    let es_header = format!("Bearer {}", keys::sign(&es, &claims));

    run(c, "jwt/bare_router", router(), &es_header);
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::HS256,
        Algorithm::EdDSA,
    ] {
        let key = keys::key(alg, "k");
        let header = format!("Bearer {}", keys::sign(&key, &claims));
        let clock = ManualClock::new(Duration::from_secs(keys::NOW));
        let repeated = JwtLayer::builder()
            .token(config(&key))
            .clock(clock.shared())
            .build()
            .unwrap();
        let first = JwtLayer::builder()
            .token(config(&key))
            .clock(Arc::new(Leaping(AtomicU64::new(keys::NOW))))
            .build()
            .unwrap();
        run(
            c,
            &format!("jwt/{alg:?}/repeated"),
            repeated.clone().layer(router()),
            &header,
        );
        run_overhead(
            c,
            &format!("jwt/{alg:?}/repeated_overhead"),
            repeated.layer(router()),
            router(),
            &header,
        );
        run(
            c,
            &format!("jwt/{alg:?}/first"),
            first.layer(router()),
            &header,
        );
    }

    let shield = Shield::builder()
        .token(config(&es))
        .jwt_clock(ManualClock::new(Duration::from_secs(keys::NOW)).shared())
        .identifier(Identifier::claim("bench", "$.sub").unwrap())
        .build()
        .unwrap();
    run(
        c,
        "jwt/ES256/shield_claim_session",
        shield.clone().layer(router()),
        &es_header,
    );
    run_overhead(
        c,
        "jwt/ES256/shield_claim_session_overhead",
        shield.layer(router()),
        router(),
        &es_header,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
