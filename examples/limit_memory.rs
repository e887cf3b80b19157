//! How much memory the in-memory rate limit store takes per key, and proof
//! that a flood of distinct sessions cannot grow it past its cap.
//!
//! ```text
//! cargo run --release --example limit_memory
//! ```
//!
//! One rule with the default cap of 100,000 keys receives a request from
//! each of 1,000,000 distinct sessions within one replenish interval, so
//! no key is idle and only the cap keeps the table small. The example
//! prints the keys held, the bytes the table allocated per key, and the
//! growth of the process' resident memory (Linux only).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Instant;

use palisade::limit::store::{CounterSpec, MemoryStore, RateLimitStore};
use palisade::{Quota, SessionId, SessionKey};

fn resident_bytes() -> Option<usize> {
    // The second field of statm is resident pages; pages are 4 KiB here.
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let store = MemoryStore::default();
    let quotas = [Quota::per_minute(NonZeroU32::new(100).unwrap())];
    let cap = palisade::limit::DEFAULT_MAX_KEYS;
    let counter = store
        .counter(&CounterSpec::new(
            "flood",
            &quotas,
            None,
            NonZeroUsize::new(cap).unwrap(),
        ))
        .unwrap();
    let key = SessionKey::random();

    let before = resident_bytes();
    let start = Instant::now();
    let flood = 1_000_000u32;
    for i in 0..flood {
        let id = SessionId::digest_parts(&key, 1, b"authorization", &i.to_le_bytes());
        // The in-memory store answers at once; every session is fresh, so
        // every check is allowed.
        let verdict = store.check(&counter, id.as_u128(), 0).into_inner();
        assert!(verdict.is_ok_and(|v| v.allowed));
    }
    let elapsed = start.elapsed();
    let after = resident_bytes();

    let held = counter.len();
    println!("sessions sent:      {flood}");
    println!("keys held:          {held} (cap {cap})");
    assert!(held <= cap, "the cap did not hold");
    println!(
        "table allocation:   {} bytes, {:.1} bytes per key held",
        counter.allocated_bytes(),
        counter.allocated_bytes() as f64 / held as f64
    );
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "resident growth:    {} bytes, {:.1} bytes per key held",
            after.saturating_sub(before),
            after.saturating_sub(before) as f64 / held as f64
        );
    }
    println!(
        "time per check:     {:.0} ns (including evictions)",
        elapsed.as_nanos() as f64 / f64::from(flood)
    );
}
