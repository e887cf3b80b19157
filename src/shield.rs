//! The `Shield` builder: every Palisade layer in one.

use palisade_core::{ConfigError, SessionKey};
use palisade_session::{Identifier, SessionLayer, SessionLayerBuilder, SessionService};
use tower_layer::Layer;

/// All of Palisade's layers, stacked in the order the design gives.
///
/// Today the shield holds the session layer; the JWT, rate limiting and
/// learning layers join it as they land. Apply it with `Router::layer`, a
/// `ServiceBuilder`, or directly to any tower service.
#[derive(Clone, Debug)]
pub struct Shield {
    sessions: SessionLayer,
}

/// The service a [`Shield`] wraps around an application.
pub type ShieldService<S> = SessionService<S>;

impl Shield {
    /// A builder with nothing configured: every request is anonymous.
    pub fn builder() -> ShieldBuilder {
        ShieldBuilder::default()
    }

    /// The session layer inside the shield.
    pub fn sessions(&self) -> &SessionLayer {
        &self.sessions
    }
}

impl<S> Layer<S> for Shield {
    type Service = ShieldService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.sessions.layer(inner)
    }
}

/// Builds a [`Shield`].
#[derive(Debug, Default)]
#[must_use]
pub struct ShieldBuilder {
    sessions: SessionLayerBuilder,
}

impl ShieldBuilder {
    /// Adds a session identifier, tried after those added before it.
    pub fn identifier(mut self, identifier: Identifier) -> Self {
        self.sessions = self.sessions.identifier(identifier);
        self
    }

    /// Sets the key of the session digest, shared by a fleet.
    pub fn session_key(mut self, key: SessionKey) -> Self {
        self.sessions = self.sessions.key(key);
        self
    }

    /// Whether requests without a session get 401.
    pub fn require_session(mut self, require: bool) -> Self {
        self.sessions = self.sessions.require_session(require);
        self
    }

    /// Builds the shield; fails on a configuration error, naming it.
    pub fn build(self) -> Result<Shield, ConfigError> {
        Ok(Shield {
            sessions: self.sessions.build()?,
        })
    }
}
