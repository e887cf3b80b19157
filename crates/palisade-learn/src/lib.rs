//! Palisade's learning layer: what does the API look like, and which of its
//! endpoints answer without authentication.
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
mod keyhash;
mod layer;
mod normalize;
mod observe;
mod openapi;
mod posture;
mod service;
mod sketch;
mod snapshot;
mod state;
#[cfg(test)]
mod tests;

pub use collector::{Mark, Origin};
pub use discovery::{EndpointReport, StatusClasses};
pub use future::ResponseFuture;
pub use layer::{LearnLayer, LearnLayerBuilder};
pub use observe::{Observation, Recorder};
pub use posture::{Posture, PostureReport};
pub use service::LearnService;
pub use snapshot::{EndpointRecord, SNAPSHOT_VERSION, Snapshot};
pub use state::LearnedState;

/// The stable tracing target of the learning layer's events.
pub const TRACE_TARGET: &str = "palisade::learn";
