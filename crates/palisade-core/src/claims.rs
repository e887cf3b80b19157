//! Verified JWT claims, as the JWT layer hands them on.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// The claims of the tokens that the JWT layer verified for a request, by
/// token configuration id.
///
/// Only verified tokens appear here, so a claim read from this type can be
/// trusted as far as the token's issuer can. `Debug` lists the configuration
/// ids, not the claims, which may identify a person.
#[derive(Clone, Default)]
pub struct VerifiedClaims {
    tokens: Vec<(&'static str, Arc<Value>)>,
}

impl VerifiedClaims {
    /// No verified token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the claims of a token verified under configuration `config`.
    pub fn insert(&mut self, config: &str, claims: Arc<Value>) {
        self.insert_static(crate::intern::intern(config), claims);
    }

    /// Records the claims of a token verified under configuration `config`,
    /// given as [`interned`](Self::intern_config): no lookup in the shared
    /// table of names, so this is the form for the request path.
    pub fn insert_static(&mut self, config: &'static str, claims: Arc<Value>) {
        match self.tokens.iter_mut().find(|(id, _)| *id == config) {
            Some(slot) => slot.1 = claims,
            None => self.tokens.push((config, claims)),
        }
    }

    /// The `'static` copy of a configuration id, made once when a layer is
    /// built, for [`insert_static`](Self::insert_static).
    pub fn intern_config(config: &str) -> &'static str {
        crate::intern::intern(config)
    }

    /// The claims verified under configuration `config`.
    pub fn get(&self, config: &str) -> Option<&Value> {
        self.tokens
            .iter()
            .find(|(id, _)| *id == config)
            .map(|(_, claims)| claims.as_ref())
    }

    /// The configuration ids with a verified token, in order of insertion.
    pub fn configs(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tokens.iter().map(|(id, _)| *id)
    }

    /// Whether no token was verified.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl fmt::Debug for VerifiedClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.configs()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_found_by_configuration() {
        let mut claims = VerifiedClaims::new();
        claims.insert("auth0", Arc::new(serde_json::json!({"sub": "u1"})));
        claims.insert("auth0", Arc::new(serde_json::json!({"sub": "u2"})));
        assert_eq!(claims.get("auth0").unwrap()["sub"], "u2");
        assert!(claims.get("other").is_none());
        assert_eq!(format!("{claims:?}"), r#"{"auth0"}"#);
        let id = VerifiedClaims::intern_config("okta");
        claims.insert_static(id, Arc::new(serde_json::json!({"sub": "u3"})));
        assert_eq!(claims.get("okta").unwrap()["sub"], "u3");
        assert_eq!(claims.configs().collect::<Vec<_>>(), ["auth0", "okta"]);
    }
}
