use std::convert::Infallible;
use std::num::NonZeroU32;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use palisade_core::{ManualClock, Session};
use tower::{Service, ServiceBuilder, ServiceExt};

use super::*;
use crate::{Identifier, SessionLayer};

fn detector(clock: &ManualClock) -> AutoDetect {
    AutoDetect::builder()
        .min_sample(1_000)
        .sample_every(NonZeroU32::MIN)
        .clock(clock.shared())
        .build()
        .unwrap()
}

fn clock() -> ManualClock {
    ManualClock::new(Duration::from_secs(1_800_000_000))
}

/// A stack of the session layer and the detector over an app that answers
/// with the status asked for in `x-status` and the session it saw.
fn stack(
    sessions: SessionLayer,
    auto: &AutoDetect,
) -> impl Service<Request<()>, Response = Response<impl Sized>, Error = Infallible> + Clone {
    ServiceBuilder::new()
        .layer(sessions)
        .layer(auto.layer())
        .service_fn(|request: Request<()>| async move {
            let status = request
                .headers()
                .get("x-status")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(200);
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            let session = *request.extensions().get::<Session>().unwrap();
            response.extensions_mut().insert(session);
            Ok::<_, Infallible>(response)
        })
}

async fn send<S, B>(svc: &S, headers: &[(&str, String)]) -> Session
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible> + Clone,
{
    let mut request = Request::get("/");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = svc
        .clone()
        .oneshot(request.body(()).unwrap())
        .await
        .unwrap();
    *response.extensions().get::<Session>().unwrap()
}

async fn traffic(auto: &AutoDetect, without: usize, with: usize) {
    let sessions = SessionLayer::builder().auto_detect(auto).build().unwrap();
    let svc = stack(sessions, auto);
    for _ in 0..without {
        send(&svc, &[]).await;
    }
    for i in 0..with {
        send(&svc, &[("authorization", format!("Bearer t{i}"))]).await;
    }
}

#[tokio::test]
async fn share_of_0_9_percent_is_not_chosen() {
    let auto = detector(&clock());
    traffic(&auto, 991, 9).await;
    let report = auto.report();
    assert_eq!((report.total, report.with_authorization), (1_000, 9));
    assert!(report.chosen.is_none());
}

#[tokio::test]
async fn share_of_1_1_percent_is_chosen() {
    let auto = detector(&clock());
    traffic(&auto, 989, 11).await;
    let chosen = auto.report().chosen.expect("chosen");
    assert_eq!(chosen.identifier, "header:authorization");
    assert_eq!(chosen.total, 1_000);
    assert_eq!(chosen.with_authorization, 11);
    assert!((chosen.share - 0.011).abs() < 1e-9);
}

#[tokio::test]
async fn below_the_minimum_sample_nothing_is_chosen() {
    let auto = detector(&clock());
    traffic(&auto, 499, 500).await;
    let report = auto.report();
    assert_eq!(report.total, 999);
    assert!(report.chosen.is_none());
}

#[tokio::test]
async fn old_traffic_slides_out_of_the_window() {
    let clock = clock();
    let auto = detector(&clock);
    traffic(&auto, 1_000, 0).await;
    clock.advance(Duration::from_secs(601));
    traffic(&auto, 0, 5).await;
    let report = auto.report();
    assert_eq!((report.total, report.with_authorization), (5, 5));
    assert!(report.chosen.is_none(), "5 responses are below the sample");
}

#[tokio::test]
async fn non_2xx_responses_are_ignored() {
    let auto = detector(&clock());
    let sessions = SessionLayer::builder().auto_detect(&auto).build().unwrap();
    let svc = stack(sessions, &auto);
    for i in 0..2_000 {
        let headers = [
            ("authorization", format!("Bearer {i}")),
            ("x-status", "401".to_owned()),
        ];
        send(&svc, &headers).await;
    }
    for _ in 0..1_000 {
        send(&svc, &[("x-status", "204".to_owned())]).await;
    }
    let report = auto.report();
    assert_eq!((report.total, report.with_authorization), (1_000, 0));
    assert!(report.chosen.is_none());
}

#[tokio::test]
async fn the_switch_is_seen_by_the_session_layer_on_the_next_request() {
    let auto = detector(&clock());
    let sessions = SessionLayer::builder().auto_detect(&auto).build().unwrap();
    let svc = stack(sessions, &auto);
    let token = [("authorization", "Bearer abc".to_owned())];
    for _ in 0..980 {
        send(&svc, &[]).await;
    }
    for _ in 0..19 {
        assert!(send(&svc, &token).await.is_anonymous());
    }
    // The thousandth response completes the sample and makes the choice.
    assert!(send(&svc, &token).await.is_anonymous());
    assert!(auto.report().chosen.is_some());
    let session = send(&svc, &token).await;
    assert_eq!(
        session.source().unwrap().to_string(),
        "header:authorization"
    );
}

#[tokio::test]
async fn a_configured_identifier_is_never_replaced() {
    let auto = detector(&clock());
    let sessions = SessionLayer::builder()
        .identifier(Identifier::cookie("sid").unwrap())
        .auto_detect(&auto)
        .build()
        .unwrap();
    let svc = stack(sessions, &auto);
    for i in 0..2_000 {
        let session = send(&svc, &[("authorization", format!("Bearer {}", i % 10))]).await;
        assert!(session.is_anonymous());
    }
    let report = auto.report();
    assert!(report.configured);
    assert!(report.chosen.is_none());
    assert_eq!(report.with_authorization, 2_000);
}

#[tokio::test]
async fn candidates_rank_a_client_key_above_a_constant_and_a_nonce() {
    let auto = detector(&clock());
    let sessions = SessionLayer::builder().auto_detect(&auto).build().unwrap();
    let svc = stack(sessions, &auto);
    for i in 0..3_000 {
        let client = i % 50;
        let mut headers = vec![
            ("x-api-key", format!("key-{client}")),
            ("x-app-version", "1.2.3".to_owned()),
            ("x-request-id", format!("req-{i}")),
            ("user-agent", format!("agent-{client}")),
            ("cookie", format!("theme=dark; sid=s{}", client % 25)),
        ];
        // The cookie is on a third of the requests only.
        if i % 3 != 0 {
            headers.pop();
        }
        send(&svc, &headers).await;
    }
    let report = auto.report();
    assert_eq!(report.sampled, 3_000);
    let names: Vec<&str> = report
        .candidates
        .iter()
        .map(|c| c.identifier.as_str())
        .collect();
    assert_eq!(
        names,
        ["header:x-api-key", "cookie:sid"],
        "{:?}",
        report.candidates
    );
    let key = &report.candidates[0];
    assert_eq!(key.presence, 1.0);
    assert!((key.distinct_values - 50.0).abs() < 1.0, "{key:?}");
    assert!((key.requests_per_value - 60.0).abs() < 1.0, "{key:?}");
    // Suggestions are never applied.
    assert!(report.chosen.is_none());
}

#[test]
fn bad_settings_are_named() {
    let err = AutoDetect::builder().threshold(1.5).build().unwrap_err();
    assert!(err.to_string().contains("1.5"), "{err}");
    let err = AutoDetect::builder().min_sample(0).build().unwrap_err();
    assert!(err.to_string().contains("minimum sample"), "{err}");
    let err = AutoDetect::builder()
        .window(Duration::from_millis(10))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("window"), "{err}");
}

#[tokio::test]
async fn the_off_layer_passes_requests_through() {
    let svc = ServiceBuilder::new()
        .layer(AutoDetectLayer::off())
        .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(7)) });
    let response = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(*response.body(), 7);
}
