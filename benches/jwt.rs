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
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

fn run<S>(c: &mut Criterion, name: &str, mut svc: S, header: &str)
where
    S: Service<Request<Body>> + Send,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                // Requests are built in chunks outside the timed region.
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters as usize {
                    let n = (iters as usize - done).min(1_000);
                    let requests = batch(header, n);
                    let start = Instant::now();
                    for request in requests {
                        let response = svc.call(request).await.unwrap();
                        black_box(response);
                    }
                    total += start.elapsed();
                    done += n;
                }
                total
            })
        })
    });
}

fn batch(header: &str, n: usize) -> Vec<Request<Body>> {
    (0..n)
        .map(|_| {
            Request::get("/users/7")
                .header("authorization", header)
                .body(Body::empty())
                .unwrap()
        })
        .collect()
}

/// Times `layered` and `bare` on alternating batches; reports the
/// difference.
fn run_overhead<S, B>(c: &mut Criterion, name: &str, mut layered: S, mut bare: B, header: &str)
where
    S: Service<Request<Body>> + Send,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: Service<Request<Body>> + Send,
    B::Future: Send,
    B::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
                let mut done = 0;
                while done < iters as usize {
                    let n = (iters as usize - done).min(500);
                    let (one, two) = (batch(header, n), batch(header, n));
                    let start = Instant::now();
                    for request in one {
                        black_box(layered.call(request).await.unwrap());
                    }
                    with += start.elapsed();
                    let start = Instant::now();
                    for request in two {
                        black_box(bare.call(request).await.unwrap());
                    }
                    without += start.elapsed();
                    done += n;
                }
                // Floored at 1 ns per sample: criterion refuses a zero, and
                // under load a sample's bare batches can be the slower ones.
                with.saturating_sub(without).max(Duration::from_nanos(1))
            })
        })
    });
}

fn config(key: &support::TestKey) -> TokenConfig {
    TokenConfig::builder("bench")
        .header("authorization")
        .jwks(support::jwks(&[key]))
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    // Far-future expiry, so that the leaping clock never expires the token.
    let claims = serde_json::json!({
        "sub": "user-1234", "exp": 32_503_680_000u64, "iat": support::NOW,
        "iss": "https://id.example", "scope": "read write",
    });
    let es = support::key(Algorithm::ES256, "es");
    let es_header = format!("Bearer {}", support::sign(&es, &claims));

    run(c, "jwt/bare_router", router(), &es_header);
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::HS256,
        Algorithm::EdDSA,
    ] {
        let key = support::key(alg, "k");
        let header = format!("Bearer {}", support::sign(&key, &claims));
        let clock = ManualClock::new(Duration::from_secs(support::NOW));
        let repeated = JwtLayer::builder()
            .token(config(&key))
            .clock(clock.shared())
            .build()
            .unwrap();
        let first = JwtLayer::builder()
            .token(config(&key))
            .clock(Arc::new(Leaping(AtomicU64::new(support::NOW))))
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
        .jwt_clock(ManualClock::new(Duration::from_secs(support::NOW)).shared())
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
