//! The invocation's budget: the reserve kept before its deadline, the moments that bound a
//! batch, and what an invocation too short for the configuration says.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::BatchEngine;
use crate::core::ports::{Ledger, VoiceSender};

/// The least time before the abandon point for a send to start: one second, or the whole
/// attempt timeout when that is shorter. A real `SendVoiceMessage` answers in a few hundred
/// milliseconds; `SEND_ATTEMPT_TIMEOUT_MS` bounds its tail, not its usual length, so waiting
/// for a whole attempt to fit would leave short invocations sending nothing.
pub const START_FLOOR: Duration = Duration::from_secs(1);

/// The floor for an attempt timeout: [`START_FLOOR`], or the attempt timeout if shorter.
pub fn start_floor(attempt_timeout: Duration) -> Duration {
    attempt_timeout.min(START_FLOOR)
}

/// The moments that bound a batch, derived from the invocation deadline.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cutoffs {
    pub(super) deadline: Instant,
    /// No send starts after this: `deadline - safety`, and sooner if less than the start
    /// floor would be left before `abandon`.
    pub(super) last_start: Instant,
    /// Sends still in flight are abandoned here, `deadline - safety / 2`, which leaves the
    /// other half of the reserve to record, settle and answer. No attempt is given longer.
    pub(super) abandon: Instant,
    /// The ledger's writes after a send finish by here, `deadline - 3 × safety / 8`: before
    /// settling (dead letters, visibility) must be done, at `deadline - safety / 4`.
    pub(super) record_by: Instant,
    /// No send could start at all in this invocation: it is too short for the reserve and
    /// the start floor.
    pub(super) none_can_start: bool,
}

impl Cutoffs {
    pub(super) fn new(
        deadline: Instant,
        safety: Duration,
        attempt_timeout: Duration,
        now: Instant,
    ) -> Self {
        let before = |margin: Duration| deadline.checked_sub(margin).unwrap_or(now);
        let abandon = before(safety / 2);
        let floor = abandon
            .checked_sub(start_floor(attempt_timeout))
            .unwrap_or(now);
        let last_start = before(safety).min(floor);
        Self {
            deadline,
            last_start,
            abandon,
            record_by: before(safety * 3 / 8),
            none_can_start: last_start <= now,
        }
    }

    /// What one attempt starting `now` is given: the configured timeout, or less when the
    /// abandon point comes first; and whether it was cut to the abandon point.
    pub(super) fn attempt_limit(
        &self,
        attempt_timeout: Duration,
        now: Instant,
    ) -> (Duration, bool) {
        let left = self.abandon.saturating_duration_since(now);
        if left < attempt_timeout {
            (left, true)
        } else {
            (attempt_timeout, false)
        }
    }
}

/// Outcomes told before their mean cost is trusted.
const TRUSTED_AFTER: u64 = 32;

/// What telling an outcome (its line, as soon as it is known) costs this instance in wall
/// time, and how many of the running batch's records are still to be told. At a small CPU
/// share (Lambda gives 128 MB about 7 % of a vCPU) telling thousands of records takes
/// seconds, more than the reserve: a batch stops starting sends while there is still time
/// to tell every record left, so that it answers before its deadline whatever its size.
#[derive(Debug, Default)]
pub(super) struct Telling {
    /// Outcomes told since the instance started, and the wall time they took.
    told: AtomicU64,
    wall_ns: AtomicU64,
    /// Records of the running batch (or batches) not told yet.
    pending: AtomicUsize,
}

impl Telling {
    /// A batch of `records` begins: each will be told once.
    pub(super) fn begin(&self, records: usize) {
        self.pending.fetch_add(records, Ordering::Relaxed);
    }

    /// One record told, in `took`.
    pub(super) fn told(&self, took: Duration) {
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.told.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.wall_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The time to tell the records still pending, with half again for what each costs
    /// besides its line (its place in the response, its settling): zero until enough
    /// outcomes were told to know the cost.
    pub(super) fn time_to_tell_rest(&self) -> Duration {
        let told = self.told.load(Ordering::Relaxed);
        if told < TRUSTED_AFTER {
            return Duration::ZERO;
        }
        let mean_ns = self.wall_ns.load(Ordering::Relaxed) / told;
        let pending = self.pending.load(Ordering::Relaxed) as u64;
        Duration::from_nanos(mean_ns.saturating_mul(pending).saturating_mul(3) / 2)
    }
}

/// What an engine says once in its life, however many invocations hit it: the reserve cut
/// to half the invocation, an invocation too short for one attempt, one too short for any.
#[derive(Debug, Default)]
pub(super) struct SaidOnce {
    reserve_cut: AtomicBool,
    budget_short: AtomicBool,
    none_can_start: AtomicBool,
}

impl SaidOnce {
    /// Whether `flag` is said now for the first time.
    fn first(flag: &AtomicBool) -> bool {
        !flag.swap(true, Ordering::Relaxed)
    }
}

impl<S: VoiceSender, L: Ledger> BatchEngine<S, L> {
    /// Whether no send may start now: past the last start, or so close to it that the
    /// records still to be told need the time left. Now is the engine's clock's: tokio's,
    /// or in a test tokio's plus what telling has cost.
    pub(super) fn past_last_start(&self, cutoffs: &Cutoffs) -> bool {
        self.clock.now() + self.telling.time_to_tell_rest() >= cutoffs.last_start
    }

    /// Tells `outcome` (its line) and counts what that took.
    pub(super) fn tell(&self, outcome: &crate::core::report::RecordOutcome) {
        let started = self.clock.now();
        (self.tell)(outcome);
        self.telling
            .told(self.clock.now().saturating_duration_since(started));
    }

    /// The reserve kept before `deadline`: `deadline_safety`, but never more than half the
    /// time left, so a reserve set at or above the function's timeout (the template cannot
    /// compare the two) still leaves time to send instead of deferring every record until the
    /// DLQ takes it. Said once per engine, as a WARN line; and so is an invocation too short
    /// for the configured attempt timeout (an ERROR when no send can start at all).
    pub fn reserve(&self, deadline: Instant) -> Duration {
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let safety = self.settings.deadline_safety;
        let reserve = if safety <= left / 2 {
            safety
        } else {
            if SaidOnce::first(&self.said.reserve_cut) {
                tracing::warn!(
                    deadline_safety_ms = safety.as_millis() as u64,
                    invocation_ms = left.as_millis() as u64,
                    "DEADLINE_SAFETY_MS leaves no time to send: the reserve is half the invocation's time"
                );
            }
            left / 2
        };
        self.say_budget(deadline, reserve, now);
        reserve
    }

    /// Once per engine: a WARN when the time this invocation leaves for sending (deadline −
    /// now − reserve) is shorter than one attempt's timeout, an ERROR when no send can start.
    fn say_budget(&self, deadline: Instant, reserve: Duration, now: Instant) {
        let attempt = self.settings.attempt_timeout;
        let budget = deadline
            .saturating_duration_since(now)
            .saturating_sub(reserve);
        let cutoffs = Cutoffs::new(deadline, reserve, attempt, now);
        let fields = |budget: Duration| {
            (
                deadline.saturating_duration_since(now).as_millis() as u64,
                budget.as_millis() as u64,
            )
        };
        if cutoffs.none_can_start {
            if SaidOnce::first(&self.said.none_can_start) {
                let (invocation_ms, budget_ms) = fields(budget);
                // The attempt timeout whose floor would fit before the abandon point.
                let to_abandon = cutoffs.abandon.saturating_duration_since(now);
                let fitting_attempt_timeout_ms = (to_abandon.as_millis() as u64).checked_sub(1);
                tracing::error!(
                    invocation_ms,
                    budget_ms,
                    deadline_safety_ms = self.settings.deadline_safety.as_millis() as u64,
                    send_attempt_timeout_ms = attempt.as_millis() as u64,
                    start_floor_ms = start_floor(attempt).as_millis() as u64,
                    fitting_attempt_timeout_ms,
                    "no call can start: the invocation is too short for DEADLINE_SAFETY_MS and SEND_ATTEMPT_TIMEOUT_MS; raise the function's timeout, or lower SEND_ATTEMPT_TIMEOUT_MS below fitting_attempt_timeout_ms (at least 100)"
                );
            }
        } else if budget < attempt && SaidOnce::first(&self.said.budget_short) {
            let (invocation_ms, budget_ms) = fields(budget);
            tracing::warn!(
                invocation_ms,
                budget_ms,
                deadline_safety_ms = self.settings.deadline_safety.as_millis() as u64,
                send_attempt_timeout_ms = attempt.as_millis() as u64,
                "the invocation leaves less than SEND_ATTEMPT_TIMEOUT_MS to send: late attempts get less time and may be abandoned; raise the function's timeout or lower SEND_ATTEMPT_TIMEOUT_MS"
            );
        }
    }
}
