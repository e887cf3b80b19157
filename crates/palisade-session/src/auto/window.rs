//! Sliding-window counts of 2xx responses, with and without `Authorization`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const BUCKETS: usize = 10;

/// Counts over a window split into ten buckets; the window slides one
/// bucket at a time. Updates are relaxed atomics: a count racing with a
/// bucket's reset may be lost, which moves a share by a negligible amount.
#[derive(Debug)]
pub(crate) struct Window {
    bucket_nanos: u64,
    buckets: [Bucket; BUCKETS],
}

#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    total: AtomicU64,
    with_auth: AtomicU64,
}

impl Window {
    pub(crate) fn new(window: Duration) -> Self {
        let bucket_nanos = (window.as_nanos() / BUCKETS as u128).clamp(1, u64::MAX as u128);
        Self {
            bucket_nanos: bucket_nanos as u64,
            buckets: Default::default(),
        }
    }

    fn epoch(&self, now: Duration) -> u64 {
        // Epoch 0 marks an unused bucket, so real epochs start at 1.
        (now.as_nanos() / self.bucket_nanos as u128) as u64 + 1
    }

    /// Counts one 2xx response.
    pub(crate) fn add(&self, now: Duration, with_auth: bool) {
        let epoch = self.epoch(now);
        let bucket = &self.buckets[(epoch % BUCKETS as u64) as usize];
        let seen = bucket.epoch.load(Relaxed);
        if seen != epoch
            && bucket
                .epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            bucket.total.store(0, Relaxed);
            bucket.with_auth.store(0, Relaxed);
        }
        bucket.total.fetch_add(1, Relaxed);
        if with_auth {
            bucket.with_auth.fetch_add(1, Relaxed);
        }
    }

    /// The responses in the window ending now, and how many carried
    /// `Authorization`.
    pub(crate) fn sum(&self, now: Duration) -> (u64, u64) {
        let current = self.epoch(now);
        let oldest = current.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| (oldest..=current).contains(&b.epoch.load(Relaxed)))
            .fold((0, 0), |(total, auth), b| {
                (
                    total + b.total.load(Relaxed),
                    auth + b.with_auth.load(Relaxed),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_slide_out_of_the_window() {
        let window = Window::new(Duration::from_secs(100));
        let t0 = Duration::from_secs(1_000_000);
        for _ in 0..5 {
            window.add(t0, true);
        }
        window.add(t0 + Duration::from_secs(50), false);
        assert_eq!(window.sum(t0 + Duration::from_secs(50)), (6, 5));
        // 95 s later the first bucket is still inside a 100 s window.
        assert_eq!(window.sum(t0 + Duration::from_secs(95)), (6, 5));
        // After 100 s it has slid out.
        assert_eq!(window.sum(t0 + Duration::from_secs(101)), (1, 0));
        assert_eq!(window.sum(t0 + Duration::from_secs(1000)), (0, 0));
    }

    #[test]
    fn a_reused_bucket_starts_from_zero() {
        let window = Window::new(Duration::from_secs(10));
        let t0 = Duration::from_secs(500);
        window.add(t0, true);
        window.add(t0 + Duration::from_secs(10), false);
        assert_eq!(window.sum(t0 + Duration::from_secs(10)), (1, 0));
    }
}
