//! Sequence analytics: in which order sessions call endpoints.
//!
//! # History
//!
//! Per session, [`SequenceTracker`] keeps the last 10 endpoints of the
//! current *sequence*, consecutive repeats collapsed (`A A B A` is kept as
//! `A B A`), each with the time it was last called. A gap of more than 10
//! minutes between two requests of a session starts a new sequence. The same
//! history serves the [sequence rules](crate::sequence_rule).
//!
//! # Counts and the precedence score
//!
//! Each time an endpoint `E` enters a session's history (a repeat of the
//! last endpoint does not), the tracker counts:
//!
//! - one *occurrence* of `E`;
//! - one **pair** `(A, E)` for each distinct endpoint `A ≠ E` earlier in the
//!   current sequence: `A` came before `E`, not necessarily just before;
//! - one **sequence** for each run `E₁ … Eₖ, E` of 2 to
//!   [`max_len`](SequenceTrackerBuilder::max_len) endpoints that ends the
//!   history: the endpoints just before `E`, in order.
//!
//! The **precedence score** of a pair or sequence ending in `E` is
//!
//! ```text
//! score = count(pair or sequence) / occurrences(E)
//! ```
//!
//! the share of the times `E` was called (repeats collapsed) that the
//! earlier endpoints preceded it. A score of 1 for `(cart, checkout)` says
//! every checkout came after a cart in the same sequence: an order worth
//! enforcing with a sequence rule.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use palisade_core::{ConfigError, Endpoint, SessionId, SharedClock, SystemClock};
use serde::Serialize;

use crate::observe::{Observation, Recorder};
use crate::rates::{IdHash, shard_of};

/// Endpoints kept per session: the last 10.
pub const HISTORY: usize = 10;

/// A gap longer than this starts a new sequence: 10 minutes.
pub const SEQUENCE_GAP: Duration = Duration::from_secs(600);

const SHARDS: usize = 16;

/// Learns the order in which sessions call endpoints; a [`Recorder`].
///
/// Cloning is cheap: clones share the same tables, sharded by session, each
/// shard behind its own short lock.
///
/// # Memory
///
/// - At most [`max_sessions`](SequenceTrackerBuilder::max_sessions)
///   histories (100,000 by default, about 300 bytes each). A history idle for
///   more than the 10-minute gap is over; it is dropped when its shard needs
///   room, and then the least recently active eighth goes.
/// - At most [`max_patterns`](SequenceTrackerBuilder::max_patterns) pairs
///   and as many sequences (10,000 each by default). When a table is full,
///   the half with the lowest counts is dropped, so patterns that keep
///   recurring stay and one-off ones make room. Counts after such a cut are
///   lower bounds.
#[derive(Clone)]
pub struct SequenceTracker {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    clock: SharedClock,
    max_len: usize,
    sessions_per_shard: usize,
    patterns_per_shard: usize,
}

#[derive(Default)]
struct Shard {
    histories: HashMap<SessionId, History, IdHash>,
    occurrences: HashMap<Endpoint, u64, IdHash>,
    pairs: HashMap<(Endpoint, Endpoint), u64, IdHash>,
    sequences: HashMap<Box<[Endpoint]>, u64, IdHash>,
}

/// One session's current sequence, oldest first, kept inline so that a
/// visit touches one slot of the table and allocates nothing.
struct History {
    endpoints: [Endpoint; HISTORY],
    times: [Duration; HISTORY],
    len: usize,
    last: Duration,
}

impl History {
    /// An empty history; `filler` only fills the unused slots.
    fn new(filler: Endpoint, at: Duration) -> Self {
        Self {
            endpoints: [filler; HISTORY],
            times: [at; HISTORY],
            len: 0,
            last: at,
        }
    }

    fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints[..self.len]
    }

    /// When `endpoint` was last called in this sequence, if it was.
    fn last_call(&self, endpoint: Endpoint) -> Option<Duration> {
        let i = self.endpoints().iter().rposition(|e| *e == endpoint)?;
        Some(self.times[i])
    }

    fn push(&mut self, endpoint: Endpoint, at: Duration) {
        if self.len == HISTORY {
            self.endpoints.copy_within(1.., 0);
            self.times.copy_within(1.., 0);
            self.len -= 1;
        }
        self.endpoints[self.len] = endpoint;
        self.times[self.len] = at;
        self.len += 1;
    }
}

/// A pair or sequence of endpoints, how often it was seen and its
/// precedence score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pattern {
    /// The endpoints in the order called; the last is the one scored.
    #[serde(serialize_with = "serialize_endpoints")]
    pub endpoints: Vec<Endpoint>,
    /// How many times it was seen.
    pub count: u64,
    /// `count` divided by the occurrences of the last endpoint.
    pub score: f64,
}

fn serialize_endpoints<S: serde::Serializer>(e: &[Endpoint], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(e.iter().map(ToString::to_string))
}

/// What the tracker learned: pairs and sequences with their scores.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SequenceReport {
    /// Ordered pairs: the first came before the second in a sequence.
    pub pairs: Vec<Pattern>,
    /// Runs of consecutive endpoints, 2 to `max_len` long.
    pub sequences: Vec<Pattern>,
}

impl SequenceReport {
    /// The `n` sequences with the highest score, ties by count.
    pub fn top_by_score(&self, n: usize) -> Vec<Pattern> {
        top(&self.sequences, n, |a, b| {
            b.score.total_cmp(&a.score).then(b.count.cmp(&a.count))
        })
    }

    /// The `n` sequences seen most often, ties by score.
    pub fn top_by_volume(&self, n: usize) -> Vec<Pattern> {
        top(&self.sequences, n, |a, b| {
            b.count.cmp(&a.count).then(b.score.total_cmp(&a.score))
        })
    }

    /// The pair `(first, then)`, if it was seen.
    pub fn pair(&self, first: Endpoint, then: Endpoint) -> Option<&Pattern> {
        self.pairs.iter().find(|p| p.endpoints == [first, then])
    }

    /// The sequence of exactly these endpoints, if it was seen.
    pub fn sequence(&self, endpoints: &[Endpoint]) -> Option<&Pattern> {
        self.sequences.iter().find(|p| p.endpoints == endpoints)
    }
}

fn top(
    patterns: &[Pattern],
    n: usize,
    order: impl Fn(&Pattern, &Pattern) -> std::cmp::Ordering,
) -> Vec<Pattern> {
    let mut sorted = patterns.to_vec();
    sorted.sort_by(|a, b| order(a, b).then_with(|| names(a).cmp(&names(b))));
    sorted.truncate(n);
    sorted
}

fn names(p: &Pattern) -> Vec<String> {
    p.endpoints.iter().map(ToString::to_string).collect()
}

impl SequenceTracker {
    /// A tracker on the system clock with default bounds.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder to set the clock and the bounds.
    pub fn builder() -> SequenceTrackerBuilder {
        SequenceTrackerBuilder::default()
    }

    /// The tracker's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Records that `session` called `endpoint` at `at` (time since the
    /// epoch) and got a 2xx answer.
    pub fn visit(&self, session: SessionId, endpoint: Endpoint, at: Duration) {
        let mut shard = self.inner.shards[shard_of(session)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let shard = &mut *shard;

        if !shard.histories.contains_key(&session)
            && shard.histories.len() >= self.inner.sessions_per_shard
        {
            evict_histories(&mut shard.histories, at, self.inner.sessions_per_shard);
        }
        let history = shard
            .histories
            .entry(session)
            .or_insert_with(|| History::new(endpoint, at));
        if at.saturating_sub(history.last) > SEQUENCE_GAP {
            history.len = 0;
        }
        history.last = history.last.max(at);

        // A repeat of the last endpoint only moves its time.
        if history.len > 0 && history.endpoints[history.len - 1] == endpoint {
            history.times[history.len - 1] = at;
            return;
        }
        history.push(endpoint, at);

        let steps = history.endpoints();
        *shard.occurrences.entry(endpoint).or_default() += 1;
        let earlier = &steps[..steps.len() - 1];
        for (i, before) in earlier.iter().enumerate() {
            // Each distinct earlier endpoint counts once.
            if *before != endpoint && !earlier[i + 1..].contains(before) {
                bump(
                    &mut shard.pairs,
                    (*before, endpoint),
                    self.inner.patterns_per_shard,
                );
            }
        }
        for len in 2..=self.inner.max_len.min(steps.len()) {
            let run = &steps[steps.len() - len..];
            match shard.sequences.get_mut(run) {
                Some(count) => *count += 1,
                None => bump(
                    &mut shard.sequences,
                    run.into(),
                    self.inner.patterns_per_shard,
                ),
            }
        }
    }

    /// Whether `session` called `endpoint` in its current sequence at most
    /// `window` before `now`.
    pub fn called_within(
        &self,
        session: SessionId,
        endpoint: Endpoint,
        window: Duration,
        now: Duration,
    ) -> bool {
        let shard = self.inner.shards[shard_of(session)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(history) = shard.histories.get(&session) else {
            return false;
        };
        if now.saturating_sub(history.last) > SEQUENCE_GAP {
            return false;
        }
        history
            .last_call(endpoint)
            .is_some_and(|at| now.saturating_sub(at) <= window)
    }

    /// The endpoints of `session`'s current sequence, oldest first; empty
    /// when its last request is more than 10 minutes old.
    pub fn history(&self, session: SessionId) -> Vec<Endpoint> {
        let now = self.inner.clock.now();
        let shard = self.inner.shards[shard_of(session)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match shard.histories.get(&session) {
            Some(h) if now.saturating_sub(h.last) <= SEQUENCE_GAP => h.endpoints().to_vec(),
            _ => Vec::new(),
        }
    }

    /// Number of session histories kept now.
    pub fn tracked(&self) -> usize {
        self.shards().map(|s| s.histories.len()).sum()
    }

    /// Pairs and sequences with their counts and precedence scores.
    ///
    /// This merges every shard: call it from a report, not per request.
    pub fn report(&self) -> SequenceReport {
        let mut occurrences: HashMap<Endpoint, u64, IdHash> = HashMap::default();
        let mut pairs: HashMap<(Endpoint, Endpoint), u64, IdHash> = HashMap::default();
        let mut sequences: HashMap<Box<[Endpoint]>, u64, IdHash> = HashMap::default();
        for shard in self.shards() {
            for (e, n) in &shard.occurrences {
                *occurrences.entry(*e).or_default() += n;
            }
            for (k, n) in &shard.pairs {
                *pairs.entry(*k).or_default() += n;
            }
            for (k, n) in &shard.sequences {
                *sequences.entry(k.clone()).or_default() += n;
            }
        }
        let pattern = |endpoints: Vec<Endpoint>, count: u64| {
            let last = endpoints[endpoints.len() - 1];
            let total = occurrences.get(&last).copied().unwrap_or(count).max(count);
            Pattern {
                endpoints,
                count,
                score: count as f64 / total as f64,
            }
        };
        let mut report = SequenceReport {
            pairs: pairs
                .into_iter()
                .map(|((a, b), n)| pattern(vec![a, b], n))
                .collect(),
            sequences: sequences
                .into_iter()
                .map(|(k, n)| pattern(k.into_vec(), n))
                .collect(),
        };
        report.pairs.sort_by_key(names);
        report.sequences.sort_by_key(names);
        report
    }

    fn shards(&self) -> impl Iterator<Item = std::sync::MutexGuard<'_, Shard>> {
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Adds one to `key`; a full table first drops every count at or below
/// the median, at least half of it.
fn bump<K: std::hash::Hash + Eq>(table: &mut HashMap<K, u64, IdHash>, key: K, cap: usize) {
    if !table.contains_key(&key) && table.len() >= cap {
        let mut counts: Vec<u64> = table.values().copied().collect();
        let mid = counts.len() / 2;
        let median = *counts.select_nth_unstable(mid).1;
        table.retain(|_, n| *n > median);
    }
    *table.entry(key).or_default() += 1;
}

/// Drops finished histories (idle past the gap); if that frees nothing,
/// drops the least recently active eighth.
fn evict_histories(histories: &mut HashMap<SessionId, History, IdHash>, now: Duration, cap: usize) {
    histories.retain(|_, h| now.saturating_sub(h.last) <= SEQUENCE_GAP);
    if histories.len() < cap {
        return;
    }
    let mut by_age: Vec<_> = histories.iter().map(|(s, h)| (h.last, *s)).collect();
    let cut = (by_age.len() / 8).max(1);
    by_age.select_nth_unstable_by_key(cut - 1, |(last, _)| *last);
    for (_, session) in &by_age[..cut] {
        histories.remove(session);
    }
}

impl Default for SequenceTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder for SequenceTracker {
    fn record(&self, observation: &Observation) {
        if let Some(session) = observation.session {
            self.visit(session, observation.endpoint, observation.at);
        }
    }
}

impl fmt::Debug for SequenceTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceTracker")
            .field("max_len", &self.inner.max_len)
            .field("max_sessions", &(self.inner.sessions_per_shard * SHARDS))
            .field("max_patterns", &(self.inner.patterns_per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

/// Builds a [`SequenceTracker`].
#[derive(Debug, Default)]
#[must_use]
pub struct SequenceTrackerBuilder {
    clock: Option<SharedClock>,
    max_sessions: Option<usize>,
    max_patterns: Option<usize>,
    max_len: Option<usize>,
}

impl SequenceTrackerBuilder {
    /// The clock of the rules and of [`history`](SequenceTracker::history);
    /// the system clock by default. Recording uses the observation's time.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The most session histories kept at once; 100,000 by default, at
    /// least 16.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = Some(max);
        self
    }

    /// The most pairs, and the most sequences, counted at once; 10,000 each
    /// by default, at least 16.
    pub fn max_patterns(mut self, max: usize) -> Self {
        self.max_patterns = Some(max);
        self
    }

    /// The longest sequence counted, 2 to 10 endpoints; 4 by default.
    pub fn max_len(mut self, len: usize) -> Self {
        self.max_len = Some(len);
        self
    }

    /// Builds the tracker; fails on a bound out of range, naming it.
    pub fn build(self) -> Result<SequenceTracker, ConfigError> {
        let max_sessions = self.max_sessions.unwrap_or(100_000);
        let max_patterns = self.max_patterns.unwrap_or(10_000);
        let max_len = self.max_len.unwrap_or(4);
        if max_sessions < SHARDS {
            return Err(ConfigError::OutOfRange {
                what: "sequence tracker max_sessions (at least 16)",
                value: max_sessions.to_string(),
            });
        }
        if max_patterns < SHARDS {
            return Err(ConfigError::OutOfRange {
                what: "sequence tracker max_patterns (at least 16)",
                value: max_patterns.to_string(),
            });
        }
        if !(2..=HISTORY).contains(&max_len) {
            return Err(ConfigError::OutOfRange {
                what: "sequence tracker max_len (2 to 10)",
                value: max_len.to_string(),
            });
        }
        Ok(SequenceTracker {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                clock: self.clock.unwrap_or_else(SystemClock::shared),
                max_len,
                sessions_per_shard: max_sessions / SHARDS,
                patterns_per_shard: max_patterns / SHARDS,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use palisade_core::{Clock, HostPattern, ManualClock};

    const T0: Duration = Duration::from_secs(1_700_000_000);

    fn ep(method: Method, path: &str) -> Endpoint {
        Endpoint::new(method, HostPattern::Any, path)
    }

    fn session(i: u128) -> SessionId {
        SessionId::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 7)
    }

    #[test]
    fn login_cart_checkout_flow_is_found_with_its_precedence() {
        let tracker = SequenceTracker::new();
        let login = ep(Method::POST, "/login");
        let cart = ep(Method::GET, "/cart");
        let checkout = ep(Method::POST, "/checkout");
        let browse = ep(Method::GET, "/items");
        let mut at = T0;
        for i in 0..40 {
            let s = session(i);
            for e in [login, browse, browse, cart, checkout] {
                at += Duration::from_secs(1);
                tracker.visit(s, e, at);
            }
        }
        // Ten sessions reach the cart and never check out; five check out
        // straight after login.
        for i in 40..50 {
            tracker.visit(session(i), login, at);
            tracker.visit(session(i), cart, at);
        }
        for i in 50..55 {
            tracker.visit(session(i), login, at);
            tracker.visit(session(i), checkout, at);
        }

        let report = tracker.report();
        let flow = report.sequence(&[browse, cart, checkout]).unwrap();
        assert_eq!(flow.count, 40);
        assert!((flow.score - 40.0 / 45.0).abs() < 1e-9);
        let pair = report.pair(cart, checkout).unwrap();
        assert!((pair.score - 40.0 / 45.0).abs() < 1e-9);
        let pair = report.pair(login, checkout).unwrap();
        assert_eq!((pair.count, pair.score), (45, 1.0));
        let pair = report.pair(login, cart).unwrap();
        assert_eq!((pair.count, pair.score), (50, 1.0));
        // Repeats are collapsed: no (browse, browse).
        assert!(report.sequence(&[browse, browse]).is_none());

        let by_volume = report.top_by_volume(1);
        assert_eq!(by_volume[0].endpoints, [login, browse]);
        assert_eq!((by_volume[0].count, by_volume[0].score), (40, 1.0));
        let by_score = report.top_by_score(3);
        assert_eq!(by_score[0].endpoints, [login, browse]);
        assert_eq!(by_score[0].score, 1.0);
        // Then the runs into checkout, 40 of its 45 occurrences, longest
        // names last.
        assert!((by_score[1].score - 40.0 / 45.0).abs() < 1e-9);
    }

    #[test]
    fn a_gap_of_more_than_ten_minutes_starts_a_new_sequence() {
        let clock = ManualClock::new(T0);
        let tracker = SequenceTracker::builder()
            .clock(clock.shared())
            .build()
            .unwrap();
        let (a, b, c) = (
            ep(Method::GET, "/a"),
            ep(Method::GET, "/b"),
            ep(Method::GET, "/c"),
        );
        let s = session(1);
        let record = |e| {
            tracker.record(&Observation {
                endpoint: e,
                session: Some(s),
                status: http::StatusCode::OK,
                at: clock.now(),
            })
        };
        record(a);
        clock.advance(SEQUENCE_GAP);
        record(b); // exactly 10 minutes: same sequence
        assert_eq!(tracker.history(s), [a, b]);
        clock.advance(SEQUENCE_GAP + Duration::from_secs(1));
        record(c);
        assert_eq!(tracker.history(s), [c]);
        assert!(tracker.report().pair(b, c).is_none());
        assert!(tracker.report().pair(a, b).is_some());
        assert!(tracker.called_within(s, c, Duration::from_secs(1), clock.now()));
        assert!(!tracker.called_within(s, b, Duration::from_secs(3600), clock.now()));
        clock.advance(SEQUENCE_GAP + Duration::from_secs(1));
        assert!(tracker.history(s).is_empty());
    }

    #[test]
    fn history_keeps_the_last_ten() {
        let s = session(3);
        let eps: Vec<_> = (0..12)
            .map(|i| ep(Method::GET, &format!("/step/{i}")))
            .collect();
        let clock = ManualClock::new(T0 + Duration::from_secs(12));
        let tracker = SequenceTracker::builder()
            .clock(clock.shared())
            .build()
            .unwrap();
        for (i, e) in eps.iter().enumerate() {
            tracker.visit(s, *e, T0 + Duration::from_secs(i as u64));
        }
        assert_eq!(tracker.history(s), eps[2..]);
    }

    #[test]
    fn sessions_and_patterns_are_capped() {
        let tracker = SequenceTracker::builder()
            .max_sessions(32)
            .max_patterns(32)
            .build()
            .unwrap();
        let eps: Vec<_> = (0..20)
            .map(|i| ep(Method::GET, &format!("/cap/{i}")))
            .collect();
        for i in 0..2_000u128 {
            let s = session(i);
            for k in 0..4 {
                let e = eps[((i as usize) * 7 + k * 3) % eps.len()];
                tracker.visit(s, e, T0);
            }
        }
        assert!(tracker.tracked() <= 32);
        let report = tracker.report();
        assert!(report.pairs.len() <= 32);
        assert!(report.sequences.len() <= 32);
        assert!(!report.sequences.is_empty());
    }

    #[test]
    fn bad_bounds_are_named() {
        for (builder, name) in [
            (SequenceTracker::builder().max_len(11), "max_len"),
            (SequenceTracker::builder().max_len(1), "max_len"),
            (SequenceTracker::builder().max_sessions(2), "max_sessions"),
            (SequenceTracker::builder().max_patterns(0), "max_patterns"),
        ] {
            assert!(builder.build().unwrap_err().to_string().contains(name));
        }
    }
}
