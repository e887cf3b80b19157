//! Token configurations: where a JWT is found, its keys, what is checked.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::{COOKIE, HeaderName};
use jsonwebtoken::jwk::JwkSet;
use palisade_core::{ConfigError, VerifiedClaims};
use serde::Deserialize;

use crate::keys::{KeyStore, TokenKeys, parse_jwks_json, parse_strict};

/// How many sources one configuration reads.
pub const MAX_SOURCES: usize = 4;

/// The default largest token, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The default leeway on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Where a token is read: a header (a leading `Bearer ` is stripped) or a
/// cookie.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The header of this name; the first field if repeated.
    Header(HeaderName),
    /// The cookie of this name.
    Cookie(String),
}

impl TokenSource {
    /// A header source; fails on a name that is not an HTTP field name.
    pub fn header(name: &str) -> Result<Self, ConfigError> {
        HeaderName::from_bytes(name.as_bytes())
            .map(Self::Header)
            .map_err(|_| ConfigError::InvalidHeaderName {
                name: name.to_owned(),
            })
    }

    /// A cookie source; fails on a name that is not an RFC 6265 token.
    pub fn cookie(name: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::InvalidCookieName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name
            .bytes()
            .any(|b| !b.is_ascii_graphic() || b"()<>@,;:\\\"/[]?={}".contains(&b))
        {
            return Err(bad("not an RFC 6265 token"));
        }
        Ok(Self::Cookie(name.to_owned()))
    }

    /// The token this source finds in a request's headers, if any.
    pub(crate) fn find<'h>(&self, headers: &'h HeaderMap) -> Option<&'h [u8]> {
        let value = match self {
            Self::Header(name) => strip_bearer(headers.get(name)?.as_bytes()),
            Self::Cookie(name) => find_cookie(headers, name)?,
        };
        (!value.is_empty()).then_some(value)
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Cookie(name) => write!(f, "cookie:{name}"),
        }
    }
}

/// Strips a leading `Bearer ` (any case) and surrounding spaces.
fn strip_bearer(value: &[u8]) -> &[u8] {
    let value = value.trim_ascii();
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii_start(),
        _ => value,
    }
}

/// The value of cookie `name` across all `Cookie` fields, unquoted.
fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    for field in headers.get_all(COOKIE) {
        for pair in field.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if &pair[..eq] == name.as_bytes() {
                let value = pair[eq + 1..].trim_ascii();
                let value = match value {
                    [b'"', inner @ .., b'"'] => inner,
                    other => other,
                };
                return Some(value);
            }
        }
    }
    None
}

/// What is checked besides the signature.
#[derive(Clone, Debug)]
pub(crate) struct Checks {
    pub(crate) leeway: Duration,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) required: Vec<String>,
    pub(crate) max_token_bytes: usize,
}

/// A token configuration: an id, a title, up to four sources, the keys
/// (a JWKS), and the checks.
///
/// Build one with [`TokenConfig::builder`] or from JSON with
/// [`TokenConfig::from_json`]; either way every key is checked when built.
/// Cloning is cheap and clones share the keys, so a rotation through
/// [`keys`](Self::keys) reaches every layer built from it.
#[derive(Clone)]
pub struct TokenConfig {
    pub(crate) id: &'static str,
    pub(crate) title: String,
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) checks: Checks,
    #[cfg(feature = "remote-jwks")]
    remote: Option<crate::remote::RemoteStatus>,
}

impl TokenConfig {
    /// A builder for the configuration `id`.
    pub fn builder(id: &str) -> TokenConfigBuilder {
        TokenConfigBuilder {
            id: id.to_owned(),
            title: String::new(),
            sources: Vec::new(),
            jwks: None,
            checks: Checks {
                leeway: DEFAULT_LEEWAY,
                issuers: Vec::new(),
                audiences: Vec::new(),
                required: vec!["exp".to_owned()],
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            },
            error: None,
            #[cfg(feature = "remote-jwks")]
            remote: None,
        }
    }

    /// A configuration from its JSON form.
    ///
    /// ```json
    /// {
    ///   "title": "Auth0 access tokens",
    ///   "token_sources": [
    ///     {"type": "header", "name": "Authorization"},
    ///     {"type": "cookie", "name": "access_token"}
    ///   ],
    ///   "token_type": "jwt",
    ///   "credentials": {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "n": "...", "e": "AQAB"}]},
    ///   "issuer": ["https://id.example.com/"],
    ///   "audience": ["api"],
    ///   "required_claims": ["exp", "sub"],
    ///   "leeway_seconds": 60,
    ///   "max_token_bytes": 8192
    /// }
    /// ```
    ///
    /// `title`, `token_sources`, `token_type` (which must be `"jwt"`) and
    /// `credentials` (a standard JWKS) are required; the rest are optional
    /// with the defaults of [`TokenConfigBuilder`]. Unknown fields are
    /// refused, so that a misspelt check is not silently skipped.
    pub fn from_json(id: &str, json: &str) -> Result<Self, ConfigError> {
        let parsed: JsonConfig = serde_json::from_str(json).map_err(|e| ConfigError::Invalid {
            what: format!("token configuration {id:?}"),
            reason: e.to_string(),
        })?;
        Self::from_parsed(id, parsed)
    }

    /// A configuration from its JSON form already parsed into a value (from
    /// a TOML file, say); the shape is that of [`from_json`](Self::from_json).
    pub fn from_value(id: &str, value: serde_json::Value) -> Result<Self, ConfigError> {
        let parsed: JsonConfig =
            serde_json::from_value(value).map_err(|e| ConfigError::Invalid {
                what: format!("token configuration {id:?}"),
                reason: e.to_string(),
            })?;
        Self::from_parsed(id, parsed)
    }

    fn from_parsed(id: &str, parsed: JsonConfig) -> Result<Self, ConfigError> {
        if parsed.token_type != "jwt" {
            return Err(ConfigError::Invalid {
                what: format!("token_type of token configuration {id:?}"),
                reason: format!("{:?} is not \"jwt\"", parsed.token_type),
            });
        }
        let mut builder = Self::builder(id)
            .title(&parsed.title)
            .jwks(parsed.credentials);
        for source in parsed.token_sources {
            builder = match source {
                JsonSource::Header { name } => builder.header(&name),
                JsonSource::Cookie { name } => builder.cookie(&name),
            };
        }
        for issuer in parsed.issuer {
            builder = builder.issuer(&issuer);
        }
        for audience in parsed.audience {
            builder = builder.audience(&audience);
        }
        if let Some(required) = parsed.required_claims {
            builder = builder.required_claims(required);
        }
        if let Some(secs) = parsed.leeway_seconds {
            builder = builder.leeway(Duration::from_secs(secs));
        }
        if let Some(max) = parsed.max_token_bytes {
            builder = builder.max_token_bytes(max);
        }
        builder.build()
    }

    /// The configuration's id, as claim identifiers and `VerifiedClaims` name it.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The human-readable title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The sources, in the order they are tried.
    pub fn sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// The handle to replace the keys at run time.
    pub fn keys(&self) -> TokenKeys {
        TokenKeys {
            store: self.keys.clone(),
        }
    }

    /// The state of the remote key set, when the keys are fetched.
    #[cfg(feature = "remote-jwks")]
    pub fn remote_status(&self) -> Option<&crate::remote::RemoteStatus> {
        self.remote.as_ref()
    }

    /// The token in a request, from the first source that has one.
    pub(crate) fn find_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h [u8]> {
        self.sources.iter().find_map(|s| s.find(headers))
    }
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("id", &self.id)
            .field("title", &self.title)
            .field("sources", &self.sources)
            .field("keys", &self.keys)
            .field("checks", &self.checks)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonConfig {
    title: String,
    token_sources: Vec<JsonSource>,
    token_type: String,
    credentials: JwkSet,
    #[serde(default)]
    issuer: Vec<String>,
    #[serde(default)]
    audience: Vec<String>,
    required_claims: Option<Vec<String>>,
    leeway_seconds: Option<u64>,
    max_token_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum JsonSource {
    Header { name: String },
    Cookie { name: String },
}

/// Builds a [`TokenConfig`].
///
/// Defaults: no sources (at least one is needed), `exp` required, 60 s of
/// leeway on `exp` and `nbf`, no `iss` or `aud` check, tokens up to 8 KiB.
/// Setters that can meet bad input remember the first error, which
/// [`build`](Self::build) returns.
#[must_use]
pub struct TokenConfigBuilder {
    id: String,
    title: String,
    sources: Vec<TokenSource>,
    jwks: Option<JwkSet>,
    checks: Checks,
    error: Option<ConfigError>,
    #[cfg(feature = "remote-jwks")]
    remote: Option<crate::remote::RemoteJwks>,
}

impl TokenConfigBuilder {
    fn fail(mut self, error: ConfigError) -> Self {
        self.error.get_or_insert(error);
        self
    }

    /// A human-readable title, for logs and admin views.
    pub fn title(mut self, title: &str) -> Self {
        title.clone_into(&mut self.title);
        self
    }

    /// Reads the token from header `name`; a leading `Bearer ` is stripped.
    pub fn header(mut self, name: &str) -> Self {
        match TokenSource::header(name) {
            Ok(source) => {
                self.sources.push(source);
                self
            }
            Err(e) => self.fail(e),
        }
    }

    /// Reads the token from cookie `name`.
    pub fn cookie(mut self, name: &str) -> Self {
        match TokenSource::cookie(name) {
            Ok(source) => {
                self.sources.push(source);
                self
            }
            Err(e) => self.fail(e),
        }
    }

    /// The verification keys, as a standard JWKS.
    pub fn jwks(mut self, set: JwkSet) -> Self {
        self.jwks = Some(set);
        self
    }

    /// The verification keys, as JWKS JSON (`{"keys": [...]}`).
    pub fn jwks_json(self, json: &str) -> Self {
        match parse_jwks_json(&self.id, json) {
            Ok(set) => self.jwks(set),
            Err(e) => self.fail(e),
        }
    }

    /// Fetches the keys from a URL and refreshes them in the background
    /// (see [`remote`](crate::remote)); keys given with
    /// [`jwks`](Self::jwks) serve until the first fetch lands. The
    /// configuration must then be built inside a tokio runtime.
    #[cfg(feature = "remote-jwks")]
    pub fn remote_jwks(mut self, remote: crate::remote::RemoteJwks) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Accepts tokens whose `iss` is `issuer`; once any issuer is given,
    /// `iss` is required and must be one of them.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.checks.issuers.push(issuer.to_owned());
        self
    }

    /// Accepts tokens whose `aud` names `audience`; once any audience is
    /// given, `aud` is required and must name one of them. Without an
    /// audience, `aud` is not checked.
    pub fn audience(mut self, audience: &str) -> Self {
        self.checks.audiences.push(audience.to_owned());
        self
    }

    /// The claims every token must have; `["exp"]` by default. An empty
    /// list accepts tokens without `exp`, which are then cached for the
    /// layer's maximum cache lifetime.
    pub fn required_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.checks.required = claims.into_iter().map(Into::into).collect();
        self
    }

    /// The clock skew allowed on `exp` and `nbf`; 60 s by default.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.checks.leeway = leeway;
        self
    }

    /// The largest token accepted, in bytes; larger tokens are invalid
    /// without being parsed. 8 KiB by default.
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.checks.max_token_bytes = max;
        self
    }

    /// Builds the configuration; fails on the first bad setting, naming it.
    pub fn build(self) -> Result<TokenConfig, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.id.is_empty() || self.id.contains(':') || self.id.chars().any(char::is_control) {
            return Err(ConfigError::InvalidName {
                what: "token configuration id",
                name: self.id,
            });
        }
        let id = VerifiedClaims::intern_config(&self.id);
        if self.sources.is_empty() || self.sources.len() > MAX_SOURCES {
            return Err(ConfigError::OutOfRange {
                what: "token sources of a configuration (1 to 4)",
                value: format!("{} for {id:?}", self.sources.len()),
            });
        }
        if self.checks.max_token_bytes == 0 {
            return Err(ConfigError::OutOfRange {
                what: "max_token_bytes",
                value: format!("0 for {id:?}"),
            });
        }
        #[cfg(feature = "remote-jwks")]
        let remote_given = self.remote.is_some();
        #[cfg(not(feature = "remote-jwks"))]
        let remote_given = false;
        let keys = match &self.jwks {
            Some(set) => parse_strict(id, set)?,
            None if remote_given => Vec::new(),
            None => {
                return Err(ConfigError::Invalid {
                    what: format!("keys of token configuration {id:?}"),
                    reason: "none given: give a JWKS".to_owned(),
                });
            }
        };
        let keys = Arc::new(KeyStore::new(id, keys));
        Ok(TokenConfig {
            id,
            title: self.title,
            sources: self.sources,
            #[cfg(feature = "remote-jwks")]
            remote: match self.remote {
                Some(remote) => Some(remote.start(&keys)?),
                None => None,
            },
            keys,
            checks: self.checks,
        })
    }
}

impl fmt::Debug for TokenConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfigBuilder")
            .field("id", &self.id)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_prefix_is_stripped_in_any_case() {
        assert_eq!(strip_bearer(b"Bearer abc"), b"abc");
        assert_eq!(strip_bearer(b"bearer  abc "), b"abc");
        assert_eq!(strip_bearer(b"abc"), b"abc");
        assert_eq!(strip_bearer(b"Bearer"), b"Bearer");
    }

    #[test]
    fn tokens_are_found_in_the_named_sources_only() {
        let config = TokenConfig::builder("c")
            .header("x-token")
            .cookie("jwt")
            .jwks_json(r#"{"keys": []}"#)
            .build()
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer elsewhere".parse().unwrap());
        assert_eq!(config.find_token(&headers), None);
        headers.insert(COOKIE, "a=1; jwt=\"t.o.k\"".parse().unwrap());
        assert_eq!(config.find_token(&headers), Some(&b"t.o.k"[..]));
        headers.insert("x-token", "Bearer h.e.d".parse().unwrap());
        assert_eq!(config.find_token(&headers), Some(&b"h.e.d"[..]));
    }

    #[test]
    fn bad_settings_are_named() {
        let err = TokenConfig::builder("c").header("bad header").build();
        assert!(
            matches!(err, Err(ConfigError::InvalidHeaderName { name }) if name == "bad header")
        );
        let err = TokenConfig::builder("c").cookie("a;b").build().unwrap_err();
        assert!(err.to_string().contains("\"a;b\""));
        let err = TokenConfig::builder("c").build().unwrap_err();
        assert!(err.to_string().contains("0 for \"c\""), "{err}");
        let err = TokenConfig::builder("c").header("x").build().unwrap_err();
        assert!(
            err.to_string()
                .contains("keys of token configuration \"c\""),
            "{err}"
        );
        let mut five = TokenConfig::builder("c");
        for name in ["a", "b", "c", "d", "e"] {
            five = five.header(name);
        }
        assert!(five.build().is_err());
        let err = TokenConfig::builder("a:b").header("x").build().unwrap_err();
        assert!(err.to_string().contains("\"a:b\""));
    }

    #[test]
    fn json_shape_is_read_and_checked() {
        let json = r#"{
            "title": "Partner tokens",
            "token_sources": [{"type": "header", "name": "Authorization"},
                              {"type": "cookie", "name": "jwt"}],
            "token_type": "jwt",
            "credentials": {"keys": [{"kty": "oct", "kid": "s", "alg": "HS256",
                "k": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]},
            "issuer": ["https://id.example"],
            "leeway_seconds": 5
        }"#;
        let config = TokenConfig::from_json("partner", json).unwrap();
        assert_eq!(config.title(), "Partner tokens");
        assert_eq!(config.sources().len(), 2);
        assert_eq!(config.keys().kids(), ["s"]);
        assert_eq!(config.checks.leeway, Duration::from_secs(5));
        assert_eq!(config.checks.issuers, ["https://id.example"]);

        let opaque = json.replace("\"jwt\",", "\"opaque\",");
        let err = TokenConfig::from_json("partner", &opaque).unwrap_err();
        assert!(err.to_string().contains("\"opaque\""), "{err}");
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(TokenConfig::from_value("v", value).unwrap().id(), "v");
        let typo = json.replace("\"issuer\"", "\"isuer\"");
        let err = TokenConfig::from_json("partner", &typo).unwrap_err();
        assert!(err.to_string().contains("isuer"), "{err}");
    }
}
