//! End-to-end tests of the learning layer over real sockets: discovery,
//! declared templates, flood resistance, posture, snapshots, the recorder
//! hook, and the admin API with its OpenAPI document.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get as route_get;
use common::{get, serve_axum};
use palisade::learn::{Mark, Observation, Origin, Posture, Recorder, Snapshot};
use palisade::{EndpointCatalogue, Identifier, LearnLayer, LearnedState, ManualClock, Shield};
use tower::Layer;

/// A small deterministic generator, so failures replay.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn word(&mut self) -> String {
        let len = 5 + self.next() % 6;
        (0..len)
            .map(|_| char::from(b'a' + (self.next() % 26) as u8))
            .collect()
    }

    fn uuid(&mut self) -> String {
        let hex = format!(
            "{:016x}{:016x}",
            self.next() << 31 | self.next(),
            self.next()
        );
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &format!("{hex}{hex}")[20..32]
        )
    }
}

fn clock() -> ManualClock {
    ManualClock::new(Duration::from_secs(1_700_000_000))
}

/// Serves `app` with the learning layer around the whole router, so no
/// `MatchedPath` helps it: templates come from the catalogue or from
/// guessing.
async fn serve_wrapped(app: Router, learn: &LearnLayer) -> SocketAddr {
    serve_axum(Router::new().fallback_service(learn.layer(app))).await
}

fn names(state: &LearnedState) -> BTreeSet<String> {
    state
        .endpoints()
        .iter()
        .map(|e| format!("{} {}", e.method, e.template))
        .collect()
}

fn api() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            route_get(|| async { "user" }).delete(|| async { "gone" }),
        )
        .route(
            "/users/{id}/orders/{order}",
            route_get(|| async { "order" }),
        )
        .route("/products/{sku}", route_get(|| async { "product" }))
        .route("/reports/{day}", route_get(|| async { "report" }))
        .route("/invites/{email}", route_get(|| async { "invite" }))
        .route("/health", route_get(|| async { "ok" }))
}

/// One request to each template, with fresh random values.
async fn round(addr: SocketAddr, rng: &mut Lcg) {
    let paths = [
        format!("/users/{}", rng.next()),
        format!("/users/{}/orders/{}", rng.next(), rng.next() % 100),
        format!("/products/{}", rng.uuid()),
        format!(
            "/reports/2024-{:02}-{:02}",
            1 + rng.next() % 12,
            1 + rng.next() % 28
        ),
        format!("/invites/{}%40example.com", rng.word()),
        "/health".to_owned(),
    ];
    for path in paths {
        assert_eq!(get(addr, &path, &[]).await.status, 200, "{path}");
    }
    let path = format!("/users/{}", rng.next());
    assert_eq!(common::send(addr, "DELETE", &path, &[]).await.status, 200);
}

#[tokio::test]
async fn known_templates_are_discovered_exactly_past_the_threshold() {
    let learn = LearnLayer::builder()
        .clock(clock().shared())
        .report_after(5)
        .build()
        .unwrap();
    let state = learn.state().unwrap().clone();
    let addr = serve_wrapped(api(), &learn).await;
    let mut rng = Lcg(7);

    for _ in 0..4 {
        round(addr, &mut rng).await;
        // Unknown paths get 404 and teach nothing.
        get(addr, &format!("/nothing/{}", rng.word()), &[]).await;
    }
    assert!(state.endpoints().is_empty(), "{:?}", names(&state));

    round(addr, &mut rng).await;
    let expected: BTreeSet<String> = [
        "GET /users/{var1}",
        "DELETE /users/{var1}",
        "GET /users/{var1}/orders/{var2}",
        "GET /products/{var1}",
        "GET /reports/{var1}",
        "GET /invites/{var1}",
        "GET /health",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names(&state), expected);

    let users = state
        .endpoints()
        .into_iter()
        .find(|e| e.template == "/users/{var1}" && e.method == "GET")
        .unwrap();
    assert_eq!(users.host, "127.0.0.1");
    assert_eq!(users.origin, Origin::Discovered);
    assert_eq!(users.status.success, 5);
    assert_eq!(users.parameters, ["var1"]);
    assert_eq!(users.first_seen, 1_700_000_000);
    assert_eq!(users.requests_per_hour, 5.0);
}

#[tokio::test]
async fn declared_templates_and_matched_paths_win_over_guessing() {
    // Declared: the layer wraps the router, the catalogue names the template.
    let catalogue = EndpointCatalogue::builder()
        .endpoint("GET", "/items/{item_id}")
        .unwrap()
        .build()
        .unwrap();
    let learn = LearnLayer::builder()
        .catalogue(catalogue)
        .report_after(3)
        .build()
        .unwrap();
    let app = Router::new().route("/items/{x}", route_get(|| async { "item" }));
    let addr = serve_wrapped(app, &learn).await;
    for item in ["42", "lamp", "chair"] {
        get(addr, &format!("/items/{item}"), &[]).await;
    }
    let endpoints = learn.state().unwrap().endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].template, "/items/{item_id}");
    assert_eq!(endpoints[0].origin, Origin::Declared);

    // Matched: inside the router, axum's route template is used, even for
    // segments the heuristics would keep as names.
    let shield = Shield::builder()
        .learning(LearnLayer::builder().report_after(3))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/things/{name}", route_get(|| async { "thing" }))
        .layer(shield.clone());
    let addr = serve_axum(app).await;
    for name in ["alice", "bob", "carol"] {
        get(addr, &format!("/things/{name}"), &[]).await;
    }
    let endpoints = shield.learned().unwrap().endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].template, "/things/{name}");
    assert_eq!(endpoints[0].origin, Origin::Matched);
}

#[tokio::test]
async fn random_path_floods_stay_under_the_cap_and_keep_real_endpoints() {
    let clock = clock();
    let learn = LearnLayer::builder()
        .clock(clock.shared())
        .report_after(3)
        .max_endpoints(40)
        .max_siblings(10)
        .build()
        .unwrap();
    let state = learn.state().unwrap().clone();
    // The worst case: a catch-all that answers 200 to any path.
    let app = api().fallback(|| async { "anything" });
    let addr = serve_wrapped(app, &learn).await;
    let mut rng = Lcg(11);
    for _ in 0..3 {
        round(addr, &mut rng).await;
    }
    let real = names(&state);
    assert_eq!(real.len(), 7);

    for i in 0..400 {
        let path = match i % 3 {
            0 => format!("/{}", rng.word()),
            1 => format!("/{}/{}", rng.word(), rng.word()),
            _ => format!("/users/{}/{}", rng.next(), rng.word()),
        };
        get(addr, &path, &[]).await;
        assert!(state.tracked() <= 40, "{} tracked", state.tracked());
        if i % 50 == 49 {
            // Time passes; a full table runs maintenance from a request.
            clock.advance(Duration::from_secs(11));
        }
    }
    assert!(state.refused() > 0, "the flood should have hit the cap");

    // The real endpoints are still there and still counted.
    round(addr, &mut rng).await;
    let after = names(&state);
    assert!(real.is_subset(&after), "{after:?}");
    let health = state
        .endpoints()
        .into_iter()
        .find(|e| e.template == "/health")
        .unwrap();
    assert_eq!(health.status.success, 4);
    // The flood collapsed into placeholders instead of filling the table.
    assert!(state.tracked() < 40, "{} tracked", state.tracked());
    assert!(after.len() - real.len() <= 3, "{after:?}");

    // Candidates that never reach the threshold age out.
    clock.advance(Duration::from_secs(2 * 3_600));
    state.maintain();
    assert_eq!(state.tracked(), after.len());
}

#[tokio::test]
async fn posture_labels_authenticated_mixed_and_missing() {
    let shield = Shield::builder()
        .identifier(Identifier::header("authorization").unwrap())
        .identifier(Identifier::cookie("sid").unwrap())
        .learning(LearnLayer::builder().report_after(4))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/account", route_get(|| async { "account" }))
        .route("/feed", route_get(|| async { "feed" }))
        .route("/public", route_get(|| async { "public" }))
        .layer(shield.clone());
    let addr = serve_axum(app).await;

    for i in 0..4 {
        let token = format!("Bearer token-{i}");
        get(addr, "/account", &[("authorization", &token)]).await;
        if i == 0 {
            get(addr, "/feed", &[]).await;
        } else {
            get(addr, "/feed", &[("cookie", &format!("sid=s{i}"))]).await;
        }
        get(addr, "/public", &[]).await;
    }
    // 404s do not count toward posture.
    get(addr, "/account/missing", &[]).await;

    let posture = shield.learned().unwrap().posture();
    let by_template = |t: &str| posture.iter().find(|p| p.template == t).unwrap();
    let account = by_template("/account");
    assert_eq!(account.posture, Posture::Authenticated);
    assert_eq!((account.with_session, account.without_session), (4, 0));
    assert_eq!(account.identifiers, ["header:authorization"]);
    let feed = by_template("/feed");
    assert_eq!(feed.posture, Posture::Mixed);
    assert_eq!((feed.with_session, feed.without_session), (3, 1));
    assert_eq!(feed.identifiers, ["cookie:sid"]);
    let public = by_template("/public");
    assert_eq!(public.posture, Posture::Missing);
    assert!(public.identifiers.is_empty());

    let endpoints = shield.learned().unwrap().endpoints();
    let account = endpoints.iter().find(|e| e.template == "/account").unwrap();
    assert_eq!(account.sessions, 4);
}

#[derive(Default)]
struct Counting {
    seen: AtomicUsize,
    with_session: AtomicUsize,
}

impl Recorder for Counting {
    fn record(&self, observation: &Observation) {
        assert!(observation.status.is_success());
        assert_eq!(observation.at, Duration::from_secs(1_700_000_000));
        self.seen.fetch_add(1, Ordering::Relaxed);
        if observation.session.is_some() {
            self.with_session.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test]
async fn recorders_see_2xx_of_reported_endpoints_only() {
    let counting = Arc::new(Counting::default());
    let learn = LearnLayer::builder()
        .clock(clock().shared())
        .report_after(3)
        .recorder(counting.clone())
        .build()
        .unwrap();
    let addr = serve_wrapped(api(), &learn).await;
    for i in 0..5 {
        get(addr, &format!("/users/{i}"), &[]).await;
        get(addr, &format!("/nope/{i}"), &[]).await;
    }
    // The first two were a candidate's; from the third on, observed.
    assert_eq!(counting.seen.load(Ordering::Relaxed), 3);
    assert_eq!(counting.with_session.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn snapshots_round_trip_and_saved_endpoints_join_the_catalogue() {
    let learn = LearnLayer::builder()
        .clock(clock().shared())
        .report_after(3)
        .build()
        .unwrap();
    let state = learn.state().unwrap().clone();
    let addr = serve_wrapped(api(), &learn).await;
    let mut rng = Lcg(3);
    for _ in 0..3 {
        round(addr, &mut rng).await;
    }
    assert!(state.mark("GET", "127.0.0.1", "/users/{var1}", Mark::Saved));
    assert!(state.mark("GET", "127.0.0.1", "/health", Mark::Ignored));
    assert!(!state.mark("GET", "127.0.0.1", "/nothing", Mark::Saved));
    assert!(!names(&state).contains("GET /health"));
    assert_eq!(state.ignored()[0].template, "/health");

    let catalogue = state.catalogue().unwrap();
    let saved = catalogue
        .resolve(&http::Method::GET, Some("127.0.0.1"), "/users/77")
        .unwrap();
    assert_eq!(saved.template(), "/users/{var1}");

    let json = serde_json::to_string(&state.snapshot()).unwrap();
    let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
    let restored = LearnLayer::builder()
        .clock(clock().shared())
        .report_after(3)
        .snapshot(snapshot)
        .build()
        .unwrap();
    let restored = restored.state().unwrap();
    assert_eq!(restored.endpoints(), state.endpoints());
    assert_eq!(restored.posture(), state.posture());
    assert_eq!(restored.ignored(), state.ignored());

    // A snapshot from a newer format is refused, naming the version.
    let mut newer = state.snapshot();
    newer.version += 1;
    let err = LearnLayer::builder().snapshot(newer).build().unwrap_err();
    assert!(err.to_string().contains("snapshot version"), "{err}");
}

#[cfg(feature = "admin")]
mod admin {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    async fn put_json(addr: SocketAddr, path: &str, body: &str) -> http::StatusCode {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = http::Request::put(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .header("authorization", "Bearer admin-secret")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        status
    }

    #[tokio::test]
    async fn admin_api_serves_json_and_a_valid_openapi_31_document() {
        let shield = Shield::builder()
            .identifier(Identifier::header("x-api-key").unwrap())
            .learning(LearnLayer::builder().report_after(3))
            .build()
            .unwrap();
        let admin = shield
            .admin_router()
            .unwrap()
            .layer(axum::middleware::from_fn(
                |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    let auth = request.headers().get("authorization");
                    if auth.is_some_and(|v| v == "Bearer admin-secret") {
                        Ok(next.run(request).await)
                    } else {
                        Err(http::StatusCode::UNAUTHORIZED)
                    }
                },
            ));
        // The API is learned with the layer around the whole router; the
        // admin routes are mounted beside it.
        let learned = Router::new().fallback_service(shield.layer(api()));
        let app = Router::new().nest("/admin", admin).merge(learned);
        let addr = serve_axum(app).await;
        let mut rng = Lcg(5);
        for _ in 0..3 {
            round(addr, &mut rng).await;
        }

        let auth = [("authorization", "Bearer admin-secret")];
        assert_eq!(get(addr, "/admin/endpoints", &[]).await.status, 401);
        let endpoints = get(addr, "/admin/endpoints", &auth).await;
        assert_eq!(endpoints.status, 200);
        let endpoints: serde_json::Value = serde_json::from_str(&endpoints.body).unwrap();
        assert_eq!(endpoints.as_array().unwrap().len(), 7);
        let posture = get(addr, "/admin/posture", &auth).await;
        assert!(
            posture.body.contains("\"posture\":\"missing\""),
            "{}",
            posture.body
        );
        let snapshot = get(addr, "/admin/snapshot", &auth).await;
        let _: Snapshot = serde_json::from_str(&snapshot.body).unwrap();

        let mark = r#"{"method":"GET","host":"127.0.0.1","template":"/health","mark":"ignored"}"#;
        assert_eq!(put_json(addr, "/admin/marks", mark).await, 204);
        let unknown = r#"{"method":"GET","template":"/nope","mark":"saved"}"#;
        assert_eq!(put_json(addr, "/admin/marks", unknown).await, 404);

        let document = get(addr, "/admin/openapi.json", &auth).await;
        assert_eq!(document.status, 200);
        let spec = oas3::from_json(&document.body).unwrap();
        assert_eq!(spec.validate_version().unwrap().minor, 1);
        let paths = spec.paths.as_ref().unwrap();
        let listed: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = [
            "/users/{var1}",
            "/users/{var1}/orders/{var2}",
            "/products/{var1}",
            "/reports/{var1}",
            "/invites/{var1}",
        ]
        .into();
        // `/health` was ignored.
        assert_eq!(listed, expected);

        let users = spec.operation(&http::Method::GET, "/users/{var1}/orders/{var2}");
        let names: Vec<(String, bool)> = users
            .unwrap()
            .parameters
            .iter()
            .map(|p| match p {
                oas3::spec::ObjectOrReference::Object(p) => {
                    assert_eq!(p.location, oas3::spec::ParameterIn::Path);
                    (p.name.clone(), p.required == Some(true))
                }
                oas3::spec::ObjectOrReference::Ref { .. } => panic!("no references expected"),
            })
            .collect();
        assert_eq!(names, [("var1".into(), true), ("var2".into(), true)]);
        assert!(
            spec.operation(&http::Method::DELETE, "/users/{var1}")
                .is_some(),
            "DELETE shares the path item"
        );
    }
}

#[tokio::test]
async fn the_shields_catalogue_is_the_learning_layers_too() {
    let catalogue = EndpointCatalogue::builder()
        .endpoint("GET", "/items/{item_id}")
        .unwrap()
        .build()
        .unwrap();
    let shield = Shield::builder()
        .endpoints(catalogue)
        .learning(LearnLayer::builder().report_after(2))
        .build()
        .unwrap();
    let app = Router::new().route("/items/{x}", route_get(|| async { "item" }));
    let addr = serve_axum(Router::new().fallback_service(shield.layer(app))).await;
    for item in ["lamp", "chair"] {
        get(addr, &format!("/items/{item}"), &[]).await;
    }
    let endpoints = shield.learned().unwrap().endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].template, "/items/{item_id}");
    assert_eq!(endpoints[0].origin, Origin::Declared);
}
