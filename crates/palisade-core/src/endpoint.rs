//! Endpoints and the catalogue of declared path templates.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use http::Method;

use crate::error::ConfigError;
use crate::intern::intern;

/// Which hosts an endpoint answers on.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Every host.
    Any,
    /// One host, compared without case and without port.
    Exact(&'static str),
    /// Every subdomain of a host: `*.example.com` matches `api.example.com`
    /// but not `example.com`. Holds the suffix with its leading dot.
    Subdomains(&'static str),
}

impl HostPattern {
    /// Parses `*`, `host` or `*.host`; empty means every host.
    pub fn parse(pattern: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::InvalidHostPattern {
            pattern: pattern.to_owned(),
        };
        if pattern.is_empty() || pattern == "*" {
            return Ok(Self::Any);
        }
        let (wild, host) = match pattern.strip_prefix("*.") {
            Some(host) => (true, host),
            None => (false, pattern),
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !host.starts_with('.')
            && !host.ends_with('.');
        if !valid {
            return Err(bad());
        }
        let host = host.to_ascii_lowercase();
        Ok(if wild {
            Self::Subdomains(intern(&format!(".{host}")))
        } else {
            Self::Exact(intern(&host))
        })
    }

    /// Whether `host` (without port) matches.
    pub fn matches(self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => host.eq_ignore_ascii_case(exact),
            Self::Subdomains(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }

    /// Exact hosts beat subdomain patterns, longer suffixes beat shorter
    /// ones, and any host comes last.
    fn rank(self) -> (u8, usize) {
        match self {
            Self::Exact(_) => (0, 0),
            Self::Subdomains(suffix) => (1, usize::MAX - suffix.len()),
            Self::Any => (2, 0),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(host) => f.write_str(host),
            Self::Subdomains(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostPattern({self})")
    }
}

#[derive(PartialEq, Eq, Hash)]
struct EndpointDef {
    method: Method,
    host: HostPattern,
    template: &'static str,
}

/// An operation of the API: method, host pattern and path template, such as
/// `GET /users/{id}`.
///
/// Endpoints are interned when declared or first resolved, so an `Endpoint`
/// is one pointer: copying it into every request costs nothing, and two
/// equal endpoints are the same pointer.
#[derive(Clone, Copy)]
pub struct Endpoint(&'static EndpointDef);

impl Endpoint {
    /// The endpoint for `method`, `host` and `template`, interned.
    ///
    /// The template is taken as given; [`EndpointCatalogue`] checks templates
    /// when it is built.
    pub fn new(method: Method, host: HostPattern, template: &str) -> Self {
        static TABLE: OnceLock<Mutex<HashMap<&'static EndpointDef, ()>>> = OnceLock::new();
        let def = EndpointDef {
            method,
            host,
            template: intern(template),
        };
        let table = TABLE.get_or_init(Default::default);
        let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((found, ())) = table.get_key_value(&def) {
            return Self(found);
        }
        let leaked: &'static EndpointDef = Box::leak(Box::new(def));
        table.insert(leaked, ());
        Self(leaked)
    }

    /// The endpoint of a route template that a router matched, on any host.
    ///
    /// Route templates are few and fixed by the application, so each thread
    /// keeps the ones it has seen and finds them again without a lock.
    #[cfg(feature = "axum")]
    fn matched(method: &Method, template: &str) -> Self {
        use std::cell::RefCell;
        thread_local! {
            static SEEN: RefCell<HashMap<Box<str>, Vec<Endpoint>>> = RefCell::default();
        }
        SEEN.with_borrow_mut(|seen| {
            if let Some(found) = seen
                .get(template)
                .and_then(|by_method| by_method.iter().find(|e| e.method() == method))
            {
                return *found;
            }
            let endpoint = Self::new(method.clone(), HostPattern::Any, template);
            seen.entry(template.into()).or_default().push(endpoint);
            endpoint
        })
    }

    /// The HTTP method.
    pub fn method(&self) -> &'static Method {
        &self.0.method
    }

    /// The hosts it answers on.
    pub fn host(&self) -> HostPattern {
        self.0.host
    }

    /// The path template, such as `/users/{id}`.
    pub fn template(&self) -> &'static str {
        self.0.template
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Endpoint {}

impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0, state);
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.host {
            HostPattern::Any => write!(f, "{} {}", self.0.method, self.0.template),
            host => write!(f, "{} {}{}", self.0.method, host, self.0.template),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

/// The declared path templates a request is matched against.
///
/// Matching uses [`matchit`], the router behind axum: static segments beat
/// parameters and parameters beat catch-alls, so the most specific template
/// wins (`/users/me` beats `/users/{id}`). Among endpoints with the same
/// template, an exact host beats a subdomain pattern, which beats any host.
///
/// ```
/// use palisade_core::EndpointCatalogue;
///
/// let catalogue = EndpointCatalogue::builder()
///     .endpoint("GET", "/users/{id}")?
///     .endpoint("GET", "/users/me")?
///     .build()?;
/// let me = catalogue.resolve(&http::Method::GET, None, "/users/me").unwrap();
/// assert_eq!(me.template(), "/users/me");
/// let other = catalogue.resolve(&http::Method::GET, None, "/users/42").unwrap();
/// assert_eq!(other.to_string(), "GET /users/{id}");
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct EndpointCatalogue {
    methods: Vec<(Method, matchit::Router<Vec<Endpoint>>)>,
    declared: Vec<Endpoint>,
}

impl EndpointCatalogue {
    /// An empty catalogue: nothing resolves except through axum's
    /// `MatchedPath`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder to declare endpoints.
    pub fn builder() -> EndpointCatalogueBuilder {
        EndpointCatalogueBuilder::default()
    }

    /// The declared endpoints, in order of declaration.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.declared
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.declared.is_empty()
    }

    /// The most specific declared endpoint for a request.
    ///
    /// `host` is the request's host, with or without port; `None` matches
    /// only endpoints declared for any host.
    pub fn resolve(&self, method: &Method, host: Option<&str>, path: &str) -> Option<Endpoint> {
        let (_, router) = self.methods.iter().find(|(m, _)| m == method)?;
        let candidates = router.at(path).ok()?.value;
        let host = host.map(strip_port);
        candidates
            .iter()
            .find(|e| match host {
                Some(host) => e.host().matches(host),
                None => e.host() == HostPattern::Any,
            })
            .copied()
    }

    /// The endpoint of a request: axum's `MatchedPath` when the `axum`
    /// feature is on and the router put one in the extensions, else the
    /// most specific declared template.
    pub fn resolve_request<B>(&self, request: &http::Request<B>) -> Option<Endpoint> {
        let host = request_host(request);
        #[cfg(feature = "axum")]
        if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
            let method = request.method();
            if let Some(declared) = self.resolve(method, host, matched.as_str())
                && declared.template() == matched.as_str()
            {
                return Some(declared);
            }
            return Some(Endpoint::matched(method, matched.as_str()));
        }
        self.resolve(request.method(), host, request.uri().path())
    }
}

impl EndpointCatalogue {
    /// The endpoint of a request, resolved once per request: the
    /// [`Endpoint`] an outer layer put in the extensions, or else the one
    /// [`resolve_request`](Self::resolve_request) finds, which is then put
    /// there for the layers inside.
    pub fn endpoint_of<B>(&self, request: &mut http::Request<B>) -> Option<Endpoint> {
        if let Some(endpoint) = request.extensions().get::<Endpoint>() {
            return Some(*endpoint);
        }
        let endpoint = self.resolve_request(request)?;
        request.extensions_mut().insert(endpoint);
        Some(endpoint)
    }
}

impl fmt::Debug for EndpointCatalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.declared).finish()
    }
}

/// The host a request was sent to: the URI's authority (HTTP/2, absolute
/// form) or else the `Host` header, without port.
pub(crate) fn request_host<B>(request: &http::Request<B>) -> Option<&str> {
    let host = match request.uri().host() {
        Some(host) => host,
        None => request.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    Some(strip_port(host))
}

fn strip_port(host: &str) -> &str {
    // An IPv6 literal keeps its brackets; only a trailing `:digits` goes.
    match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            if name.starts_with('[') && !name.ends_with(']') {
                host
            } else {
                name
            }
        }
        _ => host,
    }
}

/// The endpoints of one method, grouped by template.
type HostsByTemplate = Vec<(&'static str, Vec<Endpoint>)>;

/// Declares the endpoints of an [`EndpointCatalogue`].
#[derive(Debug, Default)]
#[must_use]
pub struct EndpointCatalogueBuilder {
    endpoints: Vec<Endpoint>,
}

impl EndpointCatalogueBuilder {
    /// Declares `method template` on every host.
    pub fn endpoint(self, method: &str, template: &str) -> Result<Self, ConfigError> {
        self.endpoint_on(method, "*", template)
    }

    /// Declares `method template` on the hosts matching `host` (`api.example.com`,
    /// `*.example.com`, or `*` for every host).
    pub fn endpoint_on(
        mut self,
        method: &str,
        host: &str,
        template: &str,
    ) -> Result<Self, ConfigError> {
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|_| ConfigError::InvalidMethod {
                method: method.to_owned(),
            })?;
        let host = HostPattern::parse(host)?;
        if !template.starts_with('/') {
            return Err(ConfigError::InvalidTemplate {
                template: template.to_owned(),
                reason: "a path template starts with `/`".to_owned(),
            });
        }
        let endpoint = Endpoint::new(method, host, template);
        if !self.endpoints.contains(&endpoint) {
            self.endpoints.push(endpoint);
        }
        Ok(self)
    }

    /// Adds an endpoint made elsewhere, such as a saved discovery.
    pub fn with(mut self, endpoint: Endpoint) -> Self {
        if !self.endpoints.contains(&endpoint) {
            self.endpoints.push(endpoint);
        }
        self
    }

    /// Builds the catalogue; fails on a template the router refuses, such
    /// as two templates that differ only in a parameter's name.
    pub fn build(self) -> Result<EndpointCatalogue, ConfigError> {
        let mut grouped: Vec<(Method, HostsByTemplate)> = Vec::new();
        for endpoint in &self.endpoints {
            let method = endpoint.method();
            let by_template = match grouped.iter_mut().find(|(m, _)| m == method) {
                Some((_, templates)) => templates,
                None => {
                    grouped.push((method.clone(), Vec::new()));
                    &mut grouped.last_mut().expect("just pushed").1
                }
            };
            match by_template
                .iter_mut()
                .find(|(t, _)| *t == endpoint.template())
            {
                Some((_, hosts)) => hosts.push(*endpoint),
                None => by_template.push((endpoint.template(), vec![*endpoint])),
            }
        }

        let mut methods = Vec::with_capacity(grouped.len());
        for (method, templates) in grouped {
            let mut router = matchit::Router::new();
            for (template, mut hosts) in templates {
                hosts.sort_by_key(|e| e.host().rank());
                router
                    .insert(template, hosts)
                    .map_err(|e| ConfigError::InvalidTemplate {
                        template: template.to_owned(),
                        reason: e.to_string(),
                    })?;
            }
            methods.push((method, router));
        }
        Ok(EndpointCatalogue {
            methods,
            declared: self.endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> EndpointCatalogue {
        EndpointCatalogue::builder()
            .endpoint("GET", "/users/{id}")
            .unwrap()
            .endpoint("GET", "/users/me")
            .unwrap()
            .endpoint("POST", "/users")
            .unwrap()
            .endpoint_on("GET", "*.example.com", "/status")
            .unwrap()
            .endpoint_on("GET", "admin.example.com", "/status")
            .unwrap()
            .endpoint("GET", "/files/{*rest}")
            .unwrap()
            .build()
            .unwrap()
    }

    #[test]
    fn most_specific_template_wins() {
        let c = catalogue();
        let me = c.resolve(&Method::GET, None, "/users/me").unwrap();
        assert_eq!(me.to_string(), "GET /users/me");
        let id = c.resolve(&Method::GET, None, "/users/17").unwrap();
        assert_eq!(id.template(), "/users/{id}");
        let file = c.resolve(&Method::GET, None, "/files/a/b").unwrap();
        assert_eq!(file.template(), "/files/{*rest}");
    }

    #[test]
    fn method_must_match() {
        let c = catalogue();
        assert!(c.resolve(&Method::DELETE, None, "/users/1").is_none());
        assert_eq!(
            c.resolve(&Method::POST, None, "/users").unwrap().method(),
            Method::POST
        );
    }

    #[test]
    fn exact_host_beats_subdomains_and_port_is_ignored() {
        let c = catalogue();
        let admin = c
            .resolve(&Method::GET, Some("ADMIN.example.com:8443"), "/status")
            .unwrap();
        assert_eq!(admin.host(), HostPattern::Exact("admin.example.com"));
        let api = c
            .resolve(&Method::GET, Some("api.example.com"), "/status")
            .unwrap();
        assert_eq!(api.to_string(), "GET *.example.com/status");
        assert!(
            c.resolve(&Method::GET, Some("example.com"), "/status")
                .is_none()
        );
        assert!(c.resolve(&Method::GET, None, "/status").is_none());
    }

    #[test]
    fn endpoint_of_resolves_once_and_shares_it() {
        let c = catalogue();
        let mut request = http::Request::get("/users/5").body(()).unwrap();
        let found = c.endpoint_of(&mut request).unwrap();
        assert_eq!(request.extensions().get::<Endpoint>(), Some(&found));
        // A later layer with another catalogue sees what the first found.
        assert_eq!(
            EndpointCatalogue::new().endpoint_of(&mut request),
            Some(found)
        );
        let mut unknown = http::Request::get("/nope").body(()).unwrap();
        assert_eq!(c.endpoint_of(&mut unknown), None);
        assert!(unknown.extensions().get::<Endpoint>().is_none());
    }

    #[test]
    fn endpoints_are_interned() {
        let a = Endpoint::new(Method::GET, HostPattern::Any, "/x/{id}");
        let b = Endpoint::new(Method::GET, HostPattern::Any, &String::from("/x/{id}"));
        assert_eq!(a, b);
        assert_ne!(a, Endpoint::new(Method::PUT, HostPattern::Any, "/x/{id}"));
    }

    #[test]
    fn bad_inputs_are_named() {
        let err = EndpointCatalogue::builder()
            .endpoint("GE T", "/")
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::InvalidMethod {
                method: "GE T".into()
            }
        );
        let err = EndpointCatalogue::builder()
            .endpoint_on("GET", "*.", "/")
            .unwrap_err();
        assert!(err.to_string().contains("\"*.\""));
        let err = EndpointCatalogue::builder()
            .endpoint("GET", "users")
            .unwrap_err();
        assert!(err.to_string().contains("\"users\""));
        let err = EndpointCatalogue::builder()
            .endpoint("GET", "/a/{id}")
            .unwrap()
            .endpoint("GET", "/a/{name}")
            .unwrap()
            .build()
            .unwrap_err();
        let ConfigError::InvalidTemplate { template, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(template, "/a/{name}");
    }

    #[test]
    fn request_host_reads_uri_then_header() {
        let request = http::Request::get("http://h.example:80/p")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), Some("h.example"));
        let request = http::Request::get("/p")
            .header("host", "[::1]:3000")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), Some("[::1]"));
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}

#[cfg(all(test, feature = "axum"))]
mod axum_tests {
    use super::*;
    use axum::{Router, body::Body, extract::Request, middleware, routing::get};
    use tower::ServiceExt;

    #[tokio::test]
    async fn matched_path_is_used_and_declared_hosts_kept() {
        let catalogue = std::sync::Arc::new(
            EndpointCatalogue::builder()
                .endpoint("GET", "/declared/{id}")
                .unwrap()
                .build()
                .unwrap(),
        );
        let app = Router::new()
            .route("/items/{item}", get(|| async {}))
            .route("/declared/{id}", get(|| async {}))
            .layer(middleware::from_fn(
                move |request: Request, _next: middleware::Next| {
                    let endpoint = catalogue.resolve_request(&request);
                    async move { endpoint.map(|e| e.to_string()).unwrap_or_default() }
                },
            ));
        for (path, expected) in [
            ("/items/42", "GET /items/{item}"),
            ("/items/43", "GET /items/{item}"),
            ("/declared/1", "GET /declared/{id}"),
        ] {
            let request = http::Request::get(path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            assert_eq!(body, expected);
        }
    }
}
