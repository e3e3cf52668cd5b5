//! Fresh instance ids: the creation time from the clock, 80 random bits from
//! the process's hash seed and a counter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use weft_model::{InstanceId, Millis};

#[derive(Debug, Default)]
pub(crate) struct IdSource {
    seed: RandomState,
    counter: AtomicU64,
}

impl IdSource {
    pub(crate) fn next(&self, now: Millis) -> InstanceId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let word = |salt: u64| {
            let mut h = self.seed.build_hasher();
            h.write_u64(n);
            h.write_u64(salt);
            h.finish()
        };
        let random = (u128::from(word(1)) << 64) | u128::from(word(2));
        InstanceId::new(now, random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_within_a_millisecond() {
        let ids = IdSource::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(ids.next(Millis(42))));
        }
    }
}
