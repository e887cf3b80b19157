//! The rate limit layer, its builder, and live rule replacement.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use palisade_core::{ConfigError, EndpointCatalogue, RateLimitDecision, SessionKey};
use tower_layer::Layer;

use crate::key::TrustedProxies;
use crate::rule::Rule;
use crate::service::RateLimit;
use crate::store::{CounterSpec, RateLimitStore, Store};

/// A user-supplied maker of refusal responses.
pub(crate) type RefusalFn = Arc<dyn Fn(&RateLimitDecision) -> Response<Full<Bytes>> + Send + Sync>;

/// A layer that checks every request against the matching rules and
/// refuses, with 429, those over a blocking rule's quota.
///
/// The layer resolves the request's endpoint once
/// ([`EndpointCatalogue::endpoint_of`]), checks every rule that applies to
/// it, and then:
///
/// - lets the request through with `RateLimit-Policy` and `RateLimit`
///   fields on the response, for the rule closest to its limit;
/// - or answers `429 Too Many Requests` with `Retry-After`, the same fields
///   and a problem+json body naming the rule, if any blocking rule refused;
///
/// and puts a [`RateLimitDecision`] in the request's extensions and in the
/// response's. With no rule, the layer is one branch and passes the request
/// on untouched.
///
/// Cloning the layer is cheap, and clones share rules and state: the
/// layer is its own handle for [`replace_rules`](Self::replace_rules).
pub struct RateLimitLayer<St: RateLimitStore = Store> {
    pub(crate) shared: Arc<Shared<St>>,
}

pub(crate) struct Shared<St: RateLimitStore> {
    pub(crate) store: St,
    pub(crate) key: SessionKey,
    pub(crate) catalogue: EndpointCatalogue,
    pub(crate) proxies: TrustedProxies,
    pub(crate) refusal: Option<RefusalFn>,
    current: Mutex<Arc<RuleSet<St>>>,
    /// Bumped after each replacement, so that services notice it with one
    /// uncontended atomic read per request.
    pub(crate) generation: AtomicU64,
}

impl<St: RateLimitStore> Shared<St> {
    pub(crate) fn rules(&self) -> Arc<RuleSet<St>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Rules with their store counters, as the services read them.
pub(crate) struct RuleSet<St: RateLimitStore> {
    pub(crate) rules: Vec<Compiled<St>>,
    /// Whether any rule selects by host, or needs the endpoint: the
    /// service skips what no rule reads.
    pub(crate) needs_host: bool,
    pub(crate) needs_endpoint: bool,
}

pub(crate) struct Compiled<St: RateLimitStore> {
    pub(crate) rule: Rule,
    pub(crate) counter: Arc<St::Counter>,
}

impl<St: RateLimitStore> RuleSet<St> {
    /// Compiles `rules`, keeping the counters of rules that `previous` had
    /// with the same name and quotas.
    fn compile(
        store: &St,
        rules: Vec<Rule>,
        previous: Option<&RuleSet<St>>,
    ) -> Result<Self, ConfigError> {
        let mut names = HashSet::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            if !names.insert(rule.name) {
                return Err(ConfigError::Invalid {
                    what: format!("rule {:?}", rule.name),
                    reason: "two rules have this name".to_owned(),
                });
            }
            let kept = previous.and_then(|p| {
                p.rules
                    .iter()
                    .find(|c| c.rule.same_counter(&rule))
                    .map(|c| c.counter.clone())
            });
            let counter = match kept {
                Some(counter) => counter,
                None => Arc::new(store.counter(&CounterSpec {
                    rule: rule.name,
                    quotas: &rule.quotas,
                    mitigation: rule.mitigation,
                    max_keys: rule.max_keys,
                })?),
            };
            compiled.push(Compiled { rule, counter });
        }
        Ok(Self {
            needs_host: compiled.iter().any(|c| c.rule.uses_host()),
            needs_endpoint: compiled.iter().any(|c| c.rule.uses_endpoint()),
            rules: compiled,
        })
    }
}

impl RateLimitLayer<Store> {
    /// A builder with no rules, the in-memory store on the system clock,
    /// the process session key and no trusted proxy.
    pub fn builder() -> RateLimitLayerBuilder<Store> {
        RateLimitLayerBuilder::default()
    }
}

impl<St: RateLimitStore> RateLimitLayer<St> {
    /// The rules in force, in order.
    pub fn rules(&self) -> Vec<Rule> {
        self.shared
            .rules()
            .rules
            .iter()
            .map(|c| c.rule.clone())
            .collect()
    }

    /// The store the layer counts in.
    pub fn store(&self) -> &St {
        &self.shared.store
    }

    /// The counter of the rule named `name`, to inspect its state.
    pub fn counter(&self, name: &str) -> Option<Arc<St::Counter>> {
        self.shared
            .rules()
            .rules
            .iter()
            .find(|c| c.rule.name == name)
            .map(|c| c.counter.clone())
    }

    /// Replaces the rules while the server runs, for every service made
    /// from this layer or its clones; requests already being checked finish
    /// under the old rules.
    ///
    /// A rule that keeps its name, values to count by, quotas, mitigation
    /// and cap keeps its state; any other starts afresh. On error (a
    /// duplicate name, a store that refuses a quota) the old rules stay.
    pub fn replace_rules<I>(&self, rules: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = Rule>,
    {
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let next = RuleSet::compile(
            &self.shared.store,
            rules.into_iter().collect(),
            Some(&current),
        )?;
        *current = Arc::new(next);
        self.shared.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

impl<St: RateLimitStore> Clone for RateLimitLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S, St: RateLimitStore> Layer<S> for RateLimitLayer<St> {
    type Service = RateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.shared.clone())
    }
}

impl<St: RateLimitStore> fmt::Debug for RateLimitLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("rules", &self.rules())
            .field("store", &self.shared.store)
            .field("trusted_proxies", &self.shared.proxies)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateLimitLayer`].
#[must_use]
pub struct RateLimitLayerBuilder<St = Store> {
    rules: Vec<Rule>,
    store: St,
    key: Option<SessionKey>,
    catalogue: EndpointCatalogue,
    proxies: TrustedProxies,
    refusal: Option<RefusalFn>,
}

impl Default for RateLimitLayerBuilder<Store> {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            store: Store::default(),
            key: None,
            catalogue: EndpointCatalogue::new(),
            proxies: TrustedProxies::none(),
            refusal: None,
        }
    }
}

impl<St: RateLimitStore> RateLimitLayerBuilder<St> {
    /// Adds a rule, checked after those added before it.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds rules.
    pub fn rules<I: IntoIterator<Item = Rule>>(mut self, rules: I) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Counts in `store` instead: a [`MemoryStore`](crate::MemoryStore)
    /// on an injected clock, or any [`RateLimitStore`].
    pub fn store<T: RateLimitStore>(self, store: T) -> RateLimitLayerBuilder<T> {
        RateLimitLayerBuilder {
            rules: self.rules,
            store,
            key: self.key,
            catalogue: self.catalogue,
            proxies: self.proxies,
            refusal: self.refusal,
        }
    }

    /// Sets the key that header, cookie, query, IP and claim values are
    /// hashed with; use the session layer's key, shared by a fleet. The
    /// default is [`SessionKey::process`].
    pub fn key(mut self, key: SessionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the catalogue that requests are resolved to endpoints with.
    /// Inside an axum router, the matched route is used when the catalogue
    /// does not declare it.
    pub fn catalogue(mut self, catalogue: EndpointCatalogue) -> Self {
        self.catalogue = catalogue;
        self
    }

    /// Sets the proxies whose forwarded headers give the client IP.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Replaces the 429 response. The layer adds `Retry-After`,
    /// `RateLimit-Policy` and `RateLimit` when the response lacks them, and
    /// the decision to its extensions.
    pub fn on_refused<F>(mut self, refusal: F) -> Self
    where
        F: Fn(&RateLimitDecision) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        self.refusal = Some(Arc::new(refusal));
        self
    }

    /// Builds the layer; fails on two rules with one name, or a rule the
    /// store cannot keep.
    pub fn build(self) -> Result<RateLimitLayer<St>, ConfigError> {
        let rules = RuleSet::compile(&self.store, self.rules, None)?;
        Ok(RateLimitLayer {
            shared: Arc::new(Shared {
                store: self.store,
                key: self.key.unwrap_or_default(),
                catalogue: self.catalogue,
                proxies: self.proxies,
                refusal: self.refusal,
                current: Mutex::new(Arc::new(rules)),
                generation: AtomicU64::new(0),
            }),
        })
    }
}

impl<St: fmt::Debug> fmt::Debug for RateLimitLayerBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("rules", &self.rules)
            .field("store", &self.store)
            .field("catalogue", &self.catalogue)
            .field("trusted_proxies", &self.proxies)
            .field("on_refused", &self.refusal.is_some())
            .finish_non_exhaustive()
    }
}
