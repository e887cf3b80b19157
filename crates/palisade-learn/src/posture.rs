//! Authentication posture: which endpoints answer without a session.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::collector::{Collector, Mark};
use crate::state::LearnedState;

/// How an endpoint's 2xx responses were authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Posture {
    /// Every 2xx response went to a request with a session.
    Authenticated,
    /// Some 2xx responses went to requests without a session.
    Mixed,
    /// No 2xx response went to a request with a session.
    Missing,
}

/// The authentication posture of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PostureReport {
    /// The HTTP method.
    pub method: String,
    /// The host, or `*` for any host.
    pub host: String,
    /// The path template.
    pub template: String,
    /// 2xx responses to requests with a session.
    pub with_session: u64,
    /// 2xx responses to requests without one.
    pub without_session: u64,
    /// The session identifiers seen, as `header:authorization`.
    pub identifiers: Vec<String>,
    /// The label.
    pub posture: Posture,
}

impl PostureReport {
    pub(crate) fn of(collector: &Collector) -> Self {
        let with = collector.with_session.load(Ordering::Relaxed);
        let without = collector.without_session.load(Ordering::Relaxed);
        let posture = match (with, without) {
            (_, 0) => Posture::Authenticated,
            (0, _) => Posture::Missing,
            _ => Posture::Mixed,
        };
        let mask = collector.sources.load(Ordering::Relaxed);
        Self {
            method: collector.method.to_string(),
            host: collector.host.to_string(),
            template: collector.template.to_string(),
            with_session: with,
            without_session: without,
            identifiers: collector
                .shared
                .sources_in(mask)
                .iter()
                .map(ToString::to_string)
                .collect(),
            posture,
        }
    }
}

impl LearnedState {
    /// The posture of every reported, not ignored endpoint that had a 2xx
    /// response, in the order of [`endpoints`](Self::endpoints).
    pub fn posture(&self) -> Vec<PostureReport> {
        self.reported()
            .iter()
            .filter(|c| c.mark() != Mark::Ignored && c.successful() > 0)
            .map(|c| PostureReport::of(c))
            .collect()
    }
}
