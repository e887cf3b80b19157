//! The session layer and its builder.

use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap};
use palisade_core::{ConfigError, Session, SessionKey};
use tower_layer::Layer;

use crate::auto::AutoDetect;
use crate::identifier::{Identifier, MAX_IDENTIFIERS};
use crate::service::SessionService;

/// A layer that finds the session of every request and puts a
/// [`Session`] in its extensions.
///
/// Identifiers are tried in the order given; the first one present in the
/// request produces the session, and the session records which one it was.
/// A request with none of them gets an anonymous session, or a 401 problem
/// response when a session is [required](SessionLayerBuilder::require_session).
///
/// Cloning the layer is cheap: clones share one configuration.
#[derive(Clone)]
pub struct SessionLayer {
    pub(crate) config: Arc<SessionConfig>,
}

pub(crate) struct SessionConfig {
    identifiers: Vec<Identifier>,
    key: SessionKey,
    pub(crate) require: bool,
    auto: Option<AutoDetect>,
}

impl SessionConfig {
    /// The session of a request with these headers and extensions.
    pub(crate) fn identify(&self, headers: &HeaderMap, extensions: &Extensions) -> Session {
        for identifier in &self.identifiers {
            if let Some(id) = identifier.identify(&self.key, headers, extensions) {
                return Session::identified(id, identifier.source());
            }
        }
        // Only reached with no identifier configured, or none present.
        if let Some(chosen) = self.auto.as_ref().and_then(AutoDetect::chosen)
            && let Some(id) = chosen.identify(&self.key, headers, extensions)
        {
            return Session::identified(id, chosen.source());
        }
        Session::anonymous()
    }
}

impl SessionLayer {
    /// A builder with no identifiers, the process key, and sessions optional.
    pub fn builder() -> SessionLayerBuilder {
        SessionLayerBuilder::default()
    }

    /// The configured identifiers, in order.
    pub fn identifiers(&self) -> &[Identifier] {
        &self.config.identifiers
    }

    /// The session of a request, as the layer would find it.
    pub fn identify<B>(&self, request: &http::Request<B>) -> Session {
        self.config
            .identify(request.headers(), request.extensions())
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.config.clone())
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("identifiers", &self.config.identifiers)
            .field("require_session", &self.config.require)
            .field("auto_detect", &self.config.auto)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SessionLayer`].
#[derive(Debug, Default)]
#[must_use]
pub struct SessionLayerBuilder {
    identifiers: Vec<Identifier>,
    key: Option<SessionKey>,
    require: bool,
    auto: Option<AutoDetect>,
}

impl SessionLayerBuilder {
    /// Adds an identifier, tried after those added before it.
    pub fn identifier(mut self, identifier: Identifier) -> Self {
        self.identifiers.push(identifier);
        self
    }

    /// Sets the key of the session digest; fleets give every instance the
    /// same key. The default is [`SessionKey::process`].
    pub fn key(mut self, key: SessionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Whether a request without a session gets 401 instead of an
    /// anonymous session. Off by default.
    pub fn require_session(mut self, require: bool) -> Self {
        self.require = require;
        self
    }

    /// Follows `auto`: while no identifier is configured, the identifier it
    /// chooses from the traffic is used from the next request on. With
    /// identifiers configured, the detector only ranks candidates and
    /// never replaces them.
    pub fn auto_detect(mut self, auto: &AutoDetect) -> Self {
        self.auto = Some(auto.clone());
        self
    }

    /// Builds the layer; fails with more than 10 identifiers.
    pub fn build(self) -> Result<SessionLayer, ConfigError> {
        if self.identifiers.len() > MAX_IDENTIFIERS {
            return Err(ConfigError::TooManyIdentifiers {
                given: self.identifiers.len(),
                max: MAX_IDENTIFIERS,
            });
        }
        let auto = match self.auto {
            Some(auto) if !self.identifiers.is_empty() => {
                auto.mark_configured();
                None
            }
            auto => auto,
        };
        Ok(SessionLayer {
            config: Arc::new(SessionConfig {
                identifiers: self.identifiers,
                key: self.key.unwrap_or_default(),
                require: self.require,
                auto,
            }),
        })
    }
}
