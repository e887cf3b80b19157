//! A mergeable quantile sketch with a bounded relative error.

use serde::{Deserialize, Serialize};

/// The relative accuracy of every [`QuantileSketch`]: a quantile it reports
/// is within 1% of a value of the right rank.
pub const RELATIVE_ERROR: f64 = 0.01;

/// `(1 + α) / (1 − α)` for α = [`RELATIVE_ERROR`]: each bucket spans values
/// from `γ^(i−1)` (excluded) to `γ^i` (included).
const GAMMA: f64 = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR);

/// A quantile sketch of positive counts, in the manner of DDSketch
/// (Masson, Rim and Lee, VLDB 2019).
///
/// A value `v ≥ 1` falls in bucket `ceil(ln v / ln γ)`; a bucket is reported
/// as `2γ^i / (γ + 1)`, which is within [`RELATIVE_ERROR`] of every value
/// in it. So the `q`-quantile the sketch reports is within 1% of the value of
/// rank `q·(n−1)` among the values added, whatever their distribution.
///
/// Memory is bounded by the range of the values, not their number: counts
/// are `u32`, so there are at most 1,111 buckets (about 9 KiB), and usually
/// a few hundred. Two sketches merge by adding their buckets, and the merge
/// is exactly the sketch of all the values: instances of a fleet can merge
/// what they saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantileSketch {
    /// Count of values per bucket index, from index 0 (the value 1) up.
    buckets: Vec<u64>,
    /// Number of values added.
    count: u64,
    /// The smallest and largest values added, exact.
    min: u32,
    max: u32,
}

impl QuantileSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value; zero counts as one (a session that was seen made at
    /// least one request).
    pub fn add(&mut self, value: u32) {
        let value = value.max(1);
        let index = bucket_of(value);
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, 0);
        }
        self.buckets[index] += 1;
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
    }

    /// Adds every value of `other` to this sketch.
    pub fn merge(&mut self, other: &QuantileSketch) {
        if other.count == 0 {
            return;
        }
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The largest value added, exact; `None` when empty.
    pub fn max(&self) -> Option<u32> {
        (self.count > 0).then_some(self.max)
    }

    /// The `q`-quantile (`q` in `0..=1`, clamped), within
    /// [`RELATIVE_ERROR`] of the value of rank `q·(n−1)`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // The extremes are kept exact.
        if q == 0.0 {
            return Some(f64::from(self.min));
        }
        if q == 1.0 {
            return Some(f64::from(self.max));
        }
        let rank = q * (self.count - 1) as f64;
        let mut seen = 0u64;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen as f64 > rank {
                let estimate = 2.0 * GAMMA.powi(index as i32) / (GAMMA + 1.0);
                // The exact extremes tighten the estimate at both ends.
                return Some(estimate.clamp(f64::from(self.min), f64::from(self.max)));
            }
        }
        Some(f64::from(self.max))
    }
}

fn bucket_of(value: u32) -> usize {
    // ln 1 = 0 puts 1 in bucket 0; u32::MAX lands in bucket 1,110.
    (f64::from(value).ln() / GAMMA.ln()).ceil() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[u32], q: f64) -> f64 {
        f64::from(sorted[(q * (sorted.len() - 1) as f64) as usize])
    }

    fn within(estimate: f64, truth: f64) -> bool {
        (estimate - truth).abs() <= RELATIVE_ERROR * truth + 1e-9
    }

    #[test]
    fn quantiles_are_within_the_documented_error() {
        // A skewed spread of values, from 1 to about a million.
        let mut values: Vec<u32> = (0..5_000u32).map(|i| 1 + (i * i) / 25 + i % 7).collect();
        let mut sketch = QuantileSketch::new();
        for &v in &values {
            sketch.add(v);
        }
        values.sort_unstable();
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let estimate = sketch.quantile(q).unwrap();
            assert!(
                within(estimate, exact(&values, q)),
                "q {q}: {estimate} vs {}",
                exact(&values, q)
            );
        }
        assert_eq!(sketch.count(), 5_000);
        assert_eq!(sketch.max(), Some(*values.last().unwrap()));
    }

    #[test]
    fn merge_is_the_sketch_of_all_values() {
        let mut a = QuantileSketch::new();
        let mut b = QuantileSketch::new();
        let mut all = QuantileSketch::new();
        for v in 1..=300u32 {
            let target = if v % 3 == 0 { &mut a } else { &mut b };
            target.add(v * 11);
            all.add(v * 11);
        }
        a.merge(&b);
        assert_eq!(a, all);
        let mut empty = QuantileSketch::new();
        empty.merge(&all);
        assert_eq!(empty, all);
    }

    #[test]
    fn extremes_and_empty() {
        let mut sketch = QuantileSketch::new();
        assert_eq!(sketch.quantile(0.5), None);
        sketch.add(0);
        sketch.add(u32::MAX);
        assert_eq!(sketch.quantile(0.0), Some(1.0));
        assert_eq!(sketch.quantile(1.0), Some(f64::from(u32::MAX)));
        assert!(sketch.buckets.len() <= 1_111);
        assert_eq!(sketch.quantile(f64::NAN), Some(1.0));
    }
}
