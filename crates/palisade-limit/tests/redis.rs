//! The Redis store against a real Redis: each test starts its own
//! `redis-server` on a free port, and passes with a notice only when the
//! binary is not installed (`.ci/run` installs it).

#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::num::{NonZeroU32, NonZeroUsize};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use palisade_core::{ManualClock, Session, SessionId, SessionKey, SessionSource};
use palisade_limit::store::{CounterSpec, RedisCounter, StoreError, Verdict};
use palisade_limit::{
    CountBy, FailurePolicy, MemoryStore, Quota, RateLimitLayer, RateLimitStore, RedisConfig,
    RedisStore, Rule,
};
use redis::AsyncCommands;
use tower::{Layer, ServiceExt, service_fn};

/// A `redis-server` child on its own port, killed on drop.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or says why not and returns `None` if the binary is
    /// absent.
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { port, child: None };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "NOTICE: redis-server is not installed; this Redis store test is skipped \
                     (`.ci/run` installs it)"
                );
                None
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn().unwrap();
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the server: a hung Redis.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }

    async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// How many times `EVALSHA` ran.
    async fn evalsha_calls(&self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.client().await)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen server ignores SIGKILL only until thawed; thaw first.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.stop();
    }
}

fn quota(requests: u32, period_secs: u64, burst: u32) -> Quota {
    Quota::new(
        NonZeroU32::new(requests).unwrap(),
        Duration::from_secs(period_secs),
    )
    .unwrap()
    .with_burst(NonZeroU32::new(burst).unwrap())
}

fn spec<'a>(rule: &'a str, quotas: &'a [Quota], mitigation: Option<Duration>) -> CounterSpec<'a> {
    CounterSpec::new(rule, quotas, mitigation, NonZeroUsize::new(10_000).unwrap())
}

fn store(server: &RedisServer, policy: FailurePolicy) -> RedisStore {
    RedisStore::new(
        RedisConfig::new(server.url())
            .prefix("t")
            .on_failure(policy)
            .retry_after_failure(Duration::from_millis(100)),
    )
    .unwrap()
}

async fn check(store: &RedisStore, counter: &RedisCounter, key: u128) -> Verdict {
    store.check(counter, key, 0).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_quota_exactly() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // An hour per 10 requests: nothing is replenished during the test.
    let quotas = [quota(10, 3600, 10)];
    let a = store(&server, FailurePolicy::Open);
    let b = store(&server, FailurePolicy::Open);
    let ca = a.counter(&spec("shared", &quotas, None)).unwrap();
    let cb = b.counter(&spec("shared", &quotas, None)).unwrap();

    // Alternating, then concurrently from both instances.
    let mut allowed = 0;
    for i in 0..8 {
        let (s, c) = if i % 2 == 0 { (&a, &ca) } else { (&b, &cb) };
        allowed += u32::from(check(s, c, 1).await.allowed);
    }
    assert_eq!(allowed, 8);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (s, c) = if i % 2 == 0 {
                (
                    a.clone(),
                    a.counter(&spec("shared", &quotas, None)).unwrap(),
                )
            } else {
                (
                    b.clone(),
                    b.counter(&spec("shared", &quotas, None)).unwrap(),
                )
            };
            tokio::spawn(async move { s.check(&c, 1, 0).await.unwrap().allowed })
        })
        .collect();
    let mut more = 0;
    for task in tasks {
        more += u32::from(task.await.unwrap());
    }
    assert_eq!(more, 2, "one quota of 10 for both instances");
    assert!(check(&a, &ca, 2).await.allowed, "other keys have their own");
}

#[tokio::test]
async fn same_numbers_as_the_memory_store() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let quotas = [quota(5, 3600, 3), quota(20, 3600, 6)];
    let mitigation = Some(Duration::from_secs(600));
    let redis = store(&server, FailurePolicy::Closed);
    let memory = MemoryStore::new(ManualClock::new(Duration::from_secs(1_700_000_000)).shared());
    for (rule, mitigation) in [("plain", None), ("mitigated", mitigation)] {
        let rc = redis.counter(&spec(rule, &quotas, mitigation)).unwrap();
        let mc = memory.counter(&spec(rule, &quotas, mitigation)).unwrap();
        // Three keys, two tiers, interleaved, past every quota.
        for step in 0u32..60 {
            let key = u128::from(step % 3);
            let tier = usize::from(step % 5 == 0);
            let r = redis.check(&rc, key, tier).await.unwrap();
            let m = memory.check(&mc, key, tier).await.unwrap();
            assert_eq!(
                (r.allowed, r.remaining),
                (m.allowed, m.remaining),
                "rule {rule}, step {step}"
            );
            if r.allowed {
                // Redis's clock moved a little since the first request.
                assert!(r.reset <= m.reset && m.reset - r.reset < Duration::from_secs(5));
            } else {
                // The memory store's clock stands still; Redis's does not.
                // Under mitigation the memory store reports the end of the
                // mitigation once the first refusal has passed, the Redis
                // store (its deny cache) the later end of the GCRA wait
                // when that is longer: the decisions are the same.
                let floor = m.retry_after.saturating_sub(Duration::from_secs(5));
                assert!(r.retry_after >= floor, "{r:?} {m:?}");
                assert!(r.retry_after <= m.retry_after.max(Duration::from_secs(720)));
            }
        }
    }
}

#[tokio::test]
async fn keys_expire_when_the_quota_is_whole_and_hold_only_digests() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut conn = server.client().await;
    let redis = store(&server, FailurePolicy::Open);

    // One request per 10 s, three taken: whole again in 30 s.
    let quotas = [quota(10, 100, 10)];
    let counter = redis.counter(&spec("ttl", &quotas, None)).unwrap();
    for _ in 0..3 {
        assert!(check(&redis, &counter, 7).await.allowed);
    }
    let name = format!("t:ttl:0:{:032x}", 7);
    let pttl: i64 = conn.pttl(&name).await.unwrap();
    assert!((29_000..=30_000).contains(&pttl), "{pttl}");

    // A mitigation longer than replenishment keeps the key for its length.
    let quotas = [quota(1, 10, 1)];
    let counter = redis
        .counter(&spec("mit", &quotas, Some(Duration::from_secs(600))))
        .unwrap();
    assert!(check(&redis, &counter, 8).await.allowed);
    assert!(!check(&redis, &counter, 8).await.allowed);
    let pttl: i64 = conn.pttl(format!("t:mit:0:{:032x}", 8)).await.unwrap();
    assert!((599_000..=600_000).contains(&pttl), "{pttl}");

    // Through the layer: a header value never reaches Redis, only its
    // keyed digest.
    let layer = RateLimitLayer::builder()
        .key(SessionKey::from_bytes([9; 16]))
        .rule(
            Rule::builder("by-key", quota(100, 60, 100))
                .count_by(CountBy::header("x-api-key").unwrap())
                .build()
                .unwrap(),
        )
        .store(redis.clone())
        .build()
        .unwrap();
    let app = layer.layer(service_fn(|_: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    }));
    let request = http::Request::builder()
        .header("x-api-key", "secret-api-key-value")
        .body(())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.headers()["ratelimit"], "\"by-key\";r=99;t=1");
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    for key in &keys {
        let (prefix, digest) = key.rsplit_once(':').unwrap();
        assert!(prefix.starts_with("t:"), "{key}");
        assert_eq!(digest.len(), 32, "{key}");
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        let fields: Vec<(String, String)> = conn.hgetall(key).await.unwrap();
        for (field, value) in fields {
            assert!(["t", "b"].contains(&field.as_str()), "{field}");
            assert!(value.bytes().all(|b| b.is_ascii_digit()), "{value}");
        }
    }
}

#[tokio::test]
async fn the_deny_cache_answers_without_asking_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = store(&server, FailurePolicy::Open);
    let quotas = [quota(2, 3600, 2)];
    let counter = redis.counter(&spec("deny", &quotas, None)).unwrap();
    assert!(check(&redis, &counter, 3).await.allowed);
    assert!(check(&redis, &counter, 3).await.allowed);
    let refused = check(&redis, &counter, 3).await;
    assert!(!refused.allowed);
    assert!(
        refused.retry_after > Duration::from_secs(1700),
        "{refused:?}"
    );
    assert_eq!(counter.denied_len(), 1);

    let before = server.evalsha_calls().await;
    for _ in 0..50 {
        let again = check(&redis, &counter, 3).await;
        assert!(!again.allowed);
        assert!(again.retry_after <= refused.retry_after);
    }
    assert_eq!(
        server.evalsha_calls().await,
        before,
        "no call reached Redis"
    );
    assert!(check(&redis, &counter, 4).await.allowed);
    assert_eq!(server.evalsha_calls().await, before + 1, "another key did");
}

/// Checks `n` fresh requests of `key` while Redis is down, each within the
/// timeout plus a generous margin.
async fn while_down(
    redis: &RedisStore,
    counter: &RedisCounter,
    key: u128,
    n: usize,
) -> Vec<String> {
    let bound = Duration::from_millis(50 + 500);
    let mut seen = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        let result: Result<Verdict, StoreError> = redis.check(counter, key, 0).await;
        assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
        seen.push(match result {
            Ok(v) if v.allowed => "allowed".to_owned(),
            Ok(_) => "refused".to_owned(),
            Err(_) => "error".to_owned(),
        });
        // Half the calls land after the pause, so Redis is asked again.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    seen
}

#[tokio::test]
async fn redis_stopped_under_each_failure_policy() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let quotas = [quota(10, 3600, 10)];
    let open = store(&server, FailurePolicy::Open);
    let closed = store(&server, FailurePolicy::Closed);
    let local = store(&server, FailurePolicy::Local { share: 0.5 });
    let stores = [&open, &closed, &local];
    let counters: Vec<_> = stores
        .iter()
        .map(|s| s.counter(&spec("down", &quotas, None)).unwrap())
        .collect();
    for (s, c) in stores.iter().zip(&counters) {
        assert!(
            check(s, c, 1).await.allowed,
            "Redis answers before the outage"
        );
    }

    // Stopped: connections are refused.
    server.stop();
    let seen = while_down(&open, &counters[0], 2, 8).await;
    assert!(seen.iter().all(|s| s == "error"), "{seen:?}");
    let seen = while_down(&closed, &counters[1], 2, 8).await;
    assert!(seen.iter().all(|s| s == "refused"), "{seen:?}");
    let seen = while_down(&local, &counters[2], 2, 8).await;
    assert_eq!(
        seen[..5],
        ["allowed"; 5],
        "half the quota, locally: {seen:?}"
    );
    assert_eq!(seen[5..], ["refused"; 3], "{seen:?}");
}

#[tokio::test]
async fn a_hung_redis_costs_at_most_the_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let quotas = [quota(10, 3600, 10)];
    let open = store(&server, FailurePolicy::Open);
    let counter = open.counter(&spec("hung", &quotas, None)).unwrap();
    assert!(check(&open, &counter, 1).await.allowed);

    server.signal("-STOP");
    let seen = while_down(&open, &counter, 1, 6).await;
    assert!(seen.iter().all(|s| s == "error"), "{seen:?}");
    server.signal("-CONT");
}

#[tokio::test]
async fn the_store_recovers_when_redis_restarts() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let quotas = [quota(10, 3600, 10)];
    let redis = store(&server, FailurePolicy::Closed);
    let counter = redis.counter(&spec("back", &quotas, None)).unwrap();
    assert!(check(&redis, &counter, 1).await.allowed);

    server.stop();
    assert!(!check(&redis, &counter, 1).await.allowed, "fails closed");
    assert!(redis.is_paused());

    // Same port, empty, without the script: the store reconnects and
    // loads it again.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if redis.check(&counter, 1, 0).await.is_ok_and(|v| v.allowed) {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!redis.is_paused());
    let v = check(&redis, &counter, 1).await;
    assert_eq!(v.remaining, 8, "the restarted Redis counts from scratch");
}

#[tokio::test]
async fn a_session_key_is_the_only_thing_instances_must_share() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Two layers, as two instances would build them, with one key.
    let app = |store: RedisStore| {
        let layer = RateLimitLayer::builder()
            .key(SessionKey::from_bytes([4; 16]))
            .rule(Rule::builder("s", quota(3, 3600, 3)).build().unwrap())
            .store(store)
            .build()
            .unwrap();
        layer.layer(service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }))
    };
    let one = app(store(&server, FailurePolicy::Open));
    let two = app(store(&server, FailurePolicy::Open));
    let request = || {
        let mut request = http::Request::new(());
        let session = Session::identified(
            SessionId::from_u128(77),
            SessionSource::header("authorization"),
        );
        request.extensions_mut().insert(session);
        request
    };
    let mut statuses = Vec::new();
    for i in 0..5 {
        let app = if i % 2 == 0 { one.clone() } else { two.clone() };
        statuses.push(app.oneshot(request()).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}
