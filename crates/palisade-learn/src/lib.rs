//! Palisade's learning layer: what does the API look like, which of its
//! endpoints answer without authentication, how fast and in which order
//! sessions call them, and rules that enforce that order.
//!
//! [`LearnLayer`] watches every request and its response status. From the
//! 2xx responses it learns:
//!
//! - **Endpoints**: method, host and path template, with the template taken
//!   from the endpoint catalogue or axum's `MatchedPath` when there is one,
//!   and guessed from the path otherwise (`/users/123/orders/9` becomes
//!   `/users/{var1}/orders/{var2}`; the heuristics are listed below). Per
//!   endpoint: responses by status class, distinct sessions (a HyperLogLog
//!   sketch, about 3% error), first and last sighting, requests per hour.
//!   An endpoint is reported once it had
//!   [enough 2xx responses](LearnLayerBuilder::report_after); the user can
//!   [mark](LearnedState::mark) it saved or ignored.
//! - **Authentication posture**: per endpoint, 2xx responses with and
//!   without a session, the identifiers seen, and a [`Posture`] label.
//!
//! Everything is read through [`LearnedState`]: as reports, as an OpenAPI
//! 3.1 document, as a serde [`Snapshot`] to persist and load at start-up,
//! and (feature `admin`) as an axum `Router` serving all of it as JSON.
//! Other collectors join through the [`Recorder`] hook.
//!
//! # Example
//!
//! ```
//! use palisade_learn::{LearnLayer, Posture};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let learn = LearnLayer::builder().report_after(3).build()?;
//! let state = learn.state().unwrap().clone();
//! let mut app = learn.layer(service_fn(|_: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! }));
//!
//! for id in [17, 42, 96] {
//!     let request = http::Request::get(format!("/users/{id}/orders")).body(())?;
//!     app.ready().await?.call(request).await?;
//! }
//!
//! let endpoints = state.endpoints();
//! assert_eq!(endpoints.len(), 1);
//! assert_eq!(endpoints[0].template, "/users/{var1}/orders");
//! assert_eq!(endpoints[0].status.success, 3);
//! // No session layer in front: nobody was authenticated.
//! assert_eq!(state.posture()[0].posture, Posture::Missing);
//! # Ok(())
//! # }
//! ```
//!
//! # Rate recommendations, sequences and sequence rules
//!
//! Collectors join the layer as [`Recorder`]s, fed an [`Observation`] for
//! every 2xx answer; tests and other stacks may call [`Recorder::record`]
//! directly.
//!
//! - [`RateRecommender`]: per endpoint, each session's highest request
//!   count in any 10-minute window; the p50, p90 and p99 across sessions in
//!   a mergeable [`QuantileSketch`] (1% relative error), and a suggested
//!   limit ([`Recommendation`]) once 50 sessions were seen in 24 hours.
//! - [`SequenceTracker`]: per session, the last 10 endpoints (repeats
//!   collapsed, a 10-minute gap starts anew); counts of ordered pairs and
//!   sequences with a precedence score.
//! - [`SequenceRuleLayer`] (module [`sequence_rule`]): [`SequenceRule`]s
//!   that allow or block one endpoint after another, answering 403 or only
//!   logging.
//!
//! ```
//! use palisade_core::{Clock, Endpoint, HostPattern, ManualClock, SessionId};
//! use palisade_learn::{Observation, RateRecommender, Recorder, SequenceTracker};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new(Duration::from_secs(1_700_000_000));
//! let rates = RateRecommender::builder().clock(clock.shared()).build()?;
//! let sequences = SequenceTracker::builder().clock(clock.shared()).build()?;
//! let items = Endpoint::new(http::Method::GET, HostPattern::Any, "/items/{id}");
//!
//! // 100 sessions, session i calling 10 + i % 10 times in a minute.
//! for i in 0..100u32 {
//!     for _ in 0..10 + i % 10 {
//!         let seen = Observation {
//!             endpoint: items,
//!             session: Some(SessionId::from_u128(u128::from(i) + 1)),
//!             status: http::StatusCode::OK,
//!             at: clock.now(),
//!         };
//!         rates.record(&seen);
//!         sequences.record(&seen);
//!     }
//! }
//! let recommendation = rates.recommendation(items).unwrap();
//! assert_eq!(recommendation.sessions, 100);
//! assert!((recommendation.p99 - 19.0).abs() <= 0.19);
//! assert_eq!(recommendation.limit, 29); // ceil(1.5 × p99)
//! # Ok::<(), palisade_core::ConfigError>(())
//! ```
//!
//! # Path heuristics
//!
//! A segment becomes a placeholder when it is:
//!
//! - a number: ASCII digits only (`123`);
//! - a UUID: `8-4-4-4-12` hexadecimal digits, in either case;
//! - long hexadecimal: 16 or more hexadecimal digits;
//! - a date: it starts with `YYYY-MM-DD` (`2024-05-01T10:00:00Z` too);
//! - an email address: `@` (or `%40`) followed later by a `.`;
//! - a base64url-like token: 16 or more characters of `A-Z a-z 0-9 - _ =`,
//!   with a digit and a letter, changing character class at least once
//!   every four characters (`aZ3kP9_xQ2mN8vR1` is a token,
//!   `oauth2-callback-handler` a name);
//! - longer than 64 bytes;
//! - one of too many siblings: when more than
//!   [`max_siblings`](LearnLayerBuilder::max_siblings) distinct fixed names
//!   appear under one parent among the unreported templates, they become one
//!   placeholder (reported and saved siblings keep their names).
//!
//! Placeholders are numbered left to right: `{var1}`, `{var2}`. Empty
//! segments are skipped; paths deeper than 16 segments are not learned.
//!
//! # Cost and bounds
//!
//! For a tracked endpoint the request path costs a keyed hash of the path
//! (or nothing, when the endpoint is already resolved), one shard read lock
//! out of 16, and a few relaxed atomic operations when the response is
//! ready; no allocation. At most
//! [`max_endpoints`](LearnLayerBuilder::max_endpoints) templates (3,000 by
//! default) are tracked: a new template is admitted only below the cap and
//! only on a 2xx response, tracked ones are never pushed out by new ones,
//! candidates that do not reach the threshold age out, and crowded
//! siblings collapse into one placeholder. Maintenance (ageing and
//! collapsing) runs when the state is read, or from a request that found
//! the table full, at most once per
//! [interval](LearnLayerBuilder::maintenance_interval).
//!
//! # Deployment caveat
//!
//! Learning trusts the traffic: a client that gets 2xx answers for a path
//! often enough makes it an endpoint, and the posture says only whether a
//! session was *present*, not whether the application checked it.

#[cfg(feature = "admin")]
mod admin;
mod atomic_set;
mod collector;
mod discovery;
mod future;
mod insight_routes;
mod keyhash;
mod layer;
mod normalize;
mod observe;
mod openapi;
mod posture;
mod quantile;
mod rates;
mod sequence;
pub mod sequence_rule;
mod service;
mod sketch;
mod snapshot;
mod state;
#[cfg(test)]
mod tests;

pub use collector::{Mark, Origin};
pub use discovery::{EndpointReport, StatusClasses};
pub use future::ResponseFuture;
#[cfg(feature = "admin")]
pub use insight_routes::insight_routes;
pub use insight_routes::{recommendations_json, sequences_json};
pub use layer::{LearnLayer, LearnLayerBuilder};
pub use observe::{Observation, Recorder};
pub use posture::{Posture, PostureReport};
pub use quantile::{QuantileSketch, RELATIVE_ERROR};
pub use rates::{
    Confidence, EndpointRates, HORIZON, MIN_SESSIONS, RateRecommender, RateRecommenderBuilder,
    Recommendation, SuggestedAction, WINDOW,
};
pub use sequence::{
    HISTORY, Pattern, SEQUENCE_GAP, SequenceReport, SequenceTracker, SequenceTrackerBuilder,
};
pub use sequence_rule::{
    RuleAction, SequenceRule, SequenceRuleKind, SequenceRuleLayer, SequenceRuleLayerBuilder,
    SequenceRuleService, SequenceRuleViolation,
};
pub use service::LearnService;
pub use snapshot::{EndpointRecord, SNAPSHOT_VERSION, Snapshot};
pub use state::LearnedState;

/// The stable tracing target of the learning layer's events.
pub const TRACE_TARGET: &str = "palisade::learn";
