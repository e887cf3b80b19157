//! A fixed-capacity, insert-only set of 64-bit hashes, read without locks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Open addressing with linear probing; 0 marks an empty bucket, so the
/// hash 0 is stored as 1. Full at three quarters of its buckets.
pub(crate) struct AtomicSet {
    buckets: Box<[AtomicU64]>,
    len: AtomicUsize,
}

impl AtomicSet {
    /// A set for up to `capacity` hashes.
    pub(crate) fn new(capacity: usize) -> Self {
        let buckets = (capacity * 4 / 3 + 1).next_power_of_two();
        Self {
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicUsize::new(0),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    pub(crate) fn contains(&self, hash: u64) -> bool {
        let hash = hash.max(1);
        let mask = self.buckets.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            match self.buckets[i].load(Ordering::Acquire) {
                0 => return false,
                h if h == hash => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Inserts `hash`; false when the set is full.
    pub(crate) fn insert(&self, hash: u64) -> bool {
        let hash = hash.max(1);
        if self.contains(hash) {
            return true;
        }
        if self.len.load(Ordering::Relaxed) * 4 >= self.buckets.len() * 3 {
            return false;
        }
        let mask = self.buckets.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            match self.buckets[i].compare_exchange(0, hash, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.len.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(h) if h == hash => return true,
                Err(_) => i = (i + 1) & mask,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AtomicSet;

    #[test]
    fn holds_what_was_inserted_until_full() {
        let set = AtomicSet::new(10);
        assert!(set.is_empty());
        assert!(set.insert(0));
        assert!(set.contains(0) && set.contains(1));
        let mut inserted = 1;
        while set.insert(inserted * 7919) {
            inserted += 1;
        }
        assert!(inserted >= 10, "{inserted}");
        assert!((1..inserted).all(|i| set.contains(i * 7919)));
        assert!(!set.contains(3));
    }
}
