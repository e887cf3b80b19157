//! Per-session rate recommendations.
//!
//! For each endpoint and session, [`RateRecommender`] keeps the highest
//! number of requests the session made in any 10-minute window; across
//! sessions it reports the p50, p90 and p99 of that peak and suggests a
//! limit (see [`Recommendation`] for how it is chosen).
//!
//! # The window
//!
//! Each (endpoint, session) keeps ten one-minute buckets. After every
//! request, the sum of the current minute and the nine before it is compared
//! with the peak so far. That is a sliding window that moves in one-minute
//! steps and covers between nine and ten minutes, so the peak it finds
//! **never overcounts**, and it undercounts the true peak of any 10-minute
//! window by at most the requests the session made in one minute: at most a
//! tenth for a session that keeps an even pace.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use palisade_core::{ConfigError, Endpoint, SessionId, SharedClock, SystemClock};
use serde::{Deserialize, Serialize};

use crate::observe::{Observation, Recorder};
use crate::quantile::QuantileSketch;

/// The window over which a session's requests are counted: 10 minutes.
pub const WINDOW: Duration = Duration::from_secs(600);

/// No recommendation rests on fewer distinct sessions than this, seen in
/// the last 24 hours.
pub const MIN_SESSIONS: u64 = 50;

/// How far back sessions count: 24 hours.
pub const HORIZON: Duration = Duration::from_secs(24 * 3600);

const MINUTES: usize = 10;
const HOURS: usize = 24;
const SHARDS: usize = 16;

/// What a rule made from a recommendation does when a session exceeds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuggestedAction {
    /// Let the request through and log it: watch before blocking.
    Log,
    /// Refuse the request.
    Block,
}

/// How much a recommendation can be trusted, by the number of sessions it
/// rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// 50 to 199 sessions: the p99 rests on one or two sessions.
    Low,
    /// 200 to 999 sessions.
    Medium,
    /// 1,000 sessions or more: the p99 rests on ten or more.
    High,
}

impl Confidence {
    fn of(sessions: u64) -> Self {
        match sessions {
            0..200 => Self::Low,
            200..1000 => Self::Medium,
            _ => Self::High,
        }
    }
}

/// A suggested rate limit for one endpoint, with what it rests on.
///
/// It holds everything a rate limit rule needs: the endpoint, the quota per
/// window, a burst and the action, `log` by default so the rule can be
/// watched before it blocks.
///
/// # How the limit is chosen
///
/// `limit = ceil(1.5 × p99)` of the sessions' 10-minute peaks, and
/// `burst = ceil(1.5 × p99)` of their one-minute peaks, at most the limit.
/// The p99 is what the busiest normal sessions do; a rule at the p99 would
/// refuse one session in a hundred on an ordinary day. The 50% headroom
/// covers the sketch's 1% error, the window's undercount (at most a tenth,
/// see [`RateRecommender`]) and ordinary growth, while a client that
/// goes well beyond what real sessions do (a scraper, a credential stuffer)
/// still trips it. Sessions above the p99 are the ones a user should look
/// at before switching the rule to block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    /// The endpoint, as `METHOD /template`.
    #[serde(serialize_with = "serialize_endpoint")]
    pub endpoint: Endpoint,
    /// Distinct sessions the figures rest on, seen in the last 24 hours.
    pub sessions: u64,
    /// Median over sessions of the highest count in any 10-minute window.
    pub p50: f64,
    /// 90th percentile of the same.
    pub p90: f64,
    /// 99th percentile of the same.
    pub p99: f64,
    /// The highest peak of any session, exact.
    pub max: u32,
    /// The suggested number of requests per session per [`window`](Self::window).
    pub limit: u32,
    /// The window of the limit: 10 minutes.
    #[serde(serialize_with = "serialize_secs")]
    pub window: Duration,
    /// The suggested burst: requests a session may make at once.
    pub burst: u32,
    /// What a rule made from this recommendation does: log.
    pub action: SuggestedAction,
    /// How much the figures can be trusted.
    pub confidence: Confidence,
}

fn serialize_endpoint<S: serde::Serializer>(e: &Endpoint, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// What one endpoint's sessions did, in mergeable form: instances of a
/// fleet merge theirs and recommend from the sum.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointRates {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Sessions counted, seen in the last 24 hours.
    pub sessions: u64,
    /// Each session's highest count in any 10-minute window.
    pub window_peaks: QuantileSketch,
    /// Each session's highest count in one minute.
    pub minute_peaks: QuantileSketch,
}

impl EndpointRates {
    /// Adds what another instance saw of the same endpoint. A session seen
    /// by two instances counts twice, each with the part of its traffic
    /// that instance served.
    pub fn merge(&mut self, other: &EndpointRates) {
        self.sessions += other.sessions;
        self.window_peaks.merge(&other.window_peaks);
        self.minute_peaks.merge(&other.minute_peaks);
    }

    /// The recommendation, or `None` below [`MIN_SESSIONS`] sessions.
    pub fn recommend(&self) -> Option<Recommendation> {
        if self.sessions < MIN_SESSIONS {
            return None;
        }
        let window = &self.window_peaks;
        let p99 = window.quantile(0.99)?;
        let limit = headroom(p99);
        let burst = headroom(self.minute_peaks.quantile(0.99)?).min(limit);
        Some(Recommendation {
            endpoint: self.endpoint,
            sessions: self.sessions,
            p50: window.quantile(0.5)?,
            p90: window.quantile(0.9)?,
            p99,
            max: window.max()?,
            limit,
            window: WINDOW,
            burst,
            action: SuggestedAction::Log,
            confidence: Confidence::of(self.sessions),
        })
    }
}

fn headroom(p99: f64) -> u32 {
    (p99 * 1.5).ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Learns how fast sessions call each endpoint; a [`Recorder`].
///
/// # The window
///
/// Each (endpoint, session) keeps ten one-minute buckets. After every
/// request, the sum of the current minute and the nine before it is
/// compared with the peak so far: a sliding window that moves in one-minute
/// steps and covers between nine and ten minutes. The peak it finds never
/// overcounts, and undercounts the true peak of any 10-minute window by at
/// most the requests the session made in one minute.
///
/// Cloning is cheap: clones share the same tables. Tables are sharded by
/// session, each behind its own short lock.
///
/// # Memory
///
/// At most [`max_entries`](RateRecommenderBuilder::max_entries)
/// (endpoint, session) pairs are tracked (100,000 by default, about 80 bytes
/// each). When a shard is full, pairs idle for 24 hours are dropped and then
/// the eighth least recently seen are retired: their peaks go into a sketch
/// of the hour they were last seen, one per endpoint and hour for 24 hours,
/// so they still count. A retired session that comes back is counted again,
/// from zero.
#[derive(Clone)]
pub struct RateRecommender {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Table>]>,
    retired: Mutex<HashMap<Endpoint, [Retired; HOURS], IdHash>>,
    per_shard: usize,
    clock: SharedClock,
}

/// One shard of the (endpoint, session) table.
type Table = HashMap<(Endpoint, SessionId), Entry, IdHash>;

/// One session's counts on one endpoint.
#[derive(Clone, Copy)]
struct Entry {
    minutes: [u32; MINUTES],
    /// Minute (since the epoch) of the newest bucket.
    minute: u64,
    window_peak: u32,
    minute_peak: u32,
}

/// Peaks of sessions retired in one hour.
#[derive(Clone, Default)]
struct Retired {
    hour: u64,
    sessions: u64,
    window_peaks: QuantileSketch,
    minute_peaks: QuantileSketch,
}

impl Entry {
    fn new(minute: u64) -> Self {
        Self {
            minutes: [0; MINUTES],
            minute,
            window_peak: 0,
            minute_peak: 0,
        }
    }

    fn count(&mut self, minute: u64) {
        // A clock set back counts in the newest bucket.
        if minute > self.minute {
            let gap = minute - self.minute;
            if gap >= MINUTES as u64 {
                self.minutes = [0; MINUTES];
            } else {
                for m in self.minute + 1..=minute {
                    self.minutes[(m % MINUTES as u64) as usize] = 0;
                }
            }
            self.minute = minute;
        }
        let slot = &mut self.minutes[(self.minute % MINUTES as u64) as usize];
        *slot = slot.saturating_add(1);
        self.minute_peak = self.minute_peak.max(*slot);
        let window = self.minutes.iter().fold(0u32, |a, &b| a.saturating_add(b));
        self.window_peak = self.window_peak.max(window);
    }
}

impl RateRecommender {
    /// A recommender on the system clock with default bounds.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder to set the clock and the bounds.
    pub fn builder() -> RateRecommenderBuilder {
        RateRecommenderBuilder::default()
    }

    /// Counts one request of `session` to `endpoint` at `at` (time since
    /// the epoch).
    pub fn count(&self, endpoint: Endpoint, session: SessionId, at: Duration) {
        let minute = at.as_secs() / 60;
        let shard = shard_of(session);
        let mut table = self.inner.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.get_mut(&(endpoint, session)) {
            entry.count(minute);
            return;
        }
        if table.len() >= self.inner.per_shard {
            self.make_room(&mut table, minute);
        }
        let mut entry = Entry::new(minute);
        entry.count(minute);
        table.insert((endpoint, session), entry);
    }

    /// Drops entries idle past the horizon, then retires the eighth least
    /// recently seen into the hourly sketches.
    fn make_room(&self, table: &mut Table, minute: u64) {
        let horizon = HORIZON.as_secs() / 60;
        table.retain(|_, e| e.minute + horizon >= minute);
        if table.len() < self.inner.per_shard {
            return;
        }
        let mut by_age: Vec<_> = table.iter().map(|(k, e)| (e.minute, *k)).collect();
        let cut = (by_age.len() / 8).max(1);
        by_age.select_nth_unstable_by_key(cut - 1, |(m, _)| *m);
        let mut retired = self
            .inner
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, key) in &by_age[..cut] {
            if let Some(entry) = table.remove(key) {
                let hours = retired.entry(key.0).or_default();
                let hour = entry.minute / 60;
                let slot = &mut hours[(hour % HOURS as u64) as usize];
                if slot.hour != hour {
                    *slot = Retired {
                        hour,
                        ..Retired::default()
                    };
                }
                slot.sessions += 1;
                slot.window_peaks.add(entry.window_peak);
                slot.minute_peaks.add(entry.minute_peak);
            }
        }
    }

    /// What each endpoint's sessions did in the last 24 hours, mergeable.
    ///
    /// This walks every table once: call it from a report, not per request.
    pub fn endpoint_rates(&self) -> Vec<EndpointRates> {
        let now_minute = self.inner.clock.now().as_secs() / 60;
        let horizon = HORIZON.as_secs() / 60;
        let mut by_endpoint: HashMap<Endpoint, EndpointRates, IdHash> = HashMap::default();
        let blank = |endpoint| EndpointRates {
            endpoint,
            sessions: 0,
            window_peaks: QuantileSketch::new(),
            minute_peaks: QuantileSketch::new(),
        };
        for shard in &self.inner.shards {
            let table = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for ((endpoint, _), entry) in table.iter() {
                if entry.minute + horizon < now_minute {
                    continue;
                }
                let rates = by_endpoint
                    .entry(*endpoint)
                    .or_insert_with(|| blank(*endpoint));
                rates.sessions += 1;
                rates.window_peaks.add(entry.window_peak);
                rates.minute_peaks.add(entry.minute_peak);
            }
        }
        let now_hour = now_minute / 60;
        let retired = self
            .inner
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (endpoint, hours) in retired.iter() {
            for slot in hours.iter().filter(|s| s.sessions > 0) {
                if slot.hour + HOURS as u64 <= now_hour {
                    continue;
                }
                let rates = by_endpoint
                    .entry(*endpoint)
                    .or_insert_with(|| blank(*endpoint));
                rates.sessions += slot.sessions;
                rates.window_peaks.merge(&slot.window_peaks);
                rates.minute_peaks.merge(&slot.minute_peaks);
            }
        }
        let mut all: Vec<_> = by_endpoint.into_values().collect();
        all.sort_by_key(|r| r.endpoint.to_string());
        all
    }

    /// The recommendations of every endpoint with at least
    /// [`MIN_SESSIONS`] sessions in the last 24 hours, by endpoint.
    pub fn recommendations(&self) -> Vec<Recommendation> {
        self.endpoint_rates()
            .iter()
            .filter_map(EndpointRates::recommend)
            .collect()
    }

    /// The recommendation for one endpoint, if it has enough sessions.
    pub fn recommendation(&self, endpoint: Endpoint) -> Option<Recommendation> {
        self.endpoint_rates()
            .iter()
            .find(|r| r.endpoint == endpoint)?
            .recommend()
    }

    /// Number of (endpoint, session) pairs tracked now.
    pub fn tracked(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

impl Default for RateRecommender {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder for RateRecommender {
    fn record(&self, observation: &Observation) {
        if let Some(session) = observation.session {
            self.count(observation.endpoint, session, observation.at);
        }
    }
}

impl fmt::Debug for RateRecommender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateRecommender")
            .field("max_entries", &(self.inner.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateRecommender`].
#[derive(Debug, Default)]
#[must_use]
pub struct RateRecommenderBuilder {
    clock: Option<SharedClock>,
    max_entries: Option<usize>,
}

impl RateRecommenderBuilder {
    /// The clock that says which sessions are within the last 24 hours; the
    /// system clock by default. Counting itself uses the observation's time.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The most (endpoint, session) pairs tracked at once; 100,000 by
    /// default, at least 16.
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = Some(max);
        self
    }

    /// Builds the recommender; fails when `max_entries` is below 16.
    pub fn build(self) -> Result<RateRecommender, ConfigError> {
        let max = self.max_entries.unwrap_or(100_000);
        if max < SHARDS {
            return Err(ConfigError::OutOfRange {
                what: "rate recommender max_entries (at least 16)",
                value: max.to_string(),
            });
        }
        Ok(RateRecommender {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                retired: Mutex::default(),
                per_shard: max / SHARDS,
                clock: self.clock.unwrap_or_else(SystemClock::shared),
            }),
        })
    }
}

pub(crate) fn shard_of(session: SessionId) -> usize {
    // Session ids are keyed digests: their low bits are already uniform.
    (session.as_u128() as usize) % SHARDS
}

/// A hasher for keys made of session ids and endpoints.
///
/// Session ids are keyed digests that clients cannot choose, and endpoints
/// are interned pointers fixed by the application, so a multiply-fold is
/// enough; it costs a fraction of SipHash.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHash;

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Hashes one key with [`IdHash`]; used by the tests of the tables.
#[cfg(test)]
pub(crate) fn id_hash<T: Hash>(value: &T) -> u64 {
    IdHash.hash_one(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use palisade_core::{HostPattern, ManualClock};

    const T0: Duration = Duration::from_secs(1_700_000_000 / 600 * 600);

    fn endpoint(path: &str) -> Endpoint {
        Endpoint::new(Method::GET, HostPattern::Any, path)
    }

    fn session(i: u128) -> SessionId {
        SessionId::from_u128(i * 0x9e37_79b9_7f4a_7c15 + 1)
    }

    #[test]
    fn peak_is_the_busiest_ten_minutes() {
        let mut entry = Entry::new(0);
        // Five a minute for 30 minutes: every 10-minute window holds 50.
        for minute in 0..30 {
            for _ in 0..5 {
                entry.count(minute);
            }
        }
        assert_eq!(entry.window_peak, 50);
        assert_eq!(entry.minute_peak, 5);
        // A burst of 70 in one minute after a long pause.
        for _ in 0..70 {
            entry.count(1_000);
        }
        assert_eq!(entry.window_peak, 70);
        assert_eq!(entry.minute_peak, 70);
    }

    #[test]
    fn window_never_overcounts_and_undercounts_by_at_most_a_minute() {
        // 10 requests at the end of minute 0 and 10 at the start of
        // minute 10: a true 10-minute window (0:59 to 10:01) holds 20; the
        // window in minute steps sees minutes 1..=10 at most, so 10.
        let mut entry = Entry::new(0);
        for _ in 0..10 {
            entry.count(0);
        }
        for _ in 0..10 {
            entry.count(10);
        }
        assert_eq!(entry.window_peak, 10);
        assert!(20 - entry.window_peak <= 10);
    }

    #[test]
    fn synthetic_rates_give_quantiles_within_the_sketch_error() {
        let clock = ManualClock::new(T0);
        let rec = RateRecommender::builder()
            .clock(clock.shared())
            .build()
            .unwrap();
        let ep = endpoint("/items");
        // Session i makes i requests in its first minute: peaks 1..=200.
        for i in 1..=200u32 {
            for _ in 0..i {
                rec.count(ep, session(u128::from(i)), T0);
            }
        }
        let r = rec.recommendation(ep).unwrap();
        assert_eq!(r.sessions, 200);
        // Exact values at rank q·(n−1): 100.5 → 100, 180.1 → 180, 198.01 → 198.
        for (estimate, truth) in [(r.p50, 100.0), (r.p90, 180.0), (r.p99, 198.0)] {
            assert!(
                (estimate - truth).abs() <= truth * crate::quantile::RELATIVE_ERROR,
                "{estimate} vs {truth}"
            );
        }
        assert_eq!(r.max, 200);
        assert_eq!(r.limit, (r.p99 * 1.5).ceil() as u32);
        assert_eq!(r.burst, r.limit);
        assert_eq!(r.action, SuggestedAction::Log);
        assert_eq!(r.confidence, Confidence::Medium);
        assert_eq!(r.window, WINDOW);
    }

    #[test]
    fn fewer_than_fifty_sessions_give_no_recommendation() {
        let clock = ManualClock::new(T0);
        let rec = RateRecommender::builder()
            .clock(clock.shared())
            .build()
            .unwrap();
        let ep = endpoint("/few");
        for i in 0..49 {
            rec.count(ep, session(i), T0);
        }
        assert!(rec.recommendation(ep).is_none());
        assert!(rec.recommendations().is_empty());
        rec.count(ep, session(49), T0);
        assert_eq!(rec.recommendation(ep).unwrap().confidence, Confidence::Low);

        // A day later, the same sessions no longer count.
        clock.advance(HORIZON + Duration::from_secs(60));
        assert!(rec.recommendation(ep).is_none());
    }

    #[test]
    fn anonymous_requests_are_not_counted() {
        let rec = RateRecommender::new();
        rec.record(&Observation {
            endpoint: endpoint("/anon"),
            session: None,
            status: http::StatusCode::OK,
            at: T0,
        });
        assert_eq!(rec.tracked(), 0);
    }

    #[test]
    fn memory_is_capped_and_retired_sessions_still_count() {
        let clock = ManualClock::new(T0);
        let rec = RateRecommender::builder()
            .clock(clock.shared())
            .max_entries(64)
            .build()
            .unwrap();
        let ep = endpoint("/flood");
        for i in 0..1_000 {
            rec.count(ep, session(i), T0 + Duration::from_secs(i as u64));
        }
        assert!(rec.tracked() <= 64);
        let rates = rec.endpoint_rates();
        assert_eq!(rates[0].sessions, 1_000);
        assert_eq!(rates[0].window_peaks.count(), 1_000);
    }

    #[test]
    fn fleets_merge_endpoint_rates() {
        let a = RateRecommender::builder()
            .clock(ManualClock::new(T0).shared())
            .build()
            .unwrap();
        let b = a.clone();
        let c = RateRecommender::builder()
            .clock(ManualClock::new(T0).shared())
            .build()
            .unwrap();
        let ep = endpoint("/fleet");
        for i in 0..30 {
            a.count(ep, session(i), T0);
            c.count(ep, session(100 + i), T0);
        }
        assert!(b.recommendation(ep).is_none());
        let mut merged = a.endpoint_rates().remove(0);
        merged.merge(&c.endpoint_rates()[0]);
        assert_eq!(merged.recommend().unwrap().sessions, 60);
    }

    #[test]
    fn bad_bounds_are_named() {
        let err = RateRecommender::builder()
            .max_entries(3)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("max_entries"));
        assert_ne!(id_hash(&session(1)), id_hash(&session(2)));
    }
}
