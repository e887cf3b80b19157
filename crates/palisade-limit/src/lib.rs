//! Palisade's rate limit layer: how fast each session may call each
//! endpoint.
//!
//! A [`Rule`] says which requests it applies to (endpoints by method, host
//! and path template; all by default), what it counts by (any mix of
//! session, header, cookie, query parameter, client IP, JWT claim and
//! endpoint: the key is the tuple of values), what a request without a
//! value gets, the [`Quota`] (per tier, picked by a header or claim), the
//! [`Action`] (block, or log only) and an optional mitigation timeout.
//! [`RateLimitLayer`] checks every matching rule, refuses with 429 if any
//! blocking rule refuses, and reports with the IETF `RateLimit-Policy` and
//! `RateLimit` fields.
//!
//! State lives in a [`RateLimitStore`]: [`MemoryStore`] runs governor's
//! GCRA over a bounded table per rule, with automatic eviction of idle
//! keys; with the `redis` feature, `RedisStore` (in [`store`]) keeps
//! it in Redis so that a fleet of instances enforces one limit.
//!
//! # Example
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use palisade_core::{ManualClock, RateLimitDecision, Session, SessionId, SessionSource};
//! use palisade_limit::{MemoryStore, Quota, RateLimitLayer, Rule};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(Duration::from_secs(1_700_000_000));
//! let quota = Quota::per_minute(NonZeroU32::new(2).unwrap());
//! let limits = RateLimitLayer::builder()
//!     .rule(Rule::builder("per-session", quota).build()?)
//!     .store(MemoryStore::new(clock.shared()))
//!     .build()?;
//! let app = limits.layer(service_fn(|_: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! }));
//!
//! // The session layer puts the session in the extensions; here, by hand.
//! let id = SessionId::from_u128(42);
//! let session = Session::identified(id, SessionSource::header("authorization"));
//! let request = || {
//!     let mut request = http::Request::new(());
//!     request.extensions_mut().insert(session);
//!     request
//! };
//!
//! let first = app.clone().oneshot(request()).await?;
//! assert_eq!(first.headers()["ratelimit-policy"], "\"per-session\";q=2;w=60");
//! assert_eq!(first.headers()["ratelimit"], "\"per-session\";r=1;t=30");
//! app.clone().oneshot(request()).await?;
//! let third = app.clone().oneshot(request()).await?;
//! assert_eq!(third.status(), 429);
//! assert_eq!(third.headers()["retry-after"], "30");
//! assert!(!third.extensions().get::<RateLimitDecision>().unwrap().is_allowed());
//!
//! clock.advance(Duration::from_secs(30));
//! assert_eq!(app.oneshot(request()).await?.status(), 200);
//! # Ok(())
//! # }
//! ```
//!
//! # Deployment caveat
//!
//! A rule counts what the request says: a session, a header, a claim. A
//! client that can mint new sessions (anonymous sign-ups, unverified
//! headers) gets a new quota with each; pair per-session rules with a rule
//! by client IP or by a verified claim. The client IP is only as good as
//! the [`TrustedProxies`] setting: trust exactly the proxies in front of
//! the server. The in-memory store limits one process; a fleet needs the
//! Redis store, and the same session key on every instance.

mod future;
mod key;
mod layer;
mod quota;
mod rule;
mod service;
pub mod store;
#[cfg(test)]
mod tests;

pub use future::ResponseFuture;
pub use key::{CountBy, TrustedProxies};
pub use layer::{RateLimitLayer, RateLimitLayerBuilder};
pub use quota::Quota;
pub use rule::{Action, DEFAULT_MAX_KEYS, MAX_COUNT_BY, Missing, Rule, RuleBuilder};
pub use service::{RATELIMIT, RATELIMIT_POLICY, RateLimit, TRACE_TARGET};
#[cfg(feature = "redis")]
pub use store::{FailurePolicy, RedisConfig, RedisStore};
pub use store::{MemoryStore, RateLimitStore, Store};
