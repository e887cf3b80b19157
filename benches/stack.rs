//! Per-request cost of the whole Shield over the bare router, and each
//! layer's share.
//!
//! Requests go through an axum `Router` in process (no socket), cycling
//! over 10,000 sessions, each with its own HS256 token, verified once
//! before timing starts (a repeated token, as real clients send). Each
//! case adds one layer to the one before, so the differences between
//! cases are the layers' shares:
//!
//! 1. `jwt`: JWT validation (cached verdict, claims into the extensions);
//! 2. `+session`: the session taken from the token's `sub` claim;
//! 3. `+limit`: one per-session rate limit rule (never refusing here);
//! 4. `+learn`: the learning layer (discovery, posture, recommendations,
//!    sequences);
//! 5. `full`: plus a sequence rule and auto-detection watching the traffic.
//!
//! The machine is shared, so each case times batches of the shielded and
//! of the bare router in alternation and reports the per-request
//! difference, which load shifts affect far less than two separate medians.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade::learn::{LearnLayer, SequenceRule};
use palisade::{AutoDetect, CountBy, Identifier, Quota, Rule, Shield, ShieldBuilder, TokenConfig};
use tower::{Layer, Service};

const SESSIONS: usize = 10_000;
const SECRET: &[u8; 32] = b"stack-bench-secret-of-32-bytes!!";
/// `SECRET` in base64url, as the JWKS carries it.
const SECRET_B64: &str = "c3RhY2stYmVuY2gtc2VjcmV0LW9mLTMyLWJ5dGVzISE";

fn router() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "ok" }))
        .route("/cart", get(|| async { "ok" }))
}

fn tokens() -> Vec<String> {
    let key = EncodingKey::from_secret(SECRET).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".to_owned());
    (0..SESSIONS)
        .map(|i| {
            let claims = serde_json::json!({ "sub": format!("user-{i}"), "exp": 4_000_000_000u64 });
            format!(
                "Bearer {}",
                jsonwebtoken::encode(&header, &claims, &key).unwrap()
            )
        })
        .collect()
}

fn base() -> ShieldBuilder {
    let jwks =
        format!(r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{SECRET_B64}"}}]}}"#);
    let config = TokenConfig::builder("auth")
        .header("authorization")
        .jwks_json(&jwks)
        .build()
        .unwrap();
    Shield::builder().token(config).without_auto_detect()
}

fn with_session(builder: ShieldBuilder) -> ShieldBuilder {
    builder.identifier(Identifier::claim("auth", "$.sub").unwrap())
}

fn with_limit(builder: ShieldBuilder) -> ShieldBuilder {
    let quota = Quota::per_second(NonZeroU32::new(1_000_000).unwrap());
    let rule = Rule::builder("per-session", quota)
        .count_by(CountBy::session())
        .build()
        .unwrap();
    builder.rate_limit(rule)
}

fn with_learning(builder: ShieldBuilder) -> ShieldBuilder {
    builder.learning(LearnLayer::builder())
}

fn full(builder: ShieldBuilder) -> ShieldBuilder {
    let rule = SequenceRule::allow("cart-first", "GET /cart", "GET /users/{id}").unwrap();
    builder.sequence_rule(rule).auto_detect(AutoDetect::new())
}

fn batch(tokens: &[String], from: usize, n: usize) -> Vec<Request<Body>> {
    (from..from + n)
        .map(|i| {
            Request::get("/users/7")
                .header("authorization", &tokens[i % SESSIONS])
                .body(Body::empty())
                .unwrap()
        })
        .collect()
}

/// Times the shielded and the bare router on alternating batches and
/// reports the difference per request.
fn run_overhead(c: &mut Criterion, name: &str, shield: Shield, tokens: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut layered = shield.layer(router());
    let mut bare = router();

    // Every token verified once, as a client's first request would.
    rt.block_on(async {
        for request in batch(tokens, 0, SESSIONS) {
            black_box(layered.call(request).await.unwrap());
        }
    });

    let mut next = 0;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
                let mut done = 0;
                while done < iters as usize {
                    let n = (iters as usize - done).min(500);
                    let one = batch(tokens, next, n);
                    let two = batch(tokens, next, n);
                    next = (next + n) % SESSIONS;
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
                // Floored at 1 ns: criterion refuses a zero sample.
                with.saturating_sub(without).max(Duration::from_nanos(1))
            })
        })
    });
}

/// A case's name and how to build its shield.
type Case = (&'static str, fn() -> ShieldBuilder);

fn bench(c: &mut Criterion) {
    let tokens = tokens();
    let cases: [Case; 5] = [
        ("stack/1_jwt", base),
        ("stack/2_+session", || with_session(base())),
        ("stack/3_+limit", || with_limit(with_session(base()))),
        ("stack/4_+learn", || {
            with_learning(with_limit(with_session(base())))
        }),
        ("stack/5_full", || {
            full(with_learning(with_limit(with_session(base()))))
        }),
    ];
    for (name, builder) in cases {
        run_overhead(c, name, builder().build().unwrap(), &tokens);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
