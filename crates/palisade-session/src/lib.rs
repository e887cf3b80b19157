//! Palisade's session layer: who is the client behind a request.
//!
//! A *session identifier* says where the session value is read: a header, a
//! cookie, or a claim of a verified JWT. [`SessionLayer`] tries the
//! configured identifiers in order and puts a
//! [`Session`](palisade_core::Session) into every request's extensions: the
//! keyed digest of the first value found and which identifier produced it,
//! or an anonymous session. The raw value is never kept.
//!
//! # Example
//!
//! ```
//! use palisade_core::Session;
//! use palisade_session::{Identifier, SessionLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = SessionLayer::builder()
//!     .identifier(Identifier::header("authorization")?)
//!     .identifier(Identifier::cookie("session")?)
//!     .build()?;
//!
//! let app = ServiceBuilder::new().layer(sessions).service(service_fn(
//!     |request: http::Request<()>| async move {
//!         let session = *request.extensions().get::<Session>().unwrap();
//!         Ok::<_, std::convert::Infallible>(http::Response::new(session))
//!     },
//! ));
//!
//! let request = http::Request::get("/").header("cookie", "session=abc").body(())?;
//! let session = app.oneshot(request).await?.into_body().into_inner_left();
//! assert_eq!(session.source().unwrap().to_string(), "cookie:session");
//! # Ok(())
//! # }
//! # trait Left<L> { fn into_inner_left(self) -> L; }
//! # impl<L, R> Left<L> for http_body_util::Either<L, R> {
//! #     fn into_inner_left(self) -> L {
//! #         match self { Self::Left(l) => l, Self::Right(_) => unreachable!() }
//! #     }
//! # }
//! ```
//!
//! # Deployment caveat
//!
//! A session is a claim the client makes, not a proof: a header or cookie
//! value identifies a client only as well as the value is secret. Put the
//! JWT layer in front and use a claim identifier when clients must not be
//! able to pose as each other. The layer does not rate limit the lookups
//! themselves; it does a fixed amount of work per request.

pub mod auto;
mod future;
mod identifier;
mod layer;
mod service;

pub use auto::{
    AutoDetect, AutoDetectBuilder, AutoDetectLayer, AutoDetectReport, AutoDetectService, Candidate,
    Chosen,
};
pub use future::ResponseFuture;
pub use identifier::{Identifier, MAX_COOKIE_NAME, MAX_IDENTIFIERS};
pub use layer::{SessionLayer, SessionLayerBuilder};
pub use service::{SessionRequired, SessionService, TRACE_TARGET};
