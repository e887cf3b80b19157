//! Keys and tokens for the tests: committed key fixtures (made once with
//! `openssl genrsa`/`genpkey`), JWKs derived from them, tokens signed here.

#![allow(dead_code, unreachable_pub)]

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// The tests' "now": 2023-11-14.
pub const NOW: u64 = 1_700_000_000;

const RSA_2048: &[u8] = include_bytes!("../fixtures/rsa2048.der");
const RSA_2048_B: &[u8] = include_bytes!("../fixtures/rsa2048b.der");
const RSA_1024: &[u8] = include_bytes!("../fixtures/rsa1024.der");
const P256: &[u8] = include_bytes!("../fixtures/p256.der");
const P384: &[u8] = include_bytes!("../fixtures/p384.der");
const ED25519: &[u8] = include_bytes!("../fixtures/ed25519.der");

/// Every algorithm the layer accepts.
pub const ALL: [Algorithm; 12] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::EdDSA,
];

/// A signing key and its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
}

/// The fixture key for `alg`, named `kid`.
pub fn key(alg: Algorithm, kid: &str) -> TestKey {
    let encoding = match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_der(RSA_2048),
        Algorithm::ES256 => EncodingKey::from_ec_der(P256),
        Algorithm::ES384 => EncodingKey::from_ec_der(P384),
        Algorithm::EdDSA => EncodingKey::from_ed_der(ED25519),
        Algorithm::HS256 => EncodingKey::from_secret(&[0x11; 32]).unwrap(),
        Algorithm::HS384 => EncodingKey::from_secret(&[0x22; 48]).unwrap(),
        Algorithm::HS512 => EncodingKey::from_secret(&[0x33; 64]).unwrap(),
        other => panic!("no fixture for {other:?}"),
    };
    with_encoding(alg, kid, encoding)
}

/// A second RSA key, for rotations.
pub fn other_rsa(kid: &str) -> TestKey {
    with_encoding(Algorithm::RS256, kid, EncodingKey::from_rsa_der(RSA_2048_B))
}

/// A 1024-bit RSA key, too weak to be accepted.
pub fn weak_rsa(kid: &str) -> TestKey {
    with_encoding(Algorithm::RS256, kid, EncodingKey::from_rsa_der(RSA_1024))
}

/// The main RSA key's public part as anyone can fetch it (its JWK), for an
/// attacker who signs HS256 "with the public key".
pub fn rsa_public_bytes() -> Vec<u8> {
    let jwk = key(Algorithm::RS256, "x").jwk;
    serde_json::to_vec(&jwk).unwrap()
}

fn with_encoding(alg: Algorithm, kid: &str, encoding: EncodingKey) -> TestKey {
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    TestKey {
        kid: kid.to_owned(),
        alg,
        encoding,
        jwk,
    }
}

/// A JWKS of these keys.
pub fn jwks(keys: &[&TestKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    }
}

/// A token signed by `key`, with its `kid` and `alg`.
pub fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// Claims for `sub` valid for an hour from [`NOW`].
pub fn claims(sub: &str) -> Value {
    serde_json::json!({"sub": sub, "exp": NOW + 3600, "iat": NOW})
}

/// Unpadded base64url, to forge token parts.
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
