//! End to end: the rate limit layer in the Shield over axum, and alone in a
//! plain hyper 1 server, over real sockets with a real HTTP client and an
//! injected clock.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::{Router, extract::Request, routing::get};
use bytes::Bytes;
use common::{get as fetch, serve_axum};
use http::StatusCode;
use http_body_util::Full;
use palisade::{
    ClientAddr, CountBy, Identifier, ManualClock, MemoryStore, Quota, RateLimitDecision,
    RateLimitLayer, Rule, SessionKey, SessionLayer, Shield, TrustedProxies,
};

fn clock() -> ManualClock {
    ManualClock::new(Duration::from_secs(1_700_000_000))
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap())
}

/// What the handler saw: the decision's rule and remaining count.
async fn seen_decision(request: Request) -> String {
    match request.extensions().get::<RateLimitDecision>() {
        Some(d) => format!("{} {}", d.rule, d.remaining),
        None => "none".to_owned(),
    }
}

#[tokio::test]
async fn axum_shield_limits_each_session_on_its_endpoint() {
    let clock = clock();
    let shield = Shield::builder()
        .identifier(Identifier::header("authorization").unwrap())
        .session_key(SessionKey::from_bytes(*b"test-key-16bytes"))
        .rate_limit_store(MemoryStore::new(clock.shared()))
        .rate_limit(
            Rule::builder("users", per_minute(2))
                .endpoint("GET", "/users/{id}")
                .unwrap()
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let router = Router::new()
        .route("/users/{id}", get(seen_decision))
        .route("/health", get(seen_decision))
        .layer(shield.clone());
    let addr = serve_axum(router).await;
    let alice = [("authorization", "Bearer alice")];

    let first = fetch(addr, "/users/1", &alice).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "users 1");
    assert_eq!(first.headers["ratelimit-policy"], "\"users\";q=2;w=60");
    assert_eq!(first.headers["ratelimit"], "\"users\";r=1;t=30");
    // Another path of the same template is the same endpoint.
    assert_eq!(fetch(addr, "/users/2", &alice).await.status, StatusCode::OK);

    let refused = fetch(addr, "/users/3", &alice).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["retry-after"], "30");
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(problem["status"], 429);
    assert!(problem["detail"].as_str().unwrap().contains("\"users\""));
    assert!(!refused.body.contains("alice"));

    // Other endpoints, other sessions and anonymous requests are not limited.
    assert_eq!(fetch(addr, "/health", &alice).await.body, "none");
    let bob = [("authorization", "Bearer bob")];
    assert_eq!(fetch(addr, "/users/1", &bob).await.status, StatusCode::OK);
    assert_eq!(fetch(addr, "/users/1", &[]).await.body, "none");

    clock.advance(Duration::from_secs(30));
    assert_eq!(fetch(addr, "/users/1", &alice).await.status, StatusCode::OK);

    // Rules replaced on the running server.
    shield.rate_limits().replace_rules([]).unwrap();
    let open = fetch(addr, "/users/1", &alice).await;
    assert_eq!(open.status, StatusCode::OK);
    assert!(open.headers.get("ratelimit").is_none());
}

#[tokio::test]
async fn axum_counts_by_peer_address_from_connect_info() {
    let clock = clock();
    let shield = Shield::builder()
        .rate_limit_store(MemoryStore::new(clock.shared()))
        .rate_limit(
            Rule::builder("per-ip", per_minute(1))
                .count_by(CountBy::client_ip())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let app = Router::new().route("/", get(seen_decision)).layer(shield);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap();
    });

    assert_eq!(fetch(addr, "/", &[]).await.body, "per-ip 0");
    // The peer is not a trusted proxy, so its forwarded header is ignored.
    let spoofed = fetch(addr, "/", &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn hyper_stack_with_trusted_proxy_and_custom_refusal() {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceBuilder;

    let clock = clock();
    let sessions = SessionLayer::builder()
        .identifier(Identifier::header("x-api-key").unwrap())
        .build()
        .unwrap();
    let limits = RateLimitLayer::builder()
        .rule(
            Rule::builder("per-client", per_minute(1))
                .count_by(CountBy::client_ip())
                .build()
                .unwrap(),
        )
        .store(MemoryStore::new(clock.shared()))
        .trusted_proxies(TrustedProxies::new(["127.0.0.1"]).unwrap())
        .on_refused(|d| {
            let mut response = http::Response::new(Full::from(format!("busy: {}", d.rule)));
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response
        })
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(sessions)
        .layer(limits)
        .service_fn(|_: http::Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
        });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            // A plain hyper server tells Palisade the peer address itself.
            let service = ServiceBuilder::new()
                .map_request(move |mut r: http::Request<hyper::body::Incoming>| {
                    r.extensions_mut().insert(ClientAddr(peer));
                    r
                })
                .service(service.clone());
            let service = TowerToHyperService::new(service);
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });

    // The loopback peer is a trusted proxy: the forwarded client counts.
    let a = [("x-forwarded-for", "198.51.100.1")];
    assert_eq!(fetch(addr, "/", &a).await.body, "ok");
    let refused = fetch(addr, "/", &a).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body, "busy: per-client");
    assert_eq!(refused.headers["retry-after"], "60");
    assert_eq!(refused.headers["ratelimit"], "\"per-client\";r=0;t=60");
    let b = [("x-forwarded-for", "198.51.100.2")];
    assert_eq!(fetch(addr, "/", &b).await.status, StatusCode::OK);
}
