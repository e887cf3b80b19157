//! Ranking headers and cookies that look like client identifiers.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// A header or cookie that looks like a client identifier, with the figures
/// behind its score. Part of [`AutoDetectReport`](super::AutoDetectReport).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// `header:<name>` or `cookie:<name>`.
    pub identifier: String,
    /// Share of sampled 2xx requests that carried it, from 0 to 1.
    pub presence: f64,
    /// Estimated number of distinct values.
    pub distinct_values: f64,
    /// Mean number of requests per value.
    pub requests_per_value: f64,
    /// `presence × (1 − 1/distinct_values) × (1 − 1/requests_per_value)`:
    /// zero for a constant and for a per-request nonce, close to the
    /// presence for a per-client value.
    pub score: f64,
}

/// Per-name statistics over a hash sample of the values.
///
/// Values are kept as keyed hashes, and only those below a threshold: when
/// more than `max_values` are kept, the threshold halves and the values
/// above it go. The kept values are a uniform sample of all distinct values,
/// so the distinct count scales up from it and the requests per value are
/// measured on it.
#[derive(Debug)]
struct NameStats {
    seen: u64,
    threshold: u64,
    values: HashMap<u64, u32>,
}

#[derive(Debug, Default)]
struct Table {
    sampled: u64,
    names: HashMap<String, NameStats>,
}

/// The candidate table, bounded in names and in values per name.
#[derive(Debug)]
pub(crate) struct Candidates {
    table: Mutex<Table>,
    max_names: usize,
    max_values: usize,
}

impl Candidates {
    pub(crate) fn new(max_names: usize, max_values: usize) -> Self {
        Self {
            table: Mutex::default(),
            max_names,
            max_values: max_values.max(1),
        }
    }

    /// Records one sampled 2xx request: the names it carried and the
    /// hashes of their values. Names past the cap are not tracked.
    pub(crate) fn record(&self, facts: &[(String, u64)]) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.sampled += 1;
        for (name, hash) in facts {
            let full = table.names.len() >= self.max_names;
            let stats = match table.names.get_mut(name.as_str()) {
                Some(stats) => stats,
                None if full => continue,
                None => table.names.entry(name.clone()).or_insert(NameStats {
                    seen: 0,
                    threshold: u64::MAX,
                    values: HashMap::new(),
                }),
            };
            stats.seen += 1;
            if *hash <= stats.threshold {
                *stats.values.entry(*hash).or_default() += 1;
                while stats.values.len() > self.max_values {
                    stats.threshold /= 2;
                    let threshold = stats.threshold;
                    stats.values.retain(|h, _| *h <= threshold);
                }
            }
        }
    }

    /// Sampled requests so far, and the candidates ranked by score, best
    /// first; names with a zero score are left out.
    pub(crate) fn ranked(&self) -> (u64, Vec<Candidate>) {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let sampled = table.sampled.max(1) as f64;
        let mut ranked: Vec<Candidate> = table
            .names
            .iter()
            .filter(|(_, stats)| !stats.values.is_empty())
            .map(|(name, stats)| {
                let kept = stats.values.len() as f64;
                let fraction = stats.threshold as f64 / u64::MAX as f64;
                let distinct = kept / fraction;
                let requests: u64 = stats.values.values().map(|&n| u64::from(n)).sum();
                let per_value = requests as f64 / kept;
                let presence = stats.seen as f64 / sampled;
                let score = presence * (1.0 - 1.0 / distinct) * (1.0 - 1.0 / per_value);
                Candidate {
                    identifier: name.clone(),
                    presence,
                    distinct_values: distinct,
                    requests_per_value: per_value,
                    score: score.max(0.0),
                }
            })
            .filter(|c| c.score > 0.0)
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        (table.sampled, ranked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> u64 {
        // A fixed mixing function spreads test values over the hash range.
        let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    #[test]
    fn per_client_key_beats_constant_and_nonce() {
        let candidates = Candidates::new(16, 64);
        for request in 0..2_000u64 {
            candidates.record(&[
                ("header:x-api-key".into(), hash(request % 100)),
                ("header:x-app".into(), hash(7)),
                ("header:x-nonce".into(), hash(1_000_000 + request)),
            ]);
        }
        let (sampled, ranked) = candidates.ranked();
        assert_eq!(sampled, 2_000);
        assert_eq!(ranked.len(), 1, "{ranked:?}");
        let key = &ranked[0];
        assert_eq!(key.identifier, "header:x-api-key");
        assert_eq!(key.presence, 1.0);
        // 100 distinct values, estimated from a sample of at most 64.
        assert!((50.0..200.0).contains(&key.distinct_values), "{key:?}");
        assert!((10.0..40.0).contains(&key.requests_per_value), "{key:?}");
    }

    #[test]
    fn names_and_values_are_bounded() {
        let candidates = Candidates::new(3, 8);
        for i in 0..10_000u64 {
            candidates.record(&[(format!("header:x-{}", i % 10), hash(i))]);
        }
        let table = candidates.table.lock().unwrap();
        assert_eq!(table.names.len(), 3);
        assert!(table.names.values().all(|s| s.values.len() <= 8));
    }
}
