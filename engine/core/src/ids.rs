//! Fresh instance ids: ULIDs whose time is the engine clock's, monotonic
//! within a millisecond (the random part counts up, as ULID's monotonic
//! generators do), so ids made by one engine sort in creation order.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use weft_model::{InstanceId, Millis};

#[derive(Debug, Default)]
pub(crate) struct IdSource {
    seed: RandomState,
    counter: AtomicU64,
    /// The last id's time and random part.
    last: std::sync::Mutex<(u64, u128)>,
}

/// The random part of a ULID: 80 bits.
const RANDOM_BITS: u128 = (1 << 80) - 1;

impl IdSource {
    pub(crate) fn next(&self, now: Millis) -> InstanceId {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let (mut at, random) = if now.0 > last.0 {
            (now.0, self.fresh_random())
        } else {
            // Same millisecond (or a clock that stepped back): count up.
            (last.0, (last.1 + 1) & RANDOM_BITS)
        };
        if random == 0 && at == last.0 {
            // The 80 bits ran over within one millisecond: borrow the next.
            at += 1;
        }
        *last = (at, random);
        InstanceId::new(Millis(at), random)
    }

    fn fresh_random(&self) -> u128 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let word = |salt: u64| {
            let mut h = self.seed.build_hasher();
            h.write_u64(n);
            h.write_u64(salt);
            h.finish()
        };
        // Top bit clear, so counting up within a millisecond has room.
        ((u128::from(word(1)) << 64) | u128::from(word(2))) & (RANDOM_BITS >> 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_creation_order_within_a_millisecond() {
        let ids = IdSource::default();
        let made: Vec<InstanceId> = (0..1_000).map(|_| ids.next(Millis(42))).collect();
        let mut sorted = made.clone();
        sorted.sort();
        assert_eq!(made, sorted);
        assert!(
            ids.next(Millis(41)) > made[999],
            "a clock stepping back keeps order"
        );
    }

    #[test]
    fn ids_are_unique_within_a_millisecond() {
        let ids = IdSource::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(ids.next(Millis(42))));
        }
    }
}
