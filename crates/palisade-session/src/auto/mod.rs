//! Auto-detection: choose the session identifier from the traffic.
//!
//! [`AutoDetect`] watches responses (only 2xx count, as failed requests say
//! little about real clients) and does two things:
//!
//! - **Chooses `Authorization`.** When the session layer has no identifier
//!   configured, it counts the share of 2xx responses whose request carried
//!   an `Authorization` header over a sliding window. Once that share is
//!   above the threshold (1% by default) over at least the minimum sample
//!   (1,000 responses by default), `Authorization` becomes the session
//!   identifier, from the next request on. The choice is final for the life
//!   of the process, is read by the session layer with one atomic load, and
//!   is logged once at INFO with the figures behind it. It never replaces an
//!   identifier the user configured.
//! - **Ranks candidates.** On a sample of 2xx requests (1 in 64 by default)
//!   it looks at the other headers and the cookies and ranks those that look
//!   like client identifiers: present on many requests, with many distinct
//!   values, each value repeated across requests. A constant header (one
//!   value) and a per-request nonce (no repeats) score zero. Candidates are
//!   suggestions only: they are never applied.
//!
//! Values are never kept: each is reduced to a keyed 64-bit hash, and the
//! per-name tables are bounded (see [`AutoDetectBuilder::capacity`]).
//!
//! # Example
//!
//! ```
//! use palisade_session::{AutoDetect, SessionLayer};
//! use tower::ServiceBuilder;
//!
//! let auto = AutoDetect::new();
//! // No identifier configured: the session layer follows the detector.
//! let sessions = SessionLayer::builder().auto_detect(&auto).build()?;
//! let stack = ServiceBuilder::new()
//!     .layer(sessions)
//!     .layer(auto.layer())
//!     .service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(()))
//!     });
//! # let _ = stack;
//! let report = auto.report();
//! assert!(report.chosen.is_none());
//! # Ok::<(), palisade_core::ConfigError>(())
//! ```
//!
//! # Cost
//!
//! Per request: a clock read and a few relaxed atomic operations on shared
//! counters. Sampled requests also hash their header and cookie values and
//! take a short lock on the candidate table when the response is 2xx.

mod candidates;
mod layer;
mod service;
mod window;

pub use candidates::Candidate;
pub use layer::{
    AutoDetect, AutoDetectBuilder, AutoDetectLayer, AutoDetectReport, Chosen, TRACE_TARGET,
};
pub use service::{AutoDetectService, ResponseFuture};

#[cfg(test)]
mod tests;
