//! Unit tests of the learning layer through its service: admission, the
//! cap, sibling collapse, hosts, statuses.

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use palisade_core::ManualClock;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::{LearnLayer, LearnLayerBuilder, LearnedState, Origin};

/// A service answering the status in the `x-status` header, 200 without.
fn app() -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    service_fn(|request: Request<()>| async move {
        let status = request
            .headers()
            .get("x-status")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(200);
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        Ok::<_, Infallible>(response)
    })
}

struct Harness {
    state: LearnedState,
    clock: ManualClock,
    layer: LearnLayer,
}

impl Harness {
    fn new(builder: LearnLayerBuilder) -> Self {
        let clock = ManualClock::new(Duration::from_secs(1_000_000));
        let layer = builder.clock(clock.shared()).build().unwrap();
        Self {
            state: layer.state().unwrap().clone(),
            clock,
            layer,
        }
    }

    async fn send(&self, request: Request<()>) -> StatusCode {
        let service = self.layer.layer(app());
        service.oneshot(request).await.unwrap().status()
    }

    async fn get(&self, path: &str) -> StatusCode {
        self.send(Request::get(path).body(()).unwrap()).await
    }

    fn templates(&self) -> Vec<String> {
        self.state
            .endpoints()
            .into_iter()
            .map(|e| e.template)
            .collect()
    }
}

#[tokio::test]
async fn crowded_siblings_collapse_and_reported_ones_keep_their_names() {
    let h = Harness::new(LearnLayer::builder().report_after(2).max_siblings(3));
    h.get("/tags/popular").await;
    h.get("/tags/popular").await;
    for name in ["red", "green", "blue", "cyan"] {
        h.get(&format!("/tags/{name}")).await;
    }
    assert_eq!(h.state.tracked(), 5);

    // Four unreported names under `/tags` are more than three: one
    // placeholder, reported now that it has four responses.
    assert_eq!(h.templates(), ["/tags/popular", "/tags/{var1}"]);
    assert_eq!(h.state.tracked(), 2);

    // New names go straight to the placeholder; the kept name stays apart.
    h.get("/tags/magenta").await;
    h.get("/tags/popular").await;
    assert_eq!(h.state.tracked(), 2);
    let endpoints = h.state.endpoints();
    assert_eq!(endpoints[0].status.success, 3);
    assert_eq!(endpoints[1].status.success, 5);
}

#[tokio::test]
async fn a_full_table_admits_nothing_new_and_keeps_what_it_has() {
    let h = Harness::new(
        LearnLayer::builder()
            .report_after(1)
            .max_endpoints(2)
            .max_siblings(1_000),
    );
    for path in ["/a", "/b", "/c", "/d"] {
        h.get(path).await;
    }
    assert_eq!(h.state.tracked(), 2);
    assert_eq!(h.state.refused(), 2);
    assert_eq!(h.templates(), ["/a", "/b"]);
    h.get("/a").await;
    assert_eq!(h.state.endpoints()[0].status.success, 2);
}

#[tokio::test]
async fn unreported_candidates_age_out() {
    let h = Harness::new(
        LearnLayer::builder()
            .report_after(3)
            .candidate_ttl(Duration::from_secs(60)),
    );
    for _ in 0..3 {
        h.get("/kept").await;
    }
    h.get("/once").await;
    h.clock.advance(Duration::from_secs(61));
    h.state.maintain();
    assert_eq!(h.state.tracked(), 1);
    assert_eq!(h.templates(), ["/kept"]);
}

#[tokio::test]
async fn only_2xx_admits_but_every_status_counts_on_known_endpoints() {
    let h = Harness::new(LearnLayer::builder().report_after(1));
    let with_status = |path: &str, status: &str| {
        Request::get(path)
            .header("x-status", status)
            .body(())
            .unwrap()
    };
    assert_eq!(h.send(with_status("/users/1", "404")).await, 404);
    assert_eq!(h.state.tracked(), 0);
    h.get("/users/2").await;
    h.send(with_status("/users/3", "404")).await;
    h.send(with_status("/users/4", "503")).await;
    h.send(with_status("/users/5", "302")).await;
    let users = &h.state.endpoints()[0];
    assert_eq!(users.template, "/users/{var1}");
    assert_eq!(
        (
            users.status.success,
            users.status.redirection,
            users.status.client_error,
            users.status.server_error
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(users.requests, 4);
    // Posture counts 2xx only.
    assert_eq!(h.state.posture()[0].without_session, 1);
}

#[tokio::test]
async fn hosts_are_told_apart_up_to_the_limit() {
    let h = Harness::new(LearnLayer::builder().report_after(1).max_hosts(1));
    let on = |host: &str| {
        Request::get("/status")
            .header("host", host)
            .body(())
            .unwrap()
    };
    h.send(on("API.example.com:8443")).await;
    h.send(on("api.example.com")).await;
    h.send(on("other.example.com")).await;
    h.get("/status").await;
    let endpoints = h.state.endpoints();
    let hosts: Vec<(&str, u64)> = endpoints
        .iter()
        .map(|e| (e.host.as_str(), e.status.success))
        .collect();
    assert_eq!(hosts, [("*", 2), ("api.example.com", 2)]);
    assert_eq!(endpoints[1].name(), "GET api.example.com/status");
}

#[tokio::test]
async fn too_deep_paths_are_not_learned() {
    let h = Harness::new(LearnLayer::builder().report_after(1));
    h.get(&"/a".repeat(17)).await;
    h.get(&"/a".repeat(16)).await;
    assert_eq!(h.state.tracked(), 1);
}

#[tokio::test]
async fn a_disabled_layer_passes_everything_through() {
    let layer = LearnLayer::disabled();
    assert!(layer.state().is_none());
    let response = layer
        .layer(app())
        .oneshot(
            Request::get("/x")
                .header("x-status", "418")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 418);
}

#[tokio::test]
async fn declared_endpoints_are_tracked_whatever_the_cap() {
    let catalogue = palisade_core::EndpointCatalogue::builder()
        .endpoint("GET", "/orders/{id}")
        .unwrap()
        .build()
        .unwrap();
    let h = Harness::new(
        LearnLayer::builder()
            .report_after(1)
            .max_endpoints(1)
            .catalogue(catalogue),
    );
    h.get("/free").await;
    h.get("/orders/abc").await;
    let endpoints = h.state.endpoints();
    assert_eq!(endpoints.len(), 2);
    assert_eq!(endpoints[1].template, "/orders/{id}");
    assert_eq!(endpoints[1].origin, Origin::Declared);
}

#[test]
fn bad_settings_are_named() {
    let err = LearnLayer::builder().report_after(0).build().unwrap_err();
    assert!(err.to_string().contains("report_after"), "{err}");
    let err = LearnLayer::builder().max_endpoints(0).build().unwrap_err();
    assert!(err.to_string().contains("max_endpoints"), "{err}");
    let err = LearnLayer::builder().max_hosts(33).build().unwrap_err();
    assert!(err.to_string().contains("max_hosts"), "{err}");
}

/// Regression: a candidate under a kept name was collapsed with the
/// crowd, so the request path (which keeps the name) no longer found it.
#[tokio::test]
async fn candidates_under_a_kept_name_stay_with_it() {
    let h = Harness::new(LearnLayer::builder().report_after(2).max_siblings(2));
    h.get("/users/1").await;
    h.get("/users/2").await;
    for path in ["/users/5/alpha", "/a", "/b", "/c"] {
        h.get(path).await;
    }
    h.state.maintain();
    let mut templates = h.state.endpoints();
    templates.retain(|e| e.template != "/users/{var1}");
    assert_eq!(templates[0].template, "/{var1}");
    assert_eq!(h.state.tracked(), 3);

    // Both paths still land on the collectors they had.
    h.get("/users/6/alpha").await;
    h.get("/d").await;
    assert_eq!(h.state.tracked(), 3);
    let snapshot = h.state.snapshot();
    let alpha = snapshot
        .endpoints
        .iter()
        .find(|e| e.template == "/users/{var1}/alpha")
        .unwrap();
    assert_eq!(alpha.status.success, 2);
}
