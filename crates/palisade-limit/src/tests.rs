//! The layer as a whole, on an injected clock.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use palisade_core::{
    ClientAddr, ConfigError, EndpointCatalogue, ManualClock, RateLimitDecision, RateLimitOutcome,
    Session, SessionId, SessionSource, VerifiedClaims,
};
use serde_json::json;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::store::{CounterSpec, StoreError, Verdict};
use crate::*;

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

fn per_minute(v: u32) -> Quota {
    Quota::per_minute(n(v))
}

fn clock() -> ManualClock {
    ManualClock::new(Duration::from_secs(1_700_000_000))
}

type Seen = Response<Either<Option<RateLimitDecision>, Full<Bytes>>>;

/// A layer on `clock` with `rules`, around an app that answers with the
/// decision it found in the request.
#[derive(Clone)]
struct App<St: RateLimitStore> {
    layer: RateLimitLayer<St>,
}

impl App<Store> {
    fn new(clock: &ManualClock, rules: Vec<Rule>) -> Self {
        Self::with(
            RateLimitLayer::builder()
                .rules(rules)
                .store(Store::from(MemoryStore::new(clock.shared())))
                .catalogue(
                    EndpointCatalogue::builder()
                        .endpoint("GET", "/users/{id}")
                        .unwrap()
                        .endpoint("POST", "/orders")
                        .unwrap()
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
    }
}

impl<St: RateLimitStore> App<St> {
    fn with(layer: RateLimitLayer<St>) -> Self {
        Self { layer }
    }

    async fn send(&self, request: Request<()>) -> Seen {
        let app = self.layer.layer(service_fn(|r: Request<()>| async move {
            let found = r.extensions().get::<RateLimitDecision>().copied();
            Ok::<_, Infallible>(Response::new(found))
        }));
        app.oneshot(request).await.unwrap()
    }
}

fn get(path: &str) -> http::request::Builder {
    Request::get(path)
}

fn with_session(mut request: Request<()>, id: u128) -> Request<()> {
    let session = Session::identified(
        SessionId::from_u128(id),
        SessionSource::header("authorization"),
    );
    request.extensions_mut().insert(session);
    request
}

fn session_request(id: u128) -> Request<()> {
    with_session(get("/users/1").body(()).unwrap(), id)
}

fn decision(seen: &Seen) -> RateLimitDecision {
    *seen.extensions().get::<RateLimitDecision>().unwrap()
}

async fn right(seen: Seen) -> Bytes {
    match seen.into_body() {
        Either::Right(full) => full.collect().await.unwrap().to_bytes(),
        Either::Left(_) => panic!("the app answered, not the layer"),
    }
}

async fn body(seen: Seen) -> serde_json::Value {
    serde_json::from_slice(&right(seen).await).unwrap()
}

#[tokio::test]
async fn exact_burst_then_429_with_standard_fields() {
    let clock = clock();
    let rule = Rule::builder("per-session", per_minute(60).with_burst(n(3)))
        .build()
        .unwrap();
    let app = App::new(&clock, vec![rule]);
    for remaining in [2, 1, 0] {
        let seen = app.send(session_request(1)).await;
        assert_eq!(seen.status(), StatusCode::OK);
        assert_eq!(
            seen.headers()[RATELIMIT_POLICY],
            "\"per-session\";q=60;w=60"
        );
        let expected = format!("\"per-session\";r={remaining};t={}", 3 - remaining);
        assert_eq!(seen.headers()[RATELIMIT], expected.as_str());
        let d = decision(&seen);
        assert_eq!(d.remaining, remaining);
        // The handler saw the same decision in the request.
        assert!(matches!(seen.into_body(), Either::Left(Some(inner)) if inner == d));
    }
    let refused = app.send(session_request(1)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()[RATELIMIT], "\"per-session\";r=0;t=1");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let d = decision(&refused);
    assert_eq!(
        (d.rule, d.outcome),
        ("per-session", RateLimitOutcome::Refused)
    );
    let problem = body(refused).await;
    assert_eq!(problem["status"], 429);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("\"per-session\"")
    );

    assert_eq!(app.send(session_request(2)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn quota_replenishes_one_interval_at_a_time() {
    let clock = clock();
    let rule = Rule::builder("r", per_minute(2)).build().unwrap();
    let app = App::new(&clock, vec![rule]);
    for _ in 0..2 {
        assert_eq!(app.send(session_request(1)).await.status(), StatusCode::OK);
    }
    assert_eq!(app.send(session_request(1)).await.status(), 429);
    clock.advance(Duration::from_secs(29));
    assert_eq!(app.send(session_request(1)).await.status(), 429);
    clock.advance(Duration::from_secs(1));
    assert_eq!(app.send(session_request(1)).await.status(), StatusCode::OK);
    assert_eq!(app.send(session_request(1)).await.status(), 429);
    clock.advance(Duration::from_secs(60));
    let whole = app.send(session_request(1)).await;
    assert_eq!(decision(&whole).remaining, 1);
}

#[tokio::test]
async fn mitigation_keeps_the_key_out_for_the_timeout() {
    let clock = clock();
    let rule = Rule::builder("strict", per_minute(60).with_burst(n(1)))
        .mitigation(Duration::from_secs(300))
        .build()
        .unwrap();
    let app = App::new(&clock, vec![rule]);
    assert_eq!(app.send(session_request(1)).await.status(), StatusCode::OK);
    let tripped = app.send(session_request(1)).await;
    assert_eq!(tripped.headers()["retry-after"], "300");
    // Far slower than the quota, and still refused until the timeout ends.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(60));
        assert_eq!(app.send(session_request(1)).await.status(), 429);
    }
    clock.advance(Duration::from_secs(60));
    assert_eq!(app.send(session_request(1)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn shadow_rule_passes_but_records() {
    let clock = clock();
    let rule = Rule::builder("trial", per_minute(1))
        .action(Action::Log)
        .build()
        .unwrap();
    let app = App::new(&clock, vec![rule]);
    app.send(session_request(1)).await;
    let seen = app.send(session_request(1)).await;
    assert_eq!(seen.status(), StatusCode::OK);
    let d = decision(&seen);
    assert_eq!((d.rule, d.outcome), ("trial", RateLimitOutcome::Shadowed));
    assert!(d.is_allowed());
    assert!(matches!(seen.into_body(), Either::Left(Some(inner)) if inner == d));
}

#[tokio::test]
async fn missing_values_skip_or_count_apart_from_empty() {
    let clock = clock();
    let skip = Rule::builder("skip", per_minute(1)).build().unwrap();
    let app = App::new(&clock, vec![skip]);
    for _ in 0..3 {
        let seen = app.send(get("/users/1").body(()).unwrap()).await;
        assert_eq!(seen.status(), StatusCode::OK);
        assert!(seen.extensions().get::<RateLimitDecision>().is_none());
    }

    let count = Rule::builder("count", per_minute(1))
        .count_by(CountBy::header("x-key").unwrap())
        .build()
        .unwrap();
    let app = App::new(&clock, vec![count]);
    let missing = || get("/users/1").body(()).unwrap();
    let empty = || get("/users/1").header("x-key", "").body(()).unwrap();
    assert_eq!(app.send(missing()).await.status(), StatusCode::OK);
    assert_eq!(app.send(missing()).await.status(), 429);
    assert_eq!(
        app.send(empty()).await.status(),
        StatusCode::OK,
        "empty is its own value"
    );
    assert_eq!(app.send(empty()).await.status(), 429);
}

#[tokio::test]
async fn header_values_count_apart() {
    let clock = clock();
    let rule = Rule::builder("per-key", per_minute(2))
        .count_by(CountBy::header("x-api-key").unwrap())
        .build()
        .unwrap();
    let app = App::new(&clock, vec![rule]);
    let key = |k: &str| get("/users/1").header("x-api-key", k).body(()).unwrap();
    for _ in 0..2 {
        assert_eq!(app.send(key("a")).await.status(), StatusCode::OK);
    }
    assert_eq!(app.send(key("a")).await.status(), 429);
    assert_eq!(app.send(key("b")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn tiers_pick_the_quota_by_claim() {
    let clock = clock();
    let rule = Rule::builder("plan", per_minute(1))
        .tiers(
            CountBy::claim("auth0", "$.plan").unwrap(),
            [("pro", per_minute(10))],
        )
        .unwrap()
        .build()
        .unwrap();
    let app = App::new(&clock, vec![rule]);
    let request = |id, plan: &str| {
        let mut r = session_request(id);
        let mut claims = VerifiedClaims::new();
        claims.insert("auth0", Arc::new(json!({ "plan": plan })));
        r.extensions_mut().insert(claims);
        r
    };
    assert_eq!(app.send(request(1, "free")).await.status(), StatusCode::OK);
    assert_eq!(app.send(request(1, "free")).await.status(), 429);
    for _ in 0..10 {
        let seen = app.send(request(2, "pro")).await;
        assert_eq!(seen.status(), StatusCode::OK);
        assert_eq!(seen.headers()[RATELIMIT_POLICY], "\"plan\";q=10;w=60");
    }
    assert_eq!(app.send(request(2, "pro")).await.status(), 429);
}

#[tokio::test]
async fn every_rule_is_checked_and_the_closest_is_reported() {
    let clock = clock();
    let wide = Rule::builder("wide", per_minute(100)).build().unwrap();
    let orders = Rule::builder("orders", per_minute(2))
        .endpoint("POST", "/orders")
        .unwrap()
        .build()
        .unwrap();
    let app = App::new(&clock, vec![wide, orders]);
    let order = || with_session(Request::post("/orders").body(()).unwrap(), 1);

    let seen = app.send(session_request(1)).await;
    assert_eq!(decision(&seen).rule, "wide", "only one rule applies to GET");
    let seen = app.send(order()).await;
    assert_eq!(decision(&seen).rule, "orders", "closest to its limit");
    assert_eq!(seen.headers()[RATELIMIT], "\"orders\";r=1;t=30");
    app.send(order()).await;
    let refused = app.send(order()).await;
    assert_eq!(decision(&refused).rule, "orders");
    assert_eq!(refused.status(), 429);
    // The refused request was still counted by the wide rule: 4 of 100.
    let seen = app.send(session_request(1)).await;
    assert_eq!(decision(&seen).remaining, 95);
}

#[tokio::test]
async fn per_endpoint_counting_keeps_endpoints_apart() {
    let clock = clock();
    let rule = Rule::builder("each", per_minute(1))
        .count_by(CountBy::session())
        .count_by(CountBy::endpoint())
        .build()
        .unwrap();
    let app = App::new(&clock, vec![rule]);
    let order = || with_session(Request::post("/orders").body(()).unwrap(), 1);
    assert_eq!(app.send(session_request(1)).await.status(), StatusCode::OK);
    assert_eq!(app.send(session_request(1)).await.status(), 429);
    assert_eq!(app.send(order()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn rules_are_replaced_live_and_kept_state_survives() {
    let clock = clock();
    let keep = Rule::builder("keep", per_minute(3)).build().unwrap();
    let app = App::new(&clock, vec![keep.clone()]);
    let service = app.layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let mut service = service;
    service
        .ready()
        .await
        .unwrap()
        .call(session_request(1))
        .await
        .unwrap();

    let strict = Rule::builder("strict", per_minute(1)).build().unwrap();
    app.layer.replace_rules([keep.clone(), strict]).unwrap();
    let names: Vec<_> = app.layer.rules().iter().map(Rule::name).collect();
    assert_eq!(names, ["keep", "strict"]);

    // The running service picks the new rules up on its next request.
    let seen = service
        .ready()
        .await
        .unwrap()
        .call(session_request(1))
        .await
        .unwrap();
    assert_eq!(seen.status(), StatusCode::OK);
    let d = *seen.extensions().get::<RateLimitDecision>().unwrap();
    assert_eq!((d.rule, d.remaining), ("strict", 0));
    let seen = service
        .ready()
        .await
        .unwrap()
        .call(session_request(1))
        .await
        .unwrap();
    assert_eq!(seen.status(), 429);
    // `keep` kept its count: 3 requests so far, so none left.
    let held = app.layer.counter("keep").unwrap();
    assert!(matches!(&*held, store::StoreCounter::Memory(c) if c.len() == 1));

    let dup = app.layer.replace_rules([keep.clone(), keep]);
    assert!(matches!(dup, Err(ConfigError::Invalid { .. })));
    assert_eq!(
        app.layer.rules().len(),
        2,
        "a failed replacement changes nothing"
    );

    app.layer.replace_rules([]).unwrap();
    let seen = service
        .ready()
        .await
        .unwrap()
        .call(session_request(1))
        .await
        .unwrap();
    assert!(seen.extensions().get::<RateLimitDecision>().is_none());
    assert!(seen.headers().get(RATELIMIT).is_none());
}

#[tokio::test]
async fn client_ip_comes_from_the_peer_or_a_trusted_proxy() {
    let clock = clock();
    let layer = RateLimitLayer::builder()
        .rule(
            Rule::builder("ip", per_minute(1))
                .count_by(CountBy::client_ip())
                .build()
                .unwrap(),
        )
        .store(MemoryStore::new(clock.shared()))
        .trusted_proxies(TrustedProxies::new(["10.0.0.0/8"]).unwrap())
        .build()
        .unwrap();
    let app = App::with(layer);
    let from = |peer: &str, xff: &str| {
        let mut r = get("/").header("x-forwarded-for", xff).body(()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        r.extensions_mut().insert(ClientAddr(peer));
        r
    };
    assert_eq!(
        app.send(from("10.0.0.1:9", "203.0.113.1")).await.status(),
        200
    );
    assert_eq!(
        app.send(from("10.0.0.2:9", "203.0.113.1")).await.status(),
        429
    );
    assert_eq!(
        app.send(from("10.0.0.2:9", "203.0.113.2")).await.status(),
        200
    );
    // An untrusted peer's header is ignored: it is counted by its own IP.
    assert_eq!(
        app.send(from("192.0.2.5:9", "203.0.113.3")).await.status(),
        200
    );
    assert_eq!(
        app.send(from("192.0.2.5:9", "203.0.113.4")).await.status(),
        429
    );
}

#[tokio::test]
async fn the_refusal_can_be_replaced() {
    let clock = clock();
    let layer = RateLimitLayer::builder()
        .rule(Rule::builder("r", per_minute(1)).build().unwrap())
        .store(MemoryStore::new(clock.shared()))
        .on_refused(|d| {
            let mut response = Response::new(Full::from(format!("slow down ({})", d.rule)));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        })
        .build()
        .unwrap();
    let app = App::with(layer);
    app.send(session_request(1)).await;
    let seen = app.send(session_request(1)).await;
    assert_eq!(seen.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen.headers()["retry-after"], "60");
    assert_eq!(decision(&seen).outcome, RateLimitOutcome::Refused);
    assert_eq!(right(seen).await, "slow down (r)");
}

/// A store that answers only on the second poll, as a networked one would.
#[derive(Clone, Debug, Default)]
struct SlowStore {
    checks: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct SlowCheck {
    polled: bool,
    verdict: Verdict,
}

impl Future for SlowCheck {
    type Output = Result<Verdict, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polled {
            return Poll::Ready(Ok(self.verdict));
        }
        self.polled = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl RateLimitStore for SlowStore {
    type Counter = ();
    type Check = SlowCheck;

    fn counter(&self, _: &CounterSpec<'_>) -> Result<(), ConfigError> {
        Ok(())
    }

    fn check(&self, _: &(), _: u128, _: usize) -> SlowCheck {
        let n = self.checks.fetch_add(1, Ordering::SeqCst);
        let verdict = if n < 1 {
            Verdict::allowed(0, Duration::from_secs(2))
        } else {
            Verdict::refused(Duration::from_secs(7))
        };
        SlowCheck {
            polled: false,
            verdict,
        }
    }
}

#[tokio::test]
async fn a_store_that_answers_later_is_awaited() {
    let layer = RateLimitLayer::builder()
        .rule(
            Rule::builder("remote", per_minute(1))
                .max_keys(NonZeroUsize::MIN)
                .build()
                .unwrap(),
        )
        .store(SlowStore::default())
        .build()
        .unwrap();
    let app = App::with(layer);
    let seen = app.send(session_request(1)).await;
    assert_eq!(seen.status(), StatusCode::OK);
    assert_eq!(seen.headers()[RATELIMIT], "\"remote\";r=0;t=2");
    assert!(matches!(seen.into_body(), Either::Left(Some(_))));
    let refused = app.send(session_request(1)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "7");
}

#[tokio::test]
async fn no_rules_pass_requests_untouched() {
    let clock = clock();
    let app = App::new(&clock, vec![]);
    let seen = app.send(session_request(1)).await;
    assert_eq!(seen.status(), StatusCode::OK);
    assert!(seen.headers().is_empty());
    assert!(seen.extensions().get::<RateLimitDecision>().is_none());
}

#[test]
fn two_threads_through_the_layer_never_exceed_the_burst_on_one_key() {
    let clock = clock();
    let rule = Rule::builder("shared", Quota::per_hour(n(1)).with_burst(n(40)))
        .build()
        .unwrap();
    let app = App::new(&clock, vec![rule]);
    let allowed: usize = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let app = app.clone();
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    (0..300)
                        .filter(|_| rt.block_on(app.send(session_request(9))).status() == 200)
                        .count()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(allowed, 40);
}

/// Records every event's level, target and fields, as a subscriber would
/// print them.
#[derive(Default)]
struct Capture(std::sync::Mutex<Vec<String>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        let mut fields = Fields(format!("{} {}", meta.level(), meta.target()));
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn refusals_and_shadow_hits_are_logged_at_debug_with_rule_endpoint_and_session() {
    let clock = clock();
    let block = Rule::builder("block", per_minute(1)).build().unwrap();
    let shadow = Rule::builder("shadow", per_minute(1))
        .action(Action::Log)
        .count_by(CountBy::header("x-key").unwrap())
        .build()
        .unwrap();
    let app = App::new(&clock, vec![block, shadow]);
    let capture = Arc::new(Capture::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let request = || {
        let r = get("/users/1").header("x-key", "secret-value").body(());
        with_session(r.unwrap(), 0xabc)
    };
    rt.block_on(app.send(request()));
    tracing::subscriber::with_default(capture.clone(), || {
        let seen = rt.block_on(app.send(request()));
        assert_eq!(seen.status(), 429);
    });
    let events = capture.0.lock().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let session = SessionId::from_u128(0xabc).to_string();
    for (event, rule, outcome) in [
        (&events[0], "block", "refused"),
        (&events[1], "shadow", "shadowed"),
    ] {
        assert!(event.starts_with("DEBUG palisade::limit"), "{event}");
        assert!(event.contains(&format!("rule=\"{rule}\"")), "{event}");
        assert!(event.contains(&format!("outcome={outcome}")), "{event}");
        assert!(event.contains("endpoint=GET /users/{id}"), "{event}");
        assert!(event.contains(&format!("session={session}")), "{event}");
        assert!(!event.contains("secret-value"), "{event}");
    }
}
