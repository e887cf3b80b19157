//! End to end: sequence rules and sequence analytics in the `Shield`, over
//! real sockets with a real HTTP client. Time is a `ManualClock`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::{
    Router,
    routing::{get, post},
};
use common::{send, serve_axum};
use http::StatusCode;
use palisade::learn::sequence_rule::TRACE_TARGET;
use palisade::{
    Identifier, ManualClock, RuleAction, SequenceRule, SequenceTracker, SessionId, SessionKey,
    SessionSource, Shield,
};

const KEY: [u8; 16] = *b"sequence-key-16b";
const T0: Duration = Duration::from_secs(1_700_000_000);

async fn serve(rules: Vec<SequenceRule>, clock: &ManualClock) -> (std::net::SocketAddr, Shield) {
    let tracker = SequenceTracker::builder()
        .clock(clock.shared())
        .build()
        .unwrap();
    let mut builder = Shield::builder()
        .identifier(Identifier::header("x-session").unwrap())
        .session_key(SessionKey::from_bytes(KEY))
        .sequence_tracker(tracker);
    for rule in rules {
        builder = builder.sequence_rule(rule);
    }
    let shield = builder.build().unwrap();
    let router = Router::new()
        .route("/login", post(|| async { "welcome" }))
        .route("/cart", get(|| async { "cart" }))
        .route("/checkout", post(|| async { "paid" }))
        .route("/reset", post(|| async { "reset" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .layer(shield.clone());
    (serve_axum(router).await, shield)
}

fn as_session(value: &'static str) -> [(&'static str, &'static str); 1] {
    [("x-session", value)]
}

fn checkout_after_cart() -> SequenceRule {
    SequenceRule::allow("checkout-after-cart", "GET /cart", "POST /checkout").unwrap()
}

fn no_double_reset() -> SequenceRule {
    SequenceRule::block("no-double-reset", "POST /reset", "POST /reset")
        .unwrap()
        .window(Duration::from_secs(60))
}

/// Counts the events of the sequence layer's tracing target.
#[derive(Default)]
struct Events(AtomicUsize);

impl tracing::Subscriber for Events {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == TRACE_TARGET
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == TRACE_TARGET {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn allow_rule_blocks_checkout_without_cart_and_names_the_rule() {
    let clock = ManualClock::new(T0);
    let (addr, _) = serve(vec![checkout_after_cart()], &clock).await;
    let alice = as_session("alice");

    let refused = send(addr, "POST", "/checkout", &alice).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    let body: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["rule"], "checkout-after-cart");
    assert_eq!(body["status"], 403);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("checkout-after-cart")
    );

    assert_eq!(
        send(addr, "GET", "/cart", &alice).await.status,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(540));
    assert_eq!(
        send(addr, "POST", "/checkout", &alice).await.status,
        StatusCode::OK
    );

    // Another session has no cart; an anonymous client has no history.
    let bob = send(addr, "POST", "/checkout", &as_session("bob")).await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN);
    assert_eq!(
        send(addr, "POST", "/checkout", &[]).await.status,
        StatusCode::FORBIDDEN
    );

    // Past the window (and the 10-minute gap), the cart is forgotten.
    clock.advance(Duration::from_secs(601));
    let late = send(addr, "POST", "/checkout", &alice).await;
    assert_eq!(late.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_cart_answered_with_an_error_does_not_count() {
    let clock = ManualClock::new(T0);
    let rule = SequenceRule::allow("needs-missing", "GET /missing", "POST /checkout").unwrap();
    let (addr, _) = serve(vec![rule], &clock).await;
    let carol = as_session("carol");
    assert_eq!(
        send(addr, "GET", "/missing", &carol).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(addr, "POST", "/checkout", &carol).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn block_rule_refuses_the_second_within_the_window_only() {
    let clock = ManualClock::new(T0);
    let (addr, _) = serve(vec![no_double_reset()], &clock).await;
    let dave = as_session("dave");
    assert_eq!(
        send(addr, "POST", "/reset", &dave).await.status,
        StatusCode::OK
    );
    let again = send(addr, "POST", "/reset", &dave).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    let body: serde_json::Value = serde_json::from_str(&again.body).unwrap();
    assert_eq!(body["rule"], "no-double-reset");
    // Other sessions and anonymous clients are not affected.
    assert_eq!(
        send(addr, "POST", "/reset", &as_session("erin"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(addr, "POST", "/reset", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(addr, "POST", "/reset", &[]).await.status,
        StatusCode::OK
    );

    clock.advance(Duration::from_secs(61));
    assert_eq!(
        send(addr, "POST", "/reset", &dave).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn log_action_lets_requests_through_and_logs_them() {
    let events = Arc::new(Events::default());
    let _guard = tracing::subscriber::set_default(events.clone());
    let clock = ManualClock::new(T0);
    let (addr, _) = serve(
        vec![
            checkout_after_cart().action(RuleAction::Log),
            no_double_reset().action(RuleAction::Log),
        ],
        &clock,
    )
    .await;
    let frank = as_session("frank");

    assert_eq!(
        send(addr, "POST", "/checkout", &frank).await.status,
        StatusCode::OK
    );
    assert_eq!(events.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        send(addr, "POST", "/reset", &frank).await.status,
        StatusCode::OK
    );
    assert_eq!(events.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        send(addr, "POST", "/reset", &frank).await.status,
        StatusCode::OK
    );
    assert_eq!(events.0.load(Ordering::SeqCst), 2);
    assert_eq!(
        send(addr, "GET", "/cart", &frank).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(addr, "POST", "/checkout", &frank).await.status,
        StatusCode::OK
    );
    assert_eq!(events.0.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn priority_decides_which_rule_answers() {
    let clock = ManualClock::new(T0);
    let low = SequenceRule::block("low", "POST /login", "POST /checkout").unwrap();
    let high = SequenceRule::block("high", "GET /cart", "POST /checkout")
        .unwrap()
        .priority(5);
    let (addr, _) = serve(vec![low, high], &clock).await;
    let gina = as_session("gina");
    send(addr, "POST", "/login", &gina).await;
    send(addr, "GET", "/cart", &gina).await;
    let refused = send(addr, "POST", "/checkout", &gina).await;
    let body: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["rule"], "high");
}

#[tokio::test]
async fn shield_tracks_sequences_and_splits_them_after_ten_minutes() {
    let clock = ManualClock::new(T0);
    let (addr, shield) = serve(Vec::new(), &clock).await;
    let tracker = shield.sequence_tracker().unwrap();
    for name in ["h1", "h2", "h3"] {
        for (method, path) in [("POST", "/login"), ("GET", "/cart"), ("POST", "/checkout")] {
            send(addr, method, path, &as_session(name)).await;
            clock.advance(Duration::from_secs(5));
        }
    }
    let report = tracker.report();
    let names = |p: &palisade::learn::Pattern| -> Vec<String> {
        p.endpoints.iter().map(ToString::to_string).collect()
    };
    let flow = report
        .sequences
        .iter()
        .find(|p| names(p) == ["POST /login", "GET /cart", "POST /checkout"])
        .unwrap();
    assert_eq!((flow.count, flow.score), (3, 1.0));

    let h1 = SessionId::digest(
        &SessionKey::from_bytes(KEY),
        SessionSource::header("x-session"),
        b"h1",
    );
    assert_eq!(tracker.history(h1).len(), 3);
    clock.advance(Duration::from_secs(601));
    send(addr, "GET", "/cart", &as_session("h1")).await;
    assert_eq!(tracker.history(h1).len(), 1);
}
