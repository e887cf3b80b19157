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
//! | [`jwt`] (`palisade-jwt`) | JWT validation: token configurations, cached verification, key rotation, [`Claims`] |
//! | [`limit`] (`palisade-limit`) | the rate limit layer: rules, quotas, stores |
//! | [`learn`] (`palisade-learn`) | learning: endpoint discovery, auth posture, rate recommendations, sequences and sequence rules, admin API |
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use palisade::{Identifier, Quota, Rule, Session, Shield};
//! use std::num::NonZeroU32;
//!
//! # fn main() -> Result<(), palisade::ConfigError> {
//! let shield = Shield::builder()
//!     .identifier(Identifier::header("authorization")?)
//!     .identifier(Identifier::cookie("session")?)
//!     // 100 requests a minute per session, on every endpoint.
//!     .rate_limit(Rule::builder("per-session", Quota::per_minute(NonZeroU32::new(100).unwrap())).build()?)
//!     .build()?;
//! assert_eq!(shield.rate_limits().rules().len(), 1);
//!
//! let app: Router = Router::new()
//!     .route("/", get(|session: Session| async move { session.id().unwrap().to_string() }))
//!     .layer(shield);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod config;
mod recommend;
mod shield;

pub use palisade_core as core;
pub use palisade_jwt as jwt;
pub use palisade_learn as learn;
pub use palisade_limit as limit;
pub use palisade_session as session;

pub use config::{ConfigFileError, ShieldConfig};
pub use palisade_core::{
    ClientAddr, Clock, ConfigError, Endpoint, EndpointCatalogue, ManualClock, RateLimitDecision,
    RateLimitOutcome, Session, SessionId, SessionKey, SessionSource, SystemClock,
};
#[cfg(feature = "axum")]
pub use palisade_jwt::Claims;
pub use palisade_jwt::{
    JwtLayer, JwtRejection, RejectionKind, TokenAction, TokenConfig, TokenKeys, TokenPolicy,
};
pub use palisade_learn::{
    LearnLayer, LearnedState, RateRecommender, Recommendation, RuleAction, SequenceRule,
    SequenceRuleKind, SequenceRuleLayer, SequenceTracker,
};
pub use palisade_limit::{
    Action, CountBy, MemoryStore, Missing, Quota, RateLimitLayer, Rule, TrustedProxies,
};
#[cfg(feature = "redis")]
pub use palisade_limit::{FailurePolicy, RedisConfig, RedisStore};
pub use palisade_session::{AutoDetect, AutoDetectReport, Identifier, SessionLayer};
pub use recommend::rule_from;
pub use shield::{Shield, ShieldBuilder, ShieldService};
