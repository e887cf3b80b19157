//! A fixed number of requests through the bench's three stacks, for an
//! instruction count that a busy machine cannot disturb.
//!
//! ```text
//! cargo build --release --example limit_instructions
//! for n in 20000 70000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/limit_instructions shield $n
//! done
//! ```
//!
//! The first argument is `bare`, `session` or `shield` (header session and
//! one per-session rule, as in `benches/limit.rs`); the second the number of
//! requests, over 10,000 sessions. The difference of the totals of two runs
//! divided by the difference of their request counts is the instructions
//! per request, start-up excluded; the difference between stacks is the
//! cost of their layers (request building included equally in all three).

use std::num::NonZeroU32;

use axum::{Router, body::Body, routing::get};
use http::Request;
use palisade::{Identifier, Quota, Rule, SessionLayer, Shield};
use tower::{Layer, Service};

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

fn drive<S>(mut service: S, tokens: &[String], n: usize)
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..n {
        let request = Request::get("/users/7")
            .header("authorization", &tokens[i % tokens.len()])
            .body(Body::empty())
            .unwrap();
        std::hint::black_box(rt.block_on(service.call(request)).unwrap());
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let stack = args.next().unwrap_or_else(|| "shield".to_owned());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(70_000);
    let tokens: Vec<String> = (0..10_000)
        .map(|i| format!("Bearer token-{i:08}-abcdefghijklmnop"))
        .collect();
    let identifier = || Identifier::header("authorization").unwrap();

    match stack.as_str() {
        "bare" => drive(router(), &tokens, n),
        "session" => {
            let sessions = SessionLayer::builder()
                .identifier(identifier())
                .build()
                .unwrap();
            drive(sessions.layer(router()), &tokens, n);
        }
        "shield" => {
            // Never reached: every request takes the allowed path.
            let quota = Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap());
            let shield = Shield::builder()
                .without_auto_detect()
                .identifier(identifier())
                .rate_limit(Rule::builder("per-session", quota).build().unwrap())
                .build()
                .unwrap();
            drive(shield.layer(router()), &tokens, n);
        }
        other => panic!("unknown stack {other:?}: use bare, session or shield"),
    }
}
