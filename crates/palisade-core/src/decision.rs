//! What the rate limit layer decided, for the layers and code after it.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// What a rate limit rule did to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateLimitOutcome {
    /// Every matching rule let the request through.
    Allowed,
    /// A log-only (shadow) rule would have refused the request; it was let
    /// through and recorded.
    Shadowed,
    /// A blocking rule refused the request with 429.
    Refused,
}

impl RateLimitOutcome {
    /// `allowed`, `shadowed` or `refused`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Shadowed => "shadowed",
            Self::Refused => "refused",
        }
    }
}

impl fmt::Display for RateLimitOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision of the rate limit layer on one request.
///
/// The layer puts it in the request's extensions (for the layers and the
/// handler inside it) and in the response's (for the layers outside it),
/// whenever at least one rule matched the request. It reports one rule:
/// the one that refused the request, else a log-only rule that would have,
/// else the matching rule closest to its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RateLimitDecision {
    /// The name of the reported rule.
    pub rule: &'static str,
    /// What happened to the request.
    pub outcome: RateLimitOutcome,
    /// Requests allowed per window by the quota that applied.
    pub limit: u32,
    /// The window of that quota.
    pub window: Duration,
    /// Requests the key may still make at once.
    pub remaining: u32,
    /// Time until the key's quota is whole again.
    pub reset: Duration,
    /// Time until a refused key may try again; zero when allowed.
    pub retry_after: Duration,
}

impl RateLimitDecision {
    /// A decision on `rule`, with the quota `limit` per `window`.
    pub const fn new(
        rule: &'static str,
        outcome: RateLimitOutcome,
        limit: u32,
        window: Duration,
    ) -> Self {
        Self {
            rule,
            outcome,
            limit,
            window,
            remaining: 0,
            reset: Duration::ZERO,
            retry_after: Duration::ZERO,
        }
    }

    /// Whether the request went on to the application.
    pub fn is_allowed(&self) -> bool {
        self.outcome != RateLimitOutcome::Refused
    }
}

/// The address of the peer a request came from, for stacks that are not
/// axum's.
///
/// The rate limit layer counts by client IP from axum's
/// `ConnectInfo<SocketAddr>` when present, or else from this type: a plain
/// hyper server inserts it into each request's extensions from the address
/// its listener accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_decision_is_not_allowed() {
        let d = RateLimitDecision::new("r", RateLimitOutcome::Refused, 10, Duration::from_secs(60));
        assert!(!d.is_allowed());
        let s = RateLimitDecision {
            outcome: RateLimitOutcome::Shadowed,
            ..d
        };
        assert!(s.is_allowed());
        assert_eq!(s.outcome.to_string(), "shadowed");
    }
}
