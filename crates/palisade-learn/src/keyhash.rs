//! The keyed hash of path templates, cheaper than SipHash for the many
//! short writes a path makes.
//!
//! Each 64-bit word is mixed into the state with a folded multiply (the
//! high and low halves of a 128-bit product, xored), as in foldhash, under
//! two secret per-process seeds. Without the seeds a client cannot aim two
//! paths at the same key; a collision would only merge the counts of two
//! templates.

use std::hash::{BuildHasher, RandomState};

const MUL: u64 = 0x2d35_8dcc_aa6c_78a5;

fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Secret seeds, drawn from the standard library's random hash keys.
#[derive(Clone, Copy)]
pub(crate) struct Seeds {
    mix: u64,
    last: u64,
    start: u64,
}

impl Seeds {
    pub(crate) fn random() -> Self {
        let keys = RandomState::new();
        Self {
            // Odd, so the multiply loses no bit of the state.
            mix: keys.hash_one(1u8) | 1,
            last: keys.hash_one(2u8) | 1,
            start: keys.hash_one(3u8),
        }
    }

    pub(crate) fn hasher(&self) -> KeyHasher {
        KeyHasher {
            state: self.start,
            seeds: *self,
        }
    }
}

/// A streaming hasher over words and byte strings.
#[derive(Clone)]
pub(crate) struct KeyHasher {
    state: u64,
    seeds: Seeds,
}

impl KeyHasher {
    pub(crate) fn word(&mut self, word: u64) {
        self.state = fold(self.state ^ word, self.seeds.mix ^ MUL);
    }

    /// Bytes in 8-byte little-endian words; the caller writes the length
    /// first, so the zero padding of the last word is unambiguous.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(word));
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        fold(self.state, self.seeds.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn distinct_inputs_get_distinct_keys() {
        let seeds = Seeds::random();
        let mut seen = HashSet::new();
        for i in 0..100_000u64 {
            let mut h = seeds.hasher();
            let text = i.to_string();
            h.word(text.len() as u64);
            h.bytes(text.as_bytes());
            assert!(seen.insert(h.finish()), "collision at {i}");
        }
        // Other seeds, other keys.
        let mut a = Seeds::random().hasher();
        let mut b = Seeds::random().hasher();
        a.bytes(b"users");
        b.bytes(b"users");
        assert_ne!(a.finish(), b.finish());
    }
}
