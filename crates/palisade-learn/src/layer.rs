//! The learning layer and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::{ConfigError, EndpointCatalogue, SharedClock, SystemClock};
use tower_layer::Layer;

use crate::observe::Recorder;
use crate::service::LearnService;
use crate::snapshot::Snapshot;
use crate::state::{Config, Inner, LearnedState, MAX_HOSTS, Shared};

/// A layer that watches every request and its response status and learns
/// the API's endpoints and their authentication posture.
///
/// Only 2xx responses teach: they admit new endpoints, count sessions and
/// posture, and reach the registered [`Recorder`]s. Other statuses are
/// counted by class on endpoints already known. What was learned is read
/// through [`LearnedState`], from [`LearnLayer::state`].
///
/// A disabled layer ([`LearnLayer::disabled`]) passes requests through with
/// one branch and no allocation.
#[derive(Clone)]
pub struct LearnLayer {
    pub(crate) state: Option<LearnedState>,
}

impl LearnLayer {
    /// A builder with the defaults: report after 10 successful requests,
    /// at most 3,000 endpoints, placeholders for parents with more than 50
    /// children, candidates aged out after an hour, the system clock.
    pub fn builder() -> LearnLayerBuilder {
        LearnLayerBuilder::default()
    }

    /// A layer that learns nothing and costs one branch per request.
    pub fn disabled() -> Self {
        Self { state: None }
    }

    /// What the layer has learned; `None` when disabled.
    pub fn state(&self) -> Option<&LearnedState> {
        self.state.as_ref()
    }
}

impl<S> Layer<S> for LearnLayer {
    type Service = LearnService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LearnService::new(inner, self.state.as_ref().map(|s| s.inner.clone()))
    }
}

impl fmt::Debug for LearnLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnLayer")
            .field("state", &self.state)
            .finish()
    }
}

/// Builds a [`LearnLayer`].
#[must_use]
pub struct LearnLayerBuilder {
    catalogue: EndpointCatalogue,
    clock: SharedClock,
    report_after: u64,
    max_endpoints: usize,
    max_siblings: usize,
    max_hosts: usize,
    candidate_ttl: Duration,
    maintenance_interval: Duration,
    recorders: Vec<Arc<dyn Recorder>>,
    snapshot: Option<Snapshot>,
}

impl Default for LearnLayerBuilder {
    fn default() -> Self {
        Self {
            catalogue: EndpointCatalogue::new(),
            clock: SystemClock::shared(),
            report_after: 10,
            max_endpoints: 3_000,
            max_siblings: 50,
            max_hosts: 8,
            candidate_ttl: Duration::from_secs(3_600),
            maintenance_interval: Duration::from_secs(10),
            recorders: Vec::new(),
            snapshot: None,
        }
    }
}

impl LearnLayerBuilder {
    /// The declared endpoints; their templates win over guessed ones.
    pub fn catalogue(mut self, catalogue: EndpointCatalogue) -> Self {
        self.catalogue = catalogue;
        self
    }

    /// The clock that stamps first and last sightings and observations.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// How many 2xx responses an endpoint needs before it is reported
    /// (10 by default, at least 1).
    pub fn report_after(mut self, requests: u64) -> Self {
        self.report_after = requests;
        self
    }

    /// The most endpoints tracked at once, reported or not (3,000 by
    /// default). New templates are admitted only below the cap; tracked
    /// ones are never pushed out by newer ones.
    pub fn max_endpoints(mut self, max: usize) -> Self {
        self.max_endpoints = max;
        self
    }

    /// How many distinct fixed names a path segment may have under one
    /// parent before they become one placeholder (50 by default).
    pub fn max_siblings(mut self, max: usize) -> Self {
        self.max_siblings = max;
        self
    }

    /// How many hosts are told apart (8 by default, at most 32); requests
    /// to other hosts, and to none, count as on any host (`*`). 0 turns
    /// host tracking off.
    pub fn max_hosts(mut self, max: usize) -> Self {
        self.max_hosts = max;
        self
    }

    /// How long a template that has not reached the reporting threshold is
    /// kept after its last 2xx response (an hour by default).
    pub fn candidate_ttl(mut self, ttl: Duration) -> Self {
        self.candidate_ttl = ttl;
        self
    }

    /// The least time between two maintenance runs started by requests
    /// that found the table full (10 seconds by default).
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.maintenance_interval = interval;
        self
    }

    /// Adds a recorder, called with every 2xx observation of a known
    /// endpoint.
    pub fn recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorders.push(recorder);
        self
    }

    /// Starts from a snapshot taken earlier.
    pub fn snapshot(mut self, snapshot: Snapshot) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Builds the layer; fails on a zero threshold or cap, or a snapshot
    /// that cannot be loaded, naming it.
    pub fn build(self) -> Result<LearnLayer, ConfigError> {
        let positive = |what: &'static str, value: u64| {
            if value == 0 {
                Err(ConfigError::OutOfRange {
                    what,
                    value: value.to_string(),
                })
            } else {
                Ok(())
            }
        };
        positive("report_after", self.report_after)?;
        positive("max_endpoints", self.max_endpoints as u64)?;
        positive("max_siblings", self.max_siblings as u64)?;
        if self.max_hosts > MAX_HOSTS {
            return Err(ConfigError::OutOfRange {
                what: "max_hosts (at most 32)",
                value: self.max_hosts.to_string(),
            });
        }
        let config = Config {
            report_after: self.report_after,
            max_endpoints: self.max_endpoints,
            max_siblings: self.max_siblings,
            max_hosts: self.max_hosts,
            candidate_ttl: self.candidate_ttl,
            maintenance_interval: self.maintenance_interval,
        };
        let shared = Arc::new(Shared::new(self.clock, self.recorders, self.report_after));
        let state = LearnedState {
            inner: Arc::new(Inner::new(config, self.catalogue, shared)),
        };
        if let Some(snapshot) = &self.snapshot {
            state.load(snapshot)?;
        }
        Ok(LearnLayer { state: Some(state) })
    }
}

impl fmt::Debug for LearnLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnLayerBuilder")
            .field("catalogue", &self.catalogue)
            .field("report_after", &self.report_after)
            .field("max_endpoints", &self.max_endpoints)
            .field("max_siblings", &self.max_siblings)
            .field("max_hosts", &self.max_hosts)
            .field("candidate_ttl", &self.candidate_ttl)
            .field("recorders", &self.recorders.len())
            .finish_non_exhaustive()
    }
}
