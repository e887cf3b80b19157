//! The sequence rule layer and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::{
    Clock, ConfigError, Endpoint, EndpointCatalogue, SessionId, SharedClock, SystemClock,
};
use tower_layer::Layer;

use super::rule::{RuleAction, SequenceRule, SequenceRuleKind};
use super::service::SequenceRuleService;
use crate::observe::{Observation, Recorder};
use crate::sequence::SequenceTracker;

/// A layer that enforces [`SequenceRule`]s and records each session's
/// history into a [`SequenceTracker`].
///
/// For every request it resolves the [`Endpoint`] (from the extensions, the
/// catalogue or axum's `MatchedPath`) and reads the
/// [`Session`](palisade_core::Session) the session layer put there. Rules
/// are checked highest priority first, ties in the order added; **the first
/// rule that triggers decides**: a `block` rule answers 403, a `log` rule
/// logs at DEBUG and lets the request through, and no later rule is checked.
/// When the inner service answers 2xx, the layer records the endpoint into
/// the tracker's history, which later requests are checked against.
///
/// A request without a session has no history: an `allow` rule refuses it,
/// a `block` rule lets it through. A request whose endpoint is unknown
/// passes unchecked and unrecorded.
///
/// With no rules, no tracker and no recorders the layer passes every
/// request straight through.
#[derive(Clone, Default)]
pub struct SequenceRuleLayer {
    pub(crate) config: Arc<RuleConfig>,
}

#[derive(Default)]
pub(crate) struct RuleConfig {
    /// Highest priority first.
    rules: Box<[SequenceRule]>,
    tracker: Option<SequenceTracker>,
    recorders: Box<[Arc<dyn Recorder>]>,
    catalogue: EndpointCatalogue,
    /// The tracker's clock, or the system clock.
    clock: Option<SharedClock>,
    pub(crate) active: bool,
}

impl RuleConfig {
    pub(crate) fn endpoint_of<B>(&self, request: &mut http::Request<B>) -> Option<Endpoint> {
        self.catalogue.endpoint_of(request)
    }

    fn now(&self) -> Duration {
        match &self.clock {
            Some(clock) => clock.now(),
            None => SystemClock.now(),
        }
    }

    /// The rule that decides about `session` calling `endpoint` now.
    pub(crate) fn check(
        &self,
        endpoint: Endpoint,
        session: Option<SessionId>,
    ) -> Option<&SequenceRule> {
        let tracker = self.tracker.as_ref()?;
        let mut now = None;
        self.rules
            .iter()
            .filter(|rule| rule.then() == endpoint)
            .find(|rule| {
                let now = *now.get_or_insert_with(|| self.now());
                let preceded = session.is_some_and(|s| {
                    tracker.called_within(s, rule.first(), rule.window_duration(), now)
                });
                match rule.kind() {
                    SequenceRuleKind::Allow => !preceded,
                    SequenceRuleKind::Block => preceded,
                }
            })
    }

    /// Records a 2xx answer to `session` calling `endpoint`.
    pub(crate) fn record(
        &self,
        endpoint: Endpoint,
        session: Option<SessionId>,
        status: http::StatusCode,
    ) {
        let at = self.now();
        if let (Some(tracker), Some(session)) = (&self.tracker, session) {
            tracker.visit(session, endpoint, at);
        }
        if !self.recorders.is_empty() {
            let observation = Observation {
                endpoint,
                session,
                status,
                at,
            };
            for recorder in &self.recorders {
                recorder.record(&observation);
            }
        }
    }
}

impl SequenceRuleLayer {
    /// A layer that passes every request through: no rules, no tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder with no rules.
    pub fn builder() -> SequenceRuleLayerBuilder {
        SequenceRuleLayerBuilder::default()
    }

    /// The rules, highest priority first.
    pub fn rules(&self) -> &[SequenceRule] {
        &self.config.rules
    }

    /// The tracker whose history the rules read, if any.
    pub fn tracker(&self) -> Option<&SequenceTracker> {
        self.config.tracker.as_ref()
    }
}

impl<S> Layer<S> for SequenceRuleLayer {
    type Service = SequenceRuleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SequenceRuleService::new(inner, self.config.clone())
    }
}

impl fmt::Debug for SequenceRuleLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceRuleLayer")
            .field("rules", &self.config.rules)
            .field("tracker", &self.config.tracker)
            .field("recorders", &self.config.recorders.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`SequenceRuleLayer`].
#[derive(Default)]
#[must_use]
pub struct SequenceRuleLayerBuilder {
    rules: Vec<SequenceRule>,
    tracker: Option<SequenceTracker>,
    recorders: Vec<Arc<dyn Recorder>>,
    catalogue: Option<EndpointCatalogue>,
    clock: Option<SharedClock>,
}

impl SequenceRuleLayerBuilder {
    /// The clock of the rules and of recorded answers; the tracker's clock
    /// by default, else the system clock. Give the tracker and the
    /// recorders the same clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: SequenceRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The tracker that holds the histories (and so the analytics); a new
    /// one on the system clock when rules are given without one. Its clock
    /// is the rules' clock.
    pub fn tracker(mut self, tracker: SequenceTracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// Also feeds `recorder` with every 2xx answer the layer sees, for
    /// stacks without the learning layer.
    pub fn recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorders.push(recorder);
        self
    }

    /// The endpoints requests are resolved against, when no outer layer
    /// resolved them and axum's `MatchedPath` is absent; the rules'
    /// endpoints are added to it.
    pub fn catalogue(mut self, catalogue: EndpointCatalogue) -> Self {
        self.catalogue = Some(catalogue);
        self
    }

    /// Builds the layer; fails on a rule with a zero window or a name used
    /// twice, naming it, or on endpoints the catalogue cannot hold.
    pub fn build(self) -> Result<SequenceRuleLayer, ConfigError> {
        let mut catalogue = EndpointCatalogue::builder();
        for endpoint in self.catalogue.iter().flat_map(|c| c.endpoints()) {
            catalogue = catalogue.with(*endpoint);
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.window_duration().is_zero() {
                return Err(ConfigError::OutOfRange {
                    what: "sequence rule window",
                    value: format!("0 s in rule {:?}", rule.name()),
                });
            }
            if self.rules[..i].iter().any(|r| r.name() == rule.name()) {
                return Err(ConfigError::Invalid {
                    what: format!("sequence rule {:?}", rule.name()),
                    reason: "the name is used by another rule".to_owned(),
                });
            }
            catalogue = catalogue.with(rule.first()).with(rule.then());
        }
        let mut rules = self.rules;
        // Stable: equal priorities keep the order they were added in.
        rules.sort_by_key(|r| std::cmp::Reverse(r.rule_priority()));
        let tracker = match (self.tracker, &self.clock) {
            (None, Some(clock)) if !rules.is_empty() => {
                Some(SequenceTracker::builder().clock(clock.clone()).build()?)
            }
            (None, None) if !rules.is_empty() => Some(SequenceTracker::new()),
            (tracker, _) => tracker,
        };
        let active = !rules.is_empty() || tracker.is_some() || !self.recorders.is_empty();
        Ok(SequenceRuleLayer {
            config: Arc::new(RuleConfig {
                rules: rules.into(),
                clock: self
                    .clock
                    .or_else(|| tracker.as_ref().map(|t| t.clock().clone())),
                tracker,
                recorders: self.recorders.into(),
                catalogue: catalogue.build()?,
                active,
            }),
        })
    }
}

impl fmt::Debug for SequenceRuleLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceRuleLayerBuilder")
            .field("rules", &self.rules)
            .field("tracker", &self.tracker)
            .field("recorders", &self.recorders.len())
            .field("catalogue", &self.catalogue)
            .field("clock", &self.clock)
            .finish()
    }
}

/// Why the sequence rule layer refused a request; found in the extensions
/// of the 403 response it sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceRuleViolation {
    rule: Arc<str>,
    kind: SequenceRuleKind,
}

impl SequenceRuleViolation {
    pub(crate) fn new(rule: &SequenceRule) -> Self {
        Self {
            rule: rule.shared_name(),
            kind: rule.kind(),
        }
    }

    /// The name of the rule that refused the request.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The kind of that rule.
    pub fn kind(&self) -> SequenceRuleKind {
        self.kind
    }
}

/// The action of the rule `check` returned; re-exported for the service.
pub(crate) fn blocks(rule: &SequenceRule) -> bool {
    rule.rule_action() == RuleAction::Block
}
