//! The batch engine: one outcome per record, a bounded number of sends in flight, FIFO order
//! per message group, a panic confined to its record, and an answer before the deadline.
//!
//! Each send goes through the instance's pacer and circuit breaker, never starts after the
//! record's expiry, and never starts unless the start floor fits before the abandon point;
//! each attempt is given what the invocation has left, at most its timeout. With an
//! idempotency ledger, a record's key is claimed before its first attempt and its outcome
//! recorded after the last. A failure that certainly placed nothing is tried again in place,
//! a few times; anything else is left to SQS's redelivery. A message id that appears twice in
//! one batch is sent once, and both copies share that outcome.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use crate::core::breaker::{BreakerSettings, CircuitBreaker, Open};
use crate::core::classify::{
    self, classify, placed_nothing, signal, Disposition, Origin, Origins, SendFailure, Signal,
};
use crate::core::expiry::Expiry;
use crate::core::ledger::{self, Claim, Entry, Refusal, Settle, Status, UnknownOutcome};
use crate::core::message::{MessageDefaults, VoiceMessage};
use crate::core::pacing::{Pacer, SendRate};
use crate::core::ports::{ClaimAnswer, Ledger, NoLedger, OutcomeLine, VoiceSender};
use crate::core::record::Record;
use crate::core::redact::scrub_phone_numbers;
use crate::core::report::{BatchReport, CircuitReport, Fate, Reason, RecordOutcome};

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub defaults: MessageDefaults,
    pub max_concurrency: usize,
    pub deadline_safety: Duration,
    /// How long a record stays worth sending when its body does not say.
    pub message_ttl: Duration,
    /// Requests per record per invocation, the first included.
    pub max_attempts: u32,
    /// The longest wait before the first retry in place (full jitter), doubling after that.
    pub retry_base: Duration,
    /// Sends per second for this instance; `None`: unpaced.
    pub send_rate: Option<SendRate>,
    pub breaker: BreakerSettings,
    /// One attempt's limit, less when the abandon point comes first; a send starts only if
    /// the start floor (the lesser of this and 1 s) fits before that point.
    pub attempt_timeout: Duration,
    /// What the ledger does with a key whose earlier attempt's outcome is unknown.
    pub on_unknown: UnknownOutcome,
    /// How long ledger entries stay valid.
    pub ledger_ttl: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            defaults: MessageDefaults::default(),
            max_concurrency: 10,
            deadline_safety: Duration::from_millis(1_000),
            message_ttl: Duration::from_secs(u64::from(crate::core::expiry::DEFAULT_TTL_SECONDS)),
            max_attempts: 3,
            retry_base: Duration::from_millis(250),
            send_rate: None,
            breaker: BreakerSettings::default(),
            attempt_timeout: Duration::from_millis(5_000),
            on_unknown: UnknownOutcome::Retry,
            ledger_ttl: Duration::from_secs(14 * 86_400),
        }
    }
}

/// The longest wait between two attempts in place, whatever the attempt count.
const RETRY_CAP_FACTOR: u32 = 16;

pub struct BatchEngine<S, L = NoLedger> {
    sender: S,
    settings: EngineSettings,
    /// Both live as long as the instance: a warm instance remembers its pace and whether
    /// the service was failing across invocations.
    pacer: Option<Pacer>,
    breaker: CircuitBreaker,
    ledger: Option<L>,
    /// Told each outcome as soon as it is known (the per-record line).
    tell: OutcomeLine,
}

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
struct Cutoffs {
    deadline: Instant,
    /// No send starts after this: `deadline - safety`, and sooner if less than the start
    /// floor would be left before `abandon`.
    last_start: Instant,
    /// Sends still in flight are abandoned here, `deadline - safety / 2`, which leaves the
    /// other half of the reserve to record, settle and answer. No attempt is given longer.
    abandon: Instant,
    /// The ledger's writes after a send finish by here, `deadline - 3 × safety / 8`: before
    /// settling (dead letters, visibility) must be done, at `deadline - safety / 4`.
    record_by: Instant,
    /// No send could start at all in this invocation: it is too short for the reserve and
    /// the start floor.
    none_can_start: bool,
}

impl Cutoffs {
    fn new(deadline: Instant, safety: Duration, attempt_timeout: Duration, now: Instant) -> Self {
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
    fn attempt_limit(&self, attempt_timeout: Duration, now: Instant) -> (Duration, bool) {
        let left = self.abandon.saturating_duration_since(now);
        if left < attempt_timeout {
            (left, true)
        } else {
            (attempt_timeout, false)
        }
    }
}

impl<S: VoiceSender> BatchEngine<S> {
    pub fn new(sender: S, settings: EngineSettings) -> Self {
        Self {
            sender,
            pacer: settings.send_rate.map(Pacer::new),
            breaker: CircuitBreaker::new(settings.breaker),
            settings,
            ledger: None,
            tell: |_| {},
        }
    }

    /// The same engine telling `line` each outcome as soon as it is known.
    pub fn with_outcome_line(mut self, line: OutcomeLine) -> Self {
        self.tell = line;
        self
    }

    /// The same engine keeping an idempotency ledger (none: it keeps none).
    pub fn with_ledger<L: Ledger>(self, ledger: Option<L>) -> BatchEngine<S, L> {
        BatchEngine {
            sender: self.sender,
            settings: self.settings,
            pacer: self.pacer,
            breaker: self.breaker,
            ledger,
            tell: self.tell,
        }
    }
}

impl<S: VoiceSender, L: Ledger> BatchEngine<S, L> {
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The instance's pacer, when sends are paced.
    pub fn pacer(&self) -> Option<&Pacer> {
        self.pacer.as_ref()
    }

    /// The reserve kept before `deadline`: `deadline_safety`, but never more than half the
    /// time left, so a reserve set at or above the function's timeout (the template cannot
    /// compare the two) still leaves time to send instead of deferring every record until the
    /// DLQ takes it. Said once per process, as a WARN line; and so is an invocation too short
    /// for the configured attempt timeout (an ERROR when no send can start at all).
    pub fn reserve(&self, deadline: Instant) -> Duration {
        static SAID: AtomicBool = AtomicBool::new(false);
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let safety = self.settings.deadline_safety;
        let reserve = if safety <= left / 2 {
            safety
        } else {
            if !SAID.swap(true, Ordering::Relaxed) {
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

    /// Once per process: a WARN when the time this invocation leaves for sending (deadline −
    /// now − reserve) is shorter than one attempt's timeout, an ERROR when no send can start.
    fn say_budget(&self, deadline: Instant, reserve: Duration, now: Instant) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        static ERRED: AtomicBool = AtomicBool::new(false);
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
            if !ERRED.swap(true, Ordering::Relaxed) {
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
        } else if budget < attempt && !WARNED.swap(true, Ordering::Relaxed) {
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

    /// Processes every record and returns their outcomes in record order. Never fails as a
    /// whole: whatever goes wrong is some record's outcome.
    pub async fn run(&self, records: &[Record<'_>], deadline: Instant) -> BatchReport {
        self.run_with_reserve(records, deadline, self.reserve(deadline))
            .await
    }

    /// [`Self::run`] with the reserve already taken (the caller settles within the same one).
    pub async fn run_with_reserve(
        &self,
        records: &[Record<'_>],
        deadline: Instant,
        reserve: Duration,
    ) -> BatchReport {
        let cutoffs = Cutoffs::new(
            deadline,
            reserve,
            self.settings.attempt_timeout,
            Instant::now(),
        );
        let opened_before = self.breaker.times_opened();
        let (lanes, copies) = lanes(records);
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut lanes = futures::stream::iter(lanes)
            .map(|lane| self.run_lane(lane, records, cutoffs))
            .buffer_unordered(self.settings.max_concurrency.max(1));
        // Each outcome is logged as soon as it is known, not after settling: what is left
        // for the last part of the reserve stays small whatever the batch size and the CPU.
        while let Some(finished) = lanes.next().await {
            for (index, outcome) in finished {
                (self.tell)(&outcome);
                outcomes[index] = Some(outcome);
            }
        }
        for (copy, first) in copies {
            outcomes[copy] = outcomes[first].clone();
            if let Some(outcome) = &outcomes[copy] {
                (self.tell)(outcome);
            }
        }
        BatchReport {
            outcomes: outcomes
                .into_iter()
                .zip(records)
                .map(|(outcome, record)| {
                    outcome.unwrap_or_else(|| {
                        let outcome =
                            deferred(record, "Unprocessed", "the engine produced no outcome");
                        (self.tell)(&outcome);
                        outcome
                    })
                })
                .collect(),
            circuit: CircuitReport {
                opened: self.breaker.times_opened() - opened_before,
                open_at_end: self.breaker.is_open(Instant::now()),
            },
        }
    }

    /// Runs one lane's records in order. A record that is not done (transient, deferred or
    /// abandoned) blocks the rest of its lane: in a FIFO group, sending a later message first
    /// would break the order SQS promised.
    async fn run_lane(
        &self,
        lane: Vec<usize>,
        records: &[Record<'_>],
        cutoffs: Cutoffs,
    ) -> Vec<(usize, RecordOutcome)> {
        let mut finished = Vec::with_capacity(lane.len());
        let mut blocked_by: Option<&str> = None;
        for index in lane {
            let record = &records[index];
            let outcome = if let Some(blocker) = blocked_by {
                deferred(
                    record,
                    "EarlierRecordInGroupFailed",
                    &format!("record {blocker} of the same message group was not sent"),
                )
            } else if cutoffs.none_can_start {
                too_short(record)
            } else if Instant::now() >= cutoffs.last_start {
                deadline_reached(record)
            } else {
                self.process_isolated(record, cutoffs).await
            };
            if matches!(
                outcome.fate,
                Fate::Transient | Fate::Deferred | Fate::Abandoned
            ) {
                blocked_by = Some(record.message_id);
            }
            finished.push((index, outcome));
        }
        finished
    }

    /// A panic anywhere in this record's processing becomes this record's transient
    /// failure; the rest of the batch goes on.
    async fn process_isolated(&self, record: &Record<'_>, cutoffs: Cutoffs) -> RecordOutcome {
        let started = Instant::now();
        match AssertUnwindSafe(self.process(record, cutoffs, started))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic payload".to_owned());
                RecordOutcome {
                    latency: started.elapsed(),
                    ..failed(
                        record,
                        Fate::Transient,
                        Reason {
                            code: "Panic".to_owned(),
                            message: scrub_phone_numbers(&detail),
                        },
                    )
                }
            }
        }
    }

    async fn process(
        &self,
        record: &Record<'_>,
        cutoffs: Cutoffs,
        started: Instant,
    ) -> RecordOutcome {
        let message = match VoiceMessage::from_body(record.body, &self.settings.defaults) {
            Ok(mut message) => {
                message
                    .correlation
                    .push(("SqsMessageId", record.message_id.to_owned()));
                if record.idempotency_key != record.message_id {
                    message
                        .correlation
                        .push(("IdempotencyKey", record.idempotency_key.to_string()));
                }
                message
            }
            Err(invalid) => {
                return failed(
                    record,
                    Fate::Permanent,
                    Reason {
                        code: invalid.code().to_owned(),
                        message: invalid.to_string(),
                    },
                )
            }
        };
        let ttl = message
            .time_to_live
            .map_or(self.settings.message_ttl, |seconds| {
                Duration::from_secs(u64::from(seconds))
            });
        let expiry = Expiry::of(record.sent_at, ttl, SystemTime::now(), Instant::now());
        // When the call stops being worth placing, so the service can enforce it too.
        let mut message = message;
        message.expires_at = Some(record.sent_at.unwrap_or_else(SystemTime::now) + ttl);
        let attempt = AttemptLoop {
            outcome: RecordOutcome {
                destination: Some(message.destination.masked().to_string()),
                receive_count: record.receive_count,
                expires_at: expiry.map(|e| e.at()),
                ..RecordOutcome::new(record.message_id, Fate::Deferred)
            },
        };
        let expired = expiry.filter(|e| e.is_past(Instant::now()));
        let outcome = match (&self.ledger, expired) {
            (None, Some(expiry)) => attempt.expired(&expiry),
            (None, None) => {
                self.attempts(record, &message, expiry, cutoffs, attempt)
                    .await
                    .0
            }
            // Too late, but perhaps placed by an earlier delivery: the ledger says which.
            (Some(ledger), Some(expiry)) => {
                match self.claim(ledger, record, cutoffs, attempt).await {
                    Err(refused) if refused.fate == Fate::Duplicate => refused,
                    Err(refused) => AttemptLoop { outcome: refused }.expired(&expiry),
                    Ok((claim, attempt)) => {
                        self.record(ledger, &claim, &attempt.outcome, false, cutoffs)
                            .await;
                        attempt.expired(&expiry)
                    }
                }
            }
            // Nothing to claim while the breaker turns every record away.
            (Some(_), None) if self.breaker.check(Instant::now()).is_err() => {
                self.attempts(record, &message, expiry, cutoffs, attempt)
                    .await
                    .0
            }
            (Some(ledger), None) => match self.claim(ledger, record, cutoffs, attempt).await {
                Err(refused) => refused,
                Ok((claim, attempt)) => {
                    let (outcome, maybe_placed) = self
                        .attempts(record, &message, expiry, cutoffs, attempt)
                        .await;
                    let dry_run = message.v2.as_ref().and_then(|v2| v2.dry_run) == Some(true);
                    if dry_run && outcome.fate == Fate::Sent {
                        // A dry run placed nothing: the key stays free for the real call.
                        let _ = tokio::time::timeout_at(
                            cutoffs.record_by,
                            ledger.settle(&claim, &Settle::Release),
                        )
                        .await;
                    } else {
                        self.record(ledger, &claim, &outcome, maybe_placed, cutoffs)
                            .await;
                    }
                    outcome
                }
            },
        };
        RecordOutcome {
            latency: started.elapsed(),
            ..outcome
        }
    }

    /// Claims the record's key before its first attempt. `Err` is the record's outcome when
    /// it must not be sent now: already sent, held elsewhere, the key reused for another
    /// message, an unknown outcome under at-most-once, or the ledger out of reach (nothing is
    /// ever sent unrecorded).
    async fn claim(
        &self,
        ledger: &L,
        record: &Record<'_>,
        cutoffs: Cutoffs,
        attempt: AttemptLoop,
    ) -> Result<(Claim, AttemptLoop), RecordOutcome> {
        let now_ms = epoch_ms(SystemTime::now());
        let lease_ms = cutoffs
            .deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        let claim = Claim {
            key: ledger::stored_key(&record.idempotency_key),
            entry: Entry {
                status: Status::InProgress,
                body_hash: ledger::body_hash(record.body.unwrap_or_default()),
                claim_id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
                lease_until_ms: now_ms.saturating_add(lease_ms as u64),
                expiration: (now_ms / 1_000).saturating_add(self.settings.ledger_ttl.as_secs()),
                voice_message_id: None,
            },
            now_ms,
            on_unknown: self.settings.on_unknown,
        };
        let answer = tokio::time::timeout_at(cutoffs.last_start, ledger.claim(&claim)).await;
        let mut outcome = attempt.outcome;
        let (fate, code, message) = match answer {
            // Our own claim, written by an earlier try whose answer was lost (the SDK retries
            // a PutItem): it is ours.
            Ok(Ok(ClaimAnswer::Refused(standing)))
                if standing.claim_id == claim.entry.claim_id
                    && standing.status == Status::InProgress =>
            {
                return Ok((claim, AttemptLoop { outcome }));
            }
            Ok(Ok(ClaimAnswer::Claimed { replaced })) => {
                if let Some(earlier) = replaced.filter(|e| e.status != Status::Sent) {
                    tracing::warn!(
                        message_id = %record.message_id,
                        earlier_status = earlier.status.as_str(),
                        "an earlier attempt's outcome is unknown: calling again (ON_UNKNOWN_OUTCOME=retry)"
                    );
                }
                return Ok((claim, AttemptLoop { outcome }));
            }
            Ok(Ok(ClaimAnswer::Refused(standing))) => match ledger::refusal(&standing, &claim) {
                Refusal::AlreadySent { voice_message_id } => {
                    outcome.fate = Fate::Duplicate;
                    outcome.reason = None;
                    outcome.voice_message_id = voice_message_id;
                    return Err(outcome);
                }
                Refusal::InProgressElsewhere { lease_until_ms } => {
                    outcome.retry_at = Some(
                        Instant::now()
                            + Duration::from_millis(lease_until_ms.saturating_sub(now_ms)),
                    );
                    (
                        Fate::Deferred,
                        "InProgressElsewhere",
                        "another invocation is sending this key; back when its lease ends"
                            .to_owned(),
                    )
                }
                Refusal::KeyReused => (
                    Fate::Permanent,
                    "IdempotencyKeyReused",
                    "its idempotency key was already used for a different message".to_owned(),
                ),
                Refusal::OutcomeUnknown => (
                    Fate::Permanent,
                    "OutcomeUnknown",
                    "an earlier attempt may have placed the call; ON_UNKNOWN_OUTCOME=dead-letter calls at most once"
                        .to_owned(),
                ),
            },
            Ok(Err(error)) => {
                self.release_uncertain_claim(ledger, &claim, cutoffs).await;
                (
                    Fate::Transient,
                    "LedgerUnavailable",
                    format!("not sent: the idempotency ledger could not be written: {error}"),
                )
            }
            Err(_elapsed) => {
                self.release_uncertain_claim(ledger, &claim, cutoffs).await;
                (
                    Fate::Transient,
                    "LedgerUnavailable",
                    "not sent: the idempotency ledger did not answer before the send cutoff"
                        .to_owned(),
                )
            }
        };
        outcome.fate = fate;
        outcome.reason = Some(Reason {
            code: code.to_owned(),
            message: scrub_phone_numbers(&message),
        });
        Err(outcome)
    }

    /// A claim that failed or timed out may still have been written: released, best effort,
    /// so that it does not stand as an unknown outcome once its lease runs out.
    async fn release_uncertain_claim(&self, ledger: &L, claim: &Claim, cutoffs: Cutoffs) {
        let release = ledger.settle(claim, &Settle::Release);
        let _ = tokio::time::timeout_at(cutoffs.record_by, release).await;
    }

    /// Records what became of a claimed record, retrying until the cutoff; then an ERROR
    /// line for a placed call (the record still counts as sent), a WARN line otherwise.
    async fn record(
        &self,
        ledger: &L,
        claim: &Claim,
        outcome: &RecordOutcome,
        maybe_placed: bool,
        cutoffs: Cutoffs,
    ) {
        let settle = match outcome.fate {
            Fate::Sent => Settle::Sent {
                voice_message_id: outcome.voice_message_id.clone(),
            },
            _ if maybe_placed => Settle::Unknown,
            _ => Settle::Release,
        };
        let mut tries = 0u32;
        let error = loop {
            tries += 1;
            let written =
                tokio::time::timeout_at(cutoffs.record_by, ledger.settle(claim, &settle)).await;
            let error = match written {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error,
                Err(_elapsed) => "no answer before the deadline".to_owned(),
            };
            let retry = Duration::from_millis(50u64 << tries.min(5));
            if Instant::now() + retry >= cutoffs.record_by {
                break error;
            }
            tokio::time::sleep(retry).await;
        };
        let fate = outcome.fate.as_str();
        match settle {
            Settle::Sent { .. } => tracing::error!(
                message_id = %outcome.message_id, fate, tries, error = %scrub_phone_numbers(&error),
                "the call was placed but the ledger could not record it: a redelivery would call again"
            ),
            _ => tracing::warn!(
                message_id = %outcome.message_id, fate, error = %scrub_phone_numbers(&error),
                "the ledger could not record the outcome; the claim lapses with its lease"
            ),
        }
    }

    /// The attempts at one record, through the breaker and the pacer, never after its expiry
    /// or the cutoff. Returns the outcome and whether the call may have been placed without
    /// an answer saying so (the ledger records that as unknown).
    async fn attempts(
        &self,
        record: &Record<'_>,
        message: &VoiceMessage,
        expiry: Option<Expiry>,
        cutoffs: Cutoffs,
        mut attempt: AttemptLoop,
    ) -> (RecordOutcome, bool) {
        // When this record was last throttled, to tell the account's quota from the
        // recipient's.
        let mut throttled_at: Option<Instant> = None;
        // Whether the last attempt may have placed the call without an answer saying so.
        let mut maybe_placed = false;
        let outcome = loop {
            let now = Instant::now();
            if let Some(expiry) = expiry.filter(|e| e.is_past(now)) {
                break attempt.expired(&expiry);
            }
            if now >= cutoffs.last_start {
                break attempt.not_now(deadline_reached(record), None);
            }
            if let Err(open) = self.breaker.check(now) {
                break attempt.not_now(
                    circuit_open(record, open),
                    Some(open.retry_at(now, fastrand::f64())),
                );
            }
            // A send waits for its permit at most until the cutoff, and never past expiry.
            let expires = expiry.map(|e| e.at());
            let bound = expires.map_or(cutoffs.last_start, |at| at.min(cutoffs.last_start));
            let permit = match &self.pacer {
                Some(pacer) => match pacer.acquire(bound).await {
                    Ok(permit) => Some(permit),
                    Err(_) if expires.is_some_and(|at| Instant::now() >= at) => continue,
                    Err(no_permit) => {
                        break attempt.not_now(
                            rate_limited(record, pacer, no_permit.retry_at),
                            Some(no_permit.retry_at),
                        )
                    }
                },
                None => None,
            };
            // A permit handed out late (its timer woke after the bound) is never a send
            // after expiry, nor one started past the cutoff with next to no time.
            if let Some(expiry) = expiry.filter(|e| e.is_past(Instant::now())) {
                break attempt.expired(&expiry);
            }
            if Instant::now() >= cutoffs.last_start {
                break attempt.not_now(deadline_reached(record), None);
            }
            let admitted = match self.breaker.admit(Instant::now()) {
                Ok(admitted) => admitted,
                Err(open) => {
                    break attempt.not_now(
                        circuit_open(record, open),
                        Some(open.retry_at(Instant::now(), fastrand::f64())),
                    )
                }
            };
            attempt.outcome.attempts += 1;
            let attempt_started = Instant::now();
            let (limit, cut_to_abandon) =
                cutoffs.attempt_limit(self.settings.attempt_timeout, attempt_started);
            let sent =
                tokio::time::timeout_at(cutoffs.abandon, self.sender.send(message, limit)).await;
            // An attempt whose limit was the abandon point and ran out is abandoned there,
            // whichever timer told first. Dropping `admitted` frees the breaker's probe slot,
            // if this was the probe.
            let answered = match sent {
                Ok(Err(SendFailure::Timeout(_))) if cut_to_abandon => None,
                Ok(answer) => Some(answer),
                Err(_elapsed) => None,
            };
            let Some(answer) = answered else {
                // No answer in at least the floor's time counts as the service failing, as a
                // timed-out attempt does; a shorter cut says nothing about it.
                let now = Instant::now();
                if now - attempt_started >= start_floor(self.settings.attempt_timeout) {
                    self.breaker
                        .record(admitted, Some(Signal::ServiceFailing), now);
                }
                maybe_placed = true;
                break attempt.abandoned();
            };
            let failure = match answer {
                Ok(call) => {
                    self.breaker.record(admitted, None, Instant::now());
                    if let Some(pacer) = &self.pacer {
                        pacer.succeeded();
                    }
                    attempt.outcome.fate = Fate::Sent;
                    attempt.outcome.reason = None;
                    attempt.outcome.voice_message_id = call.message_id;
                    break attempt.outcome;
                }
                Err(failure) => failure,
            };
            maybe_placed = !placed_nothing(&failure);
            let origins = Origins {
                set: if message.configuration_set_is_default {
                    Origin::Configured
                } else {
                    Origin::Message
                },
                identity: if message.origination_is_default {
                    Origin::Configured
                } else {
                    Origin::Message
                },
            };
            let health = signal(&failure, origins);
            let now = Instant::now();
            self.breaker.record(admitted, Some(health), now);
            // Throttled again although other sends went through since this record's last
            // throttle: the limit is this recipient's (v1 says TooManyRequestsException for
            // its 5 calls a day too), not the account's. The pace stays; retrying is futile.
            let recipient_limited = health == Signal::Throttled
                && throttled_at
                    .is_some_and(|at| self.pacer.as_ref().is_some_and(|p| p.succeeded_since(at)));
            if health == Signal::Throttled {
                throttled_at = Some(now);
                if let (false, Some(pacer), Some(permit)) = (recipient_limited, &self.pacer, permit)
                {
                    pacer.throttled(permit);
                }
            }
            let disposition = classify(&failure, origins);
            // A named moment to try again (v2's daily limit for one destination): not before.
            let named = classify::retry_at(&failure, SystemTime::now()).map(|at| {
                Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default()
            });
            let retry_in_place = disposition == Disposition::Transient
                && placed_nothing(&failure)
                && !recipient_limited
                && named.is_none()
                && attempt.outcome.attempts < self.settings.max_attempts;
            attempt.failed(&failure, disposition);
            if let Some(at) = named {
                attempt.outcome.retry_at = named;
                // Refused until after its time to live ends: give it up now, with why,
                // rather than hold it back to expire unsent.
                if let Some(expiry) = expiry.filter(|e| at >= e.at()) {
                    break attempt.expires_first(&expiry, at, failure.reason());
                }
            }
            if disposition == Disposition::Transient {
                // Past its time to live now: say so at once rather than on the next delivery.
                if let Some(expiry) = expiry.filter(|e| e.is_past(Instant::now())) {
                    break attempt.expired(&expiry);
                }
            }
            if !retry_in_place {
                break attempt.outcome;
            }
            let wait = self.retry_wait(attempt.outcome.attempts, fastrand::f64());
            if Instant::now() + wait >= bound {
                break attempt.outcome;
            }
            tokio::time::sleep(wait).await;
        };
        (outcome, maybe_placed)
    }

    /// Full jitter over `0..=base × 2^(attempts − 1)`, capped.
    fn retry_wait(&self, attempts: u32, draw: f64) -> Duration {
        let base = self.settings.retry_base;
        let ceiling = base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
            .min(base.saturating_mul(RETRY_CAP_FACTOR));
        ceiling.mul_f64(draw.clamp(0.0, 1.0))
    }
}

/// One record's way through its attempts: the outcome so far, which after a failed attempt
/// holds that failure.
struct AttemptLoop {
    outcome: RecordOutcome,
}

impl AttemptLoop {
    fn failed(&mut self, failure: &SendFailure, disposition: Disposition) {
        self.outcome.fate = match disposition {
            Disposition::Transient => Fate::Transient,
            Disposition::Permanent => Fate::Permanent,
        };
        self.outcome.reason = Some(reason_of(failure));
    }

    /// The record cannot be tried (again) now. Never attempted: `deferred` says why and
    /// when to come back. Attempted: the last failure stands, and comes back no sooner.
    fn not_now(mut self, deferred: RecordOutcome, retry_at: Option<Instant>) -> RecordOutcome {
        self.outcome.retry_at = retry_at;
        if self.outcome.attempts == 0 {
            self.outcome.fate = deferred.fate;
            self.outcome.reason = deferred.reason;
        }
        self.outcome
    }

    fn expired(mut self, expiry: &Expiry) -> RecordOutcome {
        let mut message = expiry.reason(Instant::now());
        if let Some(last) = self
            .outcome
            .reason
            .as_ref()
            .filter(|_| self.outcome.attempts > 0)
        {
            message.push_str(&format!("; last attempt failed with {}", last.code));
        }
        self.outcome.fate = Fate::Expired;
        self.outcome.reason = Some(Reason {
            code: "Expired".to_owned(),
            message,
        });
        self.outcome
    }

    /// Refused until `until`, which is after the record's time to live ends (v2's daily
    /// call limit for one destination): it can never be placed in time.
    fn expires_first(
        mut self,
        expiry: &Expiry,
        until: Instant,
        because: Option<&str>,
    ) -> RecordOutcome {
        let now = Instant::now();
        let code = self.outcome.reason.as_ref().map(|last| last.code.as_str());
        let refused = match (code, because) {
            (Some(code), Some(because)) => format!(" with {code} ({because})"),
            (Some(code), None) => format!(" with {code}"),
            _ => String::new(),
        };
        let message = format!(
            "refused{refused} until {} s from now, after its time to live of {} s ends (in {} s)",
            until.saturating_duration_since(now).as_secs(),
            expiry.ttl.as_secs(),
            expiry.at().saturating_duration_since(now).as_secs()
        );
        self.outcome.fate = Fate::Expired;
        self.outcome.retry_at = None;
        self.outcome.reason = Some(Reason {
            code: "Expired".to_owned(),
            message,
        });
        self.outcome
    }

    fn abandoned(mut self) -> RecordOutcome {
        self.outcome.fate = Fate::Abandoned;
        self.outcome.reason = Some(Reason {
            code: "Abandoned".to_owned(),
            message:
                "abandoned in flight at the invocation deadline; the call may have been placed"
                    .to_owned(),
        });
        self.outcome
    }
}

fn deadline_reached(record: &Record<'_>) -> RecordOutcome {
    deferred(
        record,
        "DeadlineReached",
        "not started: too close to the invocation deadline",
    )
}

fn too_short(record: &Record<'_>) -> RecordOutcome {
    deferred(
        record,
        crate::core::report::INVOCATION_TOO_SHORT,
        "not started: the invocation is too short for any send (DEADLINE_SAFETY_MS and SEND_ATTEMPT_TIMEOUT_MS); see the ERROR line",
    )
}

fn circuit_open(record: &Record<'_>, open: Open) -> RecordOutcome {
    deferred(
        record,
        "CircuitOpen",
        &format!(
            "not sent: the voice service is failing and the circuit breaker is open for another {} s",
            open.remaining.as_secs()
        ),
    )
}

fn rate_limited(record: &Record<'_>, pacer: &Pacer, slot: Instant) -> RecordOutcome {
    deferred(
        record,
        "RateLimited",
        &format!(
            "not sent: no send permit before the send cutoff or the record's expiry at the current pace of {} (limit {}); next free slot in {} s",
            pacer.rate(),
            pacer.limit(),
            slot.saturating_duration_since(Instant::now()).as_secs()
        ),
    )
}

/// Splits a batch into lanes that run concurrently. Each record of a standard queue is a
/// lane of its own; the records of one FIFO message group share a lane, in event order. A
/// message id seen before in the batch is no lane's: it is returned as `(copy, first)` and
/// shares the first one's outcome, so one message is never sent twice by one batch.
fn lanes(records: &[Record<'_>]) -> (Vec<Vec<usize>>, Vec<(usize, usize)>) {
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of_group: std::collections::HashMap<&str, usize> = Default::default();
    let mut first_of: std::collections::HashMap<&str, usize> = Default::default();
    let mut copies = Vec::new();
    for (index, record) in records.iter().enumerate() {
        if let Some(&first) = first_of.get(record.message_id) {
            copies.push((index, first));
            continue;
        }
        first_of.insert(record.message_id, index);
        match record.fifo_group {
            Some(group) => {
                let lane = *lane_of_group.entry(group).or_insert_with(|| {
                    lanes.push(Vec::new());
                    lanes.len() - 1
                });
                lanes[lane].push(index);
            }
            None => lanes.push(vec![index]),
        }
    }
    (lanes, copies)
}

fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The failure's code, and its message with the service's `Reason` (v2) when it gave one:
/// both reach the logs and the dead letter's `DispatchError`.
fn reason_of(failure: &SendFailure) -> Reason {
    let mut message = failure.message().to_owned();
    if let Some(reason) = failure.reason() {
        message.push_str(&format!(" (Reason: {reason})"));
    }
    if let SendFailure::Service {
        resource_type: Some(resource_type),
        ..
    } = failure
    {
        message.push_str(&format!(" (ResourceType: {resource_type})"));
    }
    Reason {
        code: failure.code(),
        message: scrub_phone_numbers(&message),
    }
}

fn failed(record: &Record<'_>, fate: Fate, reason: Reason) -> RecordOutcome {
    RecordOutcome {
        reason: Some(reason),
        receive_count: record.receive_count,
        ..RecordOutcome::new(record.message_id, fate)
    }
}

fn deferred(record: &Record<'_>, code: &str, message: &str) -> RecordOutcome {
    failed(
        record,
        Fate::Deferred,
        Reason {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    )
}

#[cfg(test)]
mod tests;
