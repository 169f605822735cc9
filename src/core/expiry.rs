//! When a call request stops being worth placing.
//!
//! A call an hour late is useless, so a record is given up on by time, not by how often SQS
//! has delivered it: its age is now minus its request's first send (the earlier of its
//! `SentTimestamp` and a redriven letter's `DispatchFirstSent`), and it expires when that
//! reaches its time to live (the body's `TimeToLive`, else `MESSAGE_TTL_SECONDS`). Past that
//! no attempt starts; the record is dead-lettered as `expired`.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// `MESSAGE_TTL_SECONDS` when unset: one hour.
pub const DEFAULT_TTL_SECONDS: u32 = crate::core::defaults::DEFAULTS.message_ttl.as_secs() as u32;
/// The shortest time to live, in the function's setting and in a body (the v2 API's bound).
pub const MIN_TTL_SECONDS: u32 = 5;
/// The longest `MESSAGE_TTL_SECONDS`: 14 days, SQS's longest retention.
pub const MAX_CONFIGURED_TTL_SECONDS: u32 = 1_209_600;
/// The longest `TimeToLive` a body may carry: 72 hours (the v2 API's bound).
pub const MAX_BODY_TTL_SECONDS: u32 = 259_200;

/// When a record stops being worth sending, on the monotonic clock the engine's timers use.
/// The wall clock is read once, to learn the record's age; from then on time is measured
/// monotonically, so a clock step cannot revive or kill a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub ttl: Duration,
    /// The record's age at `observed`.
    age: Duration,
    observed: Instant,
}

impl Expiry {
    /// `None` when the record does not say when it was sent: without an age it cannot be
    /// judged too old, and a record is never dropped on a guess.
    pub fn of(
        sent_at: Option<SystemTime>,
        ttl: Duration,
        now: SystemTime,
        monotonic_now: Instant,
    ) -> Option<Self> {
        sent_at.map(|sent_at| Self {
            ttl,
            // A send time in the future (clock skew) is an age of zero.
            age: now.duration_since(sent_at).unwrap_or_default(),
            observed: monotonic_now,
        })
    }

    /// The record's age at `now`.
    pub fn age(&self, now: Instant) -> Duration {
        self.age + now.saturating_duration_since(self.observed)
    }

    pub fn is_past(&self, now: Instant) -> bool {
        self.age(now) >= self.ttl
    }

    /// The moment of expiry (in the past for a record already expired).
    pub fn at(&self) -> Instant {
        match self.ttl.checked_sub(self.age) {
            Some(left) => self.observed + left,
            None => self
                .observed
                .checked_sub(self.age - self.ttl)
                .unwrap_or(self.observed),
        }
    }

    /// Why the record is given up on at `now`, safe to log and to put in `DispatchError`.
    pub fn reason(&self, now: Instant) -> String {
        format!(
            "not sent within its time to live of {} s (age {} s)",
            self.ttl.as_secs(),
            self.age(now).as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: Duration = Duration::from_secs(1_764_000_000);

    fn sent() -> SystemTime {
        SystemTime::UNIX_EPOCH + SENT
    }

    fn observed_at(age_seconds: u64, ttl_seconds: u64) -> (Expiry, Instant) {
        let now = Instant::now();
        let expiry = Expiry::of(
            Some(sent()),
            Duration::from_secs(ttl_seconds),
            sent() + Duration::from_secs(age_seconds),
            now,
        )
        .unwrap();
        (expiry, now)
    }

    #[test]
    fn a_record_expires_when_its_age_reaches_its_time_to_live() {
        let (expiry, now) = observed_at(59, 60);
        assert!(!expiry.is_past(now));
        assert!(expiry.is_past(now + Duration::from_secs(1)));
        assert_eq!(expiry.at(), now + Duration::from_secs(1));
        let (expiry, now) = observed_at(3_600, 60);
        assert!(expiry.is_past(now));
    }

    #[test]
    fn a_record_that_does_not_say_when_it_was_sent_never_expires() {
        assert_eq!(
            Expiry::of(None, Duration::from_secs(5), sent(), Instant::now()),
            None
        );
    }

    #[test]
    fn a_send_time_in_the_future_is_an_age_of_zero() {
        let now = Instant::now();
        let expiry = Expiry::of(
            Some(sent() + Duration::from_secs(30)),
            Duration::from_secs(60),
            sent(),
            now,
        )
        .unwrap();
        assert_eq!(expiry.age(now), Duration::ZERO);
        assert_eq!(expiry.at(), now + Duration::from_secs(60));
    }

    #[test]
    fn the_reason_gives_the_time_to_live_and_the_age() {
        let (expiry, now) = observed_at(70, 60);
        assert_eq!(
            expiry.reason(now + Duration::from_secs(5)),
            "not sent within its time to live of 60 s (age 75 s)"
        );
    }
}
