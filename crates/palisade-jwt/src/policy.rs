//! What a missing or invalid token gets, per configuration and endpoint.

use http::Method;
use palisade_core::{ConfigError, Endpoint};

/// What the layer does with a request whose token is missing or invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenAction {
    /// Let it through silently.
    Ignore,
    /// Let it through, log the reason at DEBUG and put a
    /// [`JwtRejection`](crate::JwtRejection) in the request's extensions.
    Log,
    /// Answer 401 with `WWW-Authenticate: Bearer` and a problem document.
    Block,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    config: String,
    on_missing: Option<TokenAction>,
    on_invalid: Option<TokenAction>,
    #[serde(default)]
    include: Vec<SelectorSpec>,
    #[serde(default)]
    exclude: Vec<SelectorSpec>,
    preflight_passes: Option<bool>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorSpec {
    #[serde(default = "any")]
    method: String,
    #[serde(default = "any")]
    path: String,
}

fn any() -> String {
    "*".to_owned()
}

/// One endpoint pattern: a method (or any) and a path template (or any).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Selector {
    method: Option<Method>,
    template: Option<String>,
}

impl Selector {
    fn parse(method: &str, template: &str) -> Result<Self, ConfigError> {
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
                    reason: "a path template starts with `/`, or is `*` for any".to_owned(),
                });
            }
        };
        Ok(Self { method, template })
    }

    fn matches(&self, method: &Method, endpoint: Option<Endpoint>) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        match &self.template {
            None => true,
            Some(template) => endpoint.is_some_and(|e| e.template() == template),
        }
    }
}

/// What a configuration's missing and invalid tokens get on a selection of
/// endpoints.
///
/// A policy selects every endpoint unless [`include`](Self::include) narrows
/// it; [`exclude`](Self::exclude) then removes endpoints. Templates are
/// matched against the request's [`Endpoint`] (axum's matched path, or the
/// layer's [`EndpointCatalogue`](palisade_core::EndpointCatalogue)); a
/// request with no known endpoint only matches selections of any template.
/// CORS preflight requests (`OPTIONS`) are let through unless
/// [`preflight_passes(false)`](Self::preflight_passes).
///
/// ```
/// use palisade_jwt::{TokenAction, TokenPolicy};
///
/// let policy = TokenPolicy::new("auth0")
///     .on_missing(TokenAction::Block)
///     .exclude("GET", "/health")?
///     .exclude("*", "/public/{*rest}")?;
/// # let _ = policy;
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TokenPolicy {
    pub(crate) config: String,
    include: Vec<Selector>,
    exclude: Vec<Selector>,
    pub(crate) missing: TokenAction,
    pub(crate) invalid: TokenAction,
    preflight_passes: bool,
}

impl TokenPolicy {
    /// A policy for configuration `config`: every endpoint, missing tokens
    /// ignored, invalid tokens blocked, preflight let through.
    pub fn new(config: &str) -> Self {
        Self {
            config: config.to_owned(),
            include: Vec::new(),
            exclude: Vec::new(),
            missing: TokenAction::Ignore,
            invalid: TokenAction::Block,
            preflight_passes: true,
        }
    }

    /// What a request without a token gets.
    pub fn on_missing(mut self, action: TokenAction) -> Self {
        self.missing = action;
        self
    }

    /// What a request with a token that does not verify gets.
    pub fn on_invalid(mut self, action: TokenAction) -> Self {
        self.invalid = action;
        self
    }

    /// Narrows the policy to `method template` (either may be `*`); several
    /// includes add up.
    pub fn include(mut self, method: &str, template: &str) -> Result<Self, ConfigError> {
        self.include.push(Selector::parse(method, template)?);
        Ok(self)
    }

    /// Removes `method template` (either may be `*`) from the policy.
    pub fn exclude(mut self, method: &str, template: &str) -> Result<Self, ConfigError> {
        self.exclude.push(Selector::parse(method, template)?);
        Ok(self)
    }

    /// Whether `OPTIONS` requests pass whatever their token; on by default,
    /// since browsers send CORS preflight requests without credentials.
    pub fn preflight_passes(mut self, passes: bool) -> Self {
        self.preflight_passes = passes;
        self
    }

    /// A policy from its file form, as `ShieldConfig` reads it:
    /// `{"config", "on_missing", "on_invalid", "include": [{"method",
    /// "path"}], "exclude": [...], "preflight_passes"}`, actions written
    /// `"ignore"`, `"log"` or `"block"`, and `method`/`path` `"*"` when left
    /// out.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ConfigError> {
        let spec: PolicySpec = serde_json::from_value(value).map_err(|e| ConfigError::Invalid {
            what: "token policy".to_owned(),
            reason: e.to_string(),
        })?;
        let mut policy = Self::new(&spec.config);
        if let Some(action) = spec.on_missing {
            policy = policy.on_missing(action);
        }
        if let Some(action) = spec.on_invalid {
            policy = policy.on_invalid(action);
        }
        for s in spec.include {
            policy = policy.include(&s.method, &s.path)?;
        }
        for s in spec.exclude {
            policy = policy.exclude(&s.method, &s.path)?;
        }
        if let Some(passes) = spec.preflight_passes {
            policy = policy.preflight_passes(passes);
        }
        Ok(policy)
    }

    /// Whether the policy needs the request's endpoint to decide.
    pub(crate) fn needs_endpoint(&self) -> bool {
        self.include
            .iter()
            .chain(&self.exclude)
            .any(|s| s.template.is_some())
    }

    /// Whether the policy applies to a request.
    pub(crate) fn applies(&self, method: &Method, endpoint: Option<Endpoint>) -> bool {
        if self.preflight_passes && method == Method::OPTIONS {
            return false;
        }
        let included =
            self.include.is_empty() || self.include.iter().any(|s| s.matches(method, endpoint));
        included && !self.exclude.iter().any(|s| s.matches(method, endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::HostPattern;

    fn ep(method: Method, template: &str) -> Option<Endpoint> {
        Some(Endpoint::new(method, HostPattern::Any, template))
    }

    #[test]
    fn selection_includes_excludes_and_lets_preflight_pass() {
        let all = TokenPolicy::new("c");
        assert!(all.applies(&Method::GET, None));
        assert!(!all.applies(&Method::OPTIONS, None));
        assert!(!all.needs_endpoint());
        assert!(
            all.clone()
                .preflight_passes(false)
                .applies(&Method::OPTIONS, None)
        );

        let some = TokenPolicy::new("c")
            .include("*", "/users/{id}")
            .unwrap()
            .exclude("DELETE", "*")
            .unwrap();
        assert!(some.needs_endpoint());
        assert!(some.applies(&Method::GET, ep(Method::GET, "/users/{id}")));
        assert!(!some.applies(&Method::DELETE, ep(Method::DELETE, "/users/{id}")));
        assert!(!some.applies(&Method::GET, ep(Method::GET, "/health")));
        assert!(!some.applies(&Method::GET, None));
    }

    #[test]
    fn policy_is_read_from_its_file_form() {
        let policy = TokenPolicy::from_value(serde_json::json!({
            "config": "auth0", "on_missing": "log",
            "exclude": [{"path": "/health"}], "preflight_passes": false,
        }))
        .unwrap();
        assert_eq!(policy.missing, TokenAction::Log);
        assert_eq!(policy.invalid, TokenAction::Block);
        assert!(!policy.applies(&Method::GET, ep(Method::GET, "/health")));
        assert!(policy.applies(&Method::OPTIONS, None));
        let err = TokenPolicy::from_value(serde_json::json!({"config": "c", "on_missing": "deny"}))
            .unwrap_err();
        assert!(err.to_string().contains("deny"), "{err}");
    }

    #[test]
    fn bad_selectors_are_named() {
        let err = TokenPolicy::new("c").include("G T", "/").unwrap_err();
        assert!(err.to_string().contains("\"G T\""));
        let err = TokenPolicy::new("c").exclude("GET", "users").unwrap_err();
        assert!(err.to_string().contains("\"users\""));
    }
}
