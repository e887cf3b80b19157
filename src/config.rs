//! The Shield's configuration from a TOML or JSON file.
//!
//! Everything a [`ShieldBuilder`] can be told in code can be written in a
//! file; `examples/palisade.toml` shows every option with a comment.
//! Settings are checked while the file is read, so an error points at the
//! line and the field that is wrong:
//!
//! ```
//! use palisade::ShieldConfig;
//!
//! let text = "[sessions]\nidentifiers = [\n  { cookie = \"bad name\" },\n]\n";
//! let err = ShieldConfig::from_toml(text).unwrap_err();
//! assert_eq!(err.line(), Some(3));
//! assert!(err.to_string().contains("invalid cookie name \"bad name\""));
//! ```
//!
//! Secrets stay out of files: the session key is read from the environment
//! variable the file names (`key_env`), never from the file itself. JWT
//! token configurations (`[[jwt.tokens]]`, the shape of
//! `TokenConfig::from_json` plus an `id`) may carry public keys inline in
//! `credentials`; a JWKS with HMAC secrets is refused there and read from
//! the variable named by `jwks_env` instead. Token policies go in
//! `[[jwt.policies]]`. Remote JWKS are configured in code only.

use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use palisade_core::{ConfigError, EndpointCatalogue, SessionKey};
use palisade_jwt::{TokenConfig, TokenPolicy};
use palisade_learn::LearnLayer;
use palisade_learn::{
    RateRecommender, RuleAction, SequenceRule, SequenceRuleKind, SequenceTracker,
};
use palisade_limit::{Rule, TrustedProxies};
use palisade_session::{AutoDetect, Identifier};
use serde::Deserialize;

use crate::shield::ShieldBuilder;

/// A Shield configuration read from a file; turn it into a builder with
/// [`ShieldConfig::into_builder`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldConfig {
    /// The session layer.
    #[serde(default)]
    sessions: SessionsSection,
    /// Session identifier detection.
    #[serde(default)]
    auto_detect: AutoDetectSection,
    /// Rate limit rules.
    #[serde(default)]
    rate_limits: RateLimitsSection,
    /// JWT validation.
    #[serde(default)]
    jwt: JwtSection,
    /// The learning layer.
    #[serde(default)]
    learning: LearningSection,
    /// Per-session rate recommendations.
    #[serde(default)]
    recommendations: RecommendationsSection,
    /// Sequence analytics and sequence rules.
    #[serde(default)]
    sequences: SequencesSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendationsSection {
    #[serde(default)]
    enabled: bool,
    max_entries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequencesSection {
    /// Tracks sequences; implied by rules.
    #[serde(default)]
    enabled: bool,
    max_sessions: Option<usize>,
    max_patterns: Option<usize>,
    max_len: Option<usize>,
    #[serde(default)]
    rules: Vec<SequenceRuleEntry>,
}

/// One sequence rule, checked as it is read.
#[derive(Debug, Deserialize)]
#[serde(try_from = "SequenceRuleSpec")]
struct SequenceRuleEntry(SequenceRule);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceRuleSpec {
    name: String,
    kind: SequenceRuleKind,
    first: Checked<EndpointSpec>,
    then: Checked<EndpointSpec>,
    window_secs: Option<u64>,
    action: Option<RuleAction>,
    #[serde(default)]
    priority: i32,
}

impl TryFrom<SequenceRuleSpec> for SequenceRuleEntry {
    type Error = String;

    fn try_from(spec: SequenceRuleSpec) -> Result<Self, String> {
        let (Checked(first), Checked(then)) = (spec.first, spec.then);
        let mut rule = match spec.kind {
            SequenceRuleKind::Allow => SequenceRule::allow(&spec.name, &first, &then),
            SequenceRuleKind::Block => SequenceRule::block(&spec.name, &first, &then),
        }
        .map_err(|e| e.to_string())?
        .priority(spec.priority);
        if let Some(secs) = spec.window_secs {
            if secs == 0 {
                return Err(format!(
                    "sequence rule {:?}: window_secs must be positive",
                    spec.name
                ));
            }
            rule = rule.window(Duration::from_secs(secs));
        }
        if let Some(action) = spec.action {
            rule = rule.action(action);
        }
        Ok(Self(rule))
    }
}

/// `[learning]`: off unless `enabled = true`; unset numbers keep the
/// defaults of [`LearnLayer::builder`](palisade_learn::LearnLayer::builder).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearningSection {
    #[serde(default)]
    enabled: bool,
    report_after: Option<u64>,
    max_endpoints: Option<usize>,
    max_siblings: Option<usize>,
    max_hosts: Option<usize>,
    candidate_ttl_secs: Option<u64>,
    maintenance_interval_secs: Option<u64>,
    /// Declared endpoints, whose templates win over guessed ones.
    #[serde(default)]
    endpoints: Vec<EndpointEntry>,
}

/// `{ method = "GET", template = "/users/{id}", host = "*" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointEntry {
    method: String,
    template: String,
    #[serde(default = "any_host")]
    host: String,
}

fn any_host() -> String {
    "*".to_owned()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtSection {
    /// Token configurations in `TokenConfig::from_json`'s shape plus an
    /// `id`; keys inline in `credentials` (public keys only) or, as JWKS
    /// JSON, in the environment variable named by `jwks_env`.
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    /// Policies in `TokenPolicy::from_value`'s shape.
    #[serde(default)]
    policies: Vec<PolicyEntry>,
}

/// A token configuration, built as it is read unless its keys come from
/// the environment.
#[derive(Debug, Deserialize)]
#[serde(try_from = "serde_json::Value")]
enum TokenEntry {
    Built(TokenConfig),
    KeysFromEnv {
        id: String,
        spec: serde_json::Map<String, serde_json::Value>,
        var: String,
    },
}

impl TryFrom<serde_json::Value> for TokenEntry {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(mut spec) = value else {
            return Err("a token configuration is a table".to_owned());
        };
        let id = match spec.remove("id") {
            Some(serde_json::Value::String(id)) => id,
            _ => return Err("a token configuration needs an `id` string".to_owned()),
        };
        match spec.remove("jwks_env") {
            Some(serde_json::Value::String(var)) if !spec.contains_key("credentials") => {
                Ok(Self::KeysFromEnv { id, spec, var })
            }
            Some(_) => Err("`jwks_env` is a variable name, given instead of `credentials`".into()),
            None => {
                let secret = spec
                    .get("credentials")
                    .and_then(|c| c.get("keys"))
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|keys| keys.iter().any(|k| k["kty"] == "oct"));
                if secret {
                    return Err(format!(
                        "token configuration {id:?}: HMAC secrets stay out of files; \
                         put the JWKS in the environment variable named by `jwks_env`"
                    ));
                }
                TokenConfig::from_value(&id, serde_json::Value::Object(spec))
                    .map(Self::Built)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

impl TokenEntry {
    fn build(self) -> Result<TokenConfig, ConfigError> {
        match self {
            Self::Built(config) => Ok(config),
            Self::KeysFromEnv { id, mut spec, var } => {
                let jwks = std::env::var(&var).map_err(|_| ConfigError::Invalid {
                    what: format!(
                        "JWKS of token configuration {id:?} in environment variable {var}"
                    ),
                    reason: "not set".to_owned(),
                })?;
                let jwks = serde_json::from_str(&jwks).map_err(|e| ConfigError::Invalid {
                    what: format!(
                        "JWKS of token configuration {id:?} in environment variable {var}"
                    ),
                    reason: e.to_string(),
                })?;
                spec.insert("credentials".to_owned(), jwks);
                TokenConfig::from_value(&id, serde_json::Value::Object(spec))
            }
        }
    }
}

/// A token policy, checked as it is read.
#[derive(Debug, Deserialize)]
#[serde(try_from = "serde_json::Value")]
struct PolicyEntry(TokenPolicy);

impl TryFrom<serde_json::Value> for PolicyEntry {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        TokenPolicy::from_value(value)
            .map(Self)
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitsSection {
    /// Rules, each checked as it is read (see [`Rule`]'s documentation for
    /// the fields).
    #[serde(default)]
    rules: Vec<Rule>,
    /// Proxies (addresses or CIDR networks) whose forwarded headers give
    /// the client IP.
    #[serde(default)]
    trusted_proxies: Vec<String>,
    /// Where the state lives: `"memory"` (the default) or, with the
    /// `redis` feature, `{ redis = { url = "redis://..", .. } }`.
    #[serde(default)]
    store: StoreSpec,
}

/// The `store` setting of `[rate_limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum StoreSpec {
    /// In this process' memory.
    #[default]
    Memory,
    /// In Redis, shared by a fleet; see [`palisade_limit::RedisConfig`].
    #[cfg(feature = "redis")]
    Redis(palisade_limit::RedisConfig),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsSection {
    #[serde(default)]
    identifiers: Vec<IdentifierEntry>,
    #[serde(default)]
    require_session: bool,
    /// The environment variable holding the session key as 32 hex digits.
    key_env: Option<String>,
}

/// One identifier, checked as it is read.
#[derive(Debug, Deserialize)]
#[serde(try_from = "IdentifierSpec")]
struct IdentifierEntry(Identifier);

/// The fields of an identifier entry, each checked as it is read so that
/// an error points at the bad value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifierSpec {
    header: Option<Checked<HeaderName>>,
    cookie: Option<Checked<CookieName>>,
    claim: Option<String>,
    path: Option<Checked<ClaimPath>>,
}

/// A string checked by `K` while it is deserialised.
struct Checked<K: Check>(K::Output);

trait Check {
    type Output;
    fn check(value: &str) -> Result<Self::Output, ConfigError>;
}

struct HeaderName;
struct CookieName;
/// `METHOD /template`, as sequence rules name endpoints.
struct EndpointSpec;

impl Check for EndpointSpec {
    type Output = String;
    fn check(value: &str) -> Result<String, ConfigError> {
        SequenceRule::allow("check", value, "GET /").map(|_| value.to_owned())
    }
}

struct ClaimPath;

impl Check for HeaderName {
    type Output = Identifier;
    fn check(value: &str) -> Result<Identifier, ConfigError> {
        Identifier::header(value)
    }
}

impl Check for CookieName {
    type Output = Identifier;
    fn check(value: &str) -> Result<Identifier, ConfigError> {
        Identifier::cookie(value)
    }
}

impl Check for ClaimPath {
    type Output = String;
    fn check(value: &str) -> Result<String, ConfigError> {
        // The path is checked on its own; the configuration id later.
        Identifier::claim("check", value).map(|_| value.to_owned())
    }
}

impl<'de, K: Check> Deserialize<'de> for Checked<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        K::check(&value)
            .map(Checked)
            .map_err(serde::de::Error::custom)
    }
}

impl TryFrom<IdentifierSpec> for IdentifierEntry {
    type Error = String;

    fn try_from(spec: IdentifierSpec) -> Result<Self, String> {
        match spec {
            IdentifierSpec {
                header: Some(Checked(identifier)),
                cookie: None,
                claim: None,
                path: None,
            }
            | IdentifierSpec {
                header: None,
                cookie: Some(Checked(identifier)),
                claim: None,
                path: None,
            } => Ok(Self(identifier)),
            IdentifierSpec {
                header: None,
                cookie: None,
                claim: Some(config),
                path: Some(Checked(path)),
            } => Identifier::claim(&config, &path)
                .map(Self)
                .map_err(|e| e.to_string()),
            _ => Err("an identifier is one of `{ header = \"..\" }`, \
                      `{ cookie = \"..\" }` or `{ claim = \"..\", path = \"$..\" }`"
                .to_owned()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoDetectSection {
    #[serde(default = "yes")]
    enabled: bool,
    threshold: Option<f64>,
    min_sample: Option<u64>,
    window_secs: Option<u64>,
    sample_every: Option<NonZeroU32>,
}

fn yes() -> bool {
    true
}

impl Default for AutoDetectSection {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: None,
            min_sample: None,
            window_secs: None,
            sample_every: None,
        }
    }
}

impl ShieldConfig {
    /// Reads a configuration from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigFileError> {
        toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|span| span.start);
            ConfigFileError::at(text, offset, e.message().to_owned())
        })
    }

    /// Reads a configuration from JSON text.
    pub fn from_json(text: &str) -> Result<Self, ConfigFileError> {
        serde_json::from_str(text).map_err(|e| ConfigFileError {
            line: Some(e.line()).filter(|&l| l > 0),
            column: Some(e.column()).filter(|&c| c > 0),
            message: strip_position(&e.to_string()),
        })
    }

    /// Reads a configuration file: JSON when its name ends in `.json`,
    /// TOML otherwise.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigFileError {
            line: None,
            column: None,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        if path.extension().is_some_and(|ext| ext == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// A builder holding this configuration, to be completed in code or
    /// built as it is. Fails when the session key's environment variable
    /// is missing or is not 32 hex digits.
    pub fn into_builder(self) -> Result<ShieldBuilder, ConfigError> {
        let mut builder = ShieldBuilder::default();
        for IdentifierEntry(identifier) in self.sessions.identifiers {
            builder = builder.identifier(identifier);
        }
        builder = builder.require_session(self.sessions.require_session);
        if let Some(var) = &self.sessions.key_env {
            builder = builder.session_key(key_from_env(var)?);
        }

        for entry in self.jwt.tokens {
            builder = builder.token(entry.build()?);
        }
        for PolicyEntry(policy) in self.jwt.policies {
            builder = builder.token_policy(policy);
        }

        for rule in self.rate_limits.rules {
            builder = builder.rate_limit(rule);
        }
        match self.rate_limits.store {
            StoreSpec::Memory => {}
            // Connects lazily; needs the tokio runtime the server runs on.
            #[cfg(feature = "redis")]
            StoreSpec::Redis(config) => {
                builder = builder.rate_limit_store(palisade_limit::RedisStore::new(config)?);
            }
        }
        if !self.rate_limits.trusted_proxies.is_empty() {
            builder =
                builder.trusted_proxies(TrustedProxies::new(&self.rate_limits.trusted_proxies)?);
        }

        let auto = self.auto_detect;
        if auto.enabled {
            let mut detector = AutoDetect::builder();
            if let Some(threshold) = auto.threshold {
                detector = detector.threshold(threshold);
            }
            if let Some(min_sample) = auto.min_sample {
                detector = detector.min_sample(min_sample);
            }
            if let Some(secs) = auto.window_secs {
                detector = detector.window(Duration::from_secs(secs));
            }
            if let Some(n) = auto.sample_every {
                detector = detector.sample_every(n);
            }
            builder = builder.auto_detect(detector.build()?);
        } else {
            builder = builder.without_auto_detect();
        }

        let learning = self.learning;
        // Declared endpoints resolve requests for every layer: rule and
        // policy selections, learning and sequence rules alike.
        if !learning.endpoints.is_empty() {
            let mut catalogue = EndpointCatalogue::builder();
            for e in &learning.endpoints {
                catalogue = catalogue.endpoint_on(&e.method, &e.host, &e.template)?;
            }
            builder = builder.endpoints(catalogue.build()?);
        }
        if learning.enabled {
            let mut learn = LearnLayer::builder();
            if let Some(n) = learning.report_after {
                learn = learn.report_after(n);
            }
            if let Some(n) = learning.max_endpoints {
                learn = learn.max_endpoints(n);
            }
            if let Some(n) = learning.max_siblings {
                learn = learn.max_siblings(n);
            }
            if let Some(n) = learning.max_hosts {
                learn = learn.max_hosts(n);
            }
            if let Some(secs) = learning.candidate_ttl_secs {
                learn = learn.candidate_ttl(Duration::from_secs(secs));
            }
            if let Some(secs) = learning.maintenance_interval_secs {
                learn = learn.maintenance_interval(Duration::from_secs(secs));
            }
            builder = builder.learning(learn);
        }

        let rates = self.recommendations;
        if rates.enabled {
            let mut recommender = RateRecommender::builder();
            if let Some(max) = rates.max_entries {
                recommender = recommender.max_entries(max);
            }
            builder = builder.rate_recommender(recommender.build()?);
        }
        let sequences = self.sequences;
        if sequences.enabled || !sequences.rules.is_empty() {
            let mut tracker = SequenceTracker::builder();
            if let Some(max) = sequences.max_sessions {
                tracker = tracker.max_sessions(max);
            }
            if let Some(max) = sequences.max_patterns {
                tracker = tracker.max_patterns(max);
            }
            if let Some(len) = sequences.max_len {
                tracker = tracker.max_len(len);
            }
            builder = builder.sequence_tracker(tracker.build()?);
        }
        for SequenceRuleEntry(rule) in sequences.rules {
            builder = builder.sequence_rule(rule);
        }
        Ok(builder)
    }
}

/// Reads a 16-byte session key, written as 32 hex digits, from `var`.
fn key_from_env(var: &str) -> Result<SessionKey, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        what: format!("session key in environment variable {var}"),
        reason: reason.to_owned(),
    };
    let hex = std::env::var(var).map_err(|_| invalid("not set"))?;
    let hex = hex.trim();
    if hex.len() != 32 {
        return Err(invalid("must be 32 hex digits (16 bytes)"));
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| invalid("must be 32 hex digits (16 bytes)"))?;
    }
    Ok(SessionKey::from_bytes(bytes))
}

/// serde_json appends " at line L column C"; the error keeps those apart.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A configuration file that cannot be read, with where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFileError {
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

impl ConfigFileError {
    fn at(text: &str, offset: Option<usize>, message: String) -> Self {
        let (line, column) = match offset {
            Some(offset) => {
                let before = &text[..offset.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Self {
            line,
            column,
            message,
        }
    }

    /// The line of the error, counted from 1, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The column of the error, counted from 1, when known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// What is wrong, naming the field or value.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "line {line}, column {column}: {}", self.message)
            }
            (Some(line), None) => write!(f, "line {line}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigFileError {}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn declared_endpoints_reach_rate_limit_rules() {
        use tower::{Layer, ServiceExt};
        let text = r#"
[sessions]
identifiers = [{ header = "x-key" }]
[learning]
endpoints = [{ method = "GET", template = "/items/{id}" }]
[[rate_limits.rules]]
name = "items"
quota = { requests = 1, period_secs = 3600 }
endpoints = [{ method = "GET", path = "/items/{id}" }]
count_by = ["session"]
"#;
        let shield = ShieldConfig::from_toml(text)
            .unwrap()
            .into_builder()
            .unwrap()
            .build()
            .unwrap();
        // No router: only the declared catalogue can resolve the template.
        let app = tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
        let service = shield.layer(app);
        let mut statuses = Vec::new();
        for path in ["/items/1", "/items/2", "/other"] {
            let request = http::Request::get(path)
                .header("x-key", "k")
                .body(String::new())
                .unwrap();
            let response = service.clone().oneshot(request).await.unwrap();
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [200, 429, 200]);
    }

    #[test]
    fn the_example_file_loads_and_builds() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/palisade.toml");
        let shield = ShieldConfig::from_path(path)
            .unwrap()
            .into_builder()
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(shield.sessions().identifiers().len(), 3);
        assert_eq!(shield.rate_limits().rules().len(), 3);
        assert_eq!(shield.jwt().configs().count(), 1);
        assert!(shield.learned().is_some());
        assert!(shield.rate_recommender().is_some());
        assert_eq!(shield.sequence_rules().rules().len(), 1);
    }

    use super::*;

    #[test]
    fn identifiers_and_detection_are_read() {
        let text = r#"
[sessions]
identifiers = [
  { header = "x-api-key" },
  { cookie = "session" },
  { claim = "auth0", path = "$.sub" },
]
require_session = true

[auto_detect]
threshold = 0.02
min_sample = 500
"#;
        let shield = ShieldConfig::from_toml(text)
            .unwrap()
            .into_builder()
            .unwrap()
            .build()
            .unwrap();
        let names: Vec<String> = shield
            .sessions()
            .identifiers()
            .iter()
            .map(|i| i.source().to_string())
            .collect();
        assert_eq!(
            names,
            ["header:x-api-key", "cookie:session", "claim:auth0:$.sub"]
        );
        assert_eq!(shield.auto_detect().unwrap().report().threshold, 0.02);
    }

    #[test]
    fn learning_is_read_and_off_by_default() {
        let off = ShieldConfig::from_toml("").unwrap().into_builder().unwrap();
        assert!(off.build().unwrap().learned().is_none());

        let text = r#"
[learning]
enabled = true
report_after = 3
max_endpoints = 100
endpoints = [{ method = "GET", template = "/users/{id}" }]
"#;
        let shield = ShieldConfig::from_toml(text)
            .unwrap()
            .into_builder()
            .unwrap()
            .build()
            .unwrap();
        let learned = shield.learned().unwrap();
        let catalogue = learned.catalogue().unwrap();
        assert_eq!(catalogue.endpoints()[0].template(), "/users/{id}");

        let bad = "[learning]\nenabled = true\nreport_after = 0\n";
        let err = ShieldConfig::from_toml(bad)
            .unwrap()
            .into_builder()
            .unwrap()
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("report_after"), "{err}");
    }

    #[test]
    fn rate_limit_rules_are_read() {
        let text = r#"
[rate_limits]
trusted_proxies = ["10.0.0.0/8"]

[[rate_limits.rules]]
name = "per-session"
quota = { requests = 100, period_secs = 60, burst = 20 }
endpoints = [{ method = "POST", path = "/orders" }]
count_by = ["session", { header = "x-tenant" }]
action = "log"
mitigation_secs = 600
"#;
        let shield = ShieldConfig::from_toml(text)
            .unwrap()
            .into_builder()
            .unwrap()
            .build()
            .unwrap();
        let rules = shield.rate_limits().rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].name(), "per-session");
        assert_eq!(rules[0].quota().burst().get(), 20);
        assert_eq!(rules[0].action(), palisade_limit::Action::Log);
        assert_eq!(rules[0].mitigation(), Some(Duration::from_secs(600)));

        let bad =
            "[[rate_limits.rules]]\nname = \"r\"\nquota = { requests = 0, period_secs = 1 }\n";
        let err = ShieldConfig::from_toml(bad).unwrap_err();
        assert_eq!(err.line(), Some(3), "the quota's line: {err}");
        let bad = "[rate_limits]\ntrusted_proxies = [\"10.0.0.0/99\"]\n";
        let err = ShieldConfig::from_toml(bad)
            .unwrap()
            .into_builder()
            .unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/99"), "{err}");
    }

    #[test]
    fn the_store_is_memory_unless_told() {
        let text = "[rate_limits]\nstore = \"memory\"\n";
        let config = ShieldConfig::from_toml(text).unwrap();
        assert!(matches!(config.rate_limits.store, StoreSpec::Memory));
        assert!(ShieldConfig::from_toml("[rate_limits]\nstore = \"disk\"\n").is_err());
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn the_redis_store_is_read_with_its_settings() {
        let text = r#"
[rate_limits.store.redis]
url = "redis://127.0.0.1:1"
prefix = "shop"
timeout_ms = 20
on_failure = { local = { share = 0.5 } }
"#;
        let config = ShieldConfig::from_toml(text).unwrap();
        let StoreSpec::Redis(redis) = &config.rate_limits.store else {
            panic!("not the redis store: {:?}", config.rate_limits.store);
        };
        assert_eq!(redis.key_prefix(), "shop");
        assert_eq!(redis.timeout_duration(), Duration::from_millis(20));
        let shield = config.into_builder().unwrap().build().unwrap();
        assert!(matches!(
            shield.rate_limits().store(),
            palisade_limit::Store::Redis(_)
        ));
        let bad = "[rate_limits.store.redis]\nurl = \"redis://h\"\ntimeout_ms = 0\n";
        let err = ShieldConfig::from_toml(bad)
            .unwrap()
            .into_builder()
            .unwrap_err();
        assert!(err.to_string().contains("redis timeout"), "{err}");
    }

    #[test]
    fn recommendations_sequences_and_rules_are_read() {
        let text = r#"
[recommendations]
enabled = true
max_entries = 1000

[sequences]
max_len = 3
rules = [
  { name = "checkout-after-cart", kind = "allow", first = "GET /cart", then = "POST /checkout" },
  { name = "no-double-reset", kind = "block", first = "POST /reset", then = "POST /reset", window_secs = 60, action = "log", priority = 2 },
]
"#;
        let shield = ShieldConfig::from_toml(text)
            .unwrap()
            .into_builder()
            .unwrap()
            .build()
            .unwrap();
        assert!(shield.rate_recommender().is_some());
        assert!(shield.sequence_tracker().is_some());
        let rules = shield.sequence_rules().rules();
        assert_eq!(rules[0].name(), "no-double-reset");
        assert_eq!(rules[0].rule_action(), RuleAction::Log);
        assert_eq!(rules[0].window_duration(), Duration::from_secs(60));
        assert_eq!(rules[1].kind(), SequenceRuleKind::Allow);

        let bad = concat!(
            "[sequences]\nrules = [\n",
            "  { name = \"r\", kind = \"allow\", first = \"GET\", then = \"GET /b\" },\n]\n",
        );
        let err = ShieldConfig::from_toml(bad).unwrap_err();
        assert_eq!(err.line(), Some(3));
        assert!(err.to_string().contains("endpoint \"GET\""), "{err}");
        let bad = concat!(
            "[sequences]\nrules = [{ name = \"r\", kind = \"sometimes\", ",
            "first = \"GET /a\", then = \"GET /b\" }]\n",
        );
        assert!(
            ShieldConfig::from_toml(bad)
                .unwrap_err()
                .to_string()
                .contains("sometimes")
        );
    }

    #[test]
    fn bad_values_point_at_their_line() {
        let text = concat!(
            "[sessions]\nidentifiers = [\n  { header = \"ok\" },\n",
            "  { claim = \"a\", path = \"$..x\" },\n]\n",
        );
        let err = ShieldConfig::from_toml(text).unwrap_err();
        assert_eq!(err.line(), Some(4));
        assert!(err.message().contains("recursive descent"), "{err}");
        assert!(err.to_string().starts_with("line 4, column "), "{err}");
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = ShieldConfig::from_toml("[sessions]\nrequire = true\n").unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert!(err.message().contains("unknown field `require`"), "{err}");
        let err = ShieldConfig::from_toml("[auto_detect]\nmin_sample = \"many\"\n").unwrap_err();
        assert_eq!(err.line(), Some(2));
    }

    #[test]
    fn ambiguous_identifier_is_refused() {
        let text = "[sessions]\nidentifiers = [{ header = \"a\", cookie = \"b\" }]\n";
        let err = ShieldConfig::from_toml(text).unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert!(err.message().contains("one of"), "{err}");
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let text = "{\n  \"sessions\": {\n    \"identifiers\": [{\"cookie\": \"a b\"}]\n  }\n}";
        let err = ShieldConfig::from_json(text).unwrap_err();
        assert_eq!(err.line(), Some(3));
        assert!(
            err.message().contains("invalid cookie name \"a b\""),
            "{err}"
        );
        let ok = ShieldConfig::from_json(r#"{"auto_detect": {"enabled": false}}"#).unwrap();
        assert!(
            ok.into_builder()
                .unwrap()
                .build()
                .unwrap()
                .auto_detect()
                .is_none()
        );
    }

    #[test]
    fn out_of_range_detection_settings_are_named() {
        let config = ShieldConfig::from_toml("[auto_detect]\nthreshold = 2.0\n").unwrap();
        let err = config.into_builder().unwrap_err();
        assert!(err.to_string().contains("threshold"), "{err}");
    }

    #[test]
    fn jwt_tokens_and_policies_are_read() {
        let text = r#"
[[jwt.tokens]]
id = "auth0"
title = "Auth0"
token_type = "jwt"
token_sources = [{ type = "header", name = "authorization" }]
issuer = ["https://id.example/"]

[[jwt.tokens.credentials.keys]]
kty = "EC"
kid = "ec1"
alg = "ES256"
crv = "P-256"
x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"

[[jwt.policies]]
config = "auth0"
on_missing = "block"
exclude = [{ method = "GET", path = "/health" }]
"#;
        let shield = ShieldConfig::from_toml(text)
            .unwrap()
            .into_builder()
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(shield.token_keys("auth0").unwrap().kids(), ["ec1"]);

        let secret = "[[jwt.tokens]]\nid = \"h\"\ntitle = \"\"\ntoken_type = \"jwt\"\n\
            token_sources = [{ type = \"header\", name = \"x\" }]\n\
            credentials = { keys = [{ kty = \"oct\", kid = \"k\", alg = \"HS256\", k = \"AAAA\" }] }\n";
        let err = ShieldConfig::from_toml(secret).unwrap_err();
        assert!(err.to_string().contains("jwks_env"), "{err}");

        let from_env = "[[jwt.tokens]]\nid = \"h\"\ntitle = \"\"\ntoken_type = \"jwt\"\n\
            token_sources = [{ type = \"header\", name = \"x\" }]\n\
            jwks_env = \"PALISADE_TEST_JWKS_UNSET\"\n";
        let err = ShieldConfig::from_toml(from_env)
            .unwrap()
            .into_builder()
            .unwrap_err();
        assert!(
            err.to_string().contains("PALISADE_TEST_JWKS_UNSET"),
            "{err}"
        );

        let bad_policy = "[[jwt.policies]]\nconfig = \"a\"\non_invalid = \"maybe\"\n";
        let err = ShieldConfig::from_toml(bad_policy).unwrap_err();
        assert!(err.to_string().contains("maybe"), "{err}");
    }

    #[test]
    fn session_key_comes_from_the_environment() {
        let text = "[sessions]\nkey_env = \"PALISADE_TEST_KEY_UNSET\"\n";
        let err = ShieldConfig::from_toml(text)
            .unwrap()
            .into_builder()
            .unwrap_err();
        assert!(err.to_string().contains("PALISADE_TEST_KEY_UNSET"), "{err}");
        assert!(err.to_string().contains("not set"), "{err}");
    }
}
