//! Pacing sends to the voice quota.
//!
//! Each function instance sends at most `SEND_RATE_LIMIT` calls, evenly spaced (governor's
//! GCRA with a burst of one). When the service throttles anyway (other instances, other
//! senders on the account), the pace halves; it climbs back by a twentieth of the limit
//! every few seconds of successful sends: additive increase, multiplicative decrease, so
//! that after the first throttle the next ones are rare.
//!
//! Waiters take their turn in arrival order, so a record can be told up front how long it
//! would wait, and one that would not get a permit before the send cutoff is deferred at
//! once. Each one turned away is given the next free slot after those already given out, so
//! records deferred together come back one period apart, not all at once.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// A rate of sends, written `N/s` or `N/min` (`10/min`, `2.5/s`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendRate {
    per_second: f64,
}

/// Slowest pace allowed: one call an hour.
const MIN_PER_SECOND: f64 = 1.0 / 3_600.0;
/// Fastest pace allowed: far above any voice quota.
const MAX_PER_SECOND: f64 = 10_000.0;

impl SendRate {
    pub fn per_second(per_second: f64) -> Option<Self> {
        (per_second.is_finite() && (MIN_PER_SECOND..=MAX_PER_SECOND).contains(&per_second))
            .then_some(Self { per_second })
    }

    /// Parses `N/s` or `N/min`; `N` is a positive decimal.
    pub fn parse(text: &str) -> Result<Self, String> {
        let problem = || {
            format!(
                "expected N/s or N/min (for example 10/min or 2.5/s), from one an hour to {MAX_PER_SECOND}/s"
            )
        };
        let (count, unit) = text.trim().split_once('/').ok_or_else(problem)?;
        let count: f64 = count.trim().parse().map_err(|_| problem())?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "min" | "minute" => 60.0,
            _ => return Err(problem()),
        };
        Self::per_second(count / seconds).ok_or_else(problem)
    }

    pub fn as_per_second(&self) -> f64 {
        self.per_second
    }

    /// The time between two sends at this rate.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

impl fmt::Display for SendRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.per_second < 1.0 {
            write!(f, "{:.3}/min", self.per_second * 60.0)
        } else {
            write!(f, "{:.3}/s", self.per_second)
        }
    }
}

/// governor on tokio's clock: the pacer's waits are tokio sleeps, and tests can pause time.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        Instant::now().into_std()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// The pace never drops below the limit divided by this.
const FLOOR_DIVISOR: f64 = 16.0;
/// Each recovery step adds this share of the limit...
const RECOVERY_SHARE: f64 = 0.05;
/// ...at most once per this much time of successful sends.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(5);

/// Permission to start one send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// When the send was allowed to start.
    pub at: Instant,
}

/// No permit before the bound: the slot this record would have had, worth coming back at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoPermit {
    pub retry_at: Instant,
}

pub struct Pacer {
    limit: SendRate,
    pace: Mutex<Pace>,
    /// Waiters take their turn in arrival order (tokio's mutex is fair).
    turn: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
}

struct Pace {
    rate: SendRate,
    limiter: Arc<Limiter>,
    /// A new limiter lets its first send through at once: after a change of pace, no send
    /// goes before the last one plus a period of the new pace.
    not_before: Option<Instant>,
    last_permit: Option<Instant>,
    last_success: Option<Instant>,
    last_decrease: Option<Instant>,
    last_change: Instant,
    /// The last slot given to a record turned away.
    promised: Option<Instant>,
}

fn limiter(rate: SendRate) -> Arc<Limiter> {
    // A period is never zero: rates are at most 10,000 a second.
    let quota = Quota::with_period(rate.period())
        .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MAX));
    Arc::new(Limiter::direct_with_clock(quota, TokioClock))
}

impl Pace {
    fn new(rate: SendRate, now: Instant) -> Self {
        Self {
            rate,
            limiter: limiter(rate),
            not_before: None,
            last_permit: None,
            last_success: None,
            last_decrease: None,
            last_change: now,
            promised: None,
        }
    }

    fn change(&mut self, rate: SendRate, now: Instant) {
        self.rate = rate;
        self.limiter = limiter(rate);
        self.not_before = self.last_permit.map(|last| last + rate.period());
        self.last_change = now;
    }

    /// When the next send could go, with nobody waiting.
    fn next_free(&self, now: Instant) -> Instant {
        let after_last = self.last_permit.map(|last| last + self.rate.period());
        [Some(now), after_last, self.not_before]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(now)
    }
}

impl Pacer {
    pub fn new(limit: SendRate) -> Self {
        Self {
            limit,
            pace: Mutex::new(Pace::new(limit, Instant::now())),
            turn: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> SendRate {
        self.limit
    }

    /// The pace now, at most the limit.
    pub fn rate(&self) -> SendRate {
        self.pace().rate
    }

    fn pace(&self) -> MutexGuard<'_, Pace> {
        // Nothing panics while holding it; if something did, the pace is still usable.
        self.pace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a permit to send. Refuses at once when the waiters ahead would take it to
    /// `bound` or past it, and gives up at `bound` if the wait turns out longer.
    pub async fn acquire(&self, bound: Instant) -> Result<Permit, NoPermit> {
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        if self.expected_slot(ahead, Instant::now()) >= bound {
            return Err(self.turn_away(ahead));
        }
        let Ok(_turn) = tokio::time::timeout_at(bound, self.turn.lock()).await else {
            return Err(self.turn_away(self.waiting().min(ahead)));
        };
        loop {
            let now = Instant::now();
            let (limiter, not_before) = {
                let pace = self.pace();
                (pace.limiter.clone(), pace.not_before)
            };
            let wait = match not_before.filter(|at| *at > now) {
                Some(at) => at - now,
                None => match limiter.check() {
                    Ok(()) => {
                        self.pace().last_permit = Some(now);
                        return Ok(Permit { at: now });
                    }
                    Err(not_until) => not_until.wait_time_from(TokioClock.now()),
                },
            };
            if now + wait >= bound {
                return Err(self.turn_away(0));
            }
            // The pace may change while this waits: the loop asks again.
            tokio::time::sleep(wait).await;
        }
    }

    /// Waiters other than the caller.
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst).saturating_sub(1)
    }

    /// When a waiter with `ahead` others before it would get its permit, at the current pace.
    fn expected_slot(&self, ahead: usize, now: Instant) -> Instant {
        let pace = self.pace();
        pace.next_free(now) + pace.rate.period().mul_f64(ahead as f64)
    }

    /// The slot for a record turned away: after the waiters still ahead of it and after every
    /// slot already given to a record turned away.
    fn turn_away(&self, ahead: usize) -> NoPermit {
        let now = Instant::now();
        let in_line = self.expected_slot(ahead, now);
        let mut pace = self.pace();
        let period = pace.rate.period();
        let slot = match pace.promised {
            Some(promised) if promised + period > in_line => promised + period,
            _ => in_line,
        };
        pace.promised = Some(slot);
        NoPermit { retry_at: slot }
    }

    /// The service throttled a send that started at `permit.at`: halve the pace, once per
    /// wave. Throttles of sends that started before the last slowdown are that same wave.
    pub fn throttled(&self, permit: Permit) {
        let now = Instant::now();
        let mut pace = self.pace();
        if pace.last_decrease.is_some_and(|last| permit.at < last) {
            return;
        }
        let floor = self.limit.as_per_second() / FLOOR_DIVISOR;
        let halved = (pace.rate.as_per_second() / 2.0).max(floor);
        let rate = SendRate::per_second(halved).unwrap_or(pace.rate);
        pace.change(rate, now);
        pace.last_decrease = Some(now);
        pace.promised = None;
        tracing::info!(pace = %rate, limit = %self.limit, "throttled by the voice service: pace halved");
    }

    /// Whether a send went through after `at`: a throttle after that is not the account's
    /// rate (v1 answers the same `TooManyRequestsException` for a recipient's 5 calls a day).
    pub fn succeeded_since(&self, at: Instant) -> bool {
        self.pace().last_success.is_some_and(|success| success > at)
    }

    /// A send went through: recover a step of the pace, at most once per interval.
    pub fn succeeded(&self) {
        let now = Instant::now();
        let mut pace = self.pace();
        pace.last_success = Some(now);
        if pace.rate == self.limit || now.duration_since(pace.last_change) < RECOVERY_INTERVAL {
            return;
        }
        let limit = self.limit.as_per_second();
        let raised = (pace.rate.as_per_second() + limit * RECOVERY_SHARE).min(limit);
        let rate = SendRate::per_second(raised).unwrap_or(self.limit);
        pace.change(rate, now);
        tracing::debug!(pace = %rate, limit = %self.limit, "pace raised");
    }
}

/// Counts a waiter for as long as it waits, however it stops waiting.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> SendRate {
        SendRate::parse(text).unwrap()
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3_600)
    }

    #[test]
    fn rates_are_written_per_second_or_per_minute() {
        assert_eq!(rate("10/min").period(), Duration::from_secs(6));
        assert_eq!(rate("2.5/s").period(), Duration::from_millis(400));
        assert_eq!(rate(" 20 / min ").as_per_second(), 20.0 / 60.0);
        for bad in [
            "10", "0/s", "-1/s", "x/s", "10/h", "NaN/s", "inf/s", "20000/s", "1/",
        ] {
            assert!(SendRate::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_spaced_evenly_at_the_rate() {
        let pacer = Pacer::new(rate("2/s"));
        let start = Instant::now();
        let mut offsets = Vec::new();
        for _ in 0..5 {
            let permit = pacer.acquire(far()).await.unwrap();
            offsets.push(permit.at.duration_since(start).as_millis());
        }
        assert_eq!(offsets, [0, 500, 1_000, 1_500, 2_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_are_served_one_period_apart() {
        let pacer = Arc::new(Pacer::new(rate("4/s")));
        let start = Instant::now();
        let waiters: Vec<_> = (0..6)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move { pacer.acquire(far()).await.unwrap().at })
            })
            .collect();
        let mut offsets = Vec::new();
        for waiter in waiters {
            offsets.push(waiter.await.unwrap().duration_since(start).as_millis());
        }
        offsets.sort_unstable();
        assert_eq!(offsets, [0, 250, 500, 750, 1_000, 1_250]);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_that_cannot_get_a_permit_before_the_bound_are_given_successive_slots() {
        let pacer = Arc::new(Pacer::new(rate("1/s")));
        let start = Instant::now();
        let bound = start + Duration::from_millis(2_500);
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move { pacer.acquire(bound).await })
            })
            .collect();
        let mut granted = Vec::new();
        let mut refused = Vec::new();
        for waiter in waiters {
            match waiter.await.unwrap() {
                Ok(permit) => granted.push(permit.at.duration_since(start).as_millis()),
                Err(no) => refused.push(no.retry_at.duration_since(start).as_millis()),
            }
        }
        assert_eq!(granted, [0, 1_000, 2_000]);
        refused.sort_unstable();
        assert_eq!(
            refused,
            [3_000, 4_000],
            "turned away at once, each with the next free slot"
        );
        assert!(Instant::now() < bound, "nobody waited for nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_halves_the_pace_once_per_wave() {
        let pacer = Pacer::new(rate("4/s"));
        let first = pacer.acquire(far()).await.unwrap();
        let second = pacer.acquire(far()).await.unwrap();
        pacer.throttled(second);
        assert_eq!(pacer.rate(), rate("2/s"));
        pacer.throttled(first);
        assert_eq!(
            pacer.rate(),
            rate("2/s"),
            "a send started before the slowdown is the same wave"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        let third = pacer.acquire(far()).await.unwrap();
        assert_eq!(
            third.at.duration_since(second.at),
            Duration::from_millis(500),
            "the next send goes a period of the new pace after the last one, no later"
        );
        pacer.throttled(third);
        assert_eq!(pacer.rate(), rate("1/s"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_never_drops_below_a_sixteenth_of_the_limit() {
        let pacer = Pacer::new(rate("16/s"));
        for _ in 0..10 {
            let permit = pacer.acquire(far()).await.unwrap();
            pacer.throttled(permit);
        }
        assert_eq!(pacer.rate(), rate("1/s"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_recovers_gradually_as_sends_succeed_and_never_passes_the_limit() {
        let pacer = Pacer::new(rate("10/s"));
        let permit = pacer.acquire(far()).await.unwrap();
        pacer.throttled(permit);
        assert_eq!(pacer.rate(), rate("5/s"));
        pacer.succeeded();
        assert_eq!(pacer.rate(), rate("5/s"), "no step before the interval");
        tokio::time::advance(RECOVERY_INTERVAL).await;
        pacer.succeeded();
        assert_eq!(
            pacer.rate(),
            rate("5.5/s"),
            "one step: a twentieth of the limit"
        );
        for _ in 0..30 {
            tokio::time::advance(RECOVERY_INTERVAL).await;
            pacer.succeeded();
        }
        assert_eq!(pacer.rate(), rate("10/s"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_after_a_later_success_is_told_apart() {
        let pacer = Pacer::new(rate("10/s"));
        let throttled_at = Instant::now();
        assert!(!pacer.succeeded_since(throttled_at));
        tokio::time::advance(Duration::from_millis(10)).await;
        pacer.succeeded();
        assert!(pacer.succeeded_since(throttled_at));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_leaves_the_line() {
        let pacer = Pacer::new(rate("1/s"));
        pacer.acquire(far()).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(10);
        assert!(pacer.acquire(soon).await.is_err());
        assert_eq!(pacer.waiting.load(Ordering::SeqCst), 0);
        let next = pacer.acquire(far()).await.unwrap();
        assert!(next.at.duration_since(Instant::now()) == Duration::ZERO);
    }
}
