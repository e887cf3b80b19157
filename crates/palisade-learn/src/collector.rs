//! What is counted per endpoint: plain atomics, written on the request path.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use http::Method;
use palisade_core::{Endpoint, SessionId};

use crate::normalize::Segment;
use crate::sketch::SessionSketch;
use crate::state::Shared;

/// Where an endpoint's template came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Declared in the endpoint catalogue.
    Declared,
    /// Matched by the application's router (axum's `MatchedPath`).
    Matched,
    /// Guessed from the paths of the requests.
    Discovered,
}

/// What the user decided about a discovered endpoint.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    /// Nothing yet.
    #[default]
    None,
    /// Kept: never aged out, listed in the OpenAPI document, and part of
    /// [`LearnedState::catalogue`](crate::LearnedState::catalogue).
    Saved,
    /// Hidden from reports and the OpenAPI document; still counted, so it
    /// is not discovered again.
    Ignored,
}

impl Mark {
    fn to_u8(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Saved => 1,
            Self::Ignored => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Saved,
            2 => Self::Ignored,
            _ => Self::None,
        }
    }
}

/// The counters of one endpoint.
pub(crate) struct Collector {
    pub(crate) method: Method,
    /// The host, or `*`.
    pub(crate) host: Box<str>,
    /// Index of the host in the host registry (0: any host).
    pub(crate) host_index: u8,
    pub(crate) segments: Vec<Segment>,
    pub(crate) template: Box<str>,
    pub(crate) origin: Origin,
    /// The interned endpoint: set at once for declared and matched
    /// endpoints, and when a discovered one reaches the reporting threshold.
    pub(crate) endpoint: OnceLock<Endpoint>,
    /// Responses by class, 1xx to 5xx.
    pub(crate) status: [AtomicU64; 5],
    pub(crate) with_session: AtomicU64,
    pub(crate) without_session: AtomicU64,
    /// Bit `i`: the source in slot `i` of the source registry was seen.
    pub(crate) sources: AtomicU32,
    /// Seconds since the epoch of the first and last 2xx response.
    pub(crate) first_seen: AtomicU64,
    pub(crate) last_seen: AtomicU64,
    pub(crate) sessions: SessionSketch,
    mark: AtomicU8,
    /// The clock, recorders and source registry of the layer.
    pub(crate) shared: Arc<Shared>,
}

impl Collector {
    pub(crate) fn new(
        method: Method,
        host: (u8, Box<str>),
        segments: Vec<Segment>,
        template: Box<str>,
        origin: Origin,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            method,
            host_index: host.0,
            host: host.1,
            segments,
            template,
            origin,
            endpoint: OnceLock::new(),
            status: Default::default(),
            with_session: AtomicU64::new(0),
            without_session: AtomicU64::new(0),
            sources: AtomicU32::new(0),
            first_seen: AtomicU64::new(u64::MAX),
            last_seen: AtomicU64::new(0),
            sessions: SessionSketch::new(),
            mark: AtomicU8::new(0),
            shared,
        }
    }

    /// Counts a response; for a 2xx, returns the number of 2xx responses
    /// before this one.
    pub(crate) fn count(
        &self,
        status: u16,
        session: Option<SessionId>,
        source_bit: u32,
        now_secs: u64,
    ) -> Option<u64> {
        let class = usize::from(status / 100);
        if !(1..=5).contains(&class) {
            return None;
        }
        let before = self.status[class - 1].fetch_add(1, Ordering::Relaxed);
        if class != 2 {
            return None;
        }
        match session {
            Some(id) => {
                self.with_session.fetch_add(1, Ordering::Relaxed);
                self.sessions.add(id);
                if source_bit != 0 && self.sources.load(Ordering::Relaxed) & source_bit == 0 {
                    self.sources.fetch_or(source_bit, Ordering::Relaxed);
                }
            }
            None => {
                self.without_session.fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.first_seen.load(Ordering::Relaxed) > now_secs {
            self.first_seen.fetch_min(now_secs, Ordering::Relaxed);
        }
        if self.last_seen.load(Ordering::Relaxed) < now_secs {
            self.last_seen.fetch_max(now_secs, Ordering::Relaxed);
        }
        Some(before)
    }

    pub(crate) fn successful(&self) -> u64 {
        self.status[1].load(Ordering::Relaxed)
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark::from_u8(self.mark.load(Ordering::Relaxed))
    }

    pub(crate) fn set_mark(&self, mark: Mark) {
        self.mark.store(mark.to_u8(), Ordering::Relaxed);
    }

    /// Adds `other`'s counts to this one's.
    pub(crate) fn absorb(&self, other: &Collector) {
        for (mine, theirs) in self.status.iter().zip(&other.status) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let add = |a: &AtomicU64, b: &AtomicU64| {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        };
        add(&self.with_session, &other.with_session);
        add(&self.without_session, &other.without_session);
        self.sources
            .fetch_or(other.sources.load(Ordering::Relaxed), Ordering::Relaxed);
        self.first_seen
            .fetch_min(other.first_seen.load(Ordering::Relaxed), Ordering::Relaxed);
        self.last_seen
            .fetch_max(other.last_seen.load(Ordering::Relaxed), Ordering::Relaxed);
        self.sessions.merge(&other.sessions);
        if self.mark() == Mark::None {
            self.set_mark(other.mark());
        }
    }
}
