//! Where rate limit state lives: the contract every store implements.
//!
//! A store keeps, for each rule, one GCRA state per key. The layer asks it
//! one question per matching rule and request: *may this key make one more
//! request now?* The in-memory store ([`MemoryStore`]) answers at once; a
//! networked store (Redis, for a fleet) answers after a round trip. Both fit
//! one trait, [`RateLimitStore`], whose answer is a future of an associated
//! type:
//!
//! - the in-memory store returns [`std::future::Ready`], so its path pays no
//!   boxing and no extra await: the layer polls each check once, in `call`,
//!   and a ready answer is used there and then;
//! - a networked store returns its own future (usually a `Pin<Box<..>>` over
//!   its client's call); when a check is not ready on that first poll, the
//!   layer keeps the request and waits for the answers before it calls the
//!   application or refuses.
//!
//! [`Store`] is the store a [`Shield`](../../palisade/struct.Shield.html)
//! holds: an enum over the stores Palisade ships, so one layer type serves
//! every deployment.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::time::Duration;

use palisade_core::ConfigError;

#[cfg(feature = "redis")]
pub use self::redis::{FailurePolicy, RedisCheck, RedisConfig, RedisCounter, RedisStore};
pub use memory::{MemoryCounter, MemoryStore};

use crate::Quota;

/// What a store needs to know to keep the state of one rule.
///
/// The layer asks for one counter per rule when rules are built or
/// replaced, never on the request path.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct CounterSpec<'a> {
    /// The rule's name, unique among the layer's rules; a networked store
    /// uses it to name its keys.
    pub rule: &'a str,
    /// The quotas of the rule: index 0 is the default quota, index `i`
    /// the quota of the rule's `i`-th tier. A check names the index.
    pub quotas: &'a [Quota],
    /// How long a key that trips the rule stays refused, whatever its
    /// rate; `None` for no mitigation.
    pub mitigation: Option<Duration>,
    /// The most keys the store may keep for this rule; beyond it the store
    /// evicts, idle keys first.
    pub max_keys: NonZeroUsize,
}

impl<'a> CounterSpec<'a> {
    /// The state of rule `rule` with `quotas` (default first, then tiers).
    pub const fn new(
        rule: &'a str,
        quotas: &'a [Quota],
        mitigation: Option<Duration>,
        max_keys: NonZeroUsize,
    ) -> Self {
        Self {
            rule,
            quotas,
            mitigation,
            max_keys,
        }
    }
}

/// A store's answer to one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// Whether the request conforms to the quota (and the key is not
    /// under mitigation).
    pub allowed: bool,
    /// Requests the key may still make at once after this one.
    pub remaining: u32,
    /// Allowed: time until the key's quota is whole again. Refused: the
    /// same as `retry_after`.
    pub reset: Duration,
    /// Refused: time until the key may make a request again. Zero when
    /// allowed.
    pub retry_after: Duration,
}

impl Verdict {
    /// An allowed request, with what is left.
    pub const fn allowed(remaining: u32, reset: Duration) -> Self {
        Self {
            allowed: true,
            remaining,
            reset,
            retry_after: Duration::ZERO,
        }
    }

    /// A refused request, which may try again after `retry_after`.
    pub const fn refused(retry_after: Duration) -> Self {
        Self {
            allowed: false,
            remaining: 0,
            reset: retry_after,
            retry_after,
        }
    }
}

/// A store that could not answer (a lost connection, a timeout).
///
/// The layer lets the request through when its store fails (fail open) and
/// logs a throttled warning: an outage of the store must not take the API
/// down with it.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl StoreError {
    /// An error with a message that says what failed.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Where rate limit state lives; the contract between the layer and a
/// store.
///
/// # Contract
///
/// - [`counter`](Self::counter) is called once per rule when rules are
///   built or replaced. It makes the per-rule state handle and may fail
///   with a [`ConfigError`] naming the bad input (a quota the store cannot
///   represent, say). A rule that is kept across a replacement (same name,
///   quotas, mitigation and cap) keeps its counter, so its keys keep their
///   state.
/// - [`check`](Self::check) counts one request by `key` against tier
///   `tier` (an index into [`CounterSpec::quotas`]) and says whether it is
///   allowed. It must be atomic per key: two concurrent checks on one key
///   never both take the last request of a burst. It implements GCRA
///   semantics: a fresh key may make `burst` requests at once, then one per
///   `replenish_interval`; a refused request does not consume quota. When
///   the counter has a mitigation timeout, a refused key is refused for
///   that long from the refusal, and [`Verdict::retry_after`] says so.
/// - `key` is already a keyed 128-bit digest (never a raw value); keys of
///   different rules never meet because each rule has its own counter. A
///   shared store must keep tiers apart, for example by naming its keys
///   `{prefix}:{rule}:{tier}:{key:032x}`.
/// - The future is polled once in the service's `call` with a no-op waker;
///   if it is ready, no further await happens. If not, it is polled again
///   from the response future with the task's waker, so it must register
///   the waker it is polled with, as every future does. It must be `Unpin`
///   (box it if it is not) and must not borrow from the store.
/// - Time comes from the store: the in-memory store reads the
///   [`SharedClock`](palisade_core::SharedClock) it was made with; a
///   networked store may use its server's clock so that a fleet agrees.
/// - An `Err` lets the request through (fail open) and is logged.
pub trait RateLimitStore: Clone + Send + Sync + fmt::Debug + 'static {
    /// The state of one rule.
    type Counter: Send + Sync + fmt::Debug + 'static;
    /// The answer to one check.
    type Check: Future<Output = Result<Verdict, StoreError>> + Send + Unpin + 'static;

    /// Makes the state of one rule.
    fn counter(&self, spec: &CounterSpec<'_>) -> Result<Self::Counter, ConfigError>;

    /// Counts one request of `key` against tier `tier` of `counter`.
    fn check(&self, counter: &Self::Counter, key: u128, tier: usize) -> Self::Check;
}

/// The stores Palisade ships, in one type: what a
/// [`RateLimitLayer`](crate::RateLimitLayer) uses unless told otherwise.
///
/// It holds the in-memory store and, with the `redis` feature, the Redis
/// store.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// State in this process' memory.
    Memory(MemoryStore),
    /// State in Redis, shared by a fleet.
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

impl Default for Store {
    fn default() -> Self {
        Self::Memory(MemoryStore::default())
    }
}

impl From<MemoryStore> for Store {
    fn from(store: MemoryStore) -> Self {
        Self::Memory(store)
    }
}

#[cfg(feature = "redis")]
impl From<RedisStore> for Store {
    fn from(store: RedisStore) -> Self {
        Self::Redis(store)
    }
}

/// The state of one rule in a [`Store`].
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreCounter {
    /// In memory.
    Memory(MemoryCounter),
    /// In Redis.
    #[cfg(feature = "redis")]
    Redis(RedisCounter),
}

/// The answer of a [`Store`].
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreCheck {
    /// From the in-memory store: ready at once.
    Memory(std::future::Ready<Result<Verdict, StoreError>>),
    /// From the Redis store: ready at once from its deny cache, else after
    /// a round trip.
    #[cfg(feature = "redis")]
    Redis(RedisCheck),
}

impl Future for StoreCheck {
    type Output = Result<Verdict, StoreError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Self::Memory(ready) => std::pin::Pin::new(ready).poll(cx),
            #[cfg(feature = "redis")]
            Self::Redis(check) => std::pin::Pin::new(check).poll(cx),
        }
    }
}

impl RateLimitStore for Store {
    type Counter = StoreCounter;
    type Check = StoreCheck;

    fn counter(&self, spec: &CounterSpec<'_>) -> Result<StoreCounter, ConfigError> {
        match self {
            Self::Memory(store) => store.counter(spec).map(StoreCounter::Memory),
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.counter(spec).map(StoreCounter::Redis),
        }
    }

    fn check(&self, counter: &StoreCounter, key: u128, tier: usize) -> StoreCheck {
        match (self, counter) {
            (Self::Memory(store), StoreCounter::Memory(counter)) => {
                StoreCheck::Memory(store.check(counter, key, tier))
            }
            #[cfg(feature = "redis")]
            (Self::Redis(store), StoreCounter::Redis(counter)) => {
                StoreCheck::Redis(store.check(counter, key, tier))
            }
            // Counters are made by the store that checks them.
            #[cfg(feature = "redis")]
            _ => StoreCheck::Memory(std::future::ready(Err(StoreError::new(
                "a counter of another store",
            )))),
        }
    }
}
