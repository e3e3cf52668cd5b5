//! Backoff for work that failed for reasons outside any instance — a store
//! error, a plugin that would not load, a timer whose delivery failed: tried
//! again later, never dropped, never in a tight loop.

use weft_model::Span;

const FIRST: Span = Span(100);
const MOST: Span = Span(30_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    next: Span,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: FIRST }
    }

    /// The pause before the next try: 100 ms, doubling, at most 30 s.
    pub(crate) fn pause(&mut self) -> Span {
        let now = self.next;
        self.next = Span(now.as_millis().saturating_mul(2).min(MOST.as_millis()));
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new();
        let pauses: Vec<u64> = (0..12).map(|_| b.pause().as_millis()).collect();
        assert_eq!(
            pauses,
            [
                100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000, 30_000
            ]
        );
    }
}
