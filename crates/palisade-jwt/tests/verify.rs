//! Verification through the layer's decision: every algorithm, every
//! refusal with its reason, the verdict cache and key rotation, with an
//! injected clock.

mod support;

use std::time::Duration;

use http::Request;
use jsonwebtoken::{Algorithm, Header};
use palisade_core::{ManualClock, VerifiedClaims};
use palisade_jwt::{JwtLayer, RejectionKind, TokenAction, TokenConfig, TokenPolicy};
use serde_json::{Value, json};
use support::{NOW, TestKey, b64, claims, jwks, key, sign};

fn clock() -> ManualClock {
    ManualClock::new(Duration::from_secs(NOW))
}

fn layer(config: TokenConfig, clock: &ManualClock) -> JwtLayer {
    let id = config.id();
    JwtLayer::builder()
        .token(config)
        .policy(
            TokenPolicy::new(id)
                .on_missing(TokenAction::Block)
                .on_invalid(TokenAction::Block),
        )
        .clock(clock.shared())
        .build()
        .unwrap()
}

fn check(layer: &JwtLayer, header: (&str, &str)) -> Result<VerifiedClaims, RejectionKind> {
    let mut request = Request::get("/")
        .header(header.0, header.1)
        .body(())
        .unwrap();
    layer.check(&mut request).map_err(|r| r.kind())
}

fn bearer(layer: &JwtLayer, token: &str) -> Result<VerifiedClaims, RejectionKind> {
    check(layer, ("authorization", &format!("Bearer {token}")))
}

fn sub(claims: &VerifiedClaims, config: &str) -> Value {
    claims.get(config).unwrap()["sub"].clone()
}

#[test]
fn every_algorithm_accepts_a_good_token() {
    let clock = clock();
    for alg in support::ALL {
        let k = key(alg, &format!("{alg:?}"));
        let config = TokenConfig::builder("c")
            .header("authorization")
            .jwks(jwks(&[&k]))
            .build()
            .unwrap();
        let layer = layer(config, &clock);
        let token = sign(&k, &claims("alice"));
        let verified = bearer(&layer, &token).unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(sub(&verified, "c"), "alice", "{alg:?}");
        // Repeated: answered from the cache, same claims.
        assert_eq!(sub(&bearer(&layer, &token).unwrap(), "c"), "alice");
    }
}

struct Setup {
    rsa: TestKey,
    hs: TestKey,
    es: TestKey,
    layer: JwtLayer,
}

fn setup(clock: &ManualClock) -> Setup {
    let rsa = key(Algorithm::RS256, "rsa");
    let hs = key(Algorithm::HS256, "hs");
    let es = key(Algorithm::ES256, "es");
    let config = TokenConfig::builder("api")
        .header("authorization")
        .jwks(jwks(&[&rsa, &hs, &es]))
        .issuer("https://id.example")
        .audience("api")
        .build()
        .unwrap();
    Setup {
        layer: layer(config, clock),
        rsa,
        hs,
        es,
    }
}

fn good_claims() -> Value {
    json!({"sub": "alice", "exp": NOW + 3600, "iss": "https://id.example", "aud": "api"})
}

fn with(patch: Value) -> Value {
    let mut claims = good_claims();
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// A token with a hand-made header, signed by `key` as HMAC or its own alg.
fn forge(
    header: Value,
    payload: &[u8],
    signer: &jsonwebtoken::EncodingKey,
    alg: Algorithm,
) -> String {
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), signer, alg).unwrap();
    format!("{message}.{signature}")
}

#[test]
fn each_bad_token_is_refused_with_its_reason() {
    let clock = clock();
    let s = setup(&clock);
    let good = sign(&s.rsa, &good_claims());
    assert!(bearer(&s.layer, &good).is_ok());
    let payload = good_claims().to_string();
    let [h, p, sig]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();

    let hmac_with_public_key =
        jsonwebtoken::EncodingKey::from_secret(&support::rsa_public_bytes()).unwrap();
    let mut unknown_kid = Header::new(Algorithm::RS256);
    unknown_kid.kid = Some("nobody".into());
    let mut no_kid = Header::new(Algorithm::RS256);
    no_kid.kid = None;
    let other_payload = b64(with(json!({"sub": "mallory"})).to_string().as_bytes());
    let flipped = {
        let mut sig = sig.to_owned().into_bytes();
        sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
        String::from_utf8(sig).unwrap()
    };

    let cases: Vec<(&str, String, RejectionKind)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","kid":"rsa"}"#),
                b64(payload.as_bytes())
            ),
            RejectionKind::UnsupportedAlgorithm,
        ),
        (
            "HS256 signed with the RSA public key (algorithm confusion)",
            forge(
                json!({"alg": "HS256", "kid": "rsa", "typ": "JWT"}),
                payload.as_bytes(),
                &hmac_with_public_key,
                Algorithm::HS256,
            ),
            RejectionKind::AlgorithmMismatch,
        ),
        (
            "unknown kid",
            jsonwebtoken::encode(&unknown_kid, &good_claims(), &s.rsa.encoding).unwrap(),
            RejectionKind::UnknownKey,
        ),
        (
            "no kid",
            jsonwebtoken::encode(&no_kid, &good_claims(), &s.rsa.encoding).unwrap(),
            RejectionKind::UnknownKey,
        ),
        (
            "alg that does not match the key",
            forge(
                json!({"alg": "ES256", "kid": "hs"}),
                payload.as_bytes(),
                &s.es.encoding,
                Algorithm::ES256,
            ),
            RejectionKind::AlgorithmMismatch,
        ),
        (
            "RS384 against an RS256 key",
            forge(
                json!({"alg": "RS384", "kid": "rsa"}),
                payload.as_bytes(),
                &s.rsa.encoding,
                Algorithm::RS384,
            ),
            RejectionKind::AlgorithmMismatch,
        ),
        (
            "expired beyond leeway",
            sign(&s.rsa, &with(json!({"exp": NOW - 61}))),
            RejectionKind::Expired,
        ),
        (
            "nbf beyond leeway",
            sign(&s.hs, &with(json!({"nbf": NOW + 61}))),
            RejectionKind::NotYetValid,
        ),
        (
            "tampered payload",
            format!("{h}.{other_payload}.{sig}"),
            RejectionKind::BadSignature,
        ),
        (
            "tampered signature",
            format!("{h}.{p}.{flipped}"),
            RejectionKind::BadSignature,
        ),
        (
            "bad base64url",
            format!("{h}.{p}*.{sig}"),
            RejectionKind::BadBase64,
        ),
        (
            "padded base64",
            format!("{h}.{p}=.{sig}"),
            RejectionKind::BadBase64,
        ),
        (
            "bad JSON payload, validly signed",
            forge(
                json!({"alg": "HS256", "kid": "hs"}),
                b"{not json",
                &s.hs.encoding,
                Algorithm::HS256,
            ),
            RejectionKind::BadJson,
        ),
        (
            "payload that is not an object",
            forge(
                json!({"alg": "HS256", "kid": "hs"}),
                b"[1]",
                &s.hs.encoding,
                Algorithm::HS256,
            ),
            RejectionKind::BadJson,
        ),
        (
            "bad JSON header",
            format!("{}.{p}.{sig}", b64(b"{\"alg\"")),
            RejectionKind::BadJson,
        ),
        ("two parts", format!("{h}.{p}"), RejectionKind::Malformed),
        (
            "oversized",
            format!("{h}.{}.{sig}", "A".repeat(9000)),
            RejectionKind::Oversized,
        ),
        (
            "wrong iss",
            sign(&s.es, &with(json!({"iss": "https://evil.example"}))),
            RejectionKind::WrongIssuer,
        ),
        (
            "wrong aud",
            sign(&s.es, &with(json!({"aud": ["web"]}))),
            RejectionKind::WrongAudience,
        ),
        (
            "no exp",
            sign(
                &s.es,
                &json!({"sub": "a", "iss": "https://id.example", "aud": "api"}),
            ),
            RejectionKind::MissingClaim,
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(bearer(&s.layer, &token).err(), Some(expected), "{name}");
        // The verdict is the same from the cache.
        assert_eq!(
            bearer(&s.layer, &token).err(),
            Some(expected),
            "{name} (cached)"
        );
    }

    // Within the leeway is fine.
    let late = sign(&s.rsa, &with(json!({"exp": NOW - 59, "nbf": NOW + 59})));
    assert!(bearer(&s.layer, &late).is_ok());

    // A good token in a source the configuration does not name is missing.
    assert_eq!(
        check(&s.layer, ("x-token", &good)).err(),
        Some(RejectionKind::Missing)
    );
    assert_eq!(
        check(&s.layer, ("cookie", &format!("authorization={good}"))).err(),
        Some(RejectionKind::Missing)
    );
}

#[test]
fn weak_keys_are_refused_at_build_naming_the_key() {
    let weak = support::weak_rsa("old-rsa");
    let err = TokenConfig::builder("c")
        .header("authorization")
        .jwks(jwks(&[&weak]))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"old-rsa\""), "{err}");
    assert!(err.contains("1024 bits, at least 2048"), "{err}");

    let mut short = key(Algorithm::HS512, "short");
    short.jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(
        &jsonwebtoken::EncodingKey::from_secret(&[1; 63]).unwrap(),
        Algorithm::HS512,
    )
    .unwrap();
    short.jwk.common.key_id = Some("short".into());
    let err = TokenConfig::builder("c")
        .header("authorization")
        .jwks(jwks(&[&short]))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"short\"") && err.contains("63 bytes, at least 64"),
        "{err}"
    );
}

#[test]
fn rsa_key_without_alg_means_rs256() {
    let clock = clock();
    let mut k = key(Algorithm::RS256, "bare");
    k.jwk.common.key_algorithm = None;
    let config = TokenConfig::builder("c")
        .header("authorization")
        .jwks(jwks(&[&k]))
        .build()
        .unwrap();
    let layer = layer(config, &clock);
    assert!(bearer(&layer, &sign(&k, &claims("a"))).is_ok());
}

#[test]
fn cached_verdict_ends_at_exp() {
    let clock = clock();
    let k = key(Algorithm::ES256, "es");
    let config = TokenConfig::builder("c")
        .header("authorization")
        .jwks(jwks(&[&k]))
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let layer = layer(config, &clock);
    let token = sign(&k, &json!({"sub": "a", "exp": NOW + 100}));
    assert!(bearer(&layer, &token).is_ok());
    clock.advance(Duration::from_secs(99));
    assert!(bearer(&layer, &token).is_ok());
    clock.advance(Duration::from_secs(1));
    assert_eq!(bearer(&layer, &token).err(), Some(RejectionKind::Expired));
}

#[test]
fn refusals_are_cached_briefly() {
    let clock = clock();
    let k = key(Algorithm::HS256, "hs");
    let config = TokenConfig::builder("c")
        .header("authorization")
        .jwks(jwks(&[&k]))
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let layer = JwtLayer::builder()
        .token(config)
        .clock(clock.shared())
        .failure_cache_lifetime(Duration::from_secs(10))
        .build()
        .unwrap();
    let token = sign(&k, &json!({"sub": "a", "exp": NOW + 600, "nbf": NOW + 5}));
    assert_eq!(
        bearer(&layer, &token).err(),
        Some(RejectionKind::NotYetValid)
    );
    // Valid by now, but the refusal still counts for its 10 s.
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        bearer(&layer, &token).err(),
        Some(RejectionKind::NotYetValid)
    );
    clock.advance(Duration::from_secs(5));
    assert!(bearer(&layer, &token).is_ok());
}

#[test]
fn rotation_drops_verdicts_of_removed_keys_and_keeps_the_others() {
    let clock = clock();
    let old = key(Algorithm::RS256, "k1");
    let kept = key(Algorithm::EdDSA, "k2");
    let config = TokenConfig::builder("c")
        .header("authorization")
        .jwks(jwks(&[&old, &kept]))
        .build()
        .unwrap();
    let layer = layer(config, &clock);
    let by_old = sign(&old, &claims("a"));
    let by_kept = sign(&kept, &claims("b"));
    assert!(bearer(&layer, &by_old).is_ok());
    assert!(bearer(&layer, &by_kept).is_ok());

    // Rotate: k1 gets new material, k2 stays, k3 arrives.
    let new = support::other_rsa("k1");
    let added = key(Algorithm::ES384, "k3");
    let keys = layer.keys("c").unwrap();
    keys.replace(&jwks(&[&new, &kept, &added])).unwrap();
    assert_eq!(keys.generation(), 1);
    assert_eq!(keys.kids(), ["k1", "k2", "k3"]);

    assert_eq!(
        bearer(&layer, &by_old).err(),
        Some(RejectionKind::BadSignature)
    );
    assert!(bearer(&layer, &by_kept).is_ok());
    assert!(bearer(&layer, &sign(&new, &claims("c"))).is_ok());
    assert!(bearer(&layer, &sign(&added, &claims("d"))).is_ok());

    // A bad replacement is refused and the keys stay.
    let weak = support::weak_rsa("k4");
    assert!(keys.replace(&jwks(&[&weak])).is_err());
    assert_eq!(keys.generation(), 1);
    assert!(bearer(&layer, &by_kept).is_ok());

    // Removing a key: its tokens stop counting at once, cached or not.
    keys.replace(&jwks(&[&new])).unwrap();
    assert_eq!(
        bearer(&layer, &by_kept).err(),
        Some(RejectionKind::UnknownKey)
    );
}

#[test]
fn unknown_configuration_in_policy_is_named() {
    let k = key(Algorithm::HS256, "hs");
    let config = TokenConfig::builder("c")
        .header("authorization")
        .jwks(jwks(&[&k]))
        .build()
        .unwrap();
    let err = JwtLayer::builder()
        .token(config)
        .policy(TokenPolicy::new("typo"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("\"typo\""), "{err}");
}

/// Records every event's target and fields, as a subscriber would print
/// them.
#[derive(Default)]
struct Capture(std::sync::Mutex<Vec<String>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(format!(
            "{} {}",
            event.metadata().level(),
            event.metadata().target()
        ));
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn refusals_are_logged_at_debug_with_config_and_reason_never_the_token() {
    let clock = clock();
    let s = setup(&clock);
    let expired = sign(&s.rsa, &with(json!({"exp": NOW - 3600})));
    let capture = std::sync::Arc::new(Capture::default());
    tracing::subscriber::with_default(capture.clone(), || {
        assert_eq!(
            bearer(&s.layer, &expired).err(),
            Some(RejectionKind::Expired)
        );
    });
    let events = capture.0.lock().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert!(event.starts_with("DEBUG palisade::jwt"), "{event}");
    assert!(event.contains("config=\"api\""), "{event}");
    assert!(event.contains("reason=\"expired\""), "{event}");
    assert!(event.contains("action=\"block\""), "{event}");
    for part in expired.split('.') {
        assert!(!event.contains(&part[..16]), "{event}");
    }
}
