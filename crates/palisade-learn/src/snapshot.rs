//! Snapshots: everything learned, as plain serde data, to persist and load
//! at start-up.

use std::sync::atomic::Ordering;

use http::Method;
use palisade_core::{ConfigError, Endpoint, HostPattern, SessionSource, SourceKind};
use serde::{Deserialize, Serialize};

use crate::collector::{Collector, Mark, Origin};
use crate::discovery::StatusClasses;
use crate::normalize;
use crate::state::LearnedState;

/// The format version written by this crate.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Everything the learning layer learned, serialisable with serde.
///
/// Session ids are not in it: distinct sessions are kept as the registers
/// of their sketch, from which no id can be read back.
///
/// ```
/// use palisade_learn::{LearnLayer, Snapshot};
///
/// let layer = LearnLayer::builder().build()?;
/// let json = serde_json::to_string(&layer.state().unwrap().snapshot()).unwrap();
///
/// // At the next start:
/// let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
/// let layer = LearnLayer::builder().snapshot(snapshot).build()?;
/// # let _ = layer;
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`] when written.
    pub version: u32,
    /// When it was taken, in seconds since the Unix epoch.
    pub taken_at: u64,
    /// Every tracked endpoint, reported or not.
    pub endpoints: Vec<EndpointRecord>,
}

/// The counters of one endpoint in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The HTTP method.
    pub method: String,
    /// The host, or `*`.
    pub host: String,
    /// The path template.
    pub template: String,
    /// Where the template came from.
    pub origin: Origin,
    /// What the user decided about it.
    #[serde(default)]
    pub mark: Mark,
    /// Responses by status class.
    pub status: StatusClasses,
    /// 2xx responses with a session.
    pub with_session: u64,
    /// 2xx responses without one.
    pub without_session: u64,
    /// Session identifiers seen, as `header:authorization`.
    pub identifiers: Vec<String>,
    /// First 2xx response, seconds since the epoch (0: none).
    pub first_seen: u64,
    /// Last 2xx response, seconds since the epoch.
    pub last_seen: u64,
    /// Non-zero registers of the distinct-session sketch, `[index, rank]`.
    pub sessions_sketch: Vec<(u16, u8)>,
}

impl EndpointRecord {
    fn of(collector: &Collector) -> Self {
        let first = collector.first_seen.load(Ordering::Relaxed);
        Self {
            method: collector.method.to_string(),
            host: collector.host.to_string(),
            template: collector.template.to_string(),
            origin: collector.origin,
            mark: collector.mark(),
            status: StatusClasses::of(collector),
            with_session: collector.with_session.load(Ordering::Relaxed),
            without_session: collector.without_session.load(Ordering::Relaxed),
            identifiers: collector
                .shared
                .sources_in(collector.sources.load(Ordering::Relaxed))
                .iter()
                .map(ToString::to_string)
                .collect(),
            first_seen: if first == u64::MAX { 0 } else { first },
            last_seen: collector.last_seen.load(Ordering::Relaxed),
            sessions_sketch: collector.sessions.sparse(),
        }
    }
}

fn invalid(what: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what: format!("snapshot {what}"),
        reason: reason.into(),
    }
}

fn parse_source(text: &str) -> Result<SessionSource, ConfigError> {
    let (kind, name) = text
        .split_once(':')
        .ok_or_else(|| invalid("identifier", format!("{text:?} is not `kind:name`")))?;
    let kind = match kind {
        "header" => SourceKind::Header,
        "cookie" => SourceKind::Cookie,
        "claim" => SourceKind::Claim,
        _ => return Err(invalid("identifier", format!("unknown kind in {text:?}"))),
    };
    Ok(SessionSource::new(kind, name))
}

impl LearnedState {
    /// Everything learned so far, after maintenance.
    pub fn snapshot(&self) -> Snapshot {
        self.maintain();
        let mut endpoints: Vec<_> = self
            .inner
            .all()
            .iter()
            .map(|(_, c)| EndpointRecord::of(c))
            .collect();
        endpoints.sort_by(|a, b| {
            (&a.template, &a.method, &a.host).cmp(&(&b.template, &b.method, &b.host))
        });
        Snapshot {
            version: SNAPSHOT_VERSION,
            taken_at: self.inner.now_secs(),
            endpoints,
        }
    }

    /// Loads a snapshot, replacing the counters of the endpoints it holds;
    /// fails on a newer version or a malformed record, naming it, before
    /// changing anything.
    ///
    /// Endpoints beyond the cap are not loaded.
    pub fn load(&self, snapshot: &Snapshot) -> Result<(), ConfigError> {
        if snapshot.version > SNAPSHOT_VERSION {
            return Err(invalid(
                "version",
                format!("{} is newer than {SNAPSHOT_VERSION}", snapshot.version),
            ));
        }
        let mut parsed = Vec::with_capacity(snapshot.endpoints.len());
        for record in &snapshot.endpoints {
            let method = Method::from_bytes(record.method.as_bytes())
                .map_err(|_| invalid("method", record.method.clone()))?;
            if !record.template.starts_with('/') {
                return Err(invalid("template", record.template.clone()));
            }
            let host = HostPattern::parse(&record.host)
                .map_err(|_| invalid("host", record.host.clone()))?;
            let sources = record
                .identifiers
                .iter()
                .map(|s| parse_source(s))
                .collect::<Result<Vec<_>, _>>()?;
            parsed.push((record, method, host, sources));
        }

        let inner = &self.inner;
        for (record, method, host, sources) in parsed {
            if inner.len() >= inner.config.max_endpoints && record.origin == Origin::Discovered {
                break;
            }
            let segments = normalize::parse_template(&record.template);
            let endpoint = match record.origin {
                Origin::Declared | Origin::Matched => {
                    Some(Endpoint::new(method.clone(), host, &record.template))
                }
                Origin::Discovered => None,
            };
            let (key, host_index) =
                inner.restored_key(&method, &record.host, &segments, record.origin, endpoint);
            let host_name = match endpoint {
                Some(_) => record.host.as_str().into(),
                None => inner.host_of(host_index),
            };
            let collector = Collector::new(
                method,
                (host_index, host_name),
                segments,
                record.template.as_str().into(),
                record.origin,
                inner.shared.clone(),
            );
            let counts = [
                record.status.informational,
                record.status.success,
                record.status.redirection,
                record.status.client_error,
                record.status.server_error,
            ];
            for (slot, n) in collector.status.iter().zip(counts) {
                slot.store(n, Ordering::Relaxed);
            }
            collector
                .with_session
                .store(record.with_session, Ordering::Relaxed);
            collector
                .without_session
                .store(record.without_session, Ordering::Relaxed);
            let mask = sources
                .into_iter()
                .fold(0, |mask, s| mask | inner.shared.source_bit(s));
            collector.sources.store(mask, Ordering::Relaxed);
            if record.last_seen > 0 {
                collector
                    .first_seen
                    .store(record.first_seen, Ordering::Relaxed);
                collector
                    .last_seen
                    .store(record.last_seen, Ordering::Relaxed);
            }
            collector.sessions.load(&record.sessions_sketch);
            collector.set_mark(record.mark);
            let reported =
                record.status.success >= inner.config.report_after || record.mark == Mark::Saved;
            match endpoint {
                Some(e) => {
                    let _ = collector.endpoint.set(e);
                }
                None if reported => {
                    let e = crate::future::discovered_endpoint(&collector);
                    let _ = collector.endpoint.set(e);
                }
                None => {}
            }
            inner.restore(key, collector);
        }
        Ok(())
    }
}
