//! Injected time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, given as the time since the Unix epoch.
///
/// Everything in Palisade that depends on time takes a clock: token expiry,
/// rate limit windows, learning windows. Production code uses
/// [`SystemClock`]; tests use [`ManualClock`] and advance it.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time since the Unix epoch.
    fn now(&self) -> Duration;
}

/// A clock shared by the layers of one stack.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// A system clock behind a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // A clock set before 1970 reads as the epoch rather than failing.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// ```
/// use palisade_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(Duration::from_secs(1_700_000_000));
/// let seen_by_a_layer = clock.clone();
/// clock.advance(Duration::from_secs(61));
/// assert_eq!(seen_by_a_layer.now(), Duration::from_secs(1_700_000_061));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `since_epoch`.
    pub fn new(since_epoch: Duration) -> Self {
        let clock = Self::default();
        clock.set(since_epoch);
        clock
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(saturating_nanos(by), Ordering::SeqCst);
    }

    /// Sets the clock to `since_epoch`, forward or back.
    pub fn set(&self, since_epoch: Duration) {
        self.nanos
            .store(saturating_nanos(since_epoch), Ordering::SeqCst);
    }

    /// This clock behind a [`SharedClock`]; the clone shares its time.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Duration::from_secs(1_577_836_800));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Duration::from_secs(10));
        assert_eq!(clock.now(), Duration::from_secs(10));
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), Duration::from_millis(11_500));
        clock.set(Duration::from_secs(3));
        assert_eq!(clock.shared().now(), Duration::from_secs(3));
    }
}
