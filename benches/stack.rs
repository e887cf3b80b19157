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

mod support;

use std::hint::black_box;
use std::num::NonZeroU32;

use axum::{Router, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
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

fn run_overhead(c: &mut Criterion, name: &str, shield: Shield, tokens: &[String]) {
    let rt = support::runtime();
    let mut layered = shield.layer(router());

    // Every token verified once, as a client's first request would.
    rt.block_on(async {
        for i in 0..SESSIONS {
            black_box(
                layered
                    .call(support::token_request(tokens, i))
                    .await
                    .unwrap(),
            );
        }
    });

    support::overhead(c, &rt, name, layered, router(), |i| {
        support::token_request(tokens, i)
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
