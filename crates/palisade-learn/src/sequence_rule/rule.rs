//! Sequence rules: which endpoint may, or may not, follow which.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use palisade_core::{ConfigError, Endpoint, HostPattern};
use serde::{Deserialize, Serialize};

use crate::sequence::SEQUENCE_GAP;

/// What a sequence rule requires of the order of two endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SequenceRuleKind {
    /// The second endpoint is refused (or logged) unless the session called
    /// the first within the window before it.
    Allow,
    /// The second endpoint is refused (or logged) when the session called
    /// the first within the window before it.
    Block,
}

/// What a triggered rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Answer 403 with a problem+json body naming the rule.
    Block,
    /// Let the request through and log it at DEBUG.
    Log,
}

/// A rule on the order in which a session calls two endpoints.
///
/// Built with [`allow`](Self::allow) or [`block`](Self::block), then
/// tuned: the window is 10 minutes, the action `block` and the priority 0
/// unless set.
///
/// ```
/// use palisade_learn::{RuleAction, SequenceRule};
/// use std::time::Duration;
///
/// let rule = SequenceRule::allow("checkout-after-cart", "GET /cart", "POST /checkout")?
///     .window(Duration::from_secs(300))
///     .action(RuleAction::Log)
///     .priority(10);
/// assert_eq!(rule.then().to_string(), "POST /checkout");
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SequenceRule {
    name: Arc<str>,
    kind: SequenceRuleKind,
    first: Endpoint,
    then: Endpoint,
    window: Duration,
    action: RuleAction,
    priority: i32,
}

impl SequenceRule {
    /// `then` is allowed only after `first`: refused unless the session
    /// called `first` within the window before.
    ///
    /// Endpoints are written `METHOD /template`, on any host.
    pub fn allow(name: &str, first: &str, then: &str) -> Result<Self, ConfigError> {
        Self::new(SequenceRuleKind::Allow, name, first, then)
    }

    /// `then` is refused when the session called `first` within the window
    /// before.
    pub fn block(name: &str, first: &str, then: &str) -> Result<Self, ConfigError> {
        Self::new(SequenceRuleKind::Block, name, first, then)
    }

    /// A rule of `kind` between two endpoints made elsewhere (a catalogue,
    /// a discovery).
    pub fn between(
        kind: SequenceRuleKind,
        name: &str,
        first: Endpoint,
        then: Endpoint,
    ) -> Result<Self, ConfigError> {
        if name.trim().is_empty() {
            return Err(ConfigError::InvalidName {
                what: "sequence rule name",
                name: name.to_owned(),
            });
        }
        Ok(Self {
            name: name.into(),
            kind,
            first,
            then,
            window: SEQUENCE_GAP,
            action: RuleAction::Block,
            priority: 0,
        })
    }

    fn new(
        kind: SequenceRuleKind,
        name: &str,
        first: &str,
        then: &str,
    ) -> Result<Self, ConfigError> {
        Self::between(kind, name, parse_endpoint(first)?, parse_endpoint(then)?)
    }

    /// How long before `then` the call of `first` counts; 10 minutes by
    /// default. The history holds the session's last 10 endpoints of its
    /// current sequence, so a longer window only helps sessions that keep
    /// calling without a 10-minute pause.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// What the rule does when it triggers; `block` by default.
    #[must_use]
    pub fn action(mut self, action: RuleAction) -> Self {
        self.action = action;
        self
    }

    /// Rules are checked highest priority first; 0 by default.
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The rule's name, shown in refusals and logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the rule allows or blocks the order.
    pub fn kind(&self) -> SequenceRuleKind {
        self.kind
    }

    /// The endpoint that comes first.
    pub fn first(&self) -> Endpoint {
        self.first
    }

    /// The endpoint the rule applies to.
    pub fn then(&self) -> Endpoint {
        self.then
    }

    /// The window.
    pub fn window_duration(&self) -> Duration {
        self.window
    }

    /// The action.
    pub fn rule_action(&self) -> RuleAction {
        self.action
    }

    /// The priority.
    pub fn rule_priority(&self) -> i32 {
        self.priority
    }

    pub(crate) fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    /// Why the rule triggered, for the problem's detail.
    pub(crate) fn explain(&self) -> String {
        let verb = match self.kind {
            SequenceRuleKind::Allow => "must follow",
            SequenceRuleKind::Block => "may not follow",
        };
        format!(
            "sequence rule {:?}: {} {verb} {} within {} s",
            &*self.name,
            self.then,
            self.first,
            self.window.as_secs()
        )
    }
}

impl fmt::Debug for SequenceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceRule")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("first", &self.first)
            .field("then", &self.then)
            .field("window", &self.window)
            .field("action", &self.action)
            .field("priority", &self.priority)
            .finish()
    }
}

/// Parses `METHOD /template` into an endpoint on any host.
pub(crate) fn parse_endpoint(spec: &str) -> Result<Endpoint, ConfigError> {
    let bad = |reason: &str| ConfigError::Invalid {
        what: format!("endpoint {spec:?}"),
        reason: reason.to_owned(),
    };
    let (method, template) = spec
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("write it as `METHOD /template`"))?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| ConfigError::InvalidMethod {
        method: method.to_owned(),
    })?;
    let template = template.trim();
    if !template.starts_with('/') {
        return Err(ConfigError::InvalidTemplate {
            template: template.to_owned(),
            reason: "a path template starts with `/`".to_owned(),
        });
    }
    Ok(Endpoint::new(method, HostPattern::Any, template))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_parsed_and_bad_ones_named() {
        let rule = SequenceRule::block("no-replay", "POST /pay", "POST /pay/{id}/refund").unwrap();
        assert_eq!(rule.first().to_string(), "POST /pay");
        assert_eq!(rule.then().template(), "/pay/{id}/refund");
        assert_eq!(rule.window_duration(), SEQUENCE_GAP);
        assert_eq!(rule.rule_action(), RuleAction::Block);
        let err = SequenceRule::allow("r", "GET", "GET /b").unwrap_err();
        assert!(err.to_string().contains("\"GET\""), "{err}");
        let err = SequenceRule::allow("r", "G(T /a", "GET /b").unwrap_err();
        assert!(err.to_string().contains("G(T"), "{err}");
        let err = SequenceRule::allow("r", "GET /a", "GET b").unwrap_err();
        assert!(err.to_string().contains("\"b\""), "{err}");
        let err = SequenceRule::allow(" ", "GET /a", "GET /b").unwrap_err();
        assert!(err.to_string().contains("sequence rule name"), "{err}");
    }
}
