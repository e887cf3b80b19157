//! Per-request cost of the Redis rate limit store on loopback, beside the
//! in-memory store and the bare router, in one run.
//!
//! The bench starts its own `redis-server` on a free port. Each case sends
//! requests through an axum `Router` in process (no HTTP socket; the only
//! socket is the one to Redis), on one thread, cycling over 10,000 distinct
//! `Authorization` sessions, with the shield wrapping the router as a whole:
//!
//! - `bare_router`: the router alone, the baseline;
//! - `memory/allowed` and `redis/allowed`: one per-session rule whose quota
//!   is never reached, so every request is checked and let through; with
//!   Redis, each request is one `EVALSHA` round trip;
//! - `memory/refused` and `redis/deny_cache`: a quota of one per hour that
//!   every session used up before timing, so every request is refused with
//!   429; with Redis, each refusal comes from the local deny cache.
//!
//! Requests are sent one after the other, so the Redis figures are
//! latencies, not the throughput of many concurrent requests sharing the
//! multiplexed connection.

mod support;

use std::net::{TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use palisade::{
    FailurePolicy, Identifier, Quota, RedisConfig, RedisStore, Rule, SessionKey, Shield,
};
use tokio::runtime::Runtime;
use tower::{Layer, Service};

const SESSIONS: usize = 10_000;

/// The bench's `redis-server`, stopped on drop.
struct OwnRedis(Child, u16);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> OwnRedis {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    OwnRedis(child, port)
}

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

fn one_thread<S>(c: &mut Criterion, rt: &Runtime, name: &str, svc: S, tokens: &[String])
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    support::median(c, rt, name, svc, |i| support::token_request(tokens, i));
}

fn shield(quota: Quota, redis: Option<RedisStore>) -> Shield {
    let mut builder = Shield::builder()
        .without_auto_detect()
        .identifier(Identifier::header("authorization").unwrap())
        .session_key(SessionKey::from_bytes([5; 16]))
        .rate_limit(Rule::builder("per-session", quota).build().unwrap());
    if let Some(store) = redis {
        builder = builder.rate_limit_store(store);
    }
    builder.build().unwrap()
}

fn bench(c: &mut Criterion) {
    let server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = |prefix: &str| {
        let _entered = rt.enter();
        // A generous timeout: the bench measures Redis, not the policy.
        let config = RedisConfig::new(url.as_str())
            .prefix(prefix)
            .timeout(Duration::from_secs(1))
            .on_failure(FailurePolicy::Closed);
        RedisStore::new(config).unwrap()
    };
    let tokens: Vec<String> = (0..SESSIONS)
        .map(|i| format!("Bearer token-{i:08}-abcdefghijklmnop"))
        .collect();
    // Never reached (Redis counts in microseconds: at most one per µs).
    let never = Quota::per_second(NonZeroU32::new(1_000_000).unwrap())
        .with_burst(NonZeroU32::new(100_000_000).unwrap());
    let once = Quota::per_hour(NonZeroU32::new(1).unwrap());

    one_thread(c, &rt, "redis/bare_router", router(), &tokens);
    let memory = shield(never, None).layer(router());
    one_thread(c, &rt, "redis/memory/allowed", memory, &tokens);
    let remote = shield(never, Some(redis("allowed"))).layer(router());
    one_thread(c, &rt, "redis/redis/allowed", remote, &tokens);

    // Every session uses its one request, and is refused once, before
    // timing: the refusal fills the deny cache.
    let mut memory = shield(once, None).layer(router());
    let mut remote = shield(once, Some(redis("refused"))).layer(router());
    rt.block_on(async {
        for request in (0..2 * SESSIONS).map(|i| support::token_request(&tokens, i)) {
            memory.call(request).await.unwrap();
        }
        for (i, request) in (0..2 * SESSIONS)
            .map(|i| support::token_request(&tokens, i))
            .enumerate()
        {
            let status = remote.call(request).await.unwrap().status();
            assert_eq!(status == 429, i >= SESSIONS, "request {i}: {status}");
        }
    });
    one_thread(c, &rt, "redis/memory/refused", memory, &tokens);
    one_thread(c, &rt, "redis/redis/deny_cache", remote, &tokens);
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
