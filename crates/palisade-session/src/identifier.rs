//! Session identifiers: where a session value is read.

use std::fmt;

use http::header::{COOKIE, HeaderName};
use http::{Extensions, HeaderMap};
use palisade_core::cookie::find_cookie;
use palisade_core::{
    ConfigError, JsonPath, SessionId, SessionKey, SessionSource, SourceKind, VerifiedClaims,
};
use serde_json::Value;

/// How many identifiers one session layer accepts.
pub const MAX_IDENTIFIERS: usize = 10;

/// The longest cookie name accepted.
pub const MAX_COOKIE_NAME: usize = 128;

/// Where a session value is read: a header, a cookie, or a claim of a
/// verified JWT.
///
/// Each constructor checks its input and returns a [`ConfigError`] naming
/// it, so a running layer never meets a bad name.
///
/// ```
/// use palisade_session::Identifier;
///
/// let header = Identifier::header("X-Api-Key")?;
/// assert_eq!(header.source().to_string(), "header:x-api-key");
///
/// let claim = Identifier::claim("auth0", "$.user.id")?;
/// assert_eq!(claim.source().to_string(), "claim:auth0:$.user.id");
///
/// assert!(Identifier::cookie("bad name").is_err());
/// assert!(Identifier::claim("auth0", "$..id").is_err());
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Identifier {
    kind: Kind,
    source: SessionSource,
}

#[derive(Clone)]
enum Kind {
    Header(HeaderName),
    Cookie(&'static str),
    Claim { config: String, path: JsonPath },
}

impl Identifier {
    /// The value of the header `name` (the first field if repeated).
    pub fn header(name: &str) -> Result<Self, ConfigError> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConfigError::InvalidHeaderName {
                name: name.to_owned(),
            }
        })?;
        let source = SessionSource::header(header.as_str());
        Ok(Self {
            kind: Kind::Header(header),
            source,
        })
    }

    /// The value of the cookie `name`, which must be an RFC 6265 token of at
    /// most 128 characters.
    pub fn cookie(name: &str) -> Result<Self, ConfigError> {
        validate_cookie_name(name)?;
        let source = SessionSource::cookie(name);
        Ok(Self {
            kind: Kind::Cookie(source.name()),
            source,
        })
    }

    /// The claim at `path` of the token verified under the token
    /// configuration `config`.
    ///
    /// `path` is a plain JSON path: `$` followed by `.name`, `['name']` or
    /// `[index]` steps, such as `$.sub`, `$.user.id`, `$['user-id']` or
    /// `$.roles[0]`. Filters, wildcards, slices and recursive descent are
    /// refused. A string claim is used as it is and a number as its
    /// decimal text; any other value, or none, gives no session.
    pub fn claim(config: &str, path: &str) -> Result<Self, ConfigError> {
        if config.is_empty() || config.contains(':') || config.chars().any(char::is_control) {
            return Err(ConfigError::InvalidName {
                what: "token configuration id",
                name: config.to_owned(),
            });
        }
        let path = JsonPath::parse(path)?;
        let source = SessionSource::new(SourceKind::Claim, &format!("{config}:{path}"));
        Ok(Self {
            kind: Kind::Claim {
                config: config.to_owned(),
                path,
            },
            source,
        })
    }

    /// Which identifier this is, as recorded in a [`Session`](palisade_core::Session).
    pub fn source(&self) -> SessionSource {
        self.source
    }

    /// The token configuration a claim identifier reads from.
    pub fn token_config(&self) -> Option<&str> {
        match &self.kind {
            Kind::Claim { config, .. } => Some(config),
            _ => None,
        }
    }

    /// The session id this identifier finds in a request, if any.
    ///
    /// An empty value counts as no value.
    pub fn identify(
        &self,
        key: &SessionKey,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Option<SessionId> {
        let digest =
            |value: &[u8]| (!value.is_empty()).then(|| SessionId::digest(key, self.source, value));
        match &self.kind {
            Kind::Header(name) => digest(headers.get(name)?.as_bytes()),
            Kind::Cookie(name) => digest(find_cookie(headers.get_all(COOKIE), name)?),
            Kind::Claim { config, path } => {
                let claims = extensions.get::<VerifiedClaims>()?.get(config)?;
                match path.lookup(claims)? {
                    Value::String(s) => digest(s.as_bytes()),
                    Value::Number(n) => digest(n.to_string().as_bytes()),
                    _ => None,
                }
            }
        }
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({})", self.source)
    }
}

/// Checks a cookie name against RFC 6265: a non-empty token of visible
/// ASCII without separators.
fn validate_cookie_name(name: &str) -> Result<(), ConfigError> {
    let bad = |reason| ConfigError::InvalidCookieName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_COOKIE_NAME {
        return Err(bad("longer than 128 characters"));
    }
    for b in name.bytes() {
        if b.is_ascii_control() || !b.is_ascii() {
            return Err(bad("control or non-ASCII character"));
        }
        if b == b' ' {
            return Err(bad("space"));
        }
        if b"()<>@,;:\\\"/[]?={}\t".contains(&b) {
            return Err(bad("separator character"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn header_names_are_checked_and_lowercased() {
        assert_eq!(
            Identifier::header("X-API-Key").unwrap().source().name(),
            "x-api-key"
        );
        for bad in ["", "bad name", "a:b", "é"] {
            assert_eq!(
                Identifier::header(bad).unwrap_err(),
                ConfigError::InvalidHeaderName { name: bad.into() },
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cookie_names_must_be_rfc6265_tokens() {
        for good in ["session", "__Host-id", "a.b_c!#$%&'*+-^`|~"] {
            Identifier::cookie(good).unwrap();
        }
        let cases = [
            ("", "empty"),
            ("a b", "space"),
            ("a;b", "separator character"),
            ("a=b", "separator character"),
            ("a\"b", "separator character"),
            ("a\tb", "control or non-ASCII character"),
            ("a\u{7f}", "control or non-ASCII character"),
            ("café", "control or non-ASCII character"),
        ];
        for (name, reason) in cases {
            assert_eq!(
                Identifier::cookie(name).unwrap_err(),
                ConfigError::InvalidCookieName {
                    name: name.into(),
                    reason
                },
            );
        }
        Identifier::cookie(&"a".repeat(128)).unwrap();
        let long = "a".repeat(129);
        assert_eq!(
            Identifier::cookie(&long).unwrap_err(),
            ConfigError::InvalidCookieName {
                name: long,
                reason: "longer than 128 characters"
            }
        );
    }

    #[test]
    fn claim_config_id_is_checked() {
        for bad in ["", "a:b", "a\nb"] {
            assert!(matches!(
                Identifier::claim(bad, "$.sub").unwrap_err(),
                ConfigError::InvalidName { .. }
            ));
        }
    }

    #[test]
    fn claims_are_read_from_verified_tokens() {
        let key = SessionKey::from_bytes([3; 16]);
        let mut claims = VerifiedClaims::new();
        claims.insert(
            "auth0",
            Arc::new(json!({
                "sub": "u1", "n": 42, "user": {"id": "x"}, "roles": ["r0"], "f": 1.5, "o": {}
            })),
        );
        let mut ext = Extensions::new();
        ext.insert(claims);
        let headers = HeaderMap::new();
        let id = |config: &str, path: &str| {
            Identifier::claim(config, path)
                .unwrap()
                .identify(&key, &headers, &ext)
        };
        assert!(id("auth0", "$.sub").is_some());
        assert!(id("auth0", "$.n").is_some());
        assert!(id("auth0", "$.f").is_some());
        assert!(id("auth0", "$.user.id").is_some());
        assert!(id("auth0", "$.roles[0]").is_some());
        assert!(id("auth0", "$.roles[1]").is_none());
        assert!(id("auth0", "$.o").is_none());
        assert!(id("auth0", "$.missing").is_none());
        assert!(id("other", "$.sub").is_none());
        assert!(
            Identifier::claim("auth0", "$.sub")
                .unwrap()
                .identify(&key, &headers, &Extensions::new())
                .is_none()
        );
    }

    #[test]
    fn empty_values_are_no_session() {
        let key = SessionKey::random();
        let mut headers = HeaderMap::new();
        headers.insert("x-key", "".parse().unwrap());
        headers.insert("cookie", "sid=".parse().unwrap());
        let ext = Extensions::new();
        assert!(
            Identifier::header("x-key")
                .unwrap()
                .identify(&key, &headers, &ext)
                .is_none()
        );
        assert!(
            Identifier::cookie("sid")
                .unwrap()
                .identify(&key, &headers, &ext)
                .is_none()
        );
    }
}
