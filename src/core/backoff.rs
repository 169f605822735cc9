//! Backoff between redeliveries: how long a transiently failed record stays invisible.
//!
//! SQS redelivers a failed record when its visibility timeout ends, and the event source
//! mapping never changes that timeout. Changing it before answering is how a function spaces
//! out its retries: exponential in the record's `ApproximateReceiveCount`, with full jitter
//! so that records which failed together do not all come back together.

/// The longest visibility timeout SQS accepts, 12 hours.
pub const MAX_VISIBILITY_SECONDS: u32 = 43_200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base_seconds: u32,
    max_seconds: u32,
}

impl Backoff {
    /// `base_seconds` for the first receive, doubling each receive, never above
    /// `max_seconds` (itself never above 12 hours).
    pub fn new(base_seconds: u32, max_seconds: u32) -> Self {
        let max_seconds = max_seconds.min(MAX_VISIBILITY_SECONDS);
        Self {
            base_seconds: base_seconds.min(max_seconds),
            max_seconds,
        }
    }

    /// The longest delay after the `receive_count`-th receive: `base × 2^(receive_count − 1)`,
    /// capped. A missing or zero count is taken as the first receive.
    /// The longest wait, whatever the receive count.
    pub fn max_seconds(&self) -> u32 {
        self.max_seconds
    }

    pub fn ceiling(&self, receive_count: u32) -> u32 {
        let doublings = receive_count.max(1) - 1;
        let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
        let ceiling = u64::from(self.base_seconds).saturating_mul(factor);
        ceiling.min(u64::from(self.max_seconds)) as u32
    }

    /// Full jitter: a whole number of seconds drawn uniformly from `0..=ceiling`, where
    /// `jitter` is a uniform draw from `[0, 1)`.
    pub fn delay(&self, receive_count: u32, jitter: f64) -> u32 {
        let ceiling = self.ceiling(receive_count);
        let drawn = (jitter.clamp(0.0, 1.0) * f64::from(ceiling + 1)).floor() as u32;
        drawn.min(ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_with_each_receive_up_to_the_cap() {
        let backoff = Backoff::new(10, 900);
        let ceilings: Vec<u32> = (1..=8).map(|n| backoff.ceiling(n)).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 160, 320, 640, 900]);
    }

    #[test]
    fn a_missing_receive_count_counts_as_the_first() {
        assert_eq!(Backoff::new(10, 900).ceiling(0), 10);
    }

    #[test]
    fn huge_receive_counts_do_not_overflow() {
        let backoff = Backoff::new(43_200, 43_200);
        assert_eq!(backoff.ceiling(u32::MAX), 43_200);
        assert_eq!(Backoff::new(1, 900).ceiling(200), 900);
    }

    #[test]
    fn the_cap_never_exceeds_twelve_hours() {
        assert_eq!(
            Backoff::new(60, 1_000_000).ceiling(30),
            MAX_VISIBILITY_SECONDS
        );
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let backoff = Backoff::new(10, 900);
        assert_eq!(backoff.delay(3, 0.0), 0);
        assert_eq!(backoff.delay(3, 0.5), 20);
        assert_eq!(backoff.delay(3, 0.999_999), 40);
        assert_eq!(
            backoff.delay(3, 1.0),
            40,
            "an out-of-range draw stays in range"
        );
    }

    #[test]
    fn jittered_delays_are_uniform_over_the_whole_range() {
        let backoff = Backoff::new(1, 900);
        let mut seen = [0u32; 5];
        for i in 0..1_000 {
            seen[backoff.delay(3, f64::from(i) / 1_000.0) as usize] += 1;
        }
        assert_eq!(seen, [200, 200, 200, 200, 200]);
    }
}
