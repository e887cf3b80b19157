//! End to end: the session layer in axum and in a plain hyper 1 server, over
//! real sockets with a real HTTP client.

mod common;

use std::convert::Infallible;

use axum::{Router, routing::get};
use bytes::Bytes;
use common::{get as fetch, serve_axum};
use http::StatusCode;
use http_body_util::Full;
use palisade::{Identifier, Session, SessionId, SessionKey, SessionLayer, SessionSource, Shield};

const KEY: [u8; 16] = *b"test-key-16bytes";

async fn whoami(session: Option<Session>) -> String {
    match session {
        Some(s) => format!("{} {}", s.id().unwrap(), s.source().unwrap()),
        None => "anonymous".to_owned(),
    }
}

async fn app(require: bool) -> std::net::SocketAddr {
    let shield = Shield::builder()
        .identifier(Identifier::header("authorization").unwrap())
        .identifier(Identifier::cookie("session").unwrap())
        .session_key(SessionKey::from_bytes(KEY))
        .require_session(require)
        .build()
        .unwrap();
    let router = Router::new()
        .route("/", get(whoami))
        .route(
            "/strict",
            get(|s: Session| async move { s.id().unwrap().to_string() }),
        )
        .layer(shield);
    serve_axum(router).await
}

fn expected(source: SessionSource, value: &str) -> String {
    let id = SessionId::digest(&SessionKey::from_bytes(KEY), source, value.as_bytes());
    format!("{id} {source}")
}

#[tokio::test]
async fn header_session_answers_with_digest_not_value() {
    let addr = app(false).await;
    let seen = fetch(addr, "/", &[("authorization", "Bearer abc")]).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(
        seen.body,
        expected(SessionSource::header("authorization"), "Bearer abc")
    );
    assert!(!seen.body.contains("abc "));
    assert!(!seen.body.contains("Bearer"));
}

#[tokio::test]
async fn cookie_session_from_split_fields() {
    let addr = app(false).await;
    let seen = fetch(
        addr,
        "/",
        &[
            ("cookie", "theme=dark"),
            ("cookie", "session=\"xyz\"; other=1"),
        ],
    )
    .await;
    assert_eq!(seen.body, expected(SessionSource::cookie("session"), "xyz"));
}

#[tokio::test]
async fn first_configured_identifier_present_wins() {
    let addr = app(false).await;
    let both = fetch(
        addr,
        "/",
        &[("cookie", "session=xyz"), ("authorization", "Bearer abc")],
    )
    .await;
    assert_eq!(
        both.body,
        expected(SessionSource::header("authorization"), "Bearer abc")
    );
    let empty_header = fetch(
        addr,
        "/",
        &[("authorization", ""), ("cookie", "session=xyz")],
    )
    .await;
    assert_eq!(
        empty_header.body,
        expected(SessionSource::cookie("session"), "xyz")
    );
}

#[tokio::test]
async fn anonymous_request_passes_when_sessions_are_optional() {
    let addr = app(false).await;
    assert_eq!(fetch(addr, "/", &[]).await.body, "anonymous");
    // The `Session` extractor refuses what the layer let through.
    let strict = fetch(addr, "/strict", &[("cookie", "other=1")]).await;
    assert_eq!(strict.status, StatusCode::UNAUTHORIZED);
    assert_eq!(strict.headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn required_session_refuses_with_problem_json() {
    let addr = app(true).await;
    let seen = fetch(addr, "/", &[("cookie", "session=")]).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.headers["content-type"], "application/problem+json");
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["status"], 401);
    assert_eq!(body["title"], "session required");

    let ok = fetch(addr, "/", &[("cookie", "session=xyz")]).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn non_utf8_cookie_does_not_break_the_server() {
    let addr = app(false).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let request = http::Request::get(format!("http://{addr}/"))
        .header(
            "cookie",
            http::HeaderValue::from_bytes(b"session=\xff\xfe").unwrap(),
        )
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn hyper_only_stack_without_axum() {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceBuilder;

    let sessions = SessionLayer::builder()
        .identifier(Identifier::header("x-api-key").unwrap())
        .key(SessionKey::from_bytes(KEY))
        .require_session(true)
        .build()
        .unwrap();
    let service = ServiceBuilder::new().layer(sessions).service_fn(
        |request: http::Request<hyper::body::Incoming>| async move {
            let session = request.extensions().get::<Session>().copied().unwrap();
            let body = format!("{}", session.id().unwrap());
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
        },
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });

    let seen = fetch(addr, "/", &[("x-api-key", "k-123")]).await;
    assert_eq!(seen.status, StatusCode::OK);
    let id = SessionId::digest(
        &SessionKey::from_bytes(KEY),
        SessionSource::header("x-api-key"),
        b"k-123",
    );
    assert_eq!(seen.body, id.to_string());

    let refused = fetch(addr, "/", &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers["content-type"], "application/problem+json");
}

#[test]
fn more_than_ten_identifiers_are_refused() {
    let mut builder = Shield::builder();
    for i in 0..11 {
        builder = builder.identifier(Identifier::header(&format!("x-id-{i}")).unwrap());
    }
    assert_eq!(
        builder.build().unwrap_err(),
        palisade::ConfigError::TooManyIdentifiers { given: 11, max: 10 }
    );
    let mut builder = Shield::builder();
    for i in 0..10 {
        builder = builder.identifier(Identifier::cookie(&format!("c{i}")).unwrap());
    }
    assert_eq!(builder.build().unwrap().sessions().identifiers().len(), 10);
}
