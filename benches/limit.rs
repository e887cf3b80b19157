//! Per-request cost of rate limiting over the bare router, on one and on
//! two threads.
//!
//! Each case sends requests through an axum `Router` in process (no socket),
//! cycling over 10,000 distinct `Authorization` sessions. The shield holds
//! a header session identifier and one per-session rule whose quota is never
//! reached, so every request takes the common path: identify, check, add
//! the `RateLimit` fields. Baselines in the same run: the bare router, and
//! the session layer alone. The layers wrap the router as a whole.
//!
//! Two-thread cases run two OS threads, each driving its own clone of the
//! service on its own single-thread runtime; clones share the rules and the
//! store. The time reported is wall time per request over both threads, so
//! the throughput ratio is the one-thread median over the two-thread one.

mod support;

use std::hint::black_box;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use palisade::limit::store::{CounterSpec, RateLimitStore};
use palisade::{Identifier, Quota, Rule, SessionLayer, Shield};
use tower::{Layer, Service};

const SESSIONS: usize = 10_000;
const BATCH: usize = 1_000;

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

fn one_thread<S>(c: &mut Criterion, name: &str, svc: S, tokens: &[String])
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    let rt = support::runtime();
    support::median(c, &rt, name, svc, |i| support::token_request(tokens, i));
}

fn two_threads<S>(c: &mut Criterion, name: &str, svc: S, tokens: &[String])
where
    S: Service<Request<Body>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            // Each thread sends half; both start and stop each batch together.
            let per_thread = (iters as usize).div_ceil(2);
            let barrier = Barrier::new(2);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..2)
                    .map(|t| {
                        let mut svc = svc.clone();
                        let barrier = &barrier;
                        s.spawn(move || {
                            let rt = support::runtime();
                            let mut total = Duration::ZERO;
                            let mut done = 0;
                            while done < per_thread {
                                let n = (per_thread - done).min(BATCH);
                                // Threads take different sessions.
                                let from = done + t * SESSIONS / 2;
                                let requests: Vec<_> = (from..from + n)
                                    .map(|i| support::token_request(tokens, i))
                                    .collect();
                                barrier.wait();
                                let start = Instant::now();
                                rt.block_on(async {
                                    for request in requests {
                                        black_box(svc.call(request).await.unwrap());
                                    }
                                });
                                barrier.wait();
                                total += start.elapsed();
                                done += n;
                            }
                            total
                        })
                    })
                    .collect();
                let totals: Vec<Duration> =
                    handles.into_iter().map(|h| h.join().unwrap()).collect();
                // Wall time of the timed windows, scaled to `iters` requests.
                let wall = totals.into_iter().max().unwrap_or_default();
                wall.mul_f64(iters as f64 / (2 * per_thread) as f64)
            })
        })
    });
}

fn bench(c: &mut Criterion) {
    let tokens: Vec<String> = (0..SESSIONS)
        .map(|i| format!("Bearer token-{i:08}-abcdefghijklmnop"))
        .collect();
    let identifier = || Identifier::header("authorization").unwrap();
    let sessions = SessionLayer::builder()
        .identifier(identifier())
        .build()
        .unwrap();
    // Never reached: every request takes the allowed path.
    let quota = Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap());
    // Auto-detection off: this measures sessions plus rate limiting.
    let shield = Shield::builder()
        .without_auto_detect()
        .identifier(identifier())
        .rate_limit(Rule::builder("per-session", quota).build().unwrap())
        .build()
        .unwrap();

    one_thread(c, "limit/bare_router/1thread", router(), &tokens);
    one_thread(
        c,
        "limit/session_only/1thread",
        sessions.clone().layer(router()),
        &tokens,
    );
    one_thread(c, "limit/shield/1thread", shield.layer(router()), &tokens);
    // The store alone: one check of a warm key among 10,000, no HTTP.
    let store = palisade::MemoryStore::default();
    let quotas = [quota];
    let spec = CounterSpec::new("alone", &quotas, None, NonZeroUsize::new(100_000).unwrap());
    let counter = store.counter(&spec).unwrap();
    let mut i = 0u128;
    c.bench_function("limit/store_check_only", |b| {
        b.iter(|| {
            i = (i + 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) % (1 << 127);
            black_box(store.check(&counter, i % 10_000 * 0x1_0000_0001_0000_0001, 0))
        })
    });

    two_threads(c, "limit/bare_router/2threads", router(), &tokens);
    two_threads(
        c,
        "limit/session_only/2threads",
        sessions.layer(router()),
        &tokens,
    );
    two_threads(c, "limit/shield/2threads", shield.layer(router()), &tokens);
}

criterion_group!(benches, bench);
criterion_main!(benches);
