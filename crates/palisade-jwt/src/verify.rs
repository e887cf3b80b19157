//! Verification of one configuration's tokens, with a cache of verdicts.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use moka::Expiry;
use palisade_core::{SessionId, SessionKey, SharedClock};
use serde::Deserialize;
use serde_json::Value;

use crate::base64url;
use crate::config::{Checks, TokenConfig};
use crate::rejection::RejectionKind;

/// The digest domain of cached tokens, apart from session digests.
const TOKEN_TAG: u8 = 0x4a;

/// How verdicts are cached.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheSettings {
    pub(crate) capacity: u64,
    pub(crate) max_lifetime: Duration,
    pub(crate) failure_lifetime: Duration,
}

/// What was decided about one token, until when.
#[derive(Clone)]
struct Verdict {
    outcome: Result<Arc<Value>, RejectionKind>,
    /// Clock time after which the verdict no longer counts.
    until: Duration,
    /// How long it counts, from insertion, for moka's own timer.
    ttl: Duration,
    /// The key generation it was made under.
    generation: u64,
    /// The key that verified it; 0 for a refusal.
    serial: u64,
}

struct VerdictExpiry;

impl Expiry<u128, Verdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &u128,
        value: &Verdict,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &u128,
        value: &Verdict,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Hashes a verdict key, which is already a keyed 128-bit digest that a
/// client cannot steer: folding it is enough, and spares a second SipHash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used for `u128` keys; this folds anything else.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 ^= (value as u64) ^ ((value >> 64) as u64);
    }
}

/// Verifies the tokens of one configuration and remembers the verdicts.
pub(crate) struct Verifier {
    pub(crate) config: TokenConfig,
    hash_key: SessionKey,
    clock: SharedClock,
    settings: CacheSettings,
    /// Verdicts by keyed digest of the token: never the token itself.
    cache: moka::sync::Cache<u128, Verdict, BuildHasherDefault<DigestHasher>>,
}

impl Verifier {
    pub(crate) fn new(
        config: TokenConfig,
        hash_key: SessionKey,
        clock: SharedClock,
        settings: CacheSettings,
    ) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(settings.capacity)
            .expire_after(VerdictExpiry)
            .build_with_hasher(BuildHasherDefault::default());
        Self {
            config,
            hash_key,
            clock,
            settings,
            cache,
        }
    }

    /// The claims of a valid token, or why it is not; a repeated token is
    /// answered from the cache.
    pub(crate) fn verify(&self, token: &[u8]) -> Result<Arc<Value>, RejectionKind> {
        // Larger tokens are refused before anything else, hashing included.
        if token.len() > self.config.checks.max_token_bytes {
            return Err(RejectionKind::Oversized);
        }
        let digest =
            SessionId::digest_parts(&self.hash_key, TOKEN_TAG, self.config.id.as_bytes(), token)
                .as_u128();
        let now = self.clock.now();
        let generation = self.config.keys.generation();

        if let Some(verdict) = self.cache.get(&digest)
            && now < verdict.until
        {
            if verdict.generation == generation {
                return verdict.outcome.clone();
            }
            // Keys were replaced since: a success counts if its key stayed,
            // and is renewed under the new generation; a refusal is redone.
            if verdict.outcome.is_ok() && self.config.keys.current().has_serial(verdict.serial) {
                let renewed = Verdict {
                    outcome: verdict.outcome.clone(),
                    until: verdict.until,
                    ttl: verdict.until.saturating_sub(now),
                    generation,
                    serial: verdict.serial,
                };
                self.cache.insert(digest, renewed);
                return verdict.outcome.clone();
            }
        }

        let (outcome, serial, valid_until) = self.verify_uncached(token, now);
        let until = match &outcome {
            Ok(_) => valid_until.min(now + self.settings.max_lifetime),
            Err(_) => now + self.settings.failure_lifetime,
        };
        let verdict = Verdict {
            outcome: outcome.clone(),
            until,
            ttl: until.saturating_sub(now),
            generation,
            serial,
        };
        self.cache.insert(digest, verdict);
        outcome
    }

    /// Verifies without the cache: the outcome, the serial of the key that
    /// verified it, and the clock time until which the token is valid.
    fn verify_uncached(
        &self,
        token: &[u8],
        now: Duration,
    ) -> (Result<Arc<Value>, RejectionKind>, u64, Duration) {
        match self.check(token, now) {
            Ok((claims, serial, until)) => (Ok(Arc::new(claims)), serial, until),
            Err(kind) => (Err(kind), 0, Duration::ZERO),
        }
    }

    fn check(&self, token: &[u8], now: Duration) -> Result<(Value, u64, Duration), RejectionKind> {
        let mut parts = token.split(|&b| b == b'.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(RejectionKind::Malformed);
        };

        let header = base64url::decode(header).ok_or(RejectionKind::BadBase64)?;
        let header: Header = serde_json::from_slice(&header).map_err(|_| RejectionKind::BadJson)?;
        // `none` and anything unknown stop here: there is no key for them.
        let alg =
            Algorithm::from_str(&header.alg).map_err(|_| RejectionKind::UnsupportedAlgorithm)?;

        let keys = self.config.keys.current();
        let Some(key) = header.kid.as_deref().and_then(|kid| keys.find(kid)) else {
            self.config.keys.unknown_kid_seen();
            return Err(RejectionKind::UnknownKey);
        };
        if key.alg != alg {
            return Err(RejectionKind::AlgorithmMismatch);
        }

        let payload_bytes = base64url::decode(payload).ok_or(RejectionKind::BadBase64)?;
        if base64url::decode(signature).is_none() {
            return Err(RejectionKind::BadBase64);
        }
        let message_len = token.len() - signature.len() - 1;
        let signature = std::str::from_utf8(signature).map_err(|_| RejectionKind::BadBase64)?;
        match jsonwebtoken::crypto::verify(signature, &token[..message_len], &key.decoding, alg) {
            Ok(true) => {}
            _ => return Err(RejectionKind::BadSignature),
        }

        let claims: Value =
            serde_json::from_slice(&payload_bytes).map_err(|_| RejectionKind::BadJson)?;
        if !claims.is_object() {
            return Err(RejectionKind::BadJson);
        }
        let until = check_claims(&claims, &self.config.checks, now)?;
        Ok((claims, key.serial, until))
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config.id)
            .field("cached", &self.cache.entry_count())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// Checks the registered claims; returns the clock time until which the
/// token stays valid (its `exp` plus leeway, or forever without `exp`).
fn check_claims(claims: &Value, checks: &Checks, now: Duration) -> Result<Duration, RejectionKind> {
    for name in &checks.required {
        if claims.get(name).is_none_or(Value::is_null) {
            return Err(RejectionKind::MissingClaim);
        }
    }

    let leeway = checks.leeway;
    let seconds = |name: &str| -> Result<Option<Duration>, RejectionKind> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Some(Duration::from_secs_f64(s.min(1e15))))
                .ok_or(RejectionKind::MissingClaim),
        }
    };
    let until = match seconds("exp")? {
        Some(exp) if exp + leeway <= now => return Err(RejectionKind::Expired),
        Some(exp) => exp + leeway,
        None => Duration::MAX,
    };
    if let Some(nbf) = seconds("nbf")?
        && nbf > now + leeway
    {
        return Err(RejectionKind::NotYetValid);
    }

    if !checks.issuers.is_empty() {
        match claims.get("iss").and_then(Value::as_str) {
            Some(iss) if checks.issuers.iter().any(|i| i == iss) => {}
            _ => return Err(RejectionKind::WrongIssuer),
        }
    }
    if !checks.audiences.is_empty() {
        let accepted = |aud: &Value| {
            aud.as_str()
                .is_some_and(|a| checks.audiences.iter().any(|x| x == a))
        };
        let ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(accepted),
            Some(aud) => accepted(aud),
            None => false,
        };
        if !ok {
            return Err(RejectionKind::WrongAudience);
        }
    }
    Ok(until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checks() -> Checks {
        Checks {
            leeway: Duration::from_secs(60),
            issuers: vec!["iss-a".into()],
            audiences: vec!["api".into()],
            required: vec!["exp".into()],
            max_token_bytes: 8192,
        }
    }

    #[test]
    fn claims_are_checked_with_leeway() {
        let now = Duration::from_secs(1_000);
        let ok = json!({"exp": 1_000, "iss": "iss-a", "aud": ["x", "api"]});
        assert_eq!(
            check_claims(&ok, &checks(), now),
            Ok(Duration::from_secs(1_060))
        );
        let cases = [
            (
                json!({"iss": "iss-a", "aud": "api"}),
                RejectionKind::MissingClaim,
            ),
            (
                json!({"exp": "soon", "iss": "iss-a", "aud": "api"}),
                RejectionKind::MissingClaim,
            ),
            (
                json!({"exp": 940, "iss": "iss-a", "aud": "api"}),
                RejectionKind::Expired,
            ),
            (
                json!({"exp": 2000, "nbf": 1061, "iss": "iss-a", "aud": "api"}),
                RejectionKind::NotYetValid,
            ),
            (
                json!({"exp": 2000, "iss": "iss-b", "aud": "api"}),
                RejectionKind::WrongIssuer,
            ),
            (
                json!({"exp": 2000, "aud": "api"}),
                RejectionKind::WrongIssuer,
            ),
            (
                json!({"exp": 2000, "iss": "iss-a", "aud": "web"}),
                RejectionKind::WrongAudience,
            ),
            (
                json!({"exp": 2000, "iss": "iss-a"}),
                RejectionKind::WrongAudience,
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(
                check_claims(&claims, &checks(), now),
                Err(expected),
                "{claims}"
            );
        }
        let within = json!({"exp": 2000, "nbf": 1060, "iss": "iss-a", "aud": "api"});
        assert!(check_claims(&within, &checks(), now).is_ok());
    }
}
