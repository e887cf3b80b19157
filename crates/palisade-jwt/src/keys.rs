//! Verification keys: a configuration's JWKS, parsed once, and replaced at
//! run time without a restart.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use palisade_core::ConfigError;

use crate::base64url;

/// Numbers every parsed key, so that a verdict can name the key it used.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// One verification key, parsed and checked.
pub(crate) struct Key {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) decoding: DecodingKey,
    /// The key's public parameters (or secret, for HMAC), to tell whether a
    /// rotation kept it.
    params: AlgorithmParameters,
    pub(crate) serial: u64,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the material: an HMAC key is a secret.
        write!(f, "{}:{:?}", self.kid, self.alg)
    }
}

/// The keys of one configuration at one moment.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Key>,
}

impl KeySet {
    /// The key named `kid`.
    pub(crate) fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Whether the key with this serial is still in the set.
    pub(crate) fn has_serial(&self, serial: u64) -> bool {
        self.keys.iter().any(|k| k.serial == serial)
    }
}

/// Parses a JWKS strictly: any bad key is an error naming it.
pub(crate) fn parse_strict(config: &str, set: &JwkSet) -> Result<Vec<Key>, ConfigError> {
    let mut keys = Vec::with_capacity(set.keys.len());
    for (index, jwk) in set.keys.iter().enumerate() {
        let key = parse_key(config, index, jwk)?;
        if keys.iter().any(|k: &Key| k.kid == key.kid) {
            return Err(ConfigError::Invalid {
                what: key_name(config, index, jwk),
                reason: "two keys share this kid".to_owned(),
            });
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Parses a JWKS leniently, as fetched from an identity provider: bad keys
/// are skipped and returned as errors beside the good ones.
#[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
pub(crate) fn parse_lenient(config: &str, set: &JwkSet) -> (Vec<Key>, Vec<ConfigError>) {
    let mut keys: Vec<Key> = Vec::with_capacity(set.keys.len());
    let mut errors = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        match parse_key(config, index, jwk) {
            Ok(key) if !keys.iter().any(|k| k.kid == key.kid) => keys.push(key),
            Ok(_) => errors.push(ConfigError::Invalid {
                what: key_name(config, index, jwk),
                reason: "two keys share this kid".to_owned(),
            }),
            Err(e) => errors.push(e),
        }
    }
    (keys, errors)
}

fn key_name(config: &str, index: usize, jwk: &Jwk) -> String {
    match &jwk.common.key_id {
        Some(kid) => format!("key {kid:?} of token configuration {config:?}"),
        None => format!("key #{index} of token configuration {config:?}"),
    }
}

fn parse_key(config: &str, index: usize, jwk: &Jwk) -> Result<Key, ConfigError> {
    let bad = |reason: String| ConfigError::Invalid {
        what: key_name(config, index, jwk),
        reason,
    };
    let kid = match jwk.common.key_id.as_deref() {
        Some(kid) if !kid.is_empty() => kid.to_owned(),
        _ => return Err(bad("every key needs a `kid`".to_owned())),
    };

    let alg = match jwk.common.key_algorithm {
        Some(alg) => signing_algorithm(alg)
            .ok_or_else(|| bad(format!("`alg` {alg:?} is not a signing algorithm")))?,
        // An RSA key without `alg` is taken as RS256, as identity providers
        // commonly publish them.
        None if matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        None => return Err(bad("every key other than RSA needs an `alg`".to_owned())),
    };

    check_strength(&jwk.algorithm, alg).map_err(bad)?;
    let decoding = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("unusable key: {e}")))?;
    // Build a verifier once now, so that a malformed point or key fails
    // here rather than on the first token.
    let provider = CryptoProvider::try_get_default()
        .ok_or_else(|| bad("no jsonwebtoken crypto provider".to_owned()))?;
    (provider.verifier_factory)(&alg, &decoding)
        .map_err(|e| bad(format!("unusable {alg:?} key: {e}")))?;

    Ok(Key {
        kid,
        alg,
        decoding,
        params: jwk.algorithm.clone(),
        serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
    })
}

fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Refuses a key whose type does not fit its algorithm, and weak keys.
fn check_strength(params: &AlgorithmParameters, alg: Algorithm) -> Result<(), String> {
    use Algorithm::*;
    match (params, alg) {
        (AlgorithmParameters::RSA(rsa), RS256 | RS384 | RS512 | PS256 | PS384 | PS512) => {
            let n = base64url::decode(rsa.n.as_bytes())
                .ok_or_else(|| "RSA modulus `n` is not base64url".to_owned())?;
            let bits = bit_length(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA modulus of {bits} bits, at least {MIN_RSA_BITS} required"
                ));
            }
            Ok(())
        }
        (AlgorithmParameters::OctetKey(oct), HS256 | HS384 | HS512) => {
            let secret = base64url::decode(oct.value.as_bytes())
                .ok_or_else(|| "HMAC secret `k` is not base64url".to_owned())?;
            let min = match alg {
                HS256 => 32,
                HS384 => 48,
                _ => 64,
            };
            if secret.len() < min {
                return Err(format!(
                    "HMAC secret of {} bytes, at least {min} required for {alg:?}",
                    secret.len()
                ));
            }
            Ok(())
        }
        (AlgorithmParameters::EllipticCurve(ec), ES256 | ES384) => match (&ec.curve, alg) {
            (EllipticCurve::P256, ES256) | (EllipticCurve::P384, ES384) => Ok(()),
            (curve, _) => Err(format!("curve {curve:?} does not fit {alg:?}")),
        },
        (AlgorithmParameters::OctetKeyPair(okp), EdDSA) => match okp.curve {
            EllipticCurve::Ed25519 => Ok(()),
            ref curve => Err(format!("curve {curve:?} does not fit EdDSA; use Ed25519")),
        },
        (_, alg) => Err(format!("key type does not fit `alg` {alg:?}")),
    }
}

/// The number of significant bits of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|&b| b != 0) {
        Some(i) => (bytes.len() - i - 1) * 8 + (8 - bytes[i].leading_zeros() as usize),
        None => 0,
    }
}

/// The keys of one configuration, replaceable while requests are served.
pub(crate) struct KeyStore {
    pub(crate) config: &'static str,
    current: RwLock<Arc<KeySet>>,
    /// Moves on every replacement; a verdict made under another generation
    /// is checked against the current keys before it counts.
    generation: AtomicU64,
    /// Called when a token names a kid the set lacks (remote JWKS refresh).
    unknown_kid: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl KeyStore {
    pub(crate) fn new(config: &'static str, keys: Vec<Key>) -> Self {
        Self {
            config,
            current: RwLock::new(Arc::new(KeySet { keys })),
            generation: AtomicU64::new(0),
            unknown_kid: OnceLock::new(),
        }
    }

    pub(crate) fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Installs a new set; keys present before with the same kid, alg and
    /// material keep their serial, so verdicts made with them still count.
    pub(crate) fn replace(&self, mut keys: Vec<Key>) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        for key in &mut keys {
            if let Some(old) = current
                .keys
                .iter()
                .find(|o| o.kid == key.kid && o.alg == key.alg && o.params == key.params)
            {
                key.serial = old.serial;
            }
        }
        *current = Arc::new(KeySet { keys });
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    #[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
    pub(crate) fn on_unknown_kid(&self, hook: Box<dyn Fn() + Send + Sync>) -> bool {
        self.unknown_kid.set(hook).is_ok()
    }

    pub(crate) fn unknown_kid_seen(&self) {
        if let Some(hook) = self.unknown_kid.get() {
            hook();
        }
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("config", &self.config)
            .field("keys", &self.current().keys)
            .field("generation", &self.generation())
            .finish()
    }
}

/// The run-time handle on a token configuration's keys: replace them to
/// rotate without a restart.
///
/// Verdicts cached before a replacement count only if the key that made
/// them is still in the set (same `kid`, `alg` and material); tokens signed
/// with a removed key are refused from the next request on.
#[derive(Clone)]
pub struct TokenKeys {
    pub(crate) store: Arc<KeyStore>,
}

impl TokenKeys {
    /// Replaces the keys with a JWKS; every key is checked as at build
    /// time, and on error the old keys stay.
    pub fn replace(&self, set: &JwkSet) -> Result<(), ConfigError> {
        let keys = parse_strict(self.store.config, set)?;
        self.store.replace(keys);
        Ok(())
    }

    /// Replaces the keys with a JWKS given as JSON (`{"keys": [...]}`).
    pub fn replace_json(&self, json: &str) -> Result<(), ConfigError> {
        self.replace(&parse_jwks_json(self.store.config, json)?)
    }

    /// The `kid`s of the current keys.
    pub fn kids(&self) -> Vec<String> {
        self.store
            .current()
            .keys
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }

    /// How many times the keys were replaced.
    pub fn generation(&self) -> u64 {
        self.store.generation()
    }
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.store.fmt(f)
    }
}

/// Parses `{"keys": [...]}`, naming the configuration on error.
pub(crate) fn parse_jwks_json(config: &str, json: &str) -> Result<JwkSet, ConfigError> {
    serde_json::from_str(json).map_err(|e| ConfigError::Invalid {
        what: format!("JWKS of token configuration {config:?}"),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks(json: serde_json::Value) -> JwkSet {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn bit_length_counts_significant_bits() {
        assert_eq!(bit_length(&[0, 0x01, 0xff]), 9);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0, 0]), 0);
    }

    #[test]
    fn short_hmac_secrets_are_refused_naming_the_key() {
        let secret = base64url::encode(&[7u8; 40]);
        let ok = jwks(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h256", "alg": "HS256", "k": secret},
        ]}));
        assert_eq!(parse_strict("c", &ok).unwrap().len(), 1);
        let weak = jwks(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h384", "alg": "HS384", "k": secret},
        ]}));
        let err = parse_strict("c", &weak).unwrap_err().to_string();
        assert!(err.contains("\"h384\""), "{err}");
        assert!(err.contains("40 bytes, at least 48"), "{err}");
    }

    #[test]
    fn keys_need_kid_and_alg_unless_rsa() {
        let secret = base64url::encode(&[7u8; 64]);
        let no_kid = jwks(serde_json::json!({"keys": [
            {"kty": "oct", "alg": "HS512", "k": secret},
        ]}));
        let err = parse_strict("c", &no_kid).unwrap_err().to_string();
        assert!(err.contains("key #0") && err.contains("kid"), "{err}");
        let no_alg = jwks(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "k", "k": secret},
        ]}));
        let err = parse_strict("c", &no_alg).unwrap_err().to_string();
        assert!(err.contains("needs an `alg`"), "{err}");
        let twice = jwks(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "k", "alg": "HS512", "k": secret},
            {"kty": "oct", "kid": "k", "alg": "HS512", "k": secret},
        ]}));
        assert!(parse_strict("c", &twice).is_err());
        let (keys, errors) = parse_lenient("c", &twice);
        assert_eq!((keys.len(), errors.len()), (1, 1));
    }

    #[test]
    fn replacement_keeps_serials_of_unchanged_keys() {
        let a = base64url::encode(&[1u8; 32]);
        let b = base64url::encode(&[2u8; 32]);
        let set = |k: &str| {
            jwks(serde_json::json!({"keys": [{"kty": "oct", "kid": "k", "alg": "HS256", "k": k}]}))
        };
        let store = KeyStore::new("c", parse_strict("c", &set(&a)).unwrap());
        let first = store.current().keys[0].serial;
        store.replace(parse_strict("c", &set(&a)).unwrap());
        assert_eq!(store.current().keys[0].serial, first);
        assert_eq!(store.generation(), 1);
        store.replace(parse_strict("c", &set(&b)).unwrap());
        assert!(!store.current().has_serial(first));
        assert!(!format!("{store:?}").contains(&b));
    }
}
