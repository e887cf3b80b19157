//! End to end over real sockets: the Shield with JWT validation outside the
//! session layer; blocked, logged and ignored outcomes; a JWT claim as the
//! session; key rotation while serving.

mod common;
#[path = "../crates/palisade-jwt/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use axum::extract::Extension;
use axum::{Router, routing::get};
use common::{get as fetch, send, serve_axum};
use http::StatusCode;
use jsonwebtoken::Algorithm;
use palisade::{
    Claims, Identifier, JwtRejection, ManualClock, Session, SessionId, SessionKey, SessionSource,
    Shield, TokenAction, TokenConfig, TokenPolicy,
};
use serde_json::{Value, json};
use support::{NOW, claims, jwks, key, sign};

const KEY: [u8; 16] = *b"jwt-e2e-key-16by";

async fn echo(
    claims: Option<Claims<Value>>,
    logged: Option<Extension<JwtRejection>>,
    session: Option<Session>,
) -> String {
    let sub = claims.map_or("-".to_owned(), |Claims(c)| c["sub"].to_string());
    let logged = logged.map_or("-", |Extension(r)| r.kind().code());
    let session = session.map_or("anonymous".to_owned(), |s| s.id().unwrap().to_string());
    format!("{sub} {logged} {session}")
}

fn shield(clock: &ManualClock, keys: &[&support::TestKey]) -> Shield {
    let config = TokenConfig::builder("auth")
        .title("Test issuer")
        .header("authorization")
        .cookie("access_token")
        .jwks(jwks(keys))
        .build()
        .unwrap();
    Shield::builder()
        .token(config)
        .token_policy(
            TokenPolicy::new("auth")
                .include("*", "/blocked")
                .unwrap()
                .on_missing(TokenAction::Block)
                .on_invalid(TokenAction::Block),
        )
        .token_policy(
            TokenPolicy::new("auth")
                .include("GET", "/logged")
                .unwrap()
                .on_missing(TokenAction::Log)
                .on_invalid(TokenAction::Log),
        )
        .token_policy(
            TokenPolicy::new("auth")
                .on_missing(TokenAction::Ignore)
                .on_invalid(TokenAction::Ignore),
        )
        .identifier(Identifier::claim("auth", "$.sub").unwrap())
        .session_key(SessionKey::from_bytes(KEY))
        .jwt_clock(clock.shared())
        .build()
        .unwrap()
}

async fn serve(shield: Shield) -> std::net::SocketAddr {
    let router = Router::new()
        .route("/blocked", get(echo).options(|| async { "preflight" }))
        .route("/logged", get(echo))
        .route("/open", get(echo))
        .layer(shield);
    serve_axum(router).await
}

fn session_of(sub: &str) -> String {
    let source = Identifier::claim("auth", "$.sub").unwrap().source();
    SessionId::digest(&SessionKey::from_bytes(KEY), source, sub.as_bytes()).to_string()
}

#[tokio::test]
async fn blocked_requests_get_401_with_challenge_and_reason() {
    let clock = ManualClock::new(Duration::from_secs(NOW));
    let k = key(Algorithm::ES256, "es");
    let addr = serve(shield(&clock, &[&k])).await;

    let missing = fetch(addr, "/blocked", &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    assert_eq!(missing.headers["content-type"], "application/problem+json");
    let body: Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!(body["title"], "token required");
    assert_eq!(body["status"], 401);

    let expired = sign(&k, &json!({"sub": "alice", "exp": NOW - 120}));
    let seen = fetch(
        addr,
        "/blocked",
        &[("authorization", &format!("Bearer {expired}"))],
    )
    .await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.headers["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["title"], "invalid token");
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let signature = expired.rsplit('.').next().unwrap();
    assert!(!seen.body.contains(signature) && !seen.body.contains(&expired[..20]));

    let good = sign(&k, &claims("alice"));
    let seen = fetch(
        addr,
        "/blocked",
        &[("authorization", &format!("Bearer {good}"))],
    )
    .await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body, format!("\"alice\" - {}", session_of("alice")));

    // CORS preflight passes without a token.
    let preflight = send(addr, "OPTIONS", "/blocked", &[]).await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(preflight.body, "preflight");
}

#[tokio::test]
async fn logged_and_ignored_requests_pass_without_claims() {
    let clock = ManualClock::new(Duration::from_secs(NOW));
    let k = key(Algorithm::RS256, "rsa");
    let addr = serve(shield(&clock, &[&k])).await;
    let good = sign(&k, &claims("bob"));
    let tampered = format!("{}x", &good[..good.len() - 1]);
    let tampered = if tampered == good {
        format!("{}y", &good[..good.len() - 1])
    } else {
        tampered
    };

    let seen = fetch(addr, "/logged", &[("authorization", &tampered)]).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(seen.body.starts_with("- bad_"), "{}", seen.body);
    assert!(seen.body.ends_with(" anonymous"));

    let seen = fetch(addr, "/logged", &[]).await;
    assert_eq!(seen.body, "- missing anonymous");

    let seen = fetch(addr, "/open", &[("authorization", &tampered)]).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body, "- - anonymous");

    // From the cookie source too.
    let seen = fetch(
        addr,
        "/open",
        &[("cookie", &format!("theme=dark; access_token={good}"))],
    )
    .await;
    assert_eq!(seen.body, format!("\"bob\" - {}", session_of("bob")));
}

#[tokio::test]
async fn claim_is_the_session_across_token_refresh() {
    let clock = ManualClock::new(Duration::from_secs(NOW));
    let k = key(Algorithm::EdDSA, "ed");
    let addr = serve(shield(&clock, &[&k])).await;

    // Two tokens for one subject: one session, the claim's digest.
    let first = sign(&k, &json!({"sub": "carol", "exp": NOW + 60, "iat": NOW}));
    let second = sign(
        &k,
        &json!({"sub": "carol", "exp": NOW + 3600, "iat": NOW + 30}),
    );
    assert_ne!(first, second);
    let a = fetch(
        addr,
        "/open",
        &[("authorization", &format!("Bearer {first}"))],
    )
    .await;
    let b = fetch(
        addr,
        "/open",
        &[("authorization", &format!("Bearer {second}"))],
    )
    .await;
    assert_eq!(a.body, b.body);
    let expected = session_of("carol");
    assert_eq!(a.body, format!("\"carol\" - {expected}"));
    assert_eq!(
        SessionSource::new(palisade::core::SourceKind::Claim, "auth:$.sub"),
        Identifier::claim("auth", "$.sub").unwrap().source()
    );

    // A numeric claim is a session too; an unverified token gives none.
    let numeric = sign(&k, &json!({"sub": 42, "exp": NOW + 60}));
    let seen = fetch(addr, "/open", &[("authorization", &numeric)]).await;
    assert!(seen.body.ends_with(&session_of("42")), "{}", seen.body);
    let forged = sign(&key(Algorithm::EdDSA, "unknown"), &claims("carol"));
    let seen = fetch(addr, "/open", &[("authorization", &forged)]).await;
    assert_eq!(seen.body, "- - anonymous");

    // The first token expires (past its 60 s leeway): its session is gone.
    clock.advance(Duration::from_secs(121));
    let seen = fetch(
        addr,
        "/open",
        &[("authorization", &format!("Bearer {first}"))],
    )
    .await;
    assert_eq!(seen.body, "- - anonymous");
}

#[tokio::test]
async fn keys_rotate_while_serving() {
    let clock = ManualClock::new(Duration::from_secs(NOW));
    let old = key(Algorithm::HS384, "old");
    let shield = shield(&clock, &[&old]);
    let keys = shield.token_keys("auth").unwrap();
    let addr = serve(shield).await;
    let token = sign(&old, &claims("dave"));
    let header = format!("Bearer {token}");
    let seen = fetch(addr, "/blocked", &[("authorization", &header)]).await;
    assert_eq!(seen.status, StatusCode::OK);

    let new = key(Algorithm::PS256, "new");
    keys.replace(&jwks(&[&new])).unwrap();
    let seen = fetch(addr, "/blocked", &[("authorization", &header)]).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("unknown_key"),
        "{body}"
    );
    let fresh = sign(&new, &claims("dave"));
    let seen = fetch(addr, "/blocked", &[("authorization", &fresh)]).await;
    assert_eq!(seen.status, StatusCode::OK);
}
