//! End to end: the Shield's identifier detection over a real socket.

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use axum::{Router, routing::get};
use common::{get as fetch, serve_axum};
use palisade::{AutoDetect, ManualClock, Session, Shield};

#[tokio::test]
async fn authorization_is_chosen_from_traffic_and_used_next() {
    let clock = ManualClock::new(Duration::from_secs(1_800_000_000));
    let auto = AutoDetect::builder()
        .min_sample(200)
        .sample_every(NonZeroU32::MIN)
        .clock(clock.shared())
        .build()
        .unwrap();
    let shield = Shield::builder().auto_detect(auto).build().unwrap();
    let detector = shield.auto_detect().unwrap().clone();
    let app = Router::new()
        .route(
            "/",
            get(|s: Option<Session>| async move {
                s.and_then(|s| s.source())
                    .map_or("anonymous".to_owned(), |s| s.to_string())
            }),
        )
        .layer(shield);
    let addr = serve_axum(app).await;

    // 2% of the traffic carries a token, and every client an API key.
    for i in 0..200 {
        let key = format!("key-{}", i % 20);
        let token = format!("Bearer t{}", i % 4);
        let mut headers = vec![("x-api-key", key.as_str())];
        if i % 50 == 49 {
            headers.push(("authorization", token.as_str()));
        }
        let seen = fetch(addr, "/", &headers).await;
        assert_eq!(seen.body, "anonymous");
    }

    let report = detector.report();
    let chosen = report.chosen.expect("chosen");
    assert_eq!(chosen.identifier, "header:authorization");
    assert_eq!((chosen.total, chosen.with_authorization), (200, 4));
    assert_eq!(report.candidates[0].identifier, "header:x-api-key");

    let seen = fetch(addr, "/", &[("authorization", "Bearer t1")]).await;
    assert_eq!(seen.body, "header:authorization");
}
