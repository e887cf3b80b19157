//! JWKS fetched from a URL and refreshed in the background (feature
//! `remote-jwks`).
//!
//! A [`RemoteJwks`] given to
//! [`TokenConfigBuilder::remote_jwks`](crate::TokenConfigBuilder::remote_jwks)
//! starts a tokio task that fetches the key set at once, then on an
//! interval, and early when a token names a `kid` the set lacks, at most
//! once per cooldown (30 s or more) so that made-up kids cannot hammer the
//! identity provider. Requests never wait for a fetch: they are verified
//! with the keys at hand, and a token with a new kid is refused until the
//! fetch that brings the key has landed.
//!
//! # https
//!
//! The built-in [`HttpFetcher`] speaks plain HTTP only: Palisade carries
//! no TLS stack. For an identity provider on https, which is nearly all of
//! them, implement [`JwksFetcher`] with the HTTP client of your
//! application (one with rustls or native-tls) and pass it with
//! [`RemoteJwks::fetcher`]. `HttpFetcher` refuses `https` URLs rather than
//! sending them in clear.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use palisade_core::{ConfigError, SharedClock, SystemClock};
use tokio::sync::{Notify, watch};

use crate::keys::{KeyStore, parse_lenient};

/// The shortest cooldown between refreshes caused by unknown kids.
pub const MIN_COOLDOWN: Duration = Duration::from_secs(30);

/// The default refresh interval.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// The largest JWKS document [`HttpFetcher`] reads.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The future a [`JwksFetcher`] returns.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Bytes, FetchError>> + Send + 'a>>;

/// Fetches a JWKS document; implement it to bring your own HTTP client
/// (for https, say).
pub trait JwksFetcher: Send + Sync + fmt::Debug + 'static {
    /// The body of the document at `url`.
    fn fetch<'a>(&'a self, url: &'a Uri) -> FetchFuture<'a>;
}

/// Why a JWKS could not be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    message: String,
}

impl FetchError {
    /// An error with this explanation.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FetchError {}

/// A plain-HTTP fetcher on hyper-util's client; refuses `https` URLs (see
/// the [module docs](self)).
#[derive(Clone, Debug)]
pub struct HttpFetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl HttpFetcher {
    /// A fetcher with a 10 s timeout.
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            timeout: Duration::from_secs(10),
        }
    }

    async fn get(&self, url: &Uri) -> Result<Bytes, FetchError> {
        if url.scheme_str() != Some("http") {
            return Err(FetchError::new(
                "the built-in fetcher speaks plain http only; give RemoteJwks a fetcher with TLS",
            ));
        }
        let response = self
            .client
            .get(url.clone())
            .await
            .map_err(|e| FetchError::new(format!("request failed: {e}")))?;
        if !response.status().is_success() {
            return Err(FetchError::new(format!("status {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| FetchError::new(format!("body: {e}")))?;
        Ok(body.to_bytes())
    }
}

impl Default for HttpFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl JwksFetcher for HttpFetcher {
    fn fetch<'a>(&'a self, url: &'a Uri) -> FetchFuture<'a> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.get(url))
                .await
                .map_err(|_| FetchError::new("timed out"))?
        })
    }
}

/// Where and how often a configuration's keys are fetched.
#[derive(Clone, Debug)]
#[must_use]
pub struct RemoteJwks {
    url: Uri,
    fetcher: Arc<dyn JwksFetcher>,
    interval: Duration,
    cooldown: Duration,
    clock: Option<SharedClock>,
}

impl RemoteJwks {
    /// Keys fetched from `url` with the [`HttpFetcher`], every 5 minutes
    /// and on unknown kids at most every 30 s.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::Invalid {
            what: format!("JWKS URL {url:?}"),
            reason: reason.to_owned(),
        };
        let parsed: Uri = url.parse().map_err(|_| bad("not a URI"))?;
        if parsed.scheme().is_none() || parsed.authority().is_none() {
            return Err(bad("an absolute URL is needed"));
        }
        Ok(Self {
            url: parsed,
            fetcher: Arc::new(HttpFetcher::new()),
            interval: DEFAULT_REFRESH_INTERVAL,
            cooldown: MIN_COOLDOWN,
            clock: None,
        })
    }

    /// Fetches with `fetcher` instead of the plain-HTTP one.
    pub fn fetcher(mut self, fetcher: impl JwksFetcher) -> Self {
        self.fetcher = Arc::new(fetcher);
        self
    }

    /// How often the keys are fetched when nothing asks earlier.
    pub fn refresh_interval(mut self, interval: Duration) -> Result<Self, ConfigError> {
        if interval < Duration::from_secs(1) {
            return Err(ConfigError::OutOfRange {
                what: "JWKS refresh interval (at least 1 s)",
                value: format!("{interval:?}"),
            });
        }
        self.interval = interval;
        Ok(self)
    }

    /// The least time between two refreshes asked for by unknown kids; at
    /// least 30 s.
    pub fn cooldown(mut self, cooldown: Duration) -> Result<Self, ConfigError> {
        if cooldown < MIN_COOLDOWN {
            return Err(ConfigError::OutOfRange {
                what: "JWKS refresh cooldown (at least 30 s)",
                value: format!("{cooldown:?}"),
            });
        }
        self.cooldown = cooldown;
        Ok(self)
    }

    /// The clock the cooldown is measured with; the system clock by default.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Starts the refresh task for `store`; needs a tokio runtime.
    pub(crate) fn start(self, store: &Arc<KeyStore>) -> Result<RemoteStatus, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::Invalid {
            what: format!("remote JWKS of token configuration {:?}", store.config),
            reason: "build it inside a tokio runtime: the refresh runs as a task".to_owned(),
        })?;
        let (loaded, _) = watch::channel(0);
        let refresher = Arc::new(Refresher {
            notify: Notify::new(),
            last_attempt: AtomicU64::new(NEVER),
            attempts: AtomicU64::new(0),
            cooldown: self.cooldown,
            clock: self.clock.unwrap_or_else(SystemClock::shared),
            loaded,
        });
        let hook = refresher.clone();
        store.on_unknown_kid(Box::new(move || {
            hook.request();
        }));
        runtime.spawn(refresh_task(
            Arc::downgrade(store),
            refresher.clone(),
            self.fetcher,
            self.url,
            self.interval,
        ));
        Ok(RemoteStatus { refresher })
    }
}

const NEVER: u64 = u64::MAX;

struct Refresher {
    notify: Notify,
    /// Clock time of the last fetch, in nanoseconds since the epoch.
    last_attempt: AtomicU64,
    attempts: AtomicU64,
    cooldown: Duration,
    clock: SharedClock,
    /// How many fetches installed keys.
    loaded: watch::Sender<u64>,
}

impl Refresher {
    /// Asks for an early refresh; refused within the cooldown.
    fn request(&self) -> bool {
        let now = nanos(self.clock.now());
        let last = self.last_attempt.load(Ordering::Acquire);
        if last != NEVER && now < last.saturating_add(nanos(self.cooldown)) {
            return false;
        }
        if self
            .last_attempt
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another request won the race and woke the task.
            return false;
        }
        self.notify.notify_one();
        true
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

async fn refresh_task(
    store: Weak<KeyStore>,
    refresher: Arc<Refresher>,
    fetcher: Arc<dyn JwksFetcher>,
    url: Uri,
    interval: Duration,
) {
    loop {
        let Some(strong) = store.upgrade() else {
            return;
        };
        refresher
            .last_attempt
            .store(nanos(refresher.clock.now()), Ordering::Release);
        refresher.attempts.fetch_add(1, Ordering::AcqRel);
        match fetch_keys(&strong, fetcher.as_ref(), &url).await {
            Ok(()) => {
                refresher.loaded.send_modify(|n| *n += 1);
            }
            Err(reason) => tracing::warn!(
                target: crate::TRACE_TARGET,
                config = strong.config,
                %reason,
                "JWKS refresh failed; the keys at hand stay"
            ),
        }
        drop(strong);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = refresher.notify.notified() => {}
        }
    }
}

async fn fetch_keys(store: &KeyStore, fetcher: &dyn JwksFetcher, url: &Uri) -> Result<(), String> {
    let body = fetcher.fetch(url).await.map_err(|e| e.to_string())?;
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
    let (keys, errors) = parse_lenient(store.config, &set);
    for error in &errors {
        tracing::warn!(target: crate::TRACE_TARGET, %error, "JWKS key skipped");
    }
    if keys.is_empty() {
        return Err("no usable key in the fetched JWKS".to_owned());
    }
    store.replace(keys);
    Ok(())
}

/// The state of a configuration's remote key set.
#[derive(Clone)]
pub struct RemoteStatus {
    refresher: Arc<Refresher>,
}

impl RemoteStatus {
    /// How many fetches were started.
    pub fn attempts(&self) -> u64 {
        self.refresher.attempts.load(Ordering::Acquire)
    }

    /// How many fetches installed keys.
    pub fn loads(&self) -> u64 {
        *self.refresher.loaded.borrow()
    }

    /// Waits until at least `count` fetches have installed keys; at start,
    /// `loaded(1)` waits for the first key set.
    pub async fn loaded(&self, count: u64) {
        let mut rx = self.refresher.loaded.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|n| *n >= count).await;
    }

    /// Asks for an early refresh, as an unknown kid does; `false` when
    /// refused by the cooldown.
    pub fn request_refresh(&self) -> bool {
        self.refresher.request()
    }
}

impl fmt::Debug for RemoteStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStatus")
            .field("attempts", &self.attempts())
            .field("loads", &self.loads())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(RemoteJwks::new("/jwks.json").is_err());
        let remote = RemoteJwks::new("http://id.example/jwks.json").unwrap();
        let err = remote.clone().cooldown(Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("at least 30 s"), "{err}");
        assert!(remote.refresh_interval(Duration::ZERO).is_err());
    }

    #[tokio::test]
    async fn http_fetcher_refuses_https() {
        let url: Uri = "https://id.example/jwks.json".parse().unwrap();
        let err = HttpFetcher::new().fetch(&url).await.unwrap_err();
        assert!(err.to_string().contains("plain http only"), "{err}");
    }
}
