//! The `Shield` builder: every Palisade layer in one.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use std::sync::Arc;

use palisade_core::{ConfigError, EndpointCatalogue, RateLimitDecision, SessionKey, SharedClock};
use palisade_jwt::{JwtLayer, JwtLayerBuilder, JwtService, TokenConfig, TokenKeys, TokenPolicy};
use palisade_learn::{
    LearnLayer, LearnLayerBuilder, LearnService, LearnedState, RateRecommender, SequenceRule,
    SequenceRuleLayer, SequenceRuleLayerBuilder, SequenceRuleService, SequenceTracker,
};
use palisade_limit::{
    RateLimit, RateLimitLayer, RateLimitLayerBuilder, Rule, Store, TrustedProxies,
};
use palisade_session::auto::AutoDetectService;
use palisade_session::{
    AutoDetect, AutoDetectLayer, Identifier, SessionLayer, SessionLayerBuilder, SessionService,
};
use tower_layer::Layer;

/// All of Palisade's layers, stacked in the order the design gives: JWT
/// validation, session (with the auto-detect layer just inside it), then
/// rate limit, then learning, then sequence rules, then the application.
///
/// Every layer is always applied; one with nothing configured passes
/// requests on at the cost of a branch.
/// Apply the shield with `Router::layer`, a `ServiceBuilder`, or directly
/// to any tower service.
#[derive(Clone, Debug)]
pub struct Shield {
    jwt: JwtLayer,
    sessions: SessionLayer,
    auto_detect: Option<AutoDetect>,
    limits: RateLimitLayer,
    learning: LearnLayer,
    sequences: SequenceRuleLayer,
    rates: Option<RateRecommender>,
}

/// The service a [`Shield`] wraps around an application.
pub type ShieldService<S> = JwtService<
    SessionService<AutoDetectService<RateLimit<LearnService<SequenceRuleService<S>>, Store>>>,
>;

impl Shield {
    /// A builder with nothing configured: requests are anonymous until
    /// auto-detection chooses an identifier, and unlimited.
    pub fn builder() -> ShieldBuilder {
        ShieldBuilder::default()
    }

    /// The JWT validation layer, outermost in the shield.
    pub fn jwt(&self) -> &JwtLayer {
        &self.jwt
    }

    /// The handle on the keys of token configuration `id`, to rotate them
    /// while serving.
    pub fn token_keys(&self, id: &str) -> Option<TokenKeys> {
        self.jwt.keys(id)
    }

    /// The session layer inside the shield.
    pub fn sessions(&self) -> &SessionLayer {
        &self.sessions
    }

    /// The session identifier detector, unless it was turned off.
    pub fn auto_detect(&self) -> Option<&AutoDetect> {
        self.auto_detect.as_ref()
    }

    /// The rate limit layer inside the shield; its
    /// [`replace_rules`](RateLimitLayer::replace_rules) changes the rules
    /// of every service made from this shield while they run.
    pub fn rate_limits(&self) -> &RateLimitLayer {
        &self.limits
    }

    /// The learning layer inside the shield.
    pub fn learning(&self) -> &LearnLayer {
        &self.learning
    }

    /// What the learning layer learned; `None` when learning is off.
    pub fn learned(&self) -> Option<&LearnedState> {
        self.learning.state()
    }

    /// The sequence rule layer, innermost in the shield.
    pub fn sequence_rules(&self) -> &SequenceRuleLayer {
        &self.sequences
    }

    /// The sequence tracker: histories, pairs and sequences learned, if
    /// sequences are tracked.
    pub fn sequence_tracker(&self) -> Option<&SequenceTracker> {
        self.sequences.tracker()
    }

    /// The rate recommender, if rates are learned.
    pub fn rate_recommender(&self) -> Option<&RateRecommender> {
        self.rates.as_ref()
    }

    /// The admin API, to mount behind authentication: the learning layer's
    /// routes (see [`LearnedState::admin_router`]) and, when configured,
    /// `GET /recommendations` and `GET /sequences` (see
    /// [`insight_routes`](palisade_learn::insight_routes)); `None` when
    /// none of them is on.
    #[cfg(feature = "admin")]
    pub fn admin_router(&self) -> Option<axum::Router> {
        let tracker = self.sequence_tracker().cloned();
        let insights = (self.rates.is_some() || tracker.is_some())
            .then(|| palisade_learn::insight_routes(self.rates.clone(), tracker));
        match (self.learned().map(LearnedState::admin_router), insights) {
            (Some(learned), Some(insights)) => Some(learned.merge(insights)),
            (learned, insights) => learned.or(insights),
        }
    }
}

impl<S> Layer<S> for Shield {
    type Service = ShieldService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let auto = match &self.auto_detect {
            Some(auto) => auto.layer(),
            None => AutoDetectLayer::off(),
        };
        let learning = self.learning.layer(self.sequences.layer(inner));
        self.jwt
            .layer(self.sessions.layer(auto.layer(self.limits.layer(learning))))
    }
}

/// Builds a [`Shield`].
#[derive(Debug)]
#[must_use]
pub struct ShieldBuilder {
    jwt: JwtLayerBuilder,
    session_key: Option<SessionKey>,
    sessions: SessionLayerBuilder,
    auto_detect: Option<AutoDetect>,
    limits: RateLimitLayerBuilder<Store>,
    learning: Option<LearnLayerBuilder>,
    catalogue: Option<EndpointCatalogue>,
    sequence_rules: Vec<SequenceRule>,
    tracker: Option<SequenceTracker>,
    rates: Option<RateRecommender>,
    learning_clock: Option<SharedClock>,
}

impl Default for ShieldBuilder {
    fn default() -> Self {
        Self {
            jwt: JwtLayerBuilder::default(),
            session_key: None,
            sessions: SessionLayerBuilder::default(),
            auto_detect: Some(AutoDetect::new()),
            limits: RateLimitLayerBuilder::default(),
            learning: None,
            catalogue: None,
            sequence_rules: Vec::new(),
            tracker: None,
            rates: None,
            learning_clock: None,
        }
    }
}

impl ShieldBuilder {
    /// Adds a session identifier, tried after those added before it.
    pub fn identifier(mut self, identifier: Identifier) -> Self {
        self.sessions = self.sessions.identifier(identifier);
        self
    }

    /// Sets the key of the session digest, shared by a fleet; rate limit
    /// keys and the JWT layer's verdict cache are hashed with it too.
    pub fn session_key(mut self, key: SessionKey) -> Self {
        self.sessions = self.sessions.key(key.clone());
        self.limits = self.limits.key(key.clone());
        self.session_key = Some(key);
        self
    }

    /// Adds a token configuration to the JWT layer, tried after those added
    /// before it. Its claims become readable by
    /// [`Identifier::claim`](palisade_session::Identifier::claim) with the
    /// configuration's id.
    pub fn token(mut self, config: TokenConfig) -> Self {
        self.jwt = self.jwt.token(config);
        self
    }

    /// Adds a policy saying what missing and invalid tokens of one
    /// configuration get, on which endpoints (see [`TokenPolicy`]).
    pub fn token_policy(mut self, policy: TokenPolicy) -> Self {
        self.jwt = self.jwt.policy(policy);
        self
    }

    /// The clock the JWT layer reads `exp`, `nbf` and cache lifetimes from;
    /// the system clock by default.
    pub fn jwt_clock(mut self, clock: SharedClock) -> Self {
        self.jwt = self.jwt.clock(clock);
        self
    }

    /// Replaces the JWT layer's builder as a whole, for its cache settings.
    pub fn jwt(mut self, jwt: JwtLayerBuilder) -> Self {
        self.jwt = jwt;
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

    /// Adds a rate limit rule, checked after those added before it.
    pub fn rate_limit(mut self, rule: Rule) -> Self {
        self.limits = self.limits.rule(rule);
        self
    }

    /// Sets where rate limit state lives; the default is in memory on the
    /// system clock. With the `redis` feature, a
    /// [`RedisStore`](palisade_limit::RedisStore) shares the limits with
    /// every instance that uses the same Redis, prefix and session key.
    pub fn rate_limit_store(mut self, store: impl Into<Store>) -> Self {
        self.limits = self.limits.store(store.into());
        self
    }

    /// Replaces the 429 response of the rate limit layer.
    pub fn on_rate_limited<F>(mut self, refusal: F) -> Self
    where
        F: Fn(&RateLimitDecision) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        self.limits = self.limits.on_refused(refusal);
        self
    }

    /// Sets the proxies whose forwarded headers give the client IP.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.limits = self.limits.trusted_proxies(proxies);
        self
    }

    /// Sets the endpoint catalogue requests are resolved with, by the JWT
    /// layer's policies, the rate limit rules and the learning layer alike
    /// (it replaces one given to the learning layer's builder).
    pub fn endpoints(mut self, catalogue: EndpointCatalogue) -> Self {
        self.jwt = self.jwt.endpoints(catalogue.clone());
        self.limits = self.limits.catalogue(catalogue.clone());
        self.catalogue = Some(catalogue);
        self
    }

    /// Turns learning on, configured by `learning` (see
    /// [`LearnLayer::builder`]).
    pub fn learning(mut self, learning: LearnLayerBuilder) -> Self {
        self.learning = Some(learning);
        self
    }

    /// Adds a sequence rule; see [`SequenceRule`].
    pub fn sequence_rule(mut self, rule: SequenceRule) -> Self {
        self.sequence_rules.push(rule);
        self
    }

    /// Tracks sequences in `tracker` (its clock is the rules' clock); with
    /// sequence rules and no tracker, the shield makes one.
    pub fn sequence_tracker(mut self, tracker: SequenceTracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// Learns per-session rates in `recommender`, from every 2xx answer: fed
    /// by the learning layer when learning is on, else by the sequence rule
    /// layer.
    pub fn rate_recommender(mut self, recommender: RateRecommender) -> Self {
        self.rates = Some(recommender);
        self
    }

    /// The clock that stamps the answers recorded for learning (by the
    /// learning layer and the sequence rule layer) and that sequence rules
    /// read; by default the learning layer's own, and the tracker's (else the
    /// system clock) for sequences. Build the sequence tracker and the rate
    /// recommender on the same clock.
    pub fn learning_clock(mut self, clock: SharedClock) -> Self {
        self.learning_clock = Some(clock);
        self
    }

    /// Builds the shield; fails on a configuration error, naming it.
    pub fn build(self) -> Result<Shield, ConfigError> {
        let mut sessions = self.sessions;
        if let Some(auto) = &self.auto_detect {
            sessions = sessions.auto_detect(auto);
        }
        let mut jwt = self.jwt;
        if let Some(key) = self.session_key {
            jwt = jwt.key(key);
        }
        let mut sequences = SequenceRuleLayerBuilder::default();
        for rule in self.sequence_rules {
            sequences = sequences.rule(rule);
        }
        if let Some(tracker) = self.tracker {
            sequences = sequences.tracker(tracker);
        }
        if let Some(clock) = &self.learning_clock {
            sequences = sequences.clock(clock.clone());
        }
        if let Some(catalogue) = &self.catalogue {
            sequences = sequences.catalogue(catalogue.clone());
        }
        let mut learning = self.learning;
        if let Some(clock) = self.learning_clock {
            learning = learning.map(|l| l.clock(clock));
        }
        // The learning layer feeds the recommender; without it, the
        // sequence rule layer does.
        if let Some(rates) = &self.rates {
            let recorder = Arc::new(rates.clone());
            learning = match learning {
                Some(l) => Some(l.recorder(recorder)),
                None => {
                    sequences = sequences.recorder(recorder);
                    None
                }
            };
        }
        Ok(Shield {
            jwt: jwt.build()?,
            sessions: sessions.build()?,
            auto_detect: self.auto_detect,
            limits: self.limits.build()?,
            learning: match (learning, self.catalogue) {
                (Some(learning), Some(catalogue)) => learning.catalogue(catalogue).build()?,
                (Some(learning), None) => learning.build()?,
                (None, _) => LearnLayer::disabled(),
            },
            sequences: sequences.build()?,
            rates: self.rates,
        })
    }
}
