//! End to end: two Shields, as two instances of one API, served over real
//! sockets and sharing one rate limit in a real Redis. The test starts its
//! own `redis-server` and passes with a notice only when the binary is not
//! installed (`.ci/run` installs it).

#![cfg(feature = "redis")]

mod common;

use std::net::{TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use common::{get as fetch, serve_axum};
use palisade::{Identifier, Quota, RedisConfig, RedisStore, Rule, SessionKey, Shield};

struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(OwnRedis, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => OwnRedis(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("NOTICE: redis-server is not installed; the fleet test is skipped");
            return None;
        }
        Err(e) => panic!("cannot start redis-server: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some((child, port))
}

async fn instance(url: &str, key: &SessionKey) -> std::net::SocketAddr {
    let store = RedisStore::new(RedisConfig::new(url).prefix("e2e")).unwrap();
    let shield = Shield::builder()
        .identifier(Identifier::header("authorization").unwrap())
        .session_key(key.clone())
        .rate_limit_store(store)
        .rate_limit(
            Rule::builder("per-session", Quota::per_hour(NonZeroU32::new(3).unwrap()))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    serve_axum(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(shield),
    )
    .await
}

#[tokio::test]
async fn two_instances_enforce_one_limit() {
    let Some((_redis, port)) = start_redis() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let key = SessionKey::from_bytes(*b"fleet-shared-key");
    let a = instance(&url, &key).await;
    let b = instance(&url, &key).await;

    let alice = [("authorization", "Bearer alice")];
    let mut statuses = Vec::new();
    for i in 0..5 {
        let addr = if i % 2 == 0 { a } else { b };
        statuses.push(fetch(addr, "/", &alice).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let refused = fetch(a, "/", &alice).await;
    assert_eq!(refused.headers["retry-after"], "1200");
    let bob = [("authorization", "Bearer bob")];
    assert_eq!(
        fetch(b, "/", &bob).await.status,
        200,
        "bob has his own quota"
    );
}
