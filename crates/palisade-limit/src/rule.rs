//! Rate limit rules: which requests, counted by what, with what quota.

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use http::{HeaderValue, Method};
use palisade_core::{ConfigError, Endpoint, HostPattern, SessionKey};
use serde::Deserialize;

use crate::Quota;
use crate::key::{CountBy, Raw, RequestView};

/// The most values one rule counts by.
pub const MAX_COUNT_BY: usize = 8;

/// The default cap on the keys one rule keeps in memory.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// What a rule does to a request over its quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse it with 429.
    #[default]
    Block,
    /// Let it through, log it at DEBUG and record it in the decision
    /// (shadow mode, to try a rule on live traffic).
    Log,
}

/// What a rule does with a request that lacks one of its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// The rule does not apply to it.
    Skip,
    /// It is counted in a bucket of its own, apart from an empty value.
    Count,
}

/// A rate limit rule: which endpoints, what to count by, the quota (per
/// tier), the action and the mitigation timeout.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use palisade_limit::{Action, CountBy, Quota, Rule};
///
/// let free = Quota::per_minute(NonZeroU32::new(100).unwrap());
/// let pro = Quota::per_minute(NonZeroU32::new(1000).unwrap());
/// let rule = Rule::builder("per-session", free)
///     .endpoint("POST", "/orders")?
///     .count_by(CountBy::session())
///     .tiers(CountBy::claim("auth0", "$.plan")?, [("pro", pro)])?
///     .mitigation(Duration::from_secs(600))
///     .action(Action::Block)
///     .build()?;
/// assert_eq!(rule.name(), "per-session");
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
///
/// Rules can also be read from configuration files:
///
/// ```
/// use palisade_limit::Rule;
///
/// let rule: Rule = serde_json::from_str(r#"{
///     "name": "per-key",
///     "quota": {"requests": 10, "period_secs": 1},
///     "endpoints": [{"method": "GET", "path": "/search"}],
///     "count_by": [{"header": "x-api-key"}],
///     "missing": "count",
///     "action": "log",
///     "mitigation_secs": 60
/// }"#)?;
/// assert_eq!(rule.name(), "per-key");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Rule {
    pub(crate) name: &'static str,
    endpoints: Vec<Selector>,
    count_by: Vec<CountBy>,
    missing: Missing,
    pub(crate) quotas: Vec<Quota>,
    tier_by: Option<CountBy>,
    tier_values: Vec<String>,
    pub(crate) action: Action,
    pub(crate) mitigation: Option<Duration>,
    pub(crate) max_keys: NonZeroUsize,
    /// `"name";q=…;w=…`, the `RateLimit-Policy` member of the default
    /// quota, then of each tier.
    pub(crate) policies: Vec<HeaderValue>,
}

#[derive(Clone, PartialEq, Eq)]
struct Selector {
    method: Option<Method>,
    host: HostPattern,
    template: Option<String>,
}

impl Selector {
    fn matches(&self, endpoint: Endpoint, host: Option<&str>) -> bool {
        self.method.as_ref().is_none_or(|m| m == endpoint.method())
            && self
                .template
                .as_deref()
                .is_none_or(|t| t == endpoint.template())
            && match self.host {
                HostPattern::Any => true,
                pattern => host.is_some_and(|h| pattern.matches(h)),
            }
    }
}

impl Rule {
    /// A builder for a rule named `name` with the default quota `quota`.
    pub fn builder(name: &str, quota: Quota) -> RuleBuilder {
        RuleBuilder {
            name: name.to_owned(),
            quota,
            endpoints: Vec::new(),
            count_by: Vec::new(),
            missing: None,
            tiers: None,
            action: Action::Block,
            mitigation: None,
            max_keys: NonZeroUsize::new(DEFAULT_MAX_KEYS).unwrap_or(NonZeroUsize::MIN),
        }
    }

    /// The rule's name, as reported in headers, problem bodies and logs.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The default quota.
    pub fn quota(&self) -> Quota {
        self.quotas[0]
    }

    /// The action on requests over the quota.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The mitigation timeout, if any.
    pub fn mitigation(&self) -> Option<Duration> {
        self.mitigation
    }

    /// What the rule counts by.
    pub fn count_by(&self) -> &[CountBy] {
        &self.count_by
    }

    /// Whether the rule applies to a request on `endpoint` (if resolved)
    /// sent to `host`.
    pub(crate) fn applies(&self, endpoint: Option<Endpoint>, host: Option<&str>) -> bool {
        self.endpoints.is_empty()
            || endpoint.is_some_and(|e| self.endpoints.iter().any(|s| s.matches(e, host)))
    }

    /// The tier of a request: 0 for the default quota, `i + 1` for the
    /// `i`-th tier value.
    pub(crate) fn tier(&self, view: &RequestView<'_>) -> usize {
        let Some(by) = &self.tier_by else {
            return 0;
        };
        let raw = by.read(view);
        raw.as_bytes()
            .and_then(|v| self.tier_values.iter().position(|t| t.as_bytes() == v))
            .map_or(0, |i| i + 1)
    }

    /// The request's key: the digest of the tuple of its values, or `None`
    /// when a value is missing and the rule skips such requests.
    pub(crate) fn key(&self, view: &RequestView<'_>, key: &SessionKey) -> Option<u128> {
        if let [only] = self.count_by.as_slice() {
            let raw = only.read(view);
            if matches!(raw, Raw::Missing) && self.missing == Missing::Skip {
                return None;
            }
            return Some(only.digest(key, &raw));
        }
        let mut parts = [0u8; 16 * MAX_COUNT_BY];
        for (by, part) in self.count_by.iter().zip(parts.chunks_exact_mut(16)) {
            let raw = by.read(view);
            if matches!(raw, Raw::Missing) && self.missing == Missing::Skip {
                return None;
            }
            part.copy_from_slice(&by.digest(key, &raw).to_le_bytes());
        }
        let used = &parts[..16 * self.count_by.len()];
        Some(palisade_core::SessionId::digest_parts(key, 24, self.name.as_bytes(), used).as_u128())
    }

    /// Whether the rule needs the request's host.
    pub(crate) fn uses_host(&self) -> bool {
        self.endpoints.iter().any(|s| s.host != HostPattern::Any)
    }

    /// Whether the rule needs the request's endpoint.
    pub(crate) fn uses_endpoint(&self) -> bool {
        !self.endpoints.is_empty() || self.count_by.iter().any(CountBy::is_endpoint)
    }

    /// Whether `other` keeps the same counter: same name, quotas, tiers,
    /// mitigation and cap.
    pub(crate) fn same_counter(&self, other: &Rule) -> bool {
        self.name == other.name
            && self.quotas == other.quotas
            && self.tier_values == other.tier_values
            && self.mitigation == other.mitigation
            && self.max_keys == other.max_keys
            && self.count_by == other.count_by
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("quota", &self.quotas[0])
            .field("endpoints", &self.endpoints.len())
            .field("count_by", &self.count_by)
            .field("missing", &self.missing)
            .field("tiers", &self.tier_values)
            .field("action", &self.action)
            .field("mitigation", &self.mitigation)
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

/// Builds a [`Rule`].
#[derive(Debug)]
#[must_use]
pub struct RuleBuilder {
    name: String,
    quota: Quota,
    endpoints: Vec<Selector>,
    count_by: Vec<CountBy>,
    missing: Option<Missing>,
    tiers: Option<(CountBy, Vec<(String, Quota)>)>,
    action: Action,
    mitigation: Option<Duration>,
    max_keys: NonZeroUsize,
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = self.method.as_ref().map_or("*", Method::as_str);
        write!(
            f,
            "{method} {}{}",
            self.host,
            self.template.as_deref().unwrap_or("*")
        )
    }
}

impl RuleBuilder {
    /// Limits the rule to `method template` (`*` for any method or any
    /// template) on every host; by default a rule applies to all
    /// endpoints. Templates are compared with the endpoint the request
    /// resolved to in the catalogue (or axum's matched route).
    pub fn endpoint(self, method: &str, template: &str) -> Result<Self, ConfigError> {
        self.endpoint_on(method, "*", template)
    }

    /// Limits the rule to `method template` on hosts matching `host`
    /// (`api.example.com`, `*.example.com` or `*`).
    pub fn endpoint_on(
        mut self,
        method: &str,
        host: &str,
        template: &str,
    ) -> Result<Self, ConfigError> {
        let method =
            match method {
                "*" => None,
                m => Some(Method::from_bytes(m.as_bytes()).map_err(|_| {
                    ConfigError::InvalidMethod {
                        method: m.to_owned(),
                    }
                })?),
            };
        let template = match template {
            "*" => None,
            t if t.starts_with('/') => Some(t.to_owned()),
            t => {
                return Err(ConfigError::InvalidTemplate {
                    template: t.to_owned(),
                    reason: "must start with `/`".to_owned(),
                });
            }
        };
        self.endpoints.push(Selector {
            method,
            host: HostPattern::parse(host)?,
            template,
        });
        Ok(self)
    }

    /// Adds a value to count by; the key is the tuple of all of them. With
    /// none, the rule counts by session.
    pub fn count_by(mut self, by: CountBy) -> Self {
        self.count_by.push(by);
        self
    }

    /// What a request without one of the values gets. The default is
    /// [`Missing::Skip`] for rules that count by session (anonymous
    /// requests pass) and [`Missing::Count`] for the others (so that
    /// leaving out a header does not escape the rule).
    pub fn missing(mut self, missing: Missing) -> Self {
        self.missing = Some(missing);
        self
    }

    /// Picks the quota by the value of `by` (a header, cookie, query
    /// parameter or claim): a request whose value equals one of the given
    /// values gets its quota, others the default. Each tier counts apart.
    pub fn tiers<I, V>(mut self, by: CountBy, tiers: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (V, Quota)>,
        V: Into<String>,
    {
        if !by.is_textual() {
            return Err(ConfigError::Invalid {
                what: format!("tier value {by}"),
                reason: "a tier is chosen by a header, cookie, query parameter or claim".to_owned(),
            });
        }
        let tiers: Vec<(String, Quota)> = tiers.into_iter().map(|(v, q)| (v.into(), q)).collect();
        self.tiers = Some((by, tiers));
        Ok(self)
    }

    /// Refuse (the default) or only log requests over the quota.
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Once a key trips the rule, refuse it for `timeout` whatever its
    /// rate; zero means no mitigation.
    pub fn mitigation(mut self, timeout: Duration) -> Self {
        self.mitigation = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// The most keys the rule keeps; the default is 100,000.
    pub fn max_keys(mut self, max_keys: NonZeroUsize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Builds the rule; fails on a bad name or too many values to count by.
    pub fn build(self) -> Result<Rule, ConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !name_ok {
            return Err(ConfigError::InvalidName {
                what: "rule name (1 to 64 printable ASCII characters, no `\"` or `\\`)",
                name: self.name,
            });
        }
        let mut count_by = self.count_by;
        if count_by.is_empty() {
            count_by.push(CountBy::session());
        }
        if count_by.len() > MAX_COUNT_BY {
            return Err(ConfigError::OutOfRange {
                what: "values a rule counts by (at most 8)",
                value: count_by.len().to_string(),
            });
        }
        let missing = self
            .missing
            .unwrap_or(if count_by.iter().any(CountBy::is_session) {
                Missing::Skip
            } else {
                Missing::Count
            });
        let (tier_by, tiers) = match self.tiers {
            Some((by, tiers)) => (Some(by), tiers),
            None => (None, Vec::new()),
        };
        let mut seen = HashSet::new();
        if let Some(dup) = tiers.iter().find(|(v, _)| !seen.insert(v.as_str())) {
            return Err(ConfigError::Invalid {
                what: format!("tiers of rule {:?}", self.name),
                reason: format!("tier value {:?} given twice", dup.0),
            });
        }
        let name = intern(&self.name);
        let quotas: Vec<Quota> = std::iter::once(self.quota)
            .chain(tiers.iter().map(|(_, q)| *q))
            .collect();
        // Static, so that each response clones a pointer, not the bytes.
        let policies = quotas
            .iter()
            .map(|q| HeaderValue::from_static(intern(&policy(name, q))))
            .collect();
        Ok(Rule {
            name,
            endpoints: self.endpoints,
            count_by,
            missing,
            quotas,
            tier_by,
            tier_values: tiers.into_iter().map(|(v, _)| v).collect(),
            action: self.action,
            mitigation: self.mitigation,
            max_keys: self.max_keys,
            policies,
        })
    }
}

/// Whole seconds, rounded up, at least one: the unit of the rate limit
/// fields and `Retry-After`.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn policy(name: &str, quota: &Quota) -> String {
    format!(
        "\"{name}\";q={};w={}",
        quota.requests(),
        ceil_secs(quota.period())
    )
}

/// Names and policies live as long as the process; the table grows with
/// distinct configured rules, never with traffic.
fn intern(s: &str) -> &'static str {
    static TABLE: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = table.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    table.insert(leaked);
    leaked
}

/// A rule as written in a configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    quota: Quota,
    #[serde(default)]
    endpoints: Vec<SelectorSpec>,
    #[serde(default)]
    count_by: Vec<CountBy>,
    #[serde(default)]
    missing: Option<Missing>,
    #[serde(default)]
    tiers: Option<TiersSpec>,
    #[serde(default)]
    action: Action,
    #[serde(default)]
    mitigation_secs: u64,
    #[serde(default)]
    max_keys: Option<NonZeroUsize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorSpec {
    #[serde(default = "star")]
    method: String,
    #[serde(default = "star")]
    host: String,
    #[serde(default = "star")]
    path: String,
}

fn star() -> String {
    "*".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TiersSpec {
    by: CountBy,
    quotas: Vec<TierSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierSpec {
    value: String,
    quota: Quota,
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = RuleSpec::deserialize(deserializer)?;
        Rule::try_from(spec).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<RuleSpec> for Rule {
    type Error = ConfigError;

    fn try_from(spec: RuleSpec) -> Result<Self, ConfigError> {
        let mut builder = Rule::builder(&spec.name, spec.quota)
            .action(spec.action)
            .mitigation(Duration::from_secs(spec.mitigation_secs));
        for s in spec.endpoints {
            builder = builder.endpoint_on(&s.method, &s.host, &s.path)?;
        }
        for by in spec.count_by {
            builder = builder.count_by(by);
        }
        if let Some(missing) = spec.missing {
            builder = builder.missing(missing);
        }
        if let Some(tiers) = spec.tiers {
            builder = builder.tiers(
                tiers.by,
                tiers.quotas.into_iter().map(|t| (t.value, t.quota)),
            )?;
        }
        if let Some(max) = spec.max_keys {
            builder = builder.max_keys(max);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn quota() -> Quota {
        Quota::per_minute(NonZeroU32::new(100).unwrap())
    }

    #[test]
    fn bad_names_are_refused_and_named() {
        for bad in ["", "a\"b", "tab\there"] {
            let err = Rule::builder(bad, quota()).build().unwrap_err();
            assert!(err.to_string().contains("rule name"), "{err}");
        }
        let err = Rule::builder("r", quota())
            .endpoint("G T", "/")
            .unwrap_err();
        assert!(err.to_string().contains("G T"));
        let err = Rule::builder("r", quota())
            .endpoint("GET", "x")
            .unwrap_err();
        assert!(err.to_string().contains("\"x\""));
    }

    #[test]
    fn defaults_count_by_session_and_skip_missing() {
        let rule = Rule::builder("r", quota()).build().unwrap();
        assert!(rule.count_by()[0].is_session());
        assert_eq!(rule.missing, Missing::Skip);
        assert_eq!(rule.policies, ["\"r\";q=100;w=60"]);
        let by_header = Rule::builder("h", quota())
            .count_by(CountBy::header("x-k").unwrap())
            .build()
            .unwrap();
        assert_eq!(by_header.missing, Missing::Count);
    }

    #[test]
    fn tiers_need_a_textual_value_and_distinct_values() {
        let err = Rule::builder("r", quota())
            .tiers(CountBy::session(), [("pro", quota())])
            .unwrap_err();
        assert!(err.to_string().contains("tier value session"));
        let err = Rule::builder("r", quota())
            .tiers(
                CountBy::header("plan").unwrap(),
                [("a", quota()), ("a", quota())],
            )
            .unwrap()
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("\"a\" given twice"));
    }

    #[test]
    fn too_many_values_are_refused() {
        let mut builder = Rule::builder("r", quota());
        for i in 0..9 {
            builder = builder.count_by(CountBy::header(&format!("h{i}")).unwrap());
        }
        assert!(
            builder
                .build()
                .unwrap_err()
                .to_string()
                .contains("at most 8")
        );
    }

    #[test]
    fn configuration_files_give_every_setting() {
        let rule: Rule = serde_json::from_str(
            r#"{"name": "tiered", "quota": {"requests": 10, "period_secs": 60},
                "endpoints": [{"method": "GET", "host": "api.example.com", "path": "/a/{id}"}],
                "count_by": ["session", "endpoint"],
                "tiers": {"by": {"header": "x-plan"},
                          "quotas": [{"value": "pro",
                                      "quota": {"requests": 100, "period_secs": 60}}]},
                "mitigation_secs": 30, "max_keys": 500}"#,
        )
        .unwrap();
        assert_eq!(rule.quotas.len(), 2);
        assert_eq!(rule.mitigation(), Some(Duration::from_secs(30)));
        assert_eq!(rule.max_keys.get(), 500);
        assert_eq!(rule.policies[1], "\"tiered\";q=100;w=60");
        let err = serde_json::from_str::<Rule>(
            r#"{"name": "x", "quota": {"requests": 1, "period_secs": 1}, "colour": 1}"#,
        );
        assert!(err.unwrap_err().to_string().contains("colour"));
    }
}
