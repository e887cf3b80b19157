//! Quotas: how many requests per period, with what burst.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use palisade_core::ConfigError;
use serde::Deserialize;

/// How many requests a key may make per period, and how many at once.
///
/// Built from types that cannot be zero: the count is a [`NonZeroU32`] and
/// the period is checked when the quota is made. The burst is the number of
/// requests a key with an idle history may make at the same instant; it is
/// the request count unless set. Requests are then replenished one every
/// `period / requests` (the GCRA emission interval).
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use palisade_limit::Quota;
///
/// let q = Quota::per_minute(NonZeroU32::new(100).unwrap());
/// assert_eq!(q.replenish_interval(), Duration::from_millis(600));
/// let q = Quota::new(NonZeroU32::new(10).unwrap(), Duration::from_secs(5))?
///     .with_burst(NonZeroU32::new(2).unwrap());
/// assert_eq!(q.burst().get(), 2);
/// assert!(Quota::new(NonZeroU32::new(10).unwrap(), Duration::ZERO).is_err());
/// # Ok::<(), palisade_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "QuotaSpec")]
pub struct Quota {
    requests: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
}

impl Quota {
    /// `requests` per `period`; fails if the period is zero or shorter
    /// than a nanosecond per request.
    pub fn new(requests: NonZeroU32, period: Duration) -> Result<Self, ConfigError> {
        if period.as_nanos() < u128::from(requests.get()) {
            return Err(ConfigError::OutOfRange {
                what: "quota period",
                value: format!("{period:?} for {requests} requests"),
            });
        }
        Ok(Self {
            requests,
            period,
            burst: requests,
        })
    }

    /// `requests` per second.
    pub const fn per_second(requests: NonZeroU32) -> Self {
        Self::fixed(requests, 1)
    }

    /// `requests` per minute.
    pub const fn per_minute(requests: NonZeroU32) -> Self {
        Self::fixed(requests, 60)
    }

    /// `requests` per hour.
    pub const fn per_hour(requests: NonZeroU32) -> Self {
        Self::fixed(requests, 3600)
    }

    const fn fixed(requests: NonZeroU32, secs: u64) -> Self {
        Self {
            requests,
            period: Duration::from_secs(secs),
            burst: requests,
        }
    }

    /// The same rate with another burst.
    #[must_use]
    pub const fn with_burst(mut self, burst: NonZeroU32) -> Self {
        self.burst = burst;
        self
    }

    /// Requests per period.
    pub const fn requests(&self) -> NonZeroU32 {
        self.requests
    }

    /// The period.
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// Requests a key may make at once.
    pub const fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// The time in which one request is replenished: `period / requests`.
    pub fn replenish_interval(&self) -> Duration {
        self.period / self.requests.get()
    }

    /// The same quota as governor states it.
    pub(crate) fn to_governor(self) -> governor::Quota {
        // `new` and the constructors keep the interval at least 1 ns.
        governor::Quota::with_period(self.replenish_interval())
            .unwrap_or_else(|| governor::Quota::per_second(self.requests))
            .allow_burst(self.burst)
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Quota({} per {:?}, burst {})",
            self.requests, self.period, self.burst
        )
    }
}

/// A quota as written in a configuration file:
/// `{"requests": 100, "period_secs": 60, "burst": 20}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaSpec {
    requests: NonZeroU32,
    #[serde(default)]
    period_secs: Option<u64>,
    #[serde(default)]
    period_ms: Option<u64>,
    #[serde(default)]
    burst: Option<NonZeroU32>,
}

impl TryFrom<QuotaSpec> for Quota {
    type Error = ConfigError;

    fn try_from(spec: QuotaSpec) -> Result<Self, ConfigError> {
        let period = match (spec.period_secs, spec.period_ms) {
            (Some(secs), None) => Duration::from_secs(secs),
            (None, Some(ms)) => Duration::from_millis(ms),
            _ => {
                return Err(ConfigError::Invalid {
                    what: "quota".to_owned(),
                    reason: "give exactly one of period_secs and period_ms".to_owned(),
                });
            }
        };
        let quota = Quota::new(spec.requests, period)?;
        Ok(match spec.burst {
            Some(burst) => quota.with_burst(burst),
            None => quota,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    #[test]
    fn zero_period_is_refused_and_named() {
        let err = Quota::new(n(5), Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("quota period"), "{err}");
    }

    #[test]
    fn governor_quota_has_interval_and_burst() {
        let q = Quota::per_minute(n(60)).with_burst(n(5)).to_governor();
        assert_eq!(q.replenish_interval(), Duration::from_secs(1));
        assert_eq!(q.burst_size().get(), 5);
    }

    #[test]
    fn deserialises_with_one_period() {
        let q: Quota = serde_json::from_str(r#"{"requests": 10, "period_ms": 500}"#).unwrap();
        assert_eq!(q.period(), Duration::from_millis(500));
        assert_eq!(q.burst().get(), 10);
        let bad = serde_json::from_str::<Quota>(r#"{"requests": 10}"#);
        assert!(bad.unwrap_err().to_string().contains("period_secs"));
        let zero = serde_json::from_str::<Quota>(r#"{"requests": 0, "period_secs": 1}"#);
        assert!(zero.is_err());
    }
}
