//! What a rule counts by: the values read from a request, and the client IP
//! behind trusted proxies.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::header::{COOKIE, FORWARDED, HeaderName};
use http::{Extensions, HeaderMap, Uri};
use palisade_core::cookie::find_cookie;
use palisade_core::{
    ClientAddr, ConfigError, Endpoint, HostPattern, JsonPath, Session, SessionId, SessionKey,
    VerifiedClaims,
};
use serde::Deserialize;
use serde_json::Value;

const TAG_HEADER: u8 = 16;
const TAG_COOKIE: u8 = 17;
const TAG_QUERY: u8 = 18;
const TAG_IP: u8 = 19;
const TAG_CLAIM: u8 = 20;
const TAG_ENDPOINT: u8 = 21;
const TAG_SESSION: u8 = 22;
const TAG_MISSING: u8 = 23;

/// One value a rule counts by; a rule's key is the tuple of its values.
///
/// Values are never kept: each is hashed with the session key
/// ([`SessionId::digest_parts`]) under a domain that names where it was
/// read, and only the digest of the tuple is stored.
///
/// ```
/// use palisade_limit::CountBy;
///
/// let by = CountBy::header("X-Api-Key")?;
/// assert_eq!(by.to_string(), "header:x-api-key");
/// assert!(CountBy::cookie("bad name").is_err());
/// assert!(CountBy::claim("auth0", "$..sub").is_err());
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "CountBySpec")]
pub struct CountBy {
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Session,
    Header(HeaderName),
    Cookie(String),
    Query(String),
    ClientIp,
    Claim {
        config: String,
        path: JsonPath,
        name: String,
    },
    Endpoint,
}

/// A value as read from a request, before hashing.
pub(crate) enum Raw<'a> {
    Missing,
    Bytes(&'a [u8]),
    Text(String),
    Session(SessionId),
    Ip(IpAddr),
    Endpoint(Endpoint),
}

impl Raw<'_> {
    /// The value's text, for values a tier can be chosen by.
    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            Self::Text(t) => Some(t.as_bytes()),
            _ => None,
        }
    }
}

/// What the rate limit layer knows about a request when it computes keys.
pub(crate) struct RequestView<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
    pub(crate) uri: &'a Uri,
    pub(crate) endpoint: Option<Endpoint>,
    pub(crate) proxies: &'a TrustedProxies,
}

impl CountBy {
    /// The session the session layer found; anonymous requests have none.
    pub const fn session() -> Self {
        Self {
            kind: Kind::Session,
        }
    }

    /// The value of a header (the first field if repeated).
    pub fn header(name: &str) -> Result<Self, ConfigError> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConfigError::InvalidHeaderName {
                name: name.to_owned(),
            }
        })?;
        Ok(Self {
            kind: Kind::Header(header),
        })
    }

    /// The value of a cookie; the name must be an RFC 6265 token.
    pub fn cookie(name: &str) -> Result<Self, ConfigError> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !valid {
            return Err(ConfigError::InvalidCookieName {
                name: name.to_owned(),
                reason: "not an RFC 6265 token of at most 128 characters",
            });
        }
        Ok(Self {
            kind: Kind::Cookie(name.to_owned()),
        })
    }

    /// The value of a query parameter, compared as sent (not decoded).
    pub fn query(name: &str) -> Result<Self, ConfigError> {
        if name.is_empty()
            || name
                .bytes()
                .any(|b| matches!(b, b'&' | b'=' | b'#') || b < 0x21)
        {
            return Err(ConfigError::InvalidName {
                what: "query parameter",
                name: name.to_owned(),
            });
        }
        Ok(Self {
            kind: Kind::Query(name.to_owned()),
        })
    }

    /// The client's IP address: the peer, or, when the peer is a trusted
    /// proxy, the address it forwarded (see [`TrustedProxies`]).
    pub const fn client_ip() -> Self {
        Self {
            kind: Kind::ClientIp,
        }
    }

    /// The claim at `path` of the token verified under the token
    /// configuration `config`; strings are used as they are, numbers and
    /// booleans as their JSON text.
    ///
    /// `path` is a plain JSON path: `$` then `.name`, `['name']` or
    /// `[index]` steps.
    pub fn claim(config: &str, path: &str) -> Result<Self, ConfigError> {
        if config.is_empty() || config.contains(':') || config.chars().any(char::is_control) {
            return Err(ConfigError::InvalidName {
                what: "token configuration id",
                name: config.to_owned(),
            });
        }
        let path = JsonPath::parse(path)?;
        Ok(Self {
            kind: Kind::Claim {
                name: format!("{config}:{path}"),
                config: config.to_owned(),
                path,
            },
        })
    }

    /// The endpoint the request resolved to, so that a rule over several
    /// endpoints counts each apart; unresolved requests have none.
    pub const fn endpoint() -> Self {
        Self {
            kind: Kind::Endpoint,
        }
    }

    /// Whether this is [`CountBy::session`].
    pub fn is_session(&self) -> bool {
        self.kind == Kind::Session
    }

    /// Whether this is [`CountBy::endpoint`].
    pub(crate) fn is_endpoint(&self) -> bool {
        self.kind == Kind::Endpoint
    }

    /// Whether a tier can be chosen by this value (header, cookie, query
    /// parameter or claim).
    pub(crate) fn is_textual(&self) -> bool {
        matches!(
            self.kind,
            Kind::Header(_) | Kind::Cookie(_) | Kind::Query(_) | Kind::Claim { .. }
        )
    }

    fn tag_and_name(&self) -> (u8, &[u8]) {
        match &self.kind {
            Kind::Session => (TAG_SESSION, b""),
            Kind::Header(h) => (TAG_HEADER, h.as_str().as_bytes()),
            Kind::Cookie(c) => (TAG_COOKIE, c.as_bytes()),
            Kind::Query(q) => (TAG_QUERY, q.as_bytes()),
            Kind::ClientIp => (TAG_IP, b""),
            Kind::Claim { name, .. } => (TAG_CLAIM, name.as_bytes()),
            Kind::Endpoint => (TAG_ENDPOINT, b""),
        }
    }

    /// The value in a request.
    pub(crate) fn read<'a>(&self, view: &RequestView<'a>) -> Raw<'a> {
        let found = match &self.kind {
            Kind::Session => view
                .extensions
                .get::<Session>()
                .and_then(Session::id)
                .map(Raw::Session),
            Kind::Header(name) => view.headers.get(name).map(|v| Raw::Bytes(v.as_bytes())),
            Kind::Cookie(name) => find_cookie(view.headers.get_all(COOKIE), name).map(Raw::Bytes),
            Kind::Query(name) => find_query(view.uri, name).map(Raw::Bytes),
            Kind::ClientIp => client_ip(view).map(Raw::Ip),
            Kind::Claim { config, path, .. } => view
                .extensions
                .get::<VerifiedClaims>()
                .and_then(|claims| claims.get(config))
                .and_then(|claims| path.lookup(claims))
                .and_then(|value| match value {
                    Value::String(s) => Some(Raw::Text(s.clone())),
                    Value::Number(n) => Some(Raw::Text(n.to_string())),
                    Value::Bool(b) => Some(Raw::Text(b.to_string())),
                    _ => None,
                }),
            Kind::Endpoint => view.endpoint.map(Raw::Endpoint),
        };
        found.unwrap_or(Raw::Missing)
    }

    /// The digest of a value read by this dimension; a missing value has
    /// its own digest, apart from every present one, the empty one
    /// included.
    pub(crate) fn digest(&self, key: &SessionKey, raw: &Raw<'_>) -> u128 {
        let (tag, name) = self.tag_and_name();
        let d = |tag, value: &[u8]| SessionId::digest_parts(key, tag, name, value).as_u128();
        match raw {
            Raw::Missing => d(TAG_MISSING, &[tag]),
            Raw::Bytes(b) => d(tag, b),
            Raw::Text(t) => d(tag, t.as_bytes()),
            Raw::Session(id) => id.as_u128(),
            Raw::Ip(IpAddr::V4(ip)) => d(tag, &ip.octets()),
            Raw::Ip(IpAddr::V6(ip)) => d(tag, &ip.octets()),
            Raw::Endpoint(e) => {
                let host = match e.host() {
                    HostPattern::Any => "",
                    HostPattern::Exact(h) | HostPattern::Subdomains(h) => h,
                };
                let mut buf = Vec::with_capacity(e.template().len() + host.len() + 12);
                buf.extend_from_slice(e.method().as_str().as_bytes());
                buf.push(b' ');
                buf.extend_from_slice(host.as_bytes());
                buf.push(b' ');
                buf.extend_from_slice(e.template().as_bytes());
                d(tag, &buf)
            }
        }
    }
}

impl fmt::Display for CountBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Session => f.write_str("session"),
            Kind::Header(h) => write!(f, "header:{h}"),
            Kind::Cookie(c) => write!(f, "cookie:{c}"),
            Kind::Query(q) => write!(f, "query:{q}"),
            Kind::ClientIp => f.write_str("client_ip"),
            Kind::Claim { name, .. } => write!(f, "claim:{name}"),
            Kind::Endpoint => f.write_str("endpoint"),
        }
    }
}

impl fmt::Debug for CountBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountBy({self})")
    }
}

/// A count-by value as written in a configuration file: `"session"`,
/// `"client_ip"`, `"endpoint"`, `{"header": "x-api-key"}`,
/// `{"cookie": "sid"}`, `{"query": "key"}` or
/// `{"claim": {"config": "auth0", "path": "$.sub"}}`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum CountBySpec {
    Session,
    ClientIp,
    Endpoint,
    Header(String),
    Cookie(String),
    Query(String),
    Claim { config: String, path: String },
}

impl TryFrom<CountBySpec> for CountBy {
    type Error = ConfigError;

    fn try_from(spec: CountBySpec) -> Result<Self, ConfigError> {
        match spec {
            CountBySpec::Session => Ok(Self::session()),
            CountBySpec::ClientIp => Ok(Self::client_ip()),
            CountBySpec::Endpoint => Ok(Self::endpoint()),
            CountBySpec::Header(name) => Self::header(&name),
            CountBySpec::Cookie(name) => Self::cookie(&name),
            CountBySpec::Query(name) => Self::query(&name),
            CountBySpec::Claim { config, path } => Self::claim(&config, &path),
        }
    }
}

fn find_query<'a>(uri: &'a Uri, name: &str) -> Option<&'a [u8]> {
    uri.query()?.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (n == name).then_some(v.as_bytes())
    })
}

/// The proxies whose forwarded headers are believed.
///
/// The client IP is the peer's address unless the peer is one of these;
/// then the `Forwarded` header (RFC 7239), or else `X-Forwarded-For`, is
/// read from the right, skipping trusted hops, and the first untrusted
/// address is the client. A hop that is not an IP address (`unknown`, an
/// obfuscated name) stops the walk at the last trusted hop. Forwarded
/// headers from untrusted peers are ignored, since anyone can send them.
///
/// ```
/// use palisade_limit::TrustedProxies;
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8", "127.0.0.1", "::1"])?;
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("192.0.2.1".parse().unwrap()));
/// assert!(TrustedProxies::new(["10.0.0.0/33"]).is_err());
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// No trusted proxy: the peer is the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Proxies given as addresses or CIDR networks (`10.0.0.0/8`,
    /// `fd00::/8`).
    pub fn new<I, T>(nets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for net in nets {
            let net = net.as_ref();
            let bad = || ConfigError::Invalid {
                what: format!("trusted proxy {net:?}"),
                reason: "expected an IP address or a CIDR network".to_owned(),
            };
            let (addr, prefix) = match net.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (net, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
                None => max,
            };
            parsed.push((addr, prefix));
        }
        Ok(Self { nets: parsed })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u128::from(n.to_bits()), u128::from(a.to_bits()), prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(n.to_bits(), a.to_bits(), prefix, 128),
            _ => false,
        })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The client IP of a request from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut last_trusted = peer;
        let forwarded = headers.contains_key(FORWARDED);
        let hops = if forwarded {
            headers.get_all(FORWARDED)
        } else {
            headers.get_all("x-forwarded-for")
        };
        let fields: Vec<&str> = hops.iter().filter_map(|v| v.to_str().ok()).collect();
        for element in fields.iter().rev().flat_map(|f| f.rsplit(',')) {
            let hop = if forwarded {
                forwarded_for(element)
            } else {
                parse_hop(element.trim())
            };
            match hop {
                Some(ip) if self.contains(ip) => last_trusted = ip,
                Some(ip) => return ip,
                None => return last_trusted,
            }
        }
        last_trusted
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

/// The `for=` address of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_hop(value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`,
/// `[::1]:80` or `::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The peer address, from axum's `ConnectInfo` or Palisade's `ClientAddr`.
fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    extensions.get::<ClientAddr>().map(|a| a.0.ip())
}

fn client_ip(view: &RequestView<'_>) -> Option<IpAddr> {
    let peer = peer_ip(view.extensions)?;
    Some(view.proxies.client_ip(peer, view.headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(proxies.client_ip(ip("192.0.2.7"), &h), ip("192.0.2.7"));
        assert_eq!(
            TrustedProxies::none().client_ip(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_peer_forwards_first_untrusted_hop_from_the_right() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        let h = headers(&[
            ("forwarded", "for=6.6.6.6"),
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=10.1.1.1",
            ),
            ("x-forwarded-for", "7.7.7.7"),
        ]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("2001:db8::1"));
        let h = headers(&[("forwarded", "for=unknown, for=10.2.2.2")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("10.2.2.2"));
        let mapped = ip("::ffff:10.0.0.1");
        assert_eq!(proxies.client_ip(mapped, &HeaderMap::new()), ip("10.0.0.1"));
    }

    #[test]
    fn cidr_prefixes_and_errors() {
        let p = TrustedProxies::new(["fd00::/8", "0.0.0.0/0"]).unwrap();
        assert!(p.contains(ip("fd12::1")) && p.contains(ip("8.8.8.8")));
        assert!(!p.contains(ip("fe80::1")));
        let err = TrustedProxies::new(["10.0.0.300"]).unwrap_err();
        assert!(err.to_string().contains("10.0.0.300"));
    }

    #[test]
    fn cookies_queries_and_claims_are_read() {
        let h = headers(&[("cookie", "a=1; sid=\"xyz\""), ("cookie", "b=")]);
        let find = |name| find_cookie(h.get_all(COOKIE), name);
        assert_eq!(find("sid"), Some(&b"xyz"[..]));
        assert_eq!(find("b"), Some(&b""[..]));
        assert_eq!(find("c"), None);
        let uri: Uri = "/x?k=v&flag&e=".parse().unwrap();
        assert_eq!(find_query(&uri, "k"), Some(&b"v"[..]));
        assert_eq!(find_query(&uri, "flag"), Some(&b""[..]));
        assert_eq!(find_query(&uri, "z"), None);
        let by = CountBy::claim("auth0", "$.user['plan-id'].tags[1]").unwrap();
        assert_eq!(by.to_string(), "claim:auth0:$.user['plan-id'].tags[1]");
        for bad in ["user", "$", "$..a", "$[x]", "$['a"] {
            assert!(CountBy::claim("auth0", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_and_empty_values_have_different_digests() {
        let key = SessionKey::from_bytes([3; 16]);
        let by = CountBy::header("x-k").unwrap();
        let missing = by.digest(&key, &Raw::Missing);
        let empty = by.digest(&key, &Raw::Bytes(b""));
        assert_ne!(missing, empty);
        let other = CountBy::header("x-j").unwrap();
        assert_ne!(
            other.digest(&key, &Raw::Bytes(b"v")),
            by.digest(&key, &Raw::Bytes(b"v"))
        );
    }

    #[test]
    fn deserialises_every_kind() {
        let all: Vec<CountBy> = serde_json::from_str(
            r#"["session", "client_ip", "endpoint", {"header": "X-A"}, {"cookie": "sid"},
                {"query": "k"}, {"claim": {"config": "auth0", "path": "$.plan"}}]"#,
        )
        .unwrap();
        let shown: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "session",
                "client_ip",
                "endpoint",
                "header:x-a",
                "cookie:sid",
                "query:k",
                "claim:auth0:$.plan"
            ]
        );
        assert!(serde_json::from_str::<CountBy>(r#"{"cookie": "a b"}"#).is_err());
    }
}
