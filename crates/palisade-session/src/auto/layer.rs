//! The detector's shared state, its builder, its report and its layer.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, HeaderName};
use palisade_core::{ConfigError, SessionId, SessionKey, SharedClock, SystemClock};
use serde::Serialize;
use tower_layer::Layer;

use super::candidates::{Candidate, Candidates};
use super::window::Window;
use crate::identifier::Identifier;
use palisade_core::cookie::pairs;

use super::service::AutoDetectService;

/// The stable tracing target of the detector's events.
pub const TRACE_TARGET: &str = "palisade::session::auto";

/// Headers that are never identifiers: they describe the request, the
/// connection or the client software, not the client. `Authorization` is
/// counted on its own and `Cookie` is looked into cookie by cookie.
const NOT_IDENTIFIERS: &[HeaderName] = &[
    http::header::ACCEPT,
    http::header::ACCEPT_ENCODING,
    http::header::ACCEPT_LANGUAGE,
    http::header::CACHE_CONTROL,
    http::header::CONNECTION,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_TYPE,
    http::header::HOST,
    http::header::IF_MODIFIED_SINCE,
    http::header::IF_NONE_MATCH,
    http::header::ORIGIN,
    http::header::PRAGMA,
    http::header::REFERER,
    http::header::TE,
    http::header::UPGRADE,
    http::header::USER_AGENT,
    http::header::FORWARDED,
    AUTHORIZATION,
    COOKIE,
];

/// At most this many headers and this many cookies of one request are
/// looked at, so a request with thousands of fields costs a bounded amount.
const MAX_FIELDS_PER_REQUEST: usize = 32;

/// The identifier the detector chose, and the figures that led to it.
#[derive(Clone, Debug, Serialize)]
pub struct Chosen {
    /// The identifier, as `header:authorization`.
    pub identifier: String,
    /// When it was chosen, in seconds since the Unix epoch.
    pub at_unix_secs: u64,
    /// 2xx responses in the window when it was chosen.
    pub total: u64,
    /// Of those, how many requests carried `Authorization`.
    pub with_authorization: u64,
    /// Their share, from 0 to 1.
    pub share: f64,
    #[serde(skip)]
    pub(crate) chosen: Identifier,
}

/// What the detector knows, at the time of asking.
#[derive(Clone, Debug, Serialize)]
pub struct AutoDetectReport {
    /// 2xx responses in the sliding window.
    pub total: u64,
    /// Of those, how many requests carried `Authorization`.
    pub with_authorization: u64,
    /// Their share, from 0 to 1 (0 when the window is empty).
    pub share: f64,
    /// The share above which `Authorization` is chosen.
    pub threshold: f64,
    /// The fewest responses in the window before a choice is made.
    pub min_sample: u64,
    /// The window's length in seconds.
    pub window_secs: u64,
    /// Whether the user configured identifiers, so nothing is chosen.
    pub configured: bool,
    /// The chosen identifier, once chosen.
    pub chosen: Option<Chosen>,
    /// 2xx requests sampled for the candidates.
    pub sampled: u64,
    /// Headers and cookies that look like client identifiers, best first.
    /// Suggestions only: they are never applied by the detector.
    pub candidates: Vec<Candidate>,
}

pub(crate) struct State {
    window: Window,
    window_len: Duration,
    threshold: f64,
    min_sample: u64,
    sample_every: u32,
    clock: SharedClock,
    key: SessionKey,
    configured: AtomicBool,
    chosen: OnceLock<Chosen>,
    candidates: Candidates,
    total_2xx: AtomicU64,
}

/// Watches successful traffic, chooses `Authorization` as the session
/// identifier when none is configured, and ranks other candidates.
///
/// A handle: clones share one detector. Give it to the session layer with
/// [`SessionLayerBuilder::auto_detect`](crate::SessionLayerBuilder::auto_detect),
/// put [`AutoDetect::layer`] inside the session layer, and read
/// [`AutoDetect::report`] at any time.
#[derive(Clone)]
pub struct AutoDetect {
    state: Arc<State>,
}

impl AutoDetect {
    /// A detector with the defaults of [`AutoDetectBuilder`].
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder for a detector.
    pub fn builder() -> AutoDetectBuilder {
        AutoDetectBuilder::default()
    }

    /// The layer that observes responses for this detector.
    pub fn layer(&self) -> AutoDetectLayer {
        AutoDetectLayer {
            state: Some(self.state.clone()),
        }
    }

    /// The chosen identifier, once chosen: one atomic load.
    pub(crate) fn chosen(&self) -> Option<&Identifier> {
        self.state.chosen.get().map(|c| &c.chosen)
    }

    /// Tells the detector that the user configured identifiers, which it
    /// must never replace.
    pub(crate) fn mark_configured(&self) {
        self.state.configured.store(true, Relaxed);
    }

    /// What the detector knows now.
    pub fn report(&self) -> AutoDetectReport {
        let state = &self.state;
        let (total, with_authorization) = state.window.sum(state.clock.now());
        let (sampled, candidates) = state.candidates.ranked();
        AutoDetectReport {
            total,
            with_authorization,
            share: share(total, with_authorization),
            threshold: state.threshold,
            min_sample: state.min_sample,
            window_secs: state.window_len.as_secs(),
            configured: state.configured.load(Relaxed),
            chosen: state.chosen.get().cloned(),
            sampled,
            candidates,
        }
    }
}

impl Default for AutoDetect {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AutoDetect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoDetect")
            .field("chosen", &self.chosen().map(Identifier::source))
            .field("configured", &self.state.configured.load(Relaxed))
            .finish_non_exhaustive()
    }
}

fn share(total: u64, part: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

impl State {
    /// Whether this request is one of the sampled ones. A per-thread
    /// counter: no shared write.
    pub(crate) fn should_sample(&self) -> bool {
        thread_local!(static TICK: Cell<u32> = const { Cell::new(0) });
        TICK.with(|tick| {
            let n = tick.get().wrapping_add(1);
            tick.set(n);
            n % self.sample_every == 0
        })
    }

    /// The names and keyed value hashes of a request's candidate fields.
    pub(crate) fn capture(&self, headers: &HeaderMap) -> Vec<(String, u64)> {
        let mut facts = Vec::new();
        let hash = |tag, name: &[u8], value: &[u8]| {
            SessionId::digest_parts(&self.key, tag, name, value).as_u128() as u64
        };
        let mut seen_headers = 0;
        for name in headers.keys() {
            if NOT_IDENTIFIERS.contains(name) || seen_headers == MAX_FIELDS_PER_REQUEST {
                continue;
            }
            seen_headers += 1;
            if let Some(value) = headers.get(name).filter(|v| !v.is_empty()) {
                let label = format!("header:{}", name.as_str());
                facts.push((label, hash(20, name.as_ref(), value.as_bytes())));
            }
        }
        let cookies = headers
            .get_all(COOKIE)
            .iter()
            .flat_map(|f| pairs(f.as_bytes()));
        for (name, value) in cookies.take(MAX_FIELDS_PER_REQUEST) {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            let valid = name.len() <= crate::MAX_COOKIE_NAME
                && !facts
                    .iter()
                    .any(|(n, _)| n.strip_prefix("cookie:") == Some(name));
            if valid && !value.is_empty() {
                facts.push((format!("cookie:{name}"), hash(21, name.as_bytes(), value)));
            }
        }
        facts
    }

    /// Counts one finished request; only 2xx responses get here.
    pub(crate) fn observe(&self, with_auth: bool, facts: Option<Vec<(String, u64)>>) {
        let now = self.clock.now();
        self.window.add(now, with_auth);
        self.total_2xx.fetch_add(1, Relaxed);
        if let Some(facts) = facts {
            self.candidates.record(&facts);
        }
        // The share can only cross the threshold upward on a request that
        // carried the header, so only those check.
        if with_auth && !self.configured.load(Relaxed) && self.chosen.get().is_none() {
            self.consider(now);
        }
    }

    fn consider(&self, now: Duration) {
        let (total, with_authorization) = self.window.sum(now);
        let share = share(total, with_authorization);
        if total < self.min_sample || share <= self.threshold {
            return;
        }
        let Ok(chosen) = Identifier::header(AUTHORIZATION.as_str()) else {
            return;
        };
        let chosen = Chosen {
            identifier: chosen.source().to_string(),
            at_unix_secs: now.as_secs(),
            total,
            with_authorization,
            share,
            chosen,
        };
        if self.chosen.set(chosen).is_ok() {
            tracing::info!(
                target: TRACE_TARGET,
                identifier = "header:authorization",
                share,
                with_authorization,
                total,
                "session identifier chosen from traffic"
            );
        }
    }
}

/// Builds an [`AutoDetect`].
#[derive(Debug)]
#[must_use]
pub struct AutoDetectBuilder {
    threshold: f64,
    min_sample: u64,
    window: Duration,
    sample_every: NonZeroU32,
    max_names: usize,
    max_values: usize,
    clock: Option<SharedClock>,
    key: Option<SessionKey>,
}

impl Default for AutoDetectBuilder {
    fn default() -> Self {
        Self {
            threshold: 0.01,
            min_sample: 1_000,
            window: Duration::from_secs(600),
            sample_every: NonZeroU32::new(64).expect("64 is not zero"),
            max_names: 64,
            max_values: 256,
            clock: None,
            key: None,
        }
    }
}

impl AutoDetectBuilder {
    /// The share of 2xx responses carrying `Authorization` above which it
    /// is chosen; 0.01 (1%) by default, strictly between 0 and 1.
    pub fn threshold(mut self, share: f64) -> Self {
        self.threshold = share;
        self
    }

    /// The fewest 2xx responses in the window before a choice is made;
    /// 1,000 by default.
    pub fn min_sample(mut self, responses: u64) -> Self {
        self.min_sample = responses;
        self
    }

    /// The length of the sliding window; 10 minutes by default.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Looks at the headers and cookies of one request in `n` for the
    /// candidates; 64 by default, 1 for every request.
    pub fn sample_every(mut self, n: NonZeroU32) -> Self {
        self.sample_every = n;
        self
    }

    /// Caps the header and cookie names tracked as candidates (64 by
    /// default) and the value hashes kept per name (256 by default).
    pub fn capacity(mut self, names: usize, values_per_name: usize) -> Self {
        self.max_names = names;
        self.max_values = values_per_name;
        self
    }

    /// The clock; the system clock by default.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The key of the value hashes; the process key by default.
    pub fn key(mut self, key: SessionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Builds the detector; fails on a threshold outside (0, 1), a zero
    /// minimum sample, or a window shorter than a second.
    pub fn build(self) -> Result<AutoDetect, ConfigError> {
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(ConfigError::OutOfRange {
                what: "auto-detect threshold (a share between 0 and 1)",
                value: self.threshold.to_string(),
            });
        }
        if self.min_sample == 0 {
            return Err(ConfigError::OutOfRange {
                what: "auto-detect minimum sample",
                value: "0".to_owned(),
            });
        }
        if self.window < Duration::from_secs(1) {
            return Err(ConfigError::OutOfRange {
                what: "auto-detect window (at least 1 s)",
                value: format!("{:?}", self.window),
            });
        }
        Ok(AutoDetect {
            state: Arc::new(State {
                window: Window::new(self.window),
                window_len: self.window,
                threshold: self.threshold,
                min_sample: self.min_sample,
                sample_every: self.sample_every.get(),
                clock: self.clock.unwrap_or_else(SystemClock::shared),
                key: self.key.unwrap_or_default(),
                configured: AtomicBool::new(false),
                chosen: OnceLock::new(),
                candidates: Candidates::new(self.max_names, self.max_values),
                total_2xx: AtomicU64::new(0),
            }),
        })
    }
}

/// A layer that feeds an [`AutoDetect`] with the requests and responses
/// passing through; made by [`AutoDetect::layer`], or [`AutoDetectLayer::off`]
/// for a pass-through.
#[derive(Clone)]
pub struct AutoDetectLayer {
    state: Option<Arc<State>>,
}

impl AutoDetectLayer {
    /// A layer that observes nothing and passes every request on.
    pub fn off() -> Self {
        Self { state: None }
    }
}

impl<S> Layer<S> for AutoDetectLayer {
    type Service = AutoDetectService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AutoDetectService::new(inner, self.state.clone())
    }
}

impl fmt::Debug for AutoDetectLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoDetectLayer")
            .field("on", &self.state.is_some())
            .finish()
    }
}
