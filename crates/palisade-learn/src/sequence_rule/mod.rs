//! Sequence rules: enforce the order in which a session calls endpoints.
//!
//! A [`SequenceRule`] names two endpoints and a kind. An `allow` rule says
//! the second may only follow the first (checkout only after cart); a
//! `block` rule says it may not (no second password reset right after the
//! first). [`SequenceRuleLayer`] checks every request against the rules,
//! reading the session's history from a [`SequenceTracker`](crate::SequenceTracker),
//! and answers 403 with a problem+json body that names the rule, or only
//! logs, as each rule says.
//!
//! # Example
//!
//! ```
//! use palisade_core::{ManualClock, Session, SessionId, SessionSource};
//! use palisade_learn::{SequenceRule, SequenceRuleLayer, SequenceTracker};
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(Duration::from_secs(1_700_000_000));
//! let tracker = SequenceTracker::builder().clock(clock.shared()).build()?;
//! let layer = SequenceRuleLayer::builder()
//!     .tracker(tracker.clone())
//!     .rule(SequenceRule::allow("checkout-after-cart", "GET /cart", "POST /checkout")?)
//!     .build()?;
//! let app = layer.layer(service_fn(|_: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! }));
//!
//! // The session layer would put this in the extensions.
//! let session = Session::identified(
//!     SessionId::from_u128(42),
//!     SessionSource::header("authorization"),
//! );
//! let request = |method: &str, path: &str| {
//!     let mut request = http::Request::builder().method(method).uri(path).body(()).unwrap();
//!     request.extensions_mut().insert(session);
//!     request
//! };
//!
//! // Checkout first: refused, and the body names the rule.
//! let refused = app.clone().oneshot(request("POST", "/checkout")).await?;
//! assert_eq!(refused.status(), 403);
//!
//! // After the cart, within 10 minutes: allowed.
//! app.clone().oneshot(request("GET", "/cart")).await?;
//! clock.advance(Duration::from_secs(60));
//! let allowed = app.clone().oneshot(request("POST", "/checkout")).await?;
//! assert_eq!(allowed.status(), 200);
//! assert_eq!(tracker.history(SessionId::from_u128(42)).len(), 2);
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod rule;
mod service;

pub use future::ResponseFuture;
pub use layer::{SequenceRuleLayer, SequenceRuleLayerBuilder, SequenceRuleViolation};
pub use rule::{RuleAction, SequenceRule, SequenceRuleKind};
pub use service::{PROBLEM_TYPE, SequenceRuleService, TRACE_TARGET};
