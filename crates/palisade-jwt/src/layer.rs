//! The JWT validation layer and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, HeaderMap, Method};
use palisade_core::{
    ConfigError, Endpoint, EndpointCatalogue, SessionKey, SharedClock, SystemClock, VerifiedClaims,
};
use tower_layer::Layer;

use crate::config::TokenConfig;
use crate::keys::TokenKeys;
use crate::policy::{TokenAction, TokenPolicy};
use crate::rejection::{JwtRejection, RejectionKind};
use crate::service::JwtService;
use crate::verify::{CacheSettings, Verifier};

/// The default number of cached verdicts per configuration.
pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;

/// The default longest time a verdict on a valid token is kept.
pub const DEFAULT_MAX_CACHE_LIFETIME: Duration = Duration::from_secs(600);

/// The default time a refusal is kept.
pub const DEFAULT_FAILURE_CACHE_LIFETIME: Duration = Duration::from_secs(10);

/// A layer that verifies the JWTs of every request and puts their claims in
/// the request's extensions as [`VerifiedClaims`].
///
/// Each [`TokenConfig`] is tried in order: its token is looked for in its
/// sources, verified (or found in the verdict cache), and its claims
/// recorded under the configuration's id. A [`TokenPolicy`] decides what a
/// missing or invalid token gets on each endpoint. Without configurations
/// the layer passes every request on untouched.
///
/// Cloning is cheap: clones share configurations, keys and caches.
#[derive(Clone)]
pub struct JwtLayer {
    pub(crate) state: Arc<JwtState>,
}

pub(crate) struct JwtState {
    configs: Vec<Guard>,
    catalogue: EndpointCatalogue,
    needs_endpoint: bool,
}

/// One configuration with its verifier and policies.
struct Guard {
    verifier: Verifier,
    policies: Vec<TokenPolicy>,
}

/// What the layer decided about a request.
pub(crate) enum Decision {
    /// Pass it on; with these claims (if any) and the first logged refusal.
    Pass {
        claims: VerifiedClaims,
        logged: Option<JwtRejection>,
    },
    /// Answer 401.
    Block(JwtRejection),
}

/// The stable tracing target of JWT rejections.
pub const TRACE_TARGET: &str = "palisade::jwt";

impl JwtState {
    pub(crate) fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Resolves the endpoint only when a policy needs it.
    pub(crate) fn endpoint_of<B>(&self, request: &mut http::Request<B>) -> Option<Endpoint> {
        if self.needs_endpoint {
            self.catalogue.endpoint_of(request)
        } else {
            None
        }
    }

    pub(crate) fn decide(
        &self,
        method: &Method,
        endpoint: Option<Endpoint>,
        headers: &HeaderMap,
    ) -> Decision {
        let mut claims = VerifiedClaims::new();
        let mut logged = None;
        for guard in &self.configs {
            let config = &guard.verifier.config;
            let kind = match config.find_token(headers) {
                None => RejectionKind::Missing,
                Some(token) => match guard.verifier.verify(token) {
                    Ok(verified) => {
                        claims.insert_static(config.id, verified);
                        continue;
                    }
                    Err(kind) => kind,
                },
            };
            let action = guard
                .policies
                .iter()
                .find(|p| p.applies(method, endpoint))
                .map_or(TokenAction::Ignore, |p| match kind {
                    RejectionKind::Missing => p.missing,
                    _ => p.invalid,
                });
            let rejection = JwtRejection {
                config: config.id,
                kind,
            };
            match action {
                TokenAction::Ignore => {}
                TokenAction::Log => {
                    tracing::debug!(
                        target: TRACE_TARGET,
                        config = config.id,
                        reason = kind.code(),
                        action = "log",
                        "token refused"
                    );
                    logged.get_or_insert(rejection);
                }
                TokenAction::Block => {
                    tracing::debug!(
                        target: TRACE_TARGET,
                        config = config.id,
                        reason = kind.code(),
                        action = "block",
                        "request refused"
                    );
                    return Decision::Block(rejection);
                }
            }
        }
        Decision::Pass { claims, logged }
    }
}

impl JwtLayer {
    /// A builder with no configurations.
    pub fn builder() -> JwtLayerBuilder {
        JwtLayerBuilder::default()
    }

    /// The handle on the keys of configuration `id`, to rotate them.
    pub fn keys(&self, id: &str) -> Option<TokenKeys> {
        self.state
            .configs
            .iter()
            .find(|g| g.verifier.config.id == id)
            .map(|g| g.verifier.config.keys())
    }

    /// The configurations, in the order they are tried.
    pub fn configs(&self) -> impl Iterator<Item = &TokenConfig> {
        self.state.configs.iter().map(|g| &g.verifier.config)
    }

    /// The claims the layer would verify in a request, and the refusal it
    /// would answer with, as it would decide them.
    pub fn check<B>(&self, request: &mut http::Request<B>) -> Result<VerifiedClaims, JwtRejection> {
        let endpoint = self.state.endpoint_of(request);
        match self
            .state
            .decide(request.method(), endpoint, request.headers())
        {
            Decision::Pass { claims, .. } => Ok(claims),
            Decision::Block(rejection) => Err(rejection),
        }
    }

    /// Puts the decision's claims and logged refusal in `extensions`.
    pub(crate) fn apply(extensions: &mut Extensions, decision: Decision) -> Option<JwtRejection> {
        match decision {
            Decision::Pass { claims, logged } => {
                if !claims.is_empty() {
                    extensions.insert(claims);
                }
                if let Some(logged) = logged {
                    extensions.insert(logged);
                }
                None
            }
            Decision::Block(rejection) => Some(rejection),
        }
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtService::new(inner, self.state.clone())
    }
}

impl Default for JwtLayer {
    fn default() -> Self {
        Self {
            state: Arc::new(JwtState {
                configs: Vec::new(),
                catalogue: EndpointCatalogue::new(),
                needs_endpoint: false,
            }),
        }
    }
}

impl fmt::Debug for JwtLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtLayer")
            .field("configs", &self.configs().map(|c| c.id).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtLayer`].
#[derive(Debug)]
#[must_use]
pub struct JwtLayerBuilder {
    configs: Vec<TokenConfig>,
    policies: Vec<TokenPolicy>,
    catalogue: EndpointCatalogue,
    key: Option<SessionKey>,
    clock: Option<SharedClock>,
    cache: CacheSettings,
}

impl Default for JwtLayerBuilder {
    fn default() -> Self {
        Self {
            configs: Vec::new(),
            policies: Vec::new(),
            catalogue: EndpointCatalogue::new(),
            key: None,
            clock: None,
            cache: CacheSettings {
                capacity: DEFAULT_CACHE_CAPACITY,
                max_lifetime: DEFAULT_MAX_CACHE_LIFETIME,
                failure_lifetime: DEFAULT_FAILURE_CACHE_LIFETIME,
            },
        }
    }
}

impl JwtLayerBuilder {
    /// Adds a token configuration, tried after those added before it.
    pub fn token(mut self, config: TokenConfig) -> Self {
        self.configs.push(config);
        self
    }

    /// Adds a policy; for each configuration, the first of its policies
    /// that selects a request decides. A configuration without a policy
    /// gets [`TokenPolicy::new`]: missing ignored, invalid blocked; on an
    /// endpoint no policy selects, both are ignored.
    pub fn policy(mut self, policy: TokenPolicy) -> Self {
        self.policies.push(policy);
        self
    }

    /// The declared endpoints that policies' templates are matched
    /// against when axum's matched path is not available.
    pub fn endpoints(mut self, catalogue: EndpointCatalogue) -> Self {
        self.catalogue = catalogue;
        self
    }

    /// The key of the token digests the cache is keyed by; the process key
    /// by default.
    pub fn key(mut self, key: SessionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The clock `exp`, `nbf` and cache lifetimes are read from.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How many verdicts each configuration keeps; the least used go first.
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache.capacity = capacity;
        self
    }

    /// The longest a valid token's verdict is kept, even if it expires
    /// later; 10 minutes by default.
    pub fn max_cache_lifetime(mut self, lifetime: Duration) -> Self {
        self.cache.max_lifetime = lifetime;
        self
    }

    /// How long a refusal is kept, so that a flood of one bad token costs
    /// one check; 10 s by default.
    pub fn failure_cache_lifetime(mut self, lifetime: Duration) -> Self {
        self.cache.failure_lifetime = lifetime;
        self
    }

    /// Builds the layer; fails on duplicate configuration ids and on
    /// policies for unknown configurations.
    pub fn build(self) -> Result<JwtLayer, ConfigError> {
        let key = self.key.unwrap_or_default();
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        if self.cache.capacity == 0 {
            return Err(ConfigError::OutOfRange {
                what: "JWT cache capacity",
                value: "0".to_owned(),
            });
        }
        for policy in &self.policies {
            if !self.configs.iter().any(|c| c.id == policy.config) {
                return Err(ConfigError::InvalidName {
                    what: "token configuration id of a policy (no such configuration)",
                    name: policy.config.clone(),
                });
            }
        }
        let mut configs: Vec<Guard> = Vec::with_capacity(self.configs.len());
        for config in self.configs {
            if configs.iter().any(|g| g.verifier.config.id == config.id) {
                return Err(ConfigError::InvalidName {
                    what: "token configuration id (given twice)",
                    name: config.id.to_owned(),
                });
            }
            let mut policies: Vec<TokenPolicy> = self
                .policies
                .iter()
                .filter(|p| p.config == config.id)
                .cloned()
                .collect();
            if policies.is_empty() {
                policies.push(TokenPolicy::new(config.id));
            }
            configs.push(Guard {
                verifier: Verifier::new(config, key.clone(), clock.clone(), self.cache),
                policies,
            });
        }
        let needs_endpoint = configs
            .iter()
            .flat_map(|g| &g.policies)
            .any(TokenPolicy::needs_endpoint);
        Ok(JwtLayer {
            state: Arc::new(JwtState {
                configs,
                catalogue: self.catalogue,
                needs_endpoint,
            }),
        })
    }
}
