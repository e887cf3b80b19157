//! Palisade's JWT validation layer.
//!
//! A [`TokenConfig`] says where a token is found (up to four headers and
//! cookies; a leading `Bearer ` is stripped), which keys verify it (a
//! standard JWKS: RS256/384/512, PS256/384/512, ES256/384, HS256/384/512 and
//! EdDSA, chosen by the token's `kid` and `alg`), and what is checked (`exp`
//! and `nbf` with 60 s of leeway, optional `iss`, `aud` and required claims,
//! a maximum size). [`JwtLayer`] verifies the tokens of every request and
//! puts their claims in the extensions as
//! [`VerifiedClaims`](palisade_core::VerifiedClaims), where the session
//! layer's claim identifiers and the [`Claims`] extractor read them.
//!
//! Verification is done once per token: verdicts are cached under a keyed
//! digest of the token (never the token) until the token expires or a
//! maximum lifetime passes, so a repeated token costs a hash and a lookup.
//! Refusals are cached briefly too. Keys can be replaced while serving
//! ([`TokenKeys`]); verdicts made with a removed key stop counting at once.
//!
//! # Example
//!
//! ```
//! use palisade_jwt::{TokenAction, JwtLayer, TokenConfig, TokenPolicy};
//! use tower::{Service, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config = TokenConfig::builder("partners")
//!     .header("authorization")
//!     .jwks_json(r#"{"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256",
//!         "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#)
//!     .build()?;
//! let layer = JwtLayer::builder()
//!     .token(config)
//!     .policy(TokenPolicy::new("partners").on_missing(TokenAction::Block))
//!     .build()?;
//!
//! let app = tower::ServiceBuilder::new()
//!     .layer(layer)
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     }));
//!
//! // No token: 401 with a Bearer challenge.
//! let response = app.clone().oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(response.status(), 401);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//!
//! // A token that is not a JWT: 401, `invalid_token`, the reason recorded.
//! let request = http::Request::builder()
//!     .header("authorization", "Bearer not-a-jwt")
//!     .body(())
//!     .unwrap();
//! let response = app.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
//! let why = response.extensions().get::<palisade_jwt::JwtRejection>().unwrap();
//! assert_eq!(why.kind(), palisade_jwt::RejectionKind::Malformed);
//! # Ok::<(), palisade_core::ConfigError>(())
//! # }).unwrap();
//! ```
//!
//! # What this layer does not protect against
//!
//! It checks that a token was signed by a configured key and is within its
//! validity window; it cannot tell a stolen token from its owner's, nor
//! revoke a token before its `exp` (rotate the key instead). Tokens are
//! read from headers and cookies only. Without an `aud` check, a token
//! issued for another API of the same issuer is accepted: configure
//! [`audience`](TokenConfigBuilder::audience) when the issuer serves several.

mod base64url;
mod config;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod keys;
mod layer;
mod policy;
mod rejection;
#[cfg(feature = "remote-jwks")]
pub mod remote;
mod service;
mod verify;

pub use config::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, MAX_SOURCES, TokenConfig, TokenConfigBuilder,
    TokenSource,
};
#[cfg(feature = "axum")]
pub use extract::{Claims, ClaimsRejection};
pub use future::ResponseFuture;
pub use jsonwebtoken::jwk::JwkSet;
pub use keys::{MIN_RSA_BITS, TokenKeys};
pub use layer::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_FAILURE_CACHE_LIFETIME, DEFAULT_MAX_CACHE_LIFETIME, JwtLayer,
    JwtLayerBuilder, TRACE_TARGET,
};
pub use policy::{TokenAction, TokenPolicy};
pub use rejection::{JwtRejection, RejectionKind};
pub use service::JwtService;
