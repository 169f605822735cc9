//! The circuit breaker: stop calling a voice service that is failing on its side.
//!
//! One breaker per warm instance, shared by its invocations. After `threshold` consecutive
//! attempts that failed on the service's side (a 5xx, a timeout, a broken connection) it
//! opens: nothing is sent for `open_for`. Then one probe goes out (half-open): a probe the
//! service answers closes the breaker; a probe that fails opens it again for twice as long,
//! up to `max_open`. Throttling neither counts nor resets: the pacer handles it.
//!
//! The primary region's breaker with failover on keeps a regional opening at `open_for`:
//! while the failover region carries the calls nothing waits on the primary's probe, and a
//! probe costs one call, so the primary is tried again every period and takes the calls
//! back soon after it recovers. Openings that never move calls still double.
//!
//! An open breaker says whether the failures that opened it were the service's alone (a
//! regional outage: calls may go to the failover region meanwhile) or the function's own
//! setup refused (a missing configured resource, access denied) or the account blocked,
//! which another region would only hide.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::core::classify::Signal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive service-side failures that open the breaker.
    pub threshold: u32,
    /// How long it stays open the first time.
    pub open_for: Duration,
    /// The longest it stays open, however many probes fail.
    pub max_open: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        let defaults = crate::core::defaults::DEFAULTS;
        Self {
            threshold: defaults.breaker_threshold,
            open_for: defaults.breaker_open_for,
            max_open: defaults.breaker_max_open,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `regional`: every failure counted so far was the service failing on its side.
    Closed { failures: u32, regional: bool },
    Open {
        until: Instant,
        open_for: Duration,
        regional: bool,
    },
    HalfOpen {
        open_for: Duration,
        probing: bool,
        regional: bool,
    },
}

const CLOSED: State = State::Closed {
    failures: 0,
    regional: true,
};

/// Not now: the breaker is open (or its one probe is out). Come back after `remaining`;
/// `open_for` is the length of the current open period, the scale for jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub remaining: Duration,
    pub open_for: Duration,
    /// Opened by the service failing on its side alone (internal errors, 5xx, timeouts,
    /// broken connections): a regional outage, which the failover region may route around.
    pub regional: bool,
}

impl Open {
    /// When a record turned away at `now` is worth trying again: after the remaining open
    /// time plus up to a quarter of the open period (`draw` uniform in `[0, 1)`), so that the
    /// records turned away together do not all come back at the same instant.
    pub fn retry_at(&self, now: Instant, draw: f64) -> Instant {
        now + self.remaining + self.open_for.mul_f64(draw.clamp(0.0, 1.0) / 4.0)
    }
}

pub struct CircuitBreaker {
    settings: BreakerSettings,
    inner: Arc<Mutex<Inner>>,
    /// The region whose service it watches, in its lines when failover is on.
    region: Option<Arc<str>>,
    /// A regional opening is not lengthened by failed probes (the primary's breaker with
    /// failover on: its calls go elsewhere meanwhile).
    steady_while_regional: bool,
}

struct Inner {
    state: State,
    /// Times the breaker opened from closed, since the instance started.
    opened: u64,
}

/// What the breaker says to one attempt.
#[derive(Debug)]
pub struct Attempt {
    probe: bool,
    /// Set once the attempt's result is recorded; an attempt dropped before that (abandoned
    /// at the deadline, or a panic) frees the probe slot so the breaker cannot stick.
    inner: Option<Arc<Mutex<Inner>>>,
}

impl Attempt {
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let (true, Some(inner)) = (self.probe, self.inner.take()) {
            let mut inner = lock(&inner);
            if let State::HalfOpen {
                open_for, regional, ..
            } = inner.state
            {
                inner.state = State::HalfOpen {
                    open_for,
                    probing: false,
                    regional,
                };
            }
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.state)
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings) -> Self {
        let settings = BreakerSettings {
            threshold: settings.threshold.max(1),
            max_open: settings.max_open.max(settings.open_for),
            ..settings
        };
        Self {
            settings,
            inner: Arc::new(Mutex::new(Inner {
                state: CLOSED,
                opened: 0,
            })),
            region: None,
            steady_while_regional: false,
        }
    }

    /// The same breaker keeping a regional opening at `open_for` however many probes fail
    /// (the primary region's, with failover on); other openings double as before.
    pub fn steady_while_regional(mut self) -> Self {
        self.steady_while_regional = true;
        self
    }

    /// The same breaker naming `region` in its lines (failover on).
    pub fn for_region(mut self, region: Option<Arc<str>>) -> Self {
        self.region = region;
        self
    }

    /// Whether an attempt could start now, without taking the probe slot: lets a record be
    /// turned away before it waits for a pacer permit.
    pub fn check(&self, now: Instant) -> Result<(), Open> {
        Self::open_now(&mut lock(&self.inner), now)
    }

    fn open_now(inner: &mut Inner, now: Instant) -> Result<(), Open> {
        Self::refresh(inner, now);
        match inner.state {
            State::Closed { .. } | State::HalfOpen { probing: false, .. } => Ok(()),
            State::Open {
                until,
                open_for,
                regional,
            } => Err(Open {
                remaining: until.saturating_duration_since(now),
                open_for,
                regional,
            }),
            State::HalfOpen {
                open_for, regional, ..
            } => Err(Open {
                remaining: Duration::ZERO,
                open_for,
                regional,
            }),
        }
    }

    /// Lets one attempt start now, or turns it away. In half-open, the first attempt is the
    /// probe and the others are turned away until it ends.
    pub fn admit(&self, now: Instant) -> Result<Attempt, Open> {
        let mut inner = lock(&self.inner);
        Self::open_now(&mut inner, now)?;
        let probe = match inner.state {
            State::HalfOpen {
                open_for,
                probing: false,
                regional,
            } => {
                inner.state = State::HalfOpen {
                    open_for,
                    probing: true,
                    regional,
                };
                true
            }
            _ => false,
        };
        Ok(Attempt {
            probe,
            inner: Some(self.inner.clone()),
        })
    }

    /// Records how an attempt ended: `None` for a call the service accepted.
    pub fn observe(&self, mut attempt: Attempt, failure: Option<Signal>, now: Instant) {
        attempt.inner = None;
        let mut inner = lock(&self.inner);
        let healthy = matches!(failure, None | Some(Signal::Answered));
        let failing = matches!(
            failure,
            Some(Signal::ServiceFailing | Signal::Blocked | Signal::Misconfigured)
        );
        match inner.state {
            State::HalfOpen {
                open_for, regional, ..
            } if attempt.probe => {
                inner.state = self.after_probe(open_for, regional, failure, now);
            }
            State::Closed { failures, regional } if failing => {
                let (state, opened) = self.after_failure(failures, regional, failure, now);
                inner.state = state;
                inner.opened += u64::from(opened);
            }
            State::Closed { .. } if healthy => inner.state = CLOSED,
            // Throttling and unsent requests leave the count alone; results of attempts
            // that started before the breaker opened do not move it.
            _ => {}
        }
    }

    /// What the probe's result makes of a half-open breaker: closed by an answer, open for
    /// twice as long (up to the cap) by a failure, and no news otherwise (throttled, or
    /// never reached the service): probe again.
    fn after_probe(
        &self,
        open_for: Duration,
        regional: bool,
        failure: Option<Signal>,
        now: Instant,
    ) -> State {
        let region = self.region.as_deref();
        match failure {
            None | Some(Signal::Answered) => {
                tracing::info!(
                    region,
                    "circuit breaker closed: the voice service answered the probe"
                );
                CLOSED
            }
            // No news about the service: probe again.
            Some(Signal::Throttled | Signal::NotReached) => State::HalfOpen {
                open_for,
                probing: false,
                regional,
            },
            Some(Signal::ServiceFailing | Signal::Blocked | Signal::Misconfigured) => {
                let regional = failure == Some(Signal::ServiceFailing);
                let open_for = if regional && self.steady_while_regional {
                    self.settings.open_for
                } else {
                    (open_for * 2).min(self.settings.max_open)
                };
                tracing::warn!(
                    region,
                    open_seconds = open_for.as_secs_f64(),
                    "circuit breaker reopened: the probe failed on the service's side"
                );
                State::Open {
                    until: now + open_for,
                    open_for,
                    regional,
                }
            }
        }
    }

    /// One more failure while closed: counted (a blocked account counts as the whole
    /// threshold: every send would fail alike), and the breaker opens at the threshold.
    /// Returns the new state and whether it opened.
    fn after_failure(
        &self,
        failures: u32,
        regional: bool,
        failure: Option<Signal>,
        now: Instant,
    ) -> (State, bool) {
        let failures = if failure == Some(Signal::Blocked) {
            self.settings.threshold
        } else {
            failures + 1
        };
        let regional = regional && failure == Some(Signal::ServiceFailing);
        if failures < self.settings.threshold {
            return (State::Closed { failures, regional }, false);
        }
        let open_for = self.settings.open_for;
        tracing::warn!(
            region = self.region.as_deref(),
            regional_outage = self.region.as_ref().map(|_| regional),
            consecutive_failures = failures,
            open_seconds = open_for.as_secs_f64(),
            "circuit breaker opened: the voice service is failing on its side"
        );
        let open = State::Open {
            until: now + open_for,
            open_for,
            regional,
        };
        (open, true)
    }

    /// Whether the breaker waits for its probe now (half-open, the probe not yet out).
    pub fn awaits_probe(&self, now: Instant) -> bool {
        let mut inner = lock(&self.inner);
        Self::refresh(&mut inner, now);
        matches!(inner.state, State::HalfOpen { probing: false, .. })
    }

    /// Whether the breaker is open (or half-open) now.
    pub fn is_open(&self, now: Instant) -> bool {
        let mut inner = lock(&self.inner);
        Self::refresh(&mut inner, now);
        !matches!(inner.state, State::Closed { .. })
    }

    /// Whether the breaker is open (or half-open) now for the service failing on its side
    /// alone: a regional outage, not the function's own setup or a blocked account.
    pub fn open_for_an_outage(&self, now: Instant) -> bool {
        let mut inner = lock(&self.inner);
        Self::refresh(&mut inner, now);
        matches!(
            inner.state,
            State::Open { regional: true, .. } | State::HalfOpen { regional: true, .. }
        )
    }

    /// How many times the breaker has opened since the instance started.
    pub fn times_opened(&self) -> u64 {
        lock(&self.inner).opened
    }

    fn refresh(inner: &mut Inner, now: Instant) {
        if let State::Open {
            until,
            open_for,
            regional,
        } = inner.state
        {
            if now >= until {
                inner.state = State::HalfOpen {
                    open_for,
                    probing: false,
                    regional,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            threshold: 3,
            open_for: Duration::from_secs(2),
            max_open: Duration::from_secs(5),
        })
    }

    fn fail(breaker: &CircuitBreaker, signal: Signal) {
        let now = Instant::now();
        let attempt = breaker.admit(now).expect("admitted");
        breaker.observe(attempt, Some(signal), now);
    }

    fn open_remaining(breaker: &CircuitBreaker) -> Duration {
        breaker.check(Instant::now()).unwrap_err().remaining
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_the_threshold_of_consecutive_service_failures() {
        let breaker = breaker();
        fail(&breaker, Signal::ServiceFailing);
        fail(&breaker, Signal::ServiceFailing);
        assert!(breaker.check(Instant::now()).is_ok());
        fail(&breaker, Signal::ServiceFailing);
        assert_eq!(open_remaining(&breaker), Duration::from_secs(2));
        assert_eq!(breaker.times_opened(), 1);
        assert!(
            breaker.admit(Instant::now()).is_err(),
            "nothing is sent while open"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_account_blocked_from_sending_opens_it_at_once() {
        let breaker = breaker();
        fail(&breaker, Signal::Blocked);
        assert_eq!(open_remaining(&breaker), Duration::from_secs(2));
        assert_eq!(breaker.times_opened(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_resets_the_count_and_throttling_neither_counts_nor_resets() {
        let breaker = breaker();
        fail(&breaker, Signal::ServiceFailing);
        fail(&breaker, Signal::ServiceFailing);
        fail(&breaker, Signal::Answered);
        fail(&breaker, Signal::ServiceFailing);
        fail(&breaker, Signal::ServiceFailing);
        assert!(
            breaker.check(Instant::now()).is_ok(),
            "the answer reset the count"
        );
        fail(&breaker, Signal::Throttled);
        fail(&breaker, Signal::NotReached);
        assert!(
            breaker.check(Instant::now()).is_ok(),
            "throttling does not count"
        );
        fail(&breaker, Signal::ServiceFailing);
        assert!(breaker.is_open(Instant::now()), "nor does it reset");
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_open_time_one_probe_goes_out_and_an_answer_closes_it() {
        let breaker = breaker();
        for _ in 0..3 {
            fail(&breaker, Signal::ServiceFailing);
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        let now = Instant::now();
        let probe = breaker.admit(now).expect("the probe");
        assert!(probe.is_probe());
        let other = breaker.admit(now).unwrap_err();
        assert_eq!(other.remaining, Duration::ZERO, "only one probe at a time");
        breaker.observe(probe, None, now);
        assert!(!breaker.is_open(now));
        assert!(!breaker.admit(now).unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_doubles_the_open_time_up_to_the_cap() {
        let breaker = breaker();
        for _ in 0..3 {
            fail(&breaker, Signal::ServiceFailing);
        }
        let mut open_times = Vec::new();
        for _ in 0..3 {
            tokio::time::advance(open_remaining(&breaker)).await;
            fail(&breaker, Signal::ServiceFailing);
            open_times.push(open_remaining(&breaker).as_secs());
        }
        assert_eq!(open_times, [4, 5, 5]);
        assert_eq!(breaker.times_opened(), 1, "reopening is not a new opening");
    }

    /// The primary's breaker with failover on, at the template's defaults.
    fn steady_at_the_defaults() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings::default()).steady_while_regional()
    }

    #[tokio::test(start_paused = true)]
    async fn with_failover_an_hour_long_outage_is_probed_every_open_period_and_handed_back_within_one(
    ) {
        let settings = BreakerSettings::default();
        let breaker = steady_at_the_defaults();
        for _ in 0..settings.threshold {
            fail(&breaker, Signal::ServiceFailing);
        }
        let outage = Duration::from_secs(3_600);
        let started = Instant::now();
        let mut probes = 0u32;
        while started.elapsed() < outage {
            let open = breaker.check(Instant::now()).unwrap_err();
            assert_eq!(open.open_for, settings.open_for, "never lengthened");
            assert!(open.regional, "calls keep moving");
            tokio::time::advance(open.remaining).await;
            fail(&breaker, Signal::ServiceFailing);
            probes += 1;
        }
        let period = settings.open_for.as_secs() as u32;
        assert_eq!(probes, 3_600 / period, "one probe a period");
        // The service is back: the next probe, at most one open period away, closes it.
        let back = Instant::now();
        tokio::time::advance(open_remaining(&breaker)).await;
        let probe = breaker.admit(Instant::now()).expect("the probe");
        breaker.observe(probe, None, Instant::now());
        assert!(!breaker.is_open(Instant::now()));
        assert!(back.elapsed() <= settings.open_for);
        // Without failover, the same outage leaves it open for the cap.
        let doubling = CircuitBreaker::new(settings);
        for _ in 0..settings.threshold {
            fail(&doubling, Signal::ServiceFailing);
        }
        let started = Instant::now();
        while started.elapsed() < outage {
            tokio::time::advance(open_remaining(&doubling)).await;
            fail(&doubling, Signal::ServiceFailing);
        }
        assert_eq!(open_remaining(&doubling), settings.max_open);
    }

    #[tokio::test(start_paused = true)]
    async fn with_failover_openings_that_never_move_calls_still_double() {
        for signal in [Signal::Blocked, Signal::Misconfigured] {
            let settings = BreakerSettings::default();
            let breaker = steady_at_the_defaults();
            fail(&breaker, Signal::Blocked);
            tokio::time::advance(open_remaining(&breaker)).await;
            fail(&breaker, signal);
            let open = breaker.check(Instant::now()).unwrap_err();
            assert_eq!(open.open_for, settings.open_for * 2, "{signal:?}");
            assert!(!open.regional, "{signal:?}");
        }
        // A regional opening whose probe meets the function's own setup refused doubles too.
        let breaker = steady_at_the_defaults();
        for _ in 0..BreakerSettings::default().threshold {
            fail(&breaker, Signal::ServiceFailing);
        }
        tokio::time::advance(open_remaining(&breaker)).await;
        fail(&breaker, Signal::Misconfigured);
        let open = breaker.check(Instant::now()).unwrap_err();
        assert_eq!(open.open_for, BreakerSettings::default().open_for * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_is_dropped_or_throttled_frees_the_slot_for_another() {
        let breaker = breaker();
        for _ in 0..3 {
            fail(&breaker, Signal::ServiceFailing);
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        let now = Instant::now();
        drop(breaker.admit(now).unwrap());
        let probe = breaker
            .admit(now)
            .expect("a new probe after an abandoned one");
        assert!(probe.is_probe());
        breaker.observe(probe, Some(Signal::Throttled), now);
        assert!(breaker.admit(now).unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn results_of_attempts_started_before_it_opened_do_not_move_it() {
        let breaker = breaker();
        let now = Instant::now();
        let late = breaker.admit(now).unwrap();
        for _ in 0..3 {
            fail(&breaker, Signal::ServiceFailing);
        }
        breaker.observe(late, None, now);
        assert!(breaker.is_open(now), "a late success is not a probe");
    }

    fn regional(breaker: &CircuitBreaker) -> bool {
        breaker.check(Instant::now()).unwrap_err().regional
    }

    #[tokio::test(start_paused = true)]
    async fn it_says_whether_the_service_alone_opened_it_through_its_probes() {
        let breaker = breaker();
        for _ in 0..3 {
            fail(&breaker, Signal::ServiceFailing);
        }
        assert!(regional(&breaker), "the service failing on its side");
        tokio::time::advance(Duration::from_secs(2)).await;
        let probe = breaker.admit(Instant::now()).expect("the probe");
        breaker.observe(probe, Some(Signal::Misconfigured), Instant::now());
        assert!(
            !regional(&breaker),
            "a probe refused for the function's setup"
        );

        // One failure of the function's own in the streak is enough: no failover.
        let mixed = self::breaker();
        fail(&mixed, Signal::ServiceFailing);
        fail(&mixed, Signal::Misconfigured);
        fail(&mixed, Signal::ServiceFailing);
        assert!(!regional(&mixed));
        let blocked = self::breaker();
        fail(&blocked, Signal::Blocked);
        assert!(!regional(&blocked), "an account blocked is no outage");
        // A probe that says nothing about the service keeps what the breaker knew.
        tokio::time::advance(Duration::from_secs(2)).await;
        let probe = blocked.admit(Instant::now()).expect("the probe");
        blocked.observe(probe, Some(Signal::NotReached), Instant::now());
        let probe = blocked.admit(Instant::now()).expect("a new probe");
        assert!(probe.is_probe());
        assert!(!regional(&blocked), "still not an outage while it is out");
        blocked.observe(probe, Some(Signal::Blocked), Instant::now());
        assert!(!regional(&blocked), "reopened, still not an outage");
        // An answer starts a new streak.
        let healed = self::breaker();
        fail(&healed, Signal::Misconfigured);
        fail(&healed, Signal::Answered);
        for _ in 0..3 {
            fail(&healed, Signal::ServiceFailing);
        }
        assert!(regional(&healed));
    }

    #[test]
    fn records_turned_away_come_back_after_the_remaining_time_plus_jitter() {
        let open = Open {
            remaining: Duration::from_secs(10),
            open_for: Duration::from_secs(20),
            regional: true,
        };
        let now = Instant::now();
        assert_eq!(open.retry_at(now, 0.0), now + Duration::from_secs(10));
        assert_eq!(open.retry_at(now, 0.5), now + Duration::from_millis(12_500));
        assert_eq!(
            open.retry_at(now, 7.0),
            now + Duration::from_secs(15),
            "clamped"
        );
    }
}
