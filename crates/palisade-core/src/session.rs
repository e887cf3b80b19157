//! Session ids and sessions.

use std::fmt;
use std::hash::Hasher;
use std::sync::OnceLock;

use siphasher::sip128::{Hasher128, SipHasher13};

use crate::intern::intern;

/// The secret key of the session digest.
///
/// A [`SessionId`] is SipHash-1-3 (128-bit output) of the identifier and the
/// value under this key. Without the key, ids cannot be linked back to the
/// credentials they stand for, nor computed from guessed credentials.
///
/// By default each process draws its own random key ([`SessionKey::process`]).
/// A fleet whose instances must agree on ids (to share rate limits in Redis,
/// say) gives every instance the same 16 secret bytes with
/// [`SessionKey::from_bytes`].
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    k0: u64,
    k1: u64,
}

impl SessionKey {
    /// A key from 16 secret bytes, for fleets that share it.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        let mut k0 = [0; 8];
        let mut k1 = [0; 8];
        let mut i = 0;
        while i < 8 {
            k0[i] = bytes[i];
            k1[i] = bytes[i + 8];
            i += 1;
        }
        Self {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        }
    }

    /// A new key from the operating system's random source.
    ///
    /// # Panics
    ///
    /// If the operating system has no random source, which no supported
    /// platform lacks.
    pub fn random() -> Self {
        let mut bytes = [0; 16];
        getrandom::fill(&mut bytes).expect("the operating system has no random source");
        Self::from_bytes(bytes)
    }

    /// The key of this process: random, drawn on first use, then the same.
    pub fn process() -> &'static SessionKey {
        static KEY: OnceLock<SessionKey> = OnceLock::new();
        KEY.get_or_init(SessionKey::random)
    }

    fn hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

impl Default for SessionKey {
    /// The process key; see [`SessionKey::process`].
    fn default() -> Self {
        Self::process().clone()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// A session: the keyed 128-bit digest of an identifier and its value.
///
/// The raw value (a token, an `Authorization` value, a cookie) is a
/// credential; Palisade keeps this digest instead. `Debug` and `Display`
/// show the digest as 32 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u128);

impl SessionId {
    /// The digest of `value` read from `source`, under `key`.
    ///
    /// The same value read from different identifiers gives different ids.
    pub fn digest(key: &SessionKey, source: SessionSource, value: &[u8]) -> Self {
        Self::digest_parts(key, source.kind.tag(), source.name.as_bytes(), value)
    }

    /// The digest of `value` under `key`, in a domain named by `tag` and
    /// `name`; for keys that are not sessions (a rate limit counted by
    /// header, say) but must not be kept raw either.
    pub fn digest_parts(key: &SessionKey, tag: u8, name: &[u8], value: &[u8]) -> Self {
        let mut hasher = key.hasher();
        hasher.write_u8(tag);
        hasher.write_usize(name.len());
        hasher.write(name);
        hasher.write(value);
        Self(hasher.finish128().as_u128())
    }

    /// An id from its 128 bits, as shown by `Display`.
    pub const fn from_u128(bits: u128) -> Self {
        Self(bits)
    }

    /// The 128 bits of the digest.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:032x})", self.0)
    }
}

/// The kind of place a session value was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// An HTTP header.
    Header,
    /// A cookie.
    Cookie,
    /// A claim of a verified JWT.
    Claim,
}

impl SourceKind {
    const fn tag(self) -> u8 {
        match self {
            Self::Header => 1,
            Self::Cookie => 2,
            Self::Claim => 3,
        }
    }

    /// `header`, `cookie` or `claim`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Cookie => "cookie",
            Self::Claim => "claim",
        }
    }
}

/// Which session identifier produced a session: its kind and name.
///
/// Names are interned when the identifier is configured, so a source costs
/// nothing to copy into every request.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionSource {
    kind: SourceKind,
    name: &'static str,
}

impl SessionSource {
    /// A source of the given kind and name.
    ///
    /// Header names are compared in lower case; give them so. A claim's name
    /// is its token configuration id and JSON path, as `auth0:$.sub`.
    pub fn new(kind: SourceKind, name: &str) -> Self {
        Self {
            kind,
            name: intern(name),
        }
    }

    /// A header source.
    pub fn header(name: &str) -> Self {
        Self::new(SourceKind::Header, name)
    }

    /// A cookie source.
    pub fn cookie(name: &str) -> Self {
        Self::new(SourceKind::Cookie, name)
    }

    /// The kind of source.
    pub const fn kind(self) -> SourceKind {
        self.kind
    }

    /// The header or cookie name, or `config:path` for a claim.
    pub const fn name(self) -> &'static str {
        self.name
    }
}

impl fmt::Display for SessionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.name)
    }
}

impl fmt::Debug for SessionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionSource({self})")
    }
}

/// The session of a request, as the session layer found it.
///
/// The session layer inserts one into every request's extensions: either
/// identified (an id and the source that produced it) or anonymous, when
/// the request carried none of the configured identifiers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Session {
    found: Option<(SessionId, SessionSource)>,
}

impl Session {
    /// A session identified by `id`, read from `source`.
    pub const fn identified(id: SessionId, source: SessionSource) -> Self {
        Self {
            found: Some((id, source)),
        }
    }

    /// The session of a request that carried no identifier.
    pub const fn anonymous() -> Self {
        Self { found: None }
    }

    /// The session id, if the request had one.
    pub fn id(&self) -> Option<SessionId> {
        self.found.map(|(id, _)| id)
    }

    /// The identifier that produced the session, if any.
    pub fn source(&self) -> Option<SessionSource> {
        self.found.map(|(_, source)| source)
    }

    /// Whether the request carried none of the configured identifiers.
    pub fn is_anonymous(&self) -> bool {
        self.found.is_none()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.found {
            Some((id, source)) => write!(f, "Session({id} from {source})"),
            None => f.write_str("Session(anonymous)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_id_other_key_other_id() {
        let source = SessionSource::header("authorization");
        let a = SessionId::digest(&SessionKey::from_bytes([1; 16]), source, b"v");
        let b = SessionId::digest(&SessionKey::from_bytes([1; 16]), source, b"v");
        let c = SessionId::digest(&SessionKey::from_bytes([2; 16]), source, b"v");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn same_value_from_other_source_is_another_session() {
        let key = SessionKey::random();
        let header = SessionId::digest(&key, SessionSource::header("session"), b"v");
        let cookie = SessionId::digest(&key, SessionSource::cookie("session"), b"v");
        assert_ne!(header, cookie);
    }

    #[test]
    fn name_and_value_boundary_is_unambiguous() {
        let key = SessionKey::random();
        let a = SessionId::digest(&key, SessionSource::header("ab"), b"c");
        let b = SessionId::digest(&key, SessionSource::header("a"), b"bc");
        assert_ne!(a, b);
    }

    #[test]
    fn debug_and_display_show_only_the_digest() {
        let key = SessionKey::from_bytes([9; 16]);
        let id = SessionId::digest(&key, SessionSource::cookie("sid"), b"secret-value");
        let shown = format!(
            "{id} {id:?} {:?} {key:?}",
            Session::identified(id, SessionSource::cookie("sid"))
        );
        assert!(!shown.contains("secret-value"));
        assert_eq!(id.to_string().len(), 32);
        assert_eq!(SessionId::from_u128(id.as_u128()), id);
    }

    #[test]
    fn process_key_is_stable_and_random_keys_differ() {
        assert_eq!(SessionKey::process(), SessionKey::process());
        assert_ne!(SessionKey::random(), SessionKey::random());
    }

    #[test]
    fn anonymous_session_has_no_id() {
        let session = Session::anonymous();
        assert!(session.is_anonymous());
        assert_eq!(session.id(), None);
        assert_eq!(session.source(), None);
    }
}
