//! The in-memory store: governor's GCRA over a bounded, sharded table.

use std::collections::HashMap;
use std::fmt;
use std::future::{Ready, ready};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use palisade_core::{ConfigError, SharedClock, SystemClock};

use super::{CounterSpec, RateLimitStore, StoreError, Verdict};

/// Most shards a table is split into; a power of two.
const MAX_SHARDS: usize = 64;

/// Fewest keys a shard holds before the table is split further.
const MIN_KEYS_PER_SHARD: usize = 16;

/// Rate limit state in this process' memory, with a hard cap per rule.
///
/// Each rule gets a table of at most [`CounterSpec::max_keys`] keys, split
/// into up to 64 shards, each behind its own lock, so two threads rarely
/// meet. Each entry is a key's GCRA state as governor keeps it (its
/// theoretical arrival time) and the end of its mitigation; governor's
/// `RateLimiter` runs the algorithm over the table through its
/// `StateStore` trait.
///
/// ### Eviction
///
/// No user code schedules cleanup. When a shard is full and a new key
/// arrives, the shard first drops idle keys: those whose quota is whole
/// again and whose mitigation is over. Forgetting such a key changes no
/// decision, since a fresh key starts with a whole quota. If the shard is
/// still more than seven eighths full, it drops the eighth of its keys
/// closest to being idle; a flood of new keys thus evicts other fresh keys
/// first, and keys that used much of their quota are kept longest. Each
/// eviction frees an eighth of a shard, so its cost is amortised over the
/// inserts that follow. A key evicted while not idle starts again with a
/// whole quota: under a flood larger than the cap, the cap wins over
/// exactness.
///
/// ### Performance
///
/// A check is one clock read, one lock of an uncontended shard and one hash
/// lookup (keys are already keyed digests, so the table hashes them with a
/// plain fold). A rule with a mitigation timeout takes the shard's lock a
/// second time.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    clock: SharedClock,
}

impl MemoryStore {
    /// A store that reads time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self { clock }
    }
}

impl Default for MemoryStore {
    /// A store on the system clock.
    fn default() -> Self {
        Self::new(SystemClock::shared())
    }
}

type Limiter = governor::RateLimiter<u128, TableRef, GovernorClock, StateInformationMiddleware>;

/// The in-memory state of one rule: its table and a governor limiter per
/// tier.
pub struct MemoryCounter {
    table: TableRef,
    limiters: Vec<(Limiter, governor::Quota)>,
    mitigation: Option<Duration>,
    clock: SharedClock,
}

impl MemoryCounter {
    /// The number of keys held now.
    pub fn len(&self) -> usize {
        self.table.0.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys this counter holds.
    pub fn capacity(&self) -> usize {
        self.table.0.shard_cap * self.table.0.shards.len()
    }

    /// The bytes the table has allocated for its entries: the hash tables'
    /// buckets and control bytes, not counting the allocator's overhead.
    pub fn allocated_bytes(&self) -> usize {
        let bucket = size_of::<(u128, Entry)>() + 1;
        self.table
            .0
            .shards
            .iter()
            .map(|s| {
                let cap = s.lock().capacity();
                // hashbrown keeps a power of two of buckets, 8/7 of capacity.
                let buckets = if cap == 0 {
                    0
                } else {
                    (cap * 8 / 7).next_power_of_two()
                };
                buckets * bucket + size_of::<Shard>()
            })
            .sum()
    }

    fn check(&self, key: u128, tier: usize) -> Verdict {
        let Some((limiter, quota)) = self.limiters.get(tier).or(self.limiters.first()) else {
            return Verdict::allowed(0, Duration::ZERO);
        };
        let key = tier_key(key, tier);

        // Governor reads the clock itself; read it here only when needed.
        if self.mitigation.is_some()
            && let Some(until) = self.table.0.blocked_until(key)
        {
            let now = self.clock.now();
            if until > now {
                return Verdict::refused(until - now);
            }
        }

        match limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = quota.burst_size().get().saturating_sub(remaining);
                Verdict::allowed(remaining, quota.replenish_interval() * used)
            }
            Err(not_until) => {
                let now = self.clock.now();
                let wait = not_until.wait_time_from(now);
                match self.mitigation {
                    Some(timeout) => {
                        self.table.0.block(key, now + timeout);
                        Verdict::refused(wait.max(timeout))
                    }
                    None => Verdict::refused(wait),
                }
            }
        }
    }
}

impl fmt::Debug for MemoryCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCounter")
            .field("tiers", &self.limiters.len())
            .field("capacity", &self.capacity())
            .field("mitigation", &self.mitigation)
            .finish_non_exhaustive()
    }
}

impl RateLimitStore for MemoryStore {
    type Counter = MemoryCounter;
    type Check = Ready<Result<Verdict, StoreError>>;

    fn counter(&self, spec: &CounterSpec<'_>) -> Result<MemoryCounter, ConfigError> {
        let max_keys = spec.max_keys.get();
        let shards = (max_keys / MIN_KEYS_PER_SHARD)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        let shards = if shards > max_keys { 1 } else { shards };
        let table = TableRef(Arc::new(Table {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            shard_cap: (max_keys / shards).max(1),
            shard_shift: 128 - shards.trailing_zeros(),
            origin: AtomicU64::new(0),
            clock: self.clock.clone(),
        }));
        let clock = GovernorClock(self.clock.clone());
        let limiters = spec
            .quotas
            .iter()
            .map(|quota| {
                let quota = quota.to_governor();
                let limiter: Limiter =
                    governor::RateLimiter::new(quota, table.clone(), clock.clone());
                (limiter, quota)
            })
            .collect();
        // Governor counts from the moment each limiter was made; reading the
        // clock after all of them gives an origin no earlier than any, so
        // an entry judged idle against it is idle for its limiter too.
        table
            .0
            .origin
            .store(nanos(self.clock.now()), Ordering::Relaxed);
        Ok(MemoryCounter {
            table,
            limiters,
            mitigation: spec.mitigation,
            clock: self.clock.clone(),
        })
    }

    fn check(&self, counter: &MemoryCounter, key: u128, tier: usize) -> Self::Check {
        ready(Ok(counter.check(key, tier)))
    }
}

/// Keys of different tiers of one rule never meet in the shared table.
fn tier_key(key: u128, tier: usize) -> u128 {
    const MIX: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
    key ^ (tier as u128).wrapping_mul(MIX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Governor's view of a Palisade clock: the time since the Unix epoch.
#[derive(Clone, Debug)]
struct GovernorClock(SharedClock);

impl governor::clock::Clock for GovernorClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.now()
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Governor's theoretical arrival time, in nanoseconds since the
    /// limiter was made.
    tat: u64,
    /// The end of the key's mitigation, in nanoseconds since the epoch.
    blocked_until: u64,
}

/// Keys are keyed SipHash digests already: fold them instead of hashing
/// again. No client can aim at a bucket without the session key.
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type Map = HashMap<u128, Entry, BuildHasherDefault<FoldHasher>>;

/// One lock's worth of keys, on its own cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Shard(Mutex<Map>);

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Map> {
        // The map stays consistent whatever panicked while it was held.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Table {
    shards: Box<[Shard]>,
    shard_cap: usize,
    shard_shift: u32,
    /// The epoch time, in nanoseconds, that entries' `tat` count from, at
    /// the latest.
    origin: AtomicU64,
    clock: SharedClock,
}

impl Table {
    fn shard(&self, key: u128) -> &Shard {
        // The high bits choose the shard; the hash table uses the low ones.
        let index = key.checked_shr(self.shard_shift).unwrap_or(0) as usize;
        &self.shards[index & (self.shards.len() - 1)]
    }

    /// Drops idle keys; if that frees too little, drops the eighth of the
    /// keys closest to idle.
    ///
    /// The kept keys move to a fresh table of the shard's size: removing
    /// in place would leave tombstones, and a table full of them grows
    /// instead of reusing its buckets.
    fn make_room(&self, map: &mut Map) {
        let now = nanos(self.clock.now());
        let origin = self.origin.load(Ordering::Relaxed);
        let deadline = |e: &Entry| e.tat.saturating_add(origin).max(e.blocked_until);

        let mut live: Vec<u64> = map.values().map(deadline).filter(|d| *d > now).collect();
        let target = (self.shard_cap - self.shard_cap / 8).max(1);
        let threshold = if live.len() >= target {
            let cut = live.len() - target.min(live.len() - 1);
            *live.select_nth_unstable(cut - 1).1
        } else {
            now
        };

        let mut kept = Map::with_capacity_and_hasher(self.shard_cap, Default::default());
        kept.extend(map.drain().filter(|(_, e)| deadline(e) > threshold));
        *map = kept;
    }

    fn blocked_until(&self, key: u128) -> Option<Duration> {
        let map = self.shard(key).lock();
        map.get(&key)
            .filter(|e| e.blocked_until > 0)
            .map(|e| Duration::from_nanos(e.blocked_until))
    }

    fn block(&self, key: u128, until: Duration) {
        let mut map = self.shard(key).lock();
        let until = nanos(until);
        if let Some(entry) = map.get_mut(&key) {
            entry.blocked_until = until;
            return;
        }
        if map.len() >= self.shard_cap {
            self.make_room(&mut map);
        }
        map.insert(
            key,
            Entry {
                tat: 0,
                blocked_until: until,
            },
        );
    }
}

#[derive(Clone)]
struct TableRef(Arc<Table>);

impl StateStore for TableRef {
    type Key = u128;

    fn measure_and_replace<T, F, E>(&self, key: &u128, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let table = &self.0;
        let mut map = table.shard(*key).lock();
        if let Some(entry) = map.get_mut(key) {
            let (out, tat) = f(Some(Nanos::from(entry.tat)))?;
            entry.tat = tat.as_u64();
            return Ok(out);
        }
        let (out, tat) = f(None)?;
        if map.len() >= table.shard_cap {
            table.make_room(&mut map);
        }
        map.insert(
            *key,
            Entry {
                tat: tat.as_u64(),
                blocked_until: 0,
            },
        );
        Ok(out)
    }
}

impl fmt::Debug for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("shards", &self.0.shards.len())
            .field("shard_cap", &self.0.shard_cap)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quota;
    use palisade_core::ManualClock;
    use std::num::{NonZeroU32, NonZeroUsize};

    fn counter(
        clock: &ManualClock,
        quotas: &[Quota],
        mitigation: Option<Duration>,
        max_keys: usize,
    ) -> MemoryCounter {
        MemoryStore::new(clock.shared())
            .counter(&CounterSpec {
                rule: "r",
                quotas,
                mitigation,
                max_keys: NonZeroUsize::new(max_keys).unwrap(),
            })
            .unwrap()
    }

    fn q(requests: u32, secs: u64, burst: u32) -> Quota {
        Quota::new(
            NonZeroU32::new(requests).unwrap(),
            Duration::from_secs(secs),
        )
        .unwrap()
        .with_burst(NonZeroU32::new(burst).unwrap())
    }

    fn start() -> ManualClock {
        ManualClock::new(Duration::from_secs(1_700_000_000))
    }

    #[test]
    fn exact_burst_then_refusal_then_replenishment() {
        let clock = start();
        let c = counter(&clock, &[q(60, 60, 3)], None, 1000);
        let remaining: Vec<u32> = (0..3).map(|_| c.check(7, 0).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = c.check(7, 0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(c.check(8, 0).allowed, "another key has its own quota");

        clock.advance(Duration::from_millis(999));
        assert!(!c.check(7, 0).allowed);
        clock.advance(Duration::from_millis(1));
        assert!(c.check(7, 0).allowed);
        assert!(!c.check(7, 0).allowed);
        clock.advance(Duration::from_secs(3));
        assert_eq!(c.check(7, 0).remaining, 2, "whole again after 3 intervals");
    }

    #[test]
    fn mitigation_keeps_a_key_refused_whatever_its_rate() {
        let clock = start();
        let c = counter(
            &clock,
            &[q(60, 60, 1)],
            Some(Duration::from_secs(600)),
            1000,
        );
        assert!(c.check(1, 0).allowed);
        let tripped = c.check(1, 0);
        assert!(!tripped.allowed);
        assert_eq!(tripped.retry_after, Duration::from_secs(600));

        clock.advance(Duration::from_secs(599));
        let still = c.check(1, 0);
        assert!(!still.allowed);
        assert_eq!(still.retry_after, Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        assert!(c.check(1, 0).allowed);
    }

    #[test]
    fn tiers_count_apart_with_their_own_quota() {
        let clock = start();
        let c = counter(&clock, &[q(1, 60, 1), q(10, 60, 10)], None, 1000);
        assert!(c.check(5, 0).allowed);
        assert!(!c.check(5, 0).allowed);
        for _ in 0..10 {
            assert!(c.check(5, 1).allowed);
        }
        assert!(!c.check(5, 1).allowed);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_under_the_cap() {
        let clock = start();
        let cap = 10_000;
        let c = counter(&clock, &[q(100, 60, 100)], None, cap);
        let key = palisade_core::SessionKey::from_bytes([1; 16]);
        // 200,000 distinct session values, all within one replenish interval
        // so that none is idle: only the cap can keep the table small.
        for i in 0u32..200_000 {
            let k = palisade_core::SessionId::digest_parts(&key, 9, b"s", &i.to_le_bytes());
            assert!(c.check(k.as_u128(), 0).allowed);
            if i.is_multiple_of(1000) {
                assert!(c.len() <= cap, "over the cap at {i}");
            }
        }
        assert!(c.len() <= cap, "{} keys held, cap {cap}", c.len());
        assert!(
            c.len() >= cap / 2,
            "evicted far more than needed: {}",
            c.len()
        );
        assert!(c.capacity() <= cap);
    }

    #[test]
    fn idle_keys_go_first_and_heavy_keys_stay() {
        let clock = start();
        // One shard of 16 keys.
        let c = counter(&clock, &[q(1, 60, 2)], None, 16);
        assert_eq!(c.capacity(), 16);
        let heavy = u128::MAX;
        assert!(c.check(heavy, 0).allowed);
        assert!(c.check(heavy, 0).allowed);
        assert!(!c.check(heavy, 0).allowed);
        for k in 0..200 {
            c.check(k, 0);
        }
        assert!(c.len() <= 16);
        assert!(
            !c.check(heavy, 0).allowed,
            "the key nearest its limit was kept"
        );

        // An hour later every key held is idle; fresh keys replace them all
        // and none of the fresh ones is evicted.
        clock.advance(Duration::from_secs(3600));
        for k in 1000..1015 {
            c.check(k, 0);
        }
        assert_eq!(
            c.len(),
            15,
            "the idle keys were dropped, the fresh ones kept"
        );
    }

    #[test]
    fn two_threads_on_one_key_never_exceed_the_burst() {
        let clock = start();
        let c = Arc::new(counter(&clock, &[q(1, 3600, 50)], None, 1000));
        let allowed: u32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let c = c.clone();
                    s.spawn(move || (0..1000).filter(|_| c.check(42, 0).allowed).count() as u32)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 50);
    }
}
