//! The `Shield` builder: every Palisade layer in one.

use palisade_core::{ConfigError, SessionKey};
use palisade_session::auto::AutoDetectService;
use palisade_session::{
    AutoDetect, AutoDetectLayer, Identifier, SessionLayer, SessionLayerBuilder, SessionService,
};
use tower_layer::Layer;

/// All of Palisade's layers, stacked in the order the design gives.
///
/// Today the shield holds the session layer and the auto-detect layer
/// inside it; the JWT, rate limiting and learning layers join as they land.
/// Apply it with `Router::layer`, a `ServiceBuilder`, or directly to any
/// tower service.
#[derive(Clone, Debug)]
pub struct Shield {
    sessions: SessionLayer,
    auto_detect: Option<AutoDetect>,
}

/// The service a [`Shield`] wraps around an application.
pub type ShieldService<S> = SessionService<AutoDetectService<S>>;

impl Shield {
    /// A builder with nothing configured: requests are anonymous until
    /// auto-detection chooses an identifier.
    pub fn builder() -> ShieldBuilder {
        ShieldBuilder::default()
    }

    /// The session layer inside the shield.
    pub fn sessions(&self) -> &SessionLayer {
        &self.sessions
    }

    /// The session identifier detector, unless it was turned off.
    pub fn auto_detect(&self) -> Option<&AutoDetect> {
        self.auto_detect.as_ref()
    }
}

impl<S> Layer<S> for Shield {
    type Service = ShieldService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let auto = match &self.auto_detect {
            Some(auto) => auto.layer(),
            None => AutoDetectLayer::off(),
        };
        self.sessions.layer(auto.layer(inner))
    }
}

/// Builds a [`Shield`].
#[derive(Debug)]
#[must_use]
pub struct ShieldBuilder {
    sessions: SessionLayerBuilder,
    auto_detect: Option<AutoDetect>,
}

impl Default for ShieldBuilder {
    fn default() -> Self {
        Self {
            sessions: SessionLayerBuilder::default(),
            auto_detect: Some(AutoDetect::new()),
        }
    }
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

    /// Replaces the default session identifier detector (on, with the
    /// defaults of [`AutoDetect::builder`]). It chooses `Authorization`
    /// only when no identifier is configured, and ranks candidates always.
    pub fn auto_detect(mut self, auto: AutoDetect) -> Self {
        self.auto_detect = Some(auto);
        self
    }

    /// Turns session identifier detection off.
    pub fn without_auto_detect(mut self) -> Self {
        self.auto_detect = None;
        self
    }

    /// Builds the shield; fails on a configuration error, naming it.
    pub fn build(self) -> Result<Shield, ConfigError> {
        let mut sessions = self.sessions;
        if let Some(auto) = &self.auto_detect {
            sessions = sessions.auto_detect(auto);
        }
        Ok(Shield {
            sessions: sessions.build()?,
            auto_detect: self.auto_detect,
        })
    }
}
