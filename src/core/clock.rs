//! The two clocks the core reads: tokio's monotonic one, for every timer and cutoff (paused
//! in tests), and the wall clock, for what SQS and the ledger state in epoch time (a
//! message's `SentTimestamp`, a lease, midnight UTC). The core never asks the system for the
//! wall time itself: it is given a [`Clock`], and tests set it.

use std::time::SystemTime;

use tokio::time::Instant;

/// The wall clock the core reads. Its monotonic time is tokio's (`tokio::time::Instant`),
/// which tests pause and advance; a [`SetClock`] moves with it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall-clock time.
    fn wall(&self) -> SystemTime;

    /// Monotonic time, as the engine reads it to measure its own work (what telling an
    /// outcome costs) and to decide whether a send may still start: tokio's clock, unless a
    /// test adds what that work took. (Timers, cutoffs and expiry read tokio's clock.)
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The system's wall clock: what the deployed function runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock set to a chosen time, moving with tokio's clock from then on: with tokio's
/// clock paused, tests place a run anywhere in the calendar (across midnight UTC, say) and
/// advance both clocks together.
#[derive(Debug, Clone, Copy)]
pub struct SetClock {
    wall_at_start: SystemTime,
    start: Instant,
}

impl SetClock {
    /// Reads `wall` now, and from now on as much later as tokio's clock has moved.
    pub fn at(wall: SystemTime) -> Self {
        Self {
            wall_at_start: wall,
            start: Instant::now(),
        }
    }
}

impl Clock for SetClock {
    fn wall(&self) -> SystemTime {
        self.wall_at_start + self.start.elapsed()
    }
}

/// A wall-clock time in epoch milliseconds (0 before the epoch).
pub fn epoch_ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_set_clock_moves_with_tokios_clock() {
        let midnight_less_ten = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 - 10);
        let clock = SetClock::at(midnight_less_ten);
        assert_eq!(clock.wall(), midnight_less_ten);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(
            clock.wall(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(86_410)
        );
    }
}
