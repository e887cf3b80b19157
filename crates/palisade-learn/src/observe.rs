//! The hook through which other collectors see what the learning layer saw.

use std::time::Duration;

use palisade_core::{Endpoint, SessionId};

/// One finished request that taught something: its endpoint, session and
/// 2xx status, and when it finished.
///
/// The learning layer hands an observation to every registered
/// [`Recorder`] once per request answered with a 2xx status whose endpoint
/// is declared, matched by the router, or discovered and already reported.
/// Candidates that have not reached the reporting threshold are not passed
/// on, so a flood of random paths never reaches a recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The endpoint the request was resolved to.
    pub endpoint: Endpoint,
    /// The request's session, if it carried one.
    pub session: Option<SessionId>,
    /// The response status, always 2xx.
    pub status: http::StatusCode,
    /// When the response was ready, as time since the Unix epoch from the
    /// layer's clock.
    pub at: Duration,
}

impl Observation {
    /// An observation of `endpoint` answered with `status` at `at`.
    pub fn new(
        endpoint: Endpoint,
        session: Option<SessionId>,
        status: http::StatusCode,
        at: Duration,
    ) -> Self {
        Self {
            endpoint,
            session,
            status,
            at,
        }
    }
}

/// Something that learns from finished requests, such as a rate
/// recommendation or a sequence collector.
///
/// `record` runs on the request path, inside the response future, once per
/// 2xx response: keep it cheap, lock-light and bounded.
pub trait Recorder: Send + Sync + 'static {
    /// Records one finished request.
    fn record(&self, observation: &Observation);
}
