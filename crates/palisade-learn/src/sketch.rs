//! A HyperLogLog sketch of distinct sessions, updated without locks.
//!
//! HyperLogLog (Flajolet et al., 2007) estimates how many distinct values
//! were added from `m` small registers: each value's hash picks a register
//! with its first `p` bits and stores there the largest *rank* seen, the
//! position of the first one bit in the rest. Here `p = 10`, so `m = 1024`
//! one-byte registers (1 KiB per endpoint) and the standard error is
//! `1.04 / sqrt(m)`, about 3.3%. Small counts use linear counting, which is
//! nearly exact. Sketches merge by taking the larger register.
//!
//! Session ids are already keyed 128-bit SipHash digests, so their bits are
//! uniform and serve as the hash.

use std::sync::atomic::{AtomicU8, Ordering};

use palisade_core::SessionId;

const P: u32 = 10;
const M: usize = 1 << P;

/// Distinct sessions of one endpoint, estimated.
pub(crate) struct SessionSketch {
    registers: Box<[AtomicU8]>,
}

impl SessionSketch {
    pub(crate) fn new() -> Self {
        Self {
            registers: (0..M).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    /// Adds a session; one relaxed load, and a store only when the
    /// register grows.
    pub(crate) fn add(&self, id: SessionId) {
        let bits = id.as_u128();
        let hash = (bits as u64) ^ ((bits >> 64) as u64);
        let index = (hash >> (64 - P)) as usize;
        // The rest, with a sentinel bit so the rank is at most 64 - P + 1.
        let rest = (hash << P) | (1 << (P - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let register = &self.registers[index];
        if register.load(Ordering::Relaxed) < rank {
            register.fetch_max(rank, Ordering::Relaxed);
        }
    }

    /// Raises every register to at least `other`'s.
    pub(crate) fn merge(&self, other: &SessionSketch) {
        for (mine, theirs) in self.registers.iter().zip(other.registers.iter()) {
            mine.fetch_max(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// The estimated number of distinct sessions added.
    pub(crate) fn estimate(&self) -> u64 {
        let m = M as f64;
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for register in self.registers.iter() {
            let r = register.load(Ordering::Relaxed);
            if r == 0 {
                zeros += 1;
            }
            sum += 2f64.powi(-i32::from(r));
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }

    /// The non-zero registers as `(index, rank)` pairs, for snapshots.
    pub(crate) fn sparse(&self) -> Vec<(u16, u8)> {
        self.registers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let r = r.load(Ordering::Relaxed);
                (r > 0).then_some((i as u16, r))
            })
            .collect()
    }

    /// Loads registers saved by [`sparse`](Self::sparse); ignores pairs
    /// out of range.
    pub(crate) fn load(&self, pairs: &[(u16, u8)]) {
        for (i, r) in pairs {
            if let Some(register) = self.registers.get(usize::from(*i)) {
                register.fetch_max((*r).min(64 - P as u8 + 1), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::{SessionKey, SessionSource};

    fn ids(from: u64, n: u64) -> impl Iterator<Item = SessionId> {
        let key = SessionKey::from_bytes([3; 16]);
        let source = SessionSource::header("authorization");
        (from..from + n).map(move |i| SessionId::digest(&key, source, &i.to_le_bytes()))
    }

    /// Relative error within four standard errors (4 x 3.25% = 13%) at
    /// every size, and small counts nearly exact; the ids are fixed, so the
    /// test is deterministic.
    #[test]
    fn estimate_is_within_the_error_bound() {
        for n in [1u64, 10, 50, 200, 1_000, 5_000, 20_000, 100_000] {
            let sketch = SessionSketch::new();
            for id in ids(0, n) {
                sketch.add(id);
                sketch.add(id);
            }
            let estimate = sketch.estimate() as f64;
            let error = (estimate - n as f64).abs() / n as f64;
            let bound = if n <= 200 {
                0.03
            } else {
                4.0 * 1.04 / (M as f64).sqrt()
            };
            assert!(
                error <= bound,
                "n = {n}: estimate {estimate}, error {error}"
            );
        }
    }

    #[test]
    fn merge_is_the_union_and_snapshots_round_trip() {
        let a = SessionSketch::new();
        let b = SessionSketch::new();
        ids(0, 3_000).for_each(|id| a.add(id));
        ids(2_000, 3_000).for_each(|id| b.add(id));
        a.merge(&b);
        let union = a.estimate() as f64;
        assert!((union - 5_000.0).abs() / 5_000.0 < 0.13, "{union}");

        let copy = SessionSketch::new();
        copy.load(&a.sparse());
        assert_eq!(copy.estimate(), a.estimate());
        assert_eq!(SessionSketch::new().estimate(), 0);
    }
}
