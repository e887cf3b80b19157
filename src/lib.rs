//! Palisade: tower middleware that identifies the API client behind every
//! request, limits it, and learns what normal traffic looks like.
//!
//! This umbrella crate re-exports the layer crates and composes them with
//! [`Shield`]. Each layer can also be used alone from its own crate.
//!
//! | crate | what it does |
//! | --- | --- |
//! | [`core`] (`palisade-core`) | shared vocabulary: [`SessionId`], [`Session`], [`Endpoint`], the clock, errors |
//! | [`session`] (`palisade-session`) | the session layer: header, cookie and JWT claim identifiers |
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use palisade::{Identifier, Session, Shield};
//!
//! # fn main() -> Result<(), palisade::ConfigError> {
//! let shield = Shield::builder()
//!     .identifier(Identifier::header("authorization")?)
//!     .identifier(Identifier::cookie("session")?)
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|session: Session| async move { session.id().unwrap().to_string() }))
//!     .layer(shield);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod config;
mod shield;

pub use palisade_core as core;
pub use palisade_session as session;

pub use config::{ConfigFileError, ShieldConfig};
pub use palisade_core::{
    Clock, ConfigError, Endpoint, EndpointCatalogue, ManualClock, Session, SessionId, SessionKey,
    SessionSource, SystemClock,
};
pub use palisade_session::{AutoDetect, AutoDetectReport, Identifier, SessionLayer};
pub use shield::{Shield, ShieldBuilder, ShieldService};
