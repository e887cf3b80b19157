//! Shared vocabulary of Palisade.
//!
//! Every Palisade layer reads and writes the types defined here, and only
//! these: a layer finds what the layers outside it learned in the request's
//! extensions, and adds its own. That keeps each layer crate independent of
//! the others.
//!
//! - [`SessionId`] and [`SessionKey`]: the keyed 128-bit digest that stands for
//!   a client's credential, so that the raw value is never kept.
//! - [`Session`]: what the session layer puts in the request's extensions.
//! - [`Endpoint`] and [`EndpointCatalogue`]: method, host pattern and path
//!   template, and the declared templates a request is matched against.
//! - [`VerifiedClaims`]: the claims of the tokens the JWT layer verified.
//! - [`RateLimitDecision`]: what the rate limit layer decided, and
//!   [`ClientAddr`], the peer address for stacks without axum.
//! - [`Clock`]: time, injected, so that tests advance it instead of sleeping.
//! - [`ConfigError`]: configuration errors that name the bad input.
//! - [`JsonPath`] and [`cookie`]: reading claims and cookies, shared by the
//!   layers that identify and count clients.
//! - [`problem`]: `application/problem+json` responses (RFC 9457).
//!
//! # Example
//!
//! ```
//! use palisade_core::{SessionId, SessionKey, SessionSource};
//!
//! // A fleet shares the key so that every instance computes the same id.
//! let key = SessionKey::from_bytes([7; 16]);
//! let source = SessionSource::header("authorization");
//! let a = SessionId::digest(&key, source, b"Bearer abc");
//! let b = SessionId::digest(&key, source, b"Bearer abc");
//! assert_eq!(a, b);
//!
//! // Only the digest is ever shown.
//! assert!(!format!("{a:?} {a}").contains("abc"));
//! ```

mod claims;
mod clock;
pub mod cookie;
mod decision;
mod endpoint;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod intern;
mod json_path;
pub mod problem;
pub mod response;
mod session;

pub use claims::VerifiedClaims;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use decision::{ClientAddr, RateLimitDecision, RateLimitOutcome};
pub use endpoint::{Endpoint, EndpointCatalogue, EndpointCatalogueBuilder, HostPattern};
pub use error::ConfigError;
#[cfg(feature = "axum")]
pub use extract::SessionRejection;
pub use json_path::JsonPath;
pub use session::{Session, SessionId, SessionKey, SessionSource, SourceKind};
