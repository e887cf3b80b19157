//! Fleet mode: two API instances on two ports share one rate limit in
//! Redis.
//!
//! ```text
//! cargo run --example fleet --features redis
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example fleet --features redis
//! ```
//!
//! Without `REDIS_URL` the example starts its own `redis-server` on a free
//! port (and stops it at the end). Each instance is a separate `Shield` with
//! its own `RedisStore`, as two processes would have; they share only the
//! Redis and the session key. One client calls both instances in turn with
//! one API key: the limit of 5 requests per minute holds across both, and
//! the sixth request is refused whichever instance it reaches.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::{Identifier, Quota, RedisConfig, RedisStore, Rule, SessionKey, Shield};

/// A `redis-server` this example started, stopped on drop.
struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `REDIS_URL`, or a fresh `redis-server` on a free port.
fn redis_url() -> (String, Option<OwnRedis>) {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return (url, None);
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (or set REDIS_URL)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (format!("redis://127.0.0.1:{port}"), Some(OwnRedis(child)))
}

/// One API instance: its own Shield and Redis store, on its own port.
async fn instance(name: &'static str, url: &str, key: SessionKey) -> SocketAddr {
    // Each process of a fleet builds the same store configuration.
    let store = RedisStore::new(RedisConfig::new(url).prefix("fleet-example")).unwrap();
    let shield = Shield::builder()
        .identifier(Identifier::header("x-api-key").unwrap())
        // The fleet shares the session key, so a client has one digest.
        .session_key(key)
        .rate_limit_store(store)
        .rate_limit(
            Rule::builder("per-key", Quota::per_minute(NonZeroU32::new(5).unwrap()))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(move || async move { name }))
        .layer(shield);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::main]
async fn main() {
    let (url, _own) = redis_url();
    // In production every instance reads the same key from its secrets.
    let key = SessionKey::random();
    let a = instance("instance A", &url, key.clone()).await;
    let b = instance("instance B", &url, key).await;
    println!("instance A on {a}, instance B on {b}, one Redis; limit: 5 per minute per API key");

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut refused = 0;
    for i in 0..8 {
        let addr = if i % 2 == 0 { a } else { b };
        let request = http::Request::get(format!("http://{addr}/"))
            .header("x-api-key", "client-one")
            .body(Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let limit = response
            .headers()
            .get("ratelimit")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let who = if status == 200 {
            String::from_utf8_lossy(&body).into_owned()
        } else {
            "refused".to_owned()
        };
        println!(
            "request {} to {addr}: {status} ({who}) ratelimit: {limit}",
            i + 1
        );
        refused += usize::from(status == 429);
    }
    // Eight requests, five allowed in all: each instance alone would have
    // let all of its four through.
    assert_eq!(refused, 3, "one limit for the whole fleet");
    println!("5 allowed, 3 refused across both instances: one limit for the fleet");
}
