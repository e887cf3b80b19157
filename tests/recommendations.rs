//! End to end: rate recommendations learned by the `Shield` over real
//! sockets, and the admin routes that serve them.

mod common;

use std::time::Duration;

use axum::{Router, routing::get};
use common::{get as fetch, serve_axum};
use http::StatusCode;
use palisade::{Identifier, ManualClock, RateRecommender, Shield};

const T0: Duration = Duration::from_secs(1_700_000_000 / 600 * 600);

async fn serve(clock: &ManualClock) -> (std::net::SocketAddr, Shield) {
    serve_with(clock, false).await
}

/// The shield with a rate recommender, fed by the learning layer when
/// `learning` is on (with a sequence tracker too), else by the sequence
/// rule layer.
async fn serve_with(clock: &ManualClock, learning: bool) -> (std::net::SocketAddr, Shield) {
    let rates = RateRecommender::builder()
        .clock(clock.shared())
        .build()
        .unwrap();
    let mut builder = Shield::builder()
        .identifier(Identifier::header("x-session").unwrap())
        .learning_clock(clock.shared())
        .rate_recommender(rates);
    if learning {
        let tracker = palisade::SequenceTracker::builder()
            .clock(clock.shared())
            .build()
            .unwrap();
        builder = builder
            .learning(palisade::LearnLayer::builder())
            .sequence_tracker(tracker);
    }
    let shield = builder.build().unwrap();
    let router = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .layer(shield.clone());
    (serve_axum(router).await, shield)
}

#[tokio::test]
async fn recommendation_appears_at_fifty_sessions_with_known_rates() {
    let clock = ManualClock::new(T0);
    let (addr, shield) = serve(&clock).await;
    let rates = shield.rate_recommender().unwrap();

    // Session i makes 1 + i % 5 requests: peaks 1 to 5, ten sessions each.
    for i in 0..49 {
        let name = format!("s{i}");
        for _ in 0..=(i % 5) {
            let seen = fetch(addr, "/items/1", &[("x-session", &name)]).await;
            assert_eq!(seen.status, StatusCode::OK);
        }
        // Errors do not teach.
        fetch(addr, "/missing", &[("x-session", &name)]).await;
    }
    assert!(rates.recommendations().is_empty());
    fetch(addr, "/items/2", &[("x-session", "s49")]).await;
    fetch(addr, "/items/2", &[("x-session", "s49")]).await;
    fetch(addr, "/items/2", &[("x-session", "s49")]).await;
    fetch(addr, "/items/2", &[("x-session", "s49")]).await;
    fetch(addr, "/items/2", &[("x-session", "s49")]).await;

    let all = rates.recommendations();
    assert_eq!(all.len(), 1);
    let r = &all[0];
    assert_eq!(r.endpoint.to_string(), "GET /items/{id}");
    assert_eq!(r.sessions, 50);
    // Ranks 24.5, 44.1, 48.51 of ten 1s, ten 2s, ... ten 5s: 3, 5, 5.
    assert!((r.p50 - 3.0).abs() <= 0.03, "{}", r.p50);
    assert!((r.p90 - 5.0).abs() <= 0.05, "{}", r.p90);
    assert!((r.p99 - 5.0).abs() <= 0.05, "{}", r.p99);
    assert_eq!(r.limit, 8);
}

#[cfg(feature = "admin")]
#[tokio::test]
async fn admin_routes_serve_recommendations_and_sequences() {
    // Learning on: the learning layer feeds the recommender, and the
    // shield's admin router serves its routes and ours.
    let clock = ManualClock::new(T0);
    let (addr, shield) = serve_with(&clock, true).await;
    for i in 0..60 {
        fetch(addr, "/items/1", &[("x-session", &format!("a{i}"))]).await;
        fetch(addr, "/items/2", &[("x-session", &format!("a{i}"))]).await;
    }
    let admin = shield.admin_router().unwrap();
    let admin_addr = serve_axum(Router::new().nest("/admin", admin)).await;
    let seen = fetch(admin_addr, "/admin/endpoints", &[]).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(seen.body.contains("/items/{id}"), "{}", seen.body);

    let seen = fetch(admin_addr, "/admin/recommendations", &[]).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.headers["content-type"], "application/json");
    let doc: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    let first = &doc["recommendations"][0];
    assert_eq!(first["endpoint"], "GET /items/{id}");
    assert_eq!(first["sessions"], 60);
    assert_eq!(first["action"], "log");
    assert_eq!(first["window"], 600);

    assert_eq!(first["max"], 2);

    // Every session stayed on one endpoint: no pair, no sequence.
    let seen = fetch(admin_addr, "/admin/sequences?top=3", &[]).await;
    let doc: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(doc["top_by_score"], serde_json::json!([]));
    assert_eq!(shield.sequence_tracker().unwrap().tracked(), 60);
}

#[tokio::test]
async fn a_recommendation_becomes_a_working_rule() {
    let clock = ManualClock::new(T0);
    let (addr, shield) = serve(&clock).await;
    // 60 sessions, 4 requests each: limit and burst ceil(1.5 × 4) = 6.
    for i in 0..60 {
        for _ in 0..4 {
            fetch(addr, "/items/1", &[("x-session", &format!("r{i}"))]).await;
        }
    }
    let mut recommendation = shield
        .rate_recommender()
        .unwrap()
        .recommendations()
        .remove(0);
    assert_eq!((recommendation.limit, recommendation.burst), (6, 6));

    // In log mode by default: a session past the limit is let through.
    let watch = palisade::rule_from(&recommendation).unwrap();
    assert_eq!(watch.action(), palisade::Action::Log);
    shield.rate_limits().replace_rules([watch]).unwrap();
    for _ in 0..10 {
        let seen = fetch(addr, "/items/9", &[("x-session", "greedy")]).await;
        assert_eq!(seen.status, StatusCode::OK);
    }

    // Switched to block, the same rule refuses the seventh request.
    recommendation.action = palisade::learn::SuggestedAction::Block;
    let rule = palisade::rule_from(&recommendation).unwrap();
    shield.rate_limits().replace_rules([rule]).unwrap();
    for _ in 0..6 {
        let seen = fetch(addr, "/items/9", &[("x-session", "greedy2")]).await;
        assert_eq!(seen.status, StatusCode::OK);
    }
    let refused = fetch(addr, "/items/9", &[("x-session", "greedy2")]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.body.contains("recommended GET /items/{id}"));
    // Other endpoints are not limited by it.
    let other = fetch(addr, "/missing", &[("x-session", "greedy2")]).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}
