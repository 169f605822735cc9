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
mod tests {
    use super::*;

    fn record<'a>(id: &'a str, group: Option<&'a str>) -> Record<'a> {
        Record {
            message_id: id,
            body: None,
            receive_count: Some(1),
            fifo_group: group,
            sent_at: None,
            idempotency_key: id.into(),
            ..Record::default()
        }
    }

    #[test]
    fn standard_records_each_get_their_own_lane() {
        let records = [record("a", None), record("b", None), record("c", None)];
        assert_eq!(lanes(&records).0, vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn fifo_records_share_a_lane_per_group_in_event_order() {
        let records = [
            record("a1", Some("a")),
            record("b1", Some("b")),
            record("a2", Some("a")),
            record("b2", Some("b")),
            record("a3", Some("a")),
        ];
        assert_eq!(lanes(&records).0, vec![vec![0, 2, 4], vec![1, 3]]);
    }

    #[test]
    fn a_message_id_seen_before_in_the_batch_is_no_lane_but_a_copy() {
        let records = [
            record("a", None),
            record("b", None),
            record("a", None),
            record("a", None),
        ];
        let (lanes, copies) = lanes(&records);
        assert_eq!(lanes, vec![vec![0], vec![1]]);
        assert_eq!(copies, vec![(2, 0), (3, 0)]);
    }

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use crate::core::phone::PhoneNumber;
    use crate::core::ports::SentCall;

    /// Answers from a script, then with `then` (or a destination's own answer); records
    /// when each request started.
    struct ScriptedVoice {
        script: Mutex<VecDeque<Result<SentCall, SendFailure>>>,
        then: Result<SentCall, SendFailure>,
        by_destination: Vec<(String, Result<SentCall, SendFailure>)>,
        started: Mutex<Vec<Instant>>,
        /// Each request's attempt timeout, as the engine gave it.
        limits: Mutex<Vec<Duration>>,
        latency: Duration,
    }

    impl ScriptedVoice {
        fn new(then: Result<SentCall, SendFailure>) -> Self {
            Self {
                script: Mutex::new(VecDeque::new()),
                then,
                by_destination: Vec::new(),
                started: Mutex::new(Vec::new()),
                limits: Mutex::new(Vec::new()),
                latency: Duration::from_millis(10),
            }
        }

        fn for_destination(
            mut self,
            destination: &str,
            answer: Result<SentCall, SendFailure>,
        ) -> Self {
            self.by_destination.push((destination.to_owned(), answer));
            self
        }

        fn first(self, answers: Vec<Result<SentCall, SendFailure>>) -> Self {
            self.script.lock().unwrap().extend(answers);
            self
        }

        fn requests(&self) -> usize {
            self.started.lock().unwrap().len()
        }
    }

    impl VoiceSender for ScriptedVoice {
        async fn send(
            &self,
            message: &VoiceMessage,
            attempt_timeout: Duration,
        ) -> Result<SentCall, SendFailure> {
            self.started.lock().unwrap().push(Instant::now());
            self.limits.lock().unwrap().push(attempt_timeout);
            // As the SDK does: no answer within the attempt's timeout is a timeout.
            if self.latency > attempt_timeout {
                tokio::time::sleep(attempt_timeout).await;
                return Err(SendFailure::Timeout("operation attempt timeout".into()));
            }
            tokio::time::sleep(self.latency).await;
            if let Some((_, answer)) = self
                .by_destination
                .iter()
                .find(|(destination, _)| destination == message.destination.as_str())
            {
                return answer.clone();
            }
            let next = self.script.lock().unwrap().pop_front();
            next.unwrap_or_else(|| self.then.clone())
        }
    }

    fn accepted() -> Result<SentCall, SendFailure> {
        Ok(SentCall {
            message_id: Some("voice-1".into()),
        })
    }

    fn internal_error() -> Result<SentCall, SendFailure> {
        Err(SendFailure::Service {
            code: Some("InternalServiceErrorException".into()),
            status: Some(500),
            message: "down".into(),
            reason: None,
            resource_type: None,
        })
    }

    fn throttled() -> Result<SentCall, SendFailure> {
        Err(SendFailure::Service {
            code: Some("TooManyRequestsException".into()),
            status: Some(429),
            message: "slow down".into(),
            reason: None,
            resource_type: None,
        })
    }

    fn settings() -> EngineSettings {
        EngineSettings {
            defaults: MessageDefaults {
                origination: PhoneNumber::parse("+12065550199").ok(),
                configuration_set: None,
                v2_voices: None,
                v2_identity: None,
                configured_resources_only: false,
            },
            deadline_safety: Duration::from_millis(500),
            retry_base: Duration::from_millis(100),
            attempt_timeout: Duration::from_millis(100),
            ..EngineSettings::default()
        }
    }

    const BODY: &str = r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"PlainTextMessage": {"Text": "Disk full"}}}"#;
    const OTHER: &str = "+12065550143";
    const BODY_TO_OTHER: &str = r#"{"DestinationPhoneNumber": "+12065550143", "Content": {"PlainTextMessage": {"Text": "Disk full"}}}"#;
    const BODY_TTL_10: &str = r#"{"DestinationPhoneNumber": "+12065550142", "TimeToLive": 10, "Content": {"PlainTextMessage": {"Text": "Disk full"}}}"#;

    fn sent(id: &str, body: &'static str, age: Duration) -> Record<'static> {
        Record {
            message_id: Box::leak(id.to_owned().into_boxed_str()),
            body: Some(body),
            receive_count: Some(1),
            fifo_group: None,
            sent_at: Some(SystemTime::now() - age),
            idempotency_key: id.to_owned().into(),
            ..Record::default()
        }
    }

    fn in_seconds(seconds: u64) -> Instant {
        Instant::now() + Duration::from_secs(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_past_its_time_to_live_is_expired_and_never_sent() {
        let mut settings = settings();
        settings.message_ttl = Duration::from_secs(60);
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings);
        let records = [
            sent("old", BODY, Duration::from_secs(61)),
            sent("fresh", BODY, Duration::from_secs(59)),
            sent("own-ttl", BODY_TTL_10, Duration::from_secs(11)),
        ];
        let report = engine.run(&records, in_seconds(30)).await;
        let fates: Vec<Fate> = report.outcomes.iter().map(|o| o.fate).collect();
        assert_eq!(fates, [Fate::Expired, Fate::Sent, Fate::Expired]);
        let reason = report.outcomes[0].reason.as_ref().unwrap();
        assert_eq!(reason.code, "Expired");
        assert!(
            reason.message.contains("time to live of 60 s"),
            "{reason:?}"
        );
        assert_eq!(report.outcomes[0].attempts, 0);
        assert_eq!(engine.sender.requests(), 1, "only the fresh one was sent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reserve_at_or_above_the_invocation_time_still_leaves_time_to_send() {
        let mut too_long = settings();
        too_long.deadline_safety = Duration::from_secs(600);
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), too_long);
        let deadline = in_seconds(3);
        assert_eq!(engine.reserve(deadline), Duration::from_millis(1_500));
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], deadline)
            .await;
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
        // A reserve that fits is kept as set.
        let fits = BatchEngine::new(ScriptedVoice::new(accepted()), settings());
        assert_eq!(fits.reserve(in_seconds(3)), Duration::from_millis(500));
    }

    /// v2's refusal for a destination at its daily call limit.
    fn daily_limited() -> Result<SentCall, SendFailure> {
        Err(SendFailure::Service {
            code: Some("ServiceQuotaExceededException".into()),
            status: Some(400),
            message: "limit".into(),
            reason: Some("DAILY_DESTINATION_CALL_LIMIT".into()),
            resource_type: None,
        })
    }

    /// Seconds until the next 00:00 UTC on the wall clock, when the daily limit resets.
    fn to_utc_midnight() -> u64 {
        let now_s = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        86_400 - now_s % 86_400
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_at_its_daily_limit_waits_for_the_next_day_and_says_why() {
        let limited = daily_limited();
        // A time to live longer than any day: the reset always comes within it.
        let mut settings = settings();
        settings.message_ttl = Duration::from_secs(2 * 86_400);
        let engine = BatchEngine::new(ScriptedVoice::new(limited), settings);
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
            .await;
        let outcome = &report.outcomes[0];
        assert_eq!(outcome.fate, Fate::Transient);
        assert_eq!(
            outcome.attempts, 1,
            "not retried in place: it resets with the day"
        );
        let reason = outcome.reason.as_ref().unwrap();
        assert_eq!(reason.code, "ServiceQuotaExceededException");
        assert!(
            reason
                .message
                .contains("Reason: DAILY_DESTINATION_CALL_LIMIT"),
            "{reason:?}"
        );
        let wait = outcome.retry_at.unwrap() - Instant::now();
        let to_midnight = to_utc_midnight();
        assert!(
            wait.as_secs().abs_diff(to_midnight) <= 2,
            "back at the next 00:00 UTC: {wait:?} vs {to_midnight} s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_daily_limit_that_resets_after_the_time_to_live_gives_the_record_up_at_once() {
        // The reset is the next 00:00 UTC on the wall clock: in the day's last seconds it
        // would come within the 5 s below, so wait for the day to turn first.
        if to_utc_midnight() <= 10 {
            std::thread::sleep(std::time::Duration::from_secs(to_utc_midnight() + 1));
        }
        let limited = daily_limited();
        let mut settings = settings();
        settings.message_ttl = Duration::from_secs(5);
        let engine = BatchEngine::new(ScriptedVoice::new(limited), settings);
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
            .await;
        let outcome = &report.outcomes[0];
        assert_eq!(
            outcome.fate,
            Fate::Expired,
            "not held back to expire unsent"
        );
        assert_eq!(outcome.attempts, 1);
        assert_eq!(outcome.retry_at, None);
        let reason = outcome.reason.as_ref().unwrap();
        assert_eq!(reason.code, "Expired");
        assert!(
            reason
                .message
                .contains("ServiceQuotaExceededException (DAILY_DESTINATION_CALL_LIMIT)")
                && reason.message.contains("time to live of 5 s"),
            "{reason:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_time_to_live_longer_than_the_setting_keeps_the_record_alive() {
        let mut settings = settings();
        settings.message_ttl = Duration::from_secs(5);
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings);
        let records = [sent("m", BODY_TTL_10, Duration::from_secs(8))];
        let report = engine.run(&records, in_seconds(30)).await;
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_answer_is_retried_in_place_and_a_timeout_is_not() {
        let engine = BatchEngine::new(
            ScriptedVoice::new(accepted()).first(vec![internal_error()]),
            settings(),
        );
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
            .await;
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
        assert_eq!(report.outcomes[0].attempts, 2);

        let engine = BatchEngine::new(
            ScriptedVoice::new(accepted()).first(vec![Err(SendFailure::Timeout("t".into()))]),
            settings(),
        );
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
            .await;
        assert_eq!(
            report.outcomes[0].fate,
            Fate::Transient,
            "the call may have gone out"
        );
        assert_eq!(report.outcomes[0].attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_place_stop_at_the_configured_number() {
        let mut settings = settings();
        settings.max_attempts = 4;
        settings.breaker.threshold = 100;
        let engine = BatchEngine::new(ScriptedVoice::new(internal_error()), settings);
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
            .await;
        assert_eq!(report.outcomes[0].fate, Fate::Transient);
        assert_eq!(report.outcomes[0].attempts, 4);
        assert_eq!(engine.sender.requests(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_whose_wait_would_pass_the_expiry_is_not_started() {
        fastrand::seed(8);
        let mut settings = settings();
        settings.message_ttl = Duration::from_secs(10);
        // Waits before a retry are drawn from 0..=1 h: with 0.5 s left, the seeded draw
        // lands past the expiry.
        settings.retry_base = Duration::from_secs(3_600);
        settings.max_attempts = 10;
        let engine = BatchEngine::new(ScriptedVoice::new(internal_error()), settings);
        let record = sent("m", BODY, Duration::from_millis(9_500));
        let report = engine.run(&[record], in_seconds(600)).await;
        let outcome = &report.outcomes[0];
        assert_eq!(outcome.fate, Fate::Transient, "{outcome:?}");
        assert_eq!(outcome.attempts, 1);
        assert_eq!(engine.sender.requests(), 1);
        assert_eq!(
            outcome.reason.as_ref().unwrap().code,
            "InternalServiceErrorException"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_that_would_wait_past_expiry_is_given_up_as_expired_on_the_next_look() {
        let mut settings = settings();
        settings.message_ttl = Duration::from_secs(10);
        settings.max_attempts = 10;
        settings.breaker.threshold = 100;
        settings.attempt_timeout = Duration::from_secs(3);
        // Each attempt takes 2 s; with 5 s left, the third would start after expiry.
        let mut voice = ScriptedVoice::new(internal_error());
        voice.latency = Duration::from_secs(2);
        let engine = BatchEngine::new(voice, settings);
        let expires = Instant::now() + Duration::from_secs(5);
        let report = engine
            .run(&[sent("m", BODY, Duration::from_secs(5))], in_seconds(600))
            .await;
        let outcome = &report.outcomes[0];
        let started = engine.sender.started.lock().unwrap().clone();
        assert!(started.iter().all(|at| *at < expires), "{started:?}");
        assert_eq!(outcome.fate, Fate::Expired);
        let reason = outcome.reason.as_ref().unwrap();
        assert!(
            reason
                .message
                .contains("last attempt failed with InternalServiceErrorException"),
            "{reason:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_defers_the_rest_with_its_remaining_time() {
        let mut settings = settings();
        settings.max_concurrency = 1;
        settings.max_attempts = 1;
        settings.breaker = BreakerSettings {
            threshold: 2,
            open_for: Duration::from_secs(20),
            max_open: Duration::from_secs(60),
        };
        let engine = BatchEngine::new(ScriptedVoice::new(internal_error()), settings);
        let records: Vec<Record<'_>> = (0..5)
            .map(|n| sent(&format!("m{n}"), BODY, Duration::ZERO))
            .collect();
        let start = Instant::now();
        let report = engine.run(&records, in_seconds(30)).await;
        let fates: Vec<Fate> = report.outcomes.iter().map(|o| o.fate).collect();
        assert_eq!(
            fates,
            [
                Fate::Transient,
                Fate::Transient,
                Fate::Deferred,
                Fate::Deferred,
                Fate::Deferred
            ]
        );
        assert_eq!(engine.sender.requests(), 2, "nothing sent while open");
        for deferred in &report.outcomes[2..] {
            assert_eq!(deferred.reason.as_ref().unwrap().code, "CircuitOpen");
            // Opened at 20 ms (two 10 ms attempts); open 20 s, jitter up to 5 s.
            let after = deferred.retry_at.unwrap() - start;
            assert!(
                after >= Duration::from_millis(20_020) && after <= Duration::from_millis(25_020),
                "remaining open time plus at most a quarter of it: {after:?}"
            );
        }
        assert_eq!(
            report.circuit,
            CircuitReport {
                opened: 1,
                open_at_end: true
            }
        );

        // The breaker outlives the invocation; after its open time one probe closes it.
        tokio::time::advance(Duration::from_secs(20)).await;
        let engine = BatchEngine {
            sender: ScriptedVoice::new(accepted()),
            settings: engine.settings.clone(),
            pacer: None,
            breaker: engine.breaker,
            ledger: None::<NoLedger>,
            tell: |_| {},
        };
        let report = engine.run(&records[..2], in_seconds(30)).await;
        assert!(report.outcomes.iter().all(|o| o.fate == Fate::Sent));
        assert_eq!(
            report.circuit,
            CircuitReport {
                opened: 0,
                open_at_end: false
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn records_that_cannot_get_a_permit_before_the_cutoff_are_deferred_to_successive_slots() {
        let mut settings = settings();
        settings.send_rate = SendRate::per_second(1.0);
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings);
        let records: Vec<Record<'_>> = (0..6)
            .map(|n| sent(&format!("m{n}"), BODY, Duration::ZERO))
            .collect();
        // Sends may start before 3.5 s - 0.5 s = 3 s: at 0, 1 and 2 s. The slot at 3 s and
        // those after it go to the records turned away, one period apart.
        let start = Instant::now();
        let deadline = start + Duration::from_millis(3_500);
        let report = engine.run(&records, deadline).await;
        let fates: Vec<Fate> = report.outcomes.iter().map(|o| o.fate).collect();
        assert_eq!(fates[..3], [Fate::Sent; 3]);
        assert_eq!(fates[3..], [Fate::Deferred; 3]);
        let mut slots = Vec::new();
        for outcome in &report.outcomes[3..] {
            assert_eq!(outcome.reason.as_ref().unwrap().code, "RateLimited");
            assert_eq!(outcome.attempts, 0, "never attempted");
            slots.push((outcome.retry_at.unwrap() - start).as_millis());
        }
        assert_eq!(slots, [3_000, 4_000, 5_000]);
        let started = engine.sender.started.lock().unwrap().clone();
        let offsets: Vec<u128> = started.iter().map(|at| (*at - start).as_millis()).collect();
        assert_eq!(offsets, [0, 1_000, 2_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_recipient_throttled_again_while_others_go_through_keeps_the_pace_and_stops_retrying()
    {
        let mut settings = settings();
        settings.send_rate = SendRate::per_second(10.0);
        settings.max_attempts = 5;
        let voice = ScriptedVoice::new(accepted()).for_destination(OTHER, throttled());
        let engine = BatchEngine::new(voice, settings);
        let records = [
            sent("busy-recipient", BODY_TO_OTHER, Duration::ZERO),
            sent("a", BODY, Duration::ZERO),
            sent("b", BODY, Duration::ZERO),
        ];
        let report = engine.run(&records, in_seconds(30)).await;
        let busy = &report.outcomes[0];
        assert_eq!(busy.fate, Fate::Transient);
        assert_eq!(
            busy.attempts, 2,
            "the second throttle, after others went through, ends the retries"
        );
        assert_eq!(report.outcomes[1].fate, Fate::Sent);
        assert_eq!(
            engine.pacer().unwrap().rate(),
            SendRate::per_second(5.0).unwrap(),
            "halved once, for the first throttle only"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_slows_the_pacer_and_the_record_is_retried_at_the_new_pace() {
        let mut settings = settings();
        settings.send_rate = SendRate::per_second(4.0);
        let engine = BatchEngine::new(
            ScriptedVoice::new(accepted()).first(vec![throttled()]),
            settings,
        );
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
            .await;
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
        assert_eq!(report.outcomes[0].attempts, 2);
        assert_eq!(
            engine.pacer().unwrap().rate(),
            SendRate::per_second(2.0).unwrap()
        );
        assert_eq!(
            report.circuit.opened, 0,
            "throttling does not trip the breaker"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_cut_at_the_abandon_point_after_the_floor_counts_as_the_service_failing() {
        let mut settings = settings();
        settings.breaker.threshold = 1;
        settings.attempt_timeout = Duration::from_secs(5);
        let mut hung = ScriptedVoice::new(accepted());
        hung.latency = Duration::from_secs(60);
        let engine = BatchEngine::new(hung, settings);
        // Abandon at 2.75 s: the attempt started at 0 waited longer than the 1 s floor.
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(3))
            .await;
        assert_eq!(report.outcomes[0].fate, Fate::Abandoned);
        assert_eq!(
            engine.sender.limits.lock().unwrap().clone(),
            [Duration::from_millis(2_750)],
            "the attempt was given the time to the abandon point, not 5 s"
        );
        assert_eq!(report.circuit.opened, 1, "{report:?}");
    }

    /// Progress at any invocation length the function accepts, over the configuration space
    /// the template and the README accept. The deadline arithmetic, for an invocation of
    /// `L`: reserve `r = min(DEADLINE_SAFETY_MS, L / 2)`, abandon point `A = L − r / 2`, last
    /// start `S = min(L − r, A − min(SEND_ATTEMPT_TIMEOUT_MS, 1 s))`.
    mod progress {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

        use super::*;

        #[derive(Debug, Clone)]
        struct Case {
            invocation_ms: u64,
            attempt_ms: u64,
            safety_ms: u64,
            max_attempts: u32,
            retry_base_ms: u64,
            /// Sends per second, `None`: unpaced.
            rate: Option<f64>,
            threshold: u32,
            open_seconds: u64,
            ttl_seconds: u64,
            concurrency: usize,
            records: usize,
            latency_ms: u64,
        }

        /// Edges first, then anything in the accepted range.
        fn millis(low: u64, high: u64, edges: &[u64]) -> BoxedStrategy<u64> {
            let edges: Vec<u64> = edges.to_vec();
            prop_oneof![proptest::sample::select(edges), low..=high].boxed()
        }

        fn configurations() -> impl Strategy<Value = Case> {
            (
                (
                    millis(3_000, 900_000, &[3_000, 5_000, 10_000, 60_000, 900_000]),
                    millis(100, 600_000, &[100, 999, 1_000, 5_000, 600_000]),
                    millis(100, 600_000, &[100, 1_000, 5_000, 600_000]),
                    1u32..=10,
                    millis(10, 10_000, &[10, 250, 10_000]),
                ),
                (
                    proptest::option::of(prop_oneof![Just(1.0 / 3_600.0), 0.001f64..=10_000.0]),
                    1u32..=1_000,
                    1u64..=43_200,
                    millis(5, 1_209_600, &[5, 60, 3_600, 345_600]),
                    prop_oneof![Just(1usize), Just(10), 1usize..=1_000],
                    1usize..=40,
                ),
            )
                .prop_map(
                    |(
                        (invocation_ms, attempt_ms, safety_ms, max_attempts, retry_base_ms),
                        (rate, threshold, open_seconds, ttl_seconds, concurrency, records),
                    )| Case {
                        invocation_ms,
                        attempt_ms,
                        safety_ms,
                        max_attempts,
                        retry_base_ms,
                        rate,
                        threshold,
                        open_seconds,
                        ttl_seconds,
                        concurrency,
                        records,
                        latency_ms: 0,
                    },
                )
        }

        /// A runner with a fixed seed: the same cases on every run.
        fn runner(cases: u32) -> TestRunner {
            TestRunner::new_with_rng(
                Config {
                    cases,
                    failure_persistence: None,
                    ..Config::default()
                },
                TestRng::deterministic_rng(RngAlgorithm::ChaCha),
            )
        }

        /// tokio's timers fire on whole milliseconds, rounded up.
        const TICK: Duration = Duration::from_millis(1);

        struct Moments {
            /// `S` and `A`, from the start.
            last_start: Duration,
            abandon: Duration,
        }

        fn moments(case: &Case) -> Moments {
            let invocation = Duration::from_millis(case.invocation_ms);
            let reserve = Duration::from_millis(case.safety_ms).min(invocation / 2);
            let abandon = invocation - reserve / 2;
            let floor = Duration::from_millis(case.attempt_ms).min(START_FLOOR);
            Moments {
                last_start: (invocation - reserve).min(abandon.saturating_sub(floor)),
                abandon,
            }
        }

        /// Runs a fresh instance (breaker closed, pacer full) on a batch sent just now, on
        /// tokio's paused clock; also how long it took.
        fn run_case(case: &Case) -> (BatchReport, Duration) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut voice = ScriptedVoice::new(accepted());
                voice.latency = Duration::from_millis(case.latency_ms);
                let engine = BatchEngine::new(
                    voice,
                    EngineSettings {
                        max_concurrency: case.concurrency,
                        deadline_safety: Duration::from_millis(case.safety_ms),
                        message_ttl: Duration::from_secs(case.ttl_seconds),
                        max_attempts: case.max_attempts,
                        retry_base: Duration::from_millis(case.retry_base_ms),
                        send_rate: case.rate.and_then(SendRate::per_second),
                        breaker: BreakerSettings {
                            threshold: case.threshold,
                            open_for: Duration::from_secs(case.open_seconds),
                            ..BreakerSettings::default()
                        },
                        attempt_timeout: Duration::from_millis(case.attempt_ms),
                        ..settings()
                    },
                );
                let records: Vec<Record<'static>> = (0..case.records)
                    .map(|n| sent(&format!("m{n}"), BODY, Duration::ZERO))
                    .collect();
                let start = Instant::now();
                let deadline = start + Duration::from_millis(case.invocation_ms);
                let report = engine.run(&records, deadline).await;
                (report, start.elapsed())
            })
        }

        fn sent_count(report: &BatchReport) -> usize {
            report
                .outcomes
                .iter()
                .filter(|o| o.fate == Fate::Sent)
                .count()
        }

        #[test]
        fn any_accepted_configuration_sends_at_least_one_record_when_calls_beat_the_floor() {
            let strategy = configurations().prop_flat_map(|case| {
                let floor_ms = case.attempt_ms.min(START_FLOOR.as_millis() as u64);
                (Just(case), 0..floor_ms).prop_map(|(case, latency_ms)| Case {
                    latency_ms,
                    ttl_seconds: case.ttl_seconds.max(case.invocation_ms / 1_000 + 1),
                    ..case
                })
            });
            runner(300)
                .run(&strategy, |case| {
                    let (report, took) = run_case(&case);
                    prop_assert!(sent_count(&report) >= 1, "{case:?}: {report:?}");
                    prop_assert!(took <= moments(&case).abandon + TICK, "{case:?}: {took:?}");
                    for outcome in &report.outcomes {
                        let code = outcome.reason.as_ref().map(|r| r.code.as_str());
                        prop_assert!(
                            outcome.fate == Fate::Sent
                                || (outcome.fate == Fate::Deferred
                                    && matches!(code, Some("DeadlineReached" | "RateLimited"))),
                            "{case:?}: {outcome:?}"
                        );
                    }
                    Ok(())
                })
                .unwrap();
        }

        /// Unpaced, within the time to live: each of the `c` lanes sends in rounds `m = 0,
        /// 1, ...` starting at `m·d` while `m·d < S`, and a round's call counts while it
        /// ends before the abandon point and within the attempt timeout (`(m + 1)·d < A`
        /// and `d ≤ SEND_ATTEMPT_TIMEOUT_MS`); the first round that does not stops the lane.
        /// Sent: `min(n, c × R)`, `R` the rounds that count.
        #[test]
        fn where_calls_take_longer_the_number_sent_is_what_the_time_allows() {
            let strategy = configurations().prop_flat_map(|case| {
                let floor_ms = case.attempt_ms.min(START_FLOOR.as_millis() as u64);
                let invocation_ms = case.invocation_ms;
                (Just(case), floor_ms..=invocation_ms).prop_map(|(case, latency_ms)| Case {
                    latency_ms,
                    rate: None,
                    ttl_seconds: case.ttl_seconds.max(case.invocation_ms / 1_000 + 1),
                    ..case
                })
            });
            runner(300)
                .run(&strategy, |case| {
                    let Moments {
                        last_start,
                        abandon,
                    } = moments(&case);
                    let d = Duration::from_millis(case.latency_ms);
                    let mut rounds = 0usize;
                    for m in 0u32.. {
                        let start = d * m;
                        // A tie between a call's end and a cutoff (within the timers' 1 ms
                        // tick) is a race on the paused clock: not a case for an exact count.
                        let near = |a: Duration, b: Duration| a.abs_diff(b) <= TICK;
                        prop_assume!(!near(start, last_start) && !near(start + d, abandon));
                        if start >= last_start
                            || start + d > abandon
                            || case.latency_ms > case.attempt_ms
                        {
                            break;
                        }
                        rounds += 1;
                    }
                    let expected = case.records.min(case.concurrency * rounds);
                    let (report, took) = run_case(&case);
                    prop_assert_eq!(sent_count(&report), expected, "{:?}", case);
                    prop_assert!(took <= abandon + TICK, "{:?}: {:?}", case, took);
                    Ok(())
                })
                .unwrap();
        }
    }

    mod with_a_ledger {
        use std::sync::Arc;

        use super::*;
        use crate::adapters::memory_ledger::MemoryLedger;

        fn engine(
            voice: ScriptedVoice,
            ledger: &Arc<MemoryLedger>,
            on_unknown: UnknownOutcome,
        ) -> BatchEngine<ScriptedVoice, Arc<MemoryLedger>> {
            // A slow voice gets an attempt timeout its calls fit in.
            let attempt_timeout = settings().attempt_timeout.max(voice.latency * 2);
            let settings = EngineSettings {
                on_unknown,
                attempt_timeout,
                ..settings()
            };
            BatchEngine::new(voice, settings).with_ledger(Some(ledger.clone()))
        }

        fn timeout() -> Result<SentCall, SendFailure> {
            Err(SendFailure::Timeout("attempt timed out".into()))
        }

        async fn run_one<L: Ledger>(
            engine: &BatchEngine<ScriptedVoice, L>,
            record: Record<'_>,
        ) -> RecordOutcome {
            engine
                .run(&[record], in_seconds(30))
                .await
                .outcomes
                .remove(0)
        }

        #[tokio::test(start_paused = true)]
        async fn a_sent_call_is_recorded_and_a_redelivery_is_a_duplicate_not_called_again() {
            let ledger = Arc::new(MemoryLedger::default());
            let engine = engine(
                ScriptedVoice::new(accepted()),
                &ledger,
                UnknownOutcome::Retry,
            );
            let first = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
            assert_eq!(first.fate, Fate::Sent);
            let entry = ledger.entry("m").unwrap();
            assert_eq!(entry.status, Status::Sent);
            assert_eq!(entry.voice_message_id.as_deref(), Some("voice-1"));

            let again = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
            assert_eq!(again.fate, Fate::Duplicate);
            assert_eq!(
                again.voice_message_id.as_deref(),
                Some("voice-1"),
                "the original call"
            );
            assert!(!again.is_reported(), "SQS deletes it");
            assert_eq!(engine.sender.requests(), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn a_v2_dry_run_places_nothing_so_the_key_stays_free_for_the_real_call() {
            const DRY: &str = r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "DryRun": true}"#;
            let ledger = Arc::new(MemoryLedger::default());
            let mut settings = settings();
            settings.defaults.v2_voices = Some(&["JOANNA"]);
            let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings)
                .with_ledger(Some(ledger.clone()));
            let first = run_one(&engine, sent("m", DRY, Duration::ZERO)).await;
            assert_eq!(first.fate, Fate::Sent, "the service checked it");
            assert_eq!(ledger.entry("m"), None, "released, not recorded SENT");
            let again = run_one(&engine, sent("m", DRY, Duration::ZERO)).await;
            assert_eq!(
                again.fate,
                Fate::Sent,
                "not a duplicate of a call never placed"
            );
            assert_eq!(engine.sender.requests(), 2);
        }

        #[tokio::test(start_paused = true)]
        async fn a_failure_that_placed_nothing_releases_the_claim_for_the_retry() {
            let ledger = Arc::new(MemoryLedger::default());
            let mut voice = ScriptedVoice::new(accepted());
            voice.then = Err(SendFailure::Service {
                code: Some("InternalServiceErrorException".into()),
                status: Some(500),
                message: "down".into(),
                reason: None,
                resource_type: None,
            });
            let engine = engine(voice, &ledger, UnknownOutcome::DeadLetter);
            let failed = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
            assert_eq!(failed.fate, Fate::Transient);
            assert_eq!(ledger.entry("m"), None, "released");
        }

        #[tokio::test(start_paused = true)]
        async fn an_ambiguous_failure_is_unknown_and_the_policy_decides_the_next_delivery() {
            for (policy, fate, calls) in [
                (UnknownOutcome::Retry, Fate::Sent, 2),
                (UnknownOutcome::DeadLetter, Fate::Permanent, 1),
            ] {
                let ledger = Arc::new(MemoryLedger::default());
                let voice = ScriptedVoice::new(accepted()).first(vec![timeout()]);
                let engine = engine(voice, &ledger, policy);
                let first = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
                assert_eq!(first.fate, Fate::Transient);
                assert_eq!(
                    first.attempts, 1,
                    "a timed-out attempt is not sent again in place"
                );
                assert_eq!(ledger.entry("m").unwrap().status, Status::Unknown);

                let next = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
                assert_eq!(next.fate, fate, "{policy:?}");
                assert_eq!(engine.sender.requests(), calls, "{policy:?}");
                if policy == UnknownOutcome::DeadLetter {
                    assert_eq!(next.reason.unwrap().code, "OutcomeUnknown");
                }
            }
        }

        #[tokio::test(start_paused = true)]
        async fn a_claim_whose_holder_died_is_an_unknown_outcome_once_its_lease_ends() {
            let ledger = Arc::new(MemoryLedger::default());
            let now_ms = epoch_ms(SystemTime::now());
            let dead_holder = Claim {
                key: "m".into(),
                entry: Entry {
                    status: Status::InProgress,
                    body_hash: ledger::body_hash(BODY),
                    claim_id: "crashed".into(),
                    lease_until_ms: now_ms + 5_000,
                    expiration: now_ms / 1_000 + 86_400,
                    voice_message_id: None,
                },
                now_ms,
                on_unknown: UnknownOutcome::Retry,
            };
            assert!(matches!(
                ledger.claim(&dead_holder).await,
                Ok(ClaimAnswer::Claimed { .. })
            ));
            let engine = engine(
                ScriptedVoice::new(accepted()),
                &ledger,
                UnknownOutcome::DeadLetter,
            );
            let held = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
            assert_eq!(held.fate, Fate::Deferred);
            assert_eq!(held.reason.as_ref().unwrap().code, "InProgressElsewhere");
            let back_in = held.retry_at.unwrap() - Instant::now();
            assert!(
                back_in > Duration::from_millis(4_500) && back_in <= Duration::from_secs(5),
                "when the lease ends: {back_in:?}"
            );
            assert_eq!(engine.sender.requests(), 0);

            // SystemTime does not move with tokio's paused clock: lapse the lease by hand.
            let mut lapsed = dead_holder.clone();
            lapsed.entry.lease_until_ms = now_ms - 1;
            lapsed.now_ms = now_ms + 10_000;
            let _ = ledger.claim(&lapsed).await;
            let after = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
            assert_eq!(after.fate, Fate::Permanent);
            assert_eq!(after.reason.unwrap().code, "OutcomeUnknown");
            assert_eq!(engine.sender.requests(), 0, "at most once: never called");
        }

        #[tokio::test(start_paused = true)]
        async fn a_key_reused_for_another_body_is_never_called() {
            let ledger = Arc::new(MemoryLedger::default());
            let engine = engine(
                ScriptedVoice::new(accepted()),
                &ledger,
                UnknownOutcome::Retry,
            );
            let mut first = sent("m1", BODY, Duration::ZERO);
            first.idempotency_key = "order-42".into();
            let mut other = sent("m2", BODY_TO_OTHER, Duration::ZERO);
            other.idempotency_key = "order-42".into();
            assert_eq!(run_one(&engine, first).await.fate, Fate::Sent);
            let reused = run_one(&engine, other).await;
            assert_eq!(reused.fate, Fate::Permanent);
            assert_eq!(reused.reason.unwrap().code, "IdempotencyKeyReused");
            assert_eq!(engine.sender.requests(), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn nothing_is_sent_unrecorded_when_the_ledger_is_down() {
            let ledger = Arc::new(MemoryLedger::default());
            ledger.set_down(true);
            let engine = engine(
                ScriptedVoice::new(accepted()),
                &ledger,
                UnknownOutcome::Retry,
            );
            let outcome = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
            assert_eq!(outcome.fate, Fate::Transient);
            assert_eq!(outcome.reason.unwrap().code, "LedgerUnavailable");
            assert_eq!(engine.sender.requests(), 0);
        }

        #[tokio::test(start_paused = true)]
        async fn two_instances_racing_for_one_key_place_one_call() {
            let ledger = Arc::new(MemoryLedger::default());
            let mut slow = ScriptedVoice::new(accepted());
            slow.latency = Duration::from_secs(2);
            let a = engine(slow, &ledger, UnknownOutcome::Retry);
            let b = engine(
                ScriptedVoice::new(accepted()),
                &ledger,
                UnknownOutcome::Retry,
            );
            let (from_a, from_b) = tokio::join!(
                run_one(&a, sent("m", BODY, Duration::ZERO)),
                run_one(&b, sent("m", BODY, Duration::ZERO)),
            );
            let mut fates = [from_a.fate, from_b.fate];
            fates.sort_by_key(|fate| fate.as_str());
            assert_eq!(fates, [Fate::Deferred, Fate::Sent]);
            assert_eq!(a.sender.requests() + b.sender.requests(), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn a_send_abandoned_at_the_deadline_is_abandoned_and_unknown() {
            let ledger = Arc::new(MemoryLedger::default());
            let mut stuck = ScriptedVoice::new(accepted());
            stuck.latency = Duration::from_secs(60);
            let engine = engine(stuck, &ledger, UnknownOutcome::Retry);
            let report = engine
                .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(2))
                .await;
            let outcome = &report.outcomes[0];
            assert_eq!(outcome.fate, Fate::Abandoned);
            assert!(outcome.is_reported());
            assert_eq!(ledger.entry("m").unwrap().status, Status::Unknown);
        }

        #[tokio::test(start_paused = true)]
        async fn a_record_never_attempted_releases_its_claim() {
            let ledger = Arc::new(MemoryLedger::default());
            let mut settings = settings();
            settings.send_rate = SendRate::per_second(1.0);
            let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings)
                .with_ledger(Some(ledger.clone()));
            let records = [
                sent("first", BODY, Duration::ZERO),
                sent("second", BODY, Duration::ZERO),
            ];
            // Sends may start until 0.9 s - 0.5 s: only the first.
            let report = engine
                .run(&records, Instant::now() + Duration::from_millis(900))
                .await;
            assert_eq!(report.outcomes[1].fate, Fate::Deferred);
            assert_eq!(
                ledger.entry("second"),
                None,
                "released: its retry can claim it"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_id_twice_in_one_batch_is_sent_once_and_both_share_the_outcome() {
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings());
        let records = [
            sent("m", BODY, Duration::ZERO),
            sent("n", BODY_TO_OTHER, Duration::ZERO),
            sent("m", BODY, Duration::ZERO),
        ];
        let report = engine.run(&records, in_seconds(30)).await;
        assert_eq!(engine.sender.requests(), 2);
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
        assert_eq!(report.outcomes[2].fate, Fate::Sent);
        assert_eq!(
            report.outcomes[2].voice_message_id,
            report.outcomes[0].voice_message_id
        );
    }

    #[test]
    fn cutoffs_keep_the_reserve_before_the_deadline() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        let cutoffs = Cutoffs::new(
            deadline,
            Duration::from_millis(1_000),
            Duration::from_millis(200),
            now,
        );
        assert_eq!(deadline - cutoffs.last_start, Duration::from_millis(1_000));
        assert_eq!(deadline - cutoffs.abandon, Duration::from_millis(500));
        assert_eq!(deadline - cutoffs.record_by, Duration::from_millis(375));
    }

    #[test]
    fn a_send_starts_while_the_start_floor_fits_before_the_abandon_cutoff() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        let cutoffs = Cutoffs::new(
            deadline,
            Duration::from_millis(1_000),
            Duration::from_secs(3),
            now,
        );
        assert_eq!(
            deadline - cutoffs.last_start,
            Duration::from_millis(1_500),
            "abandon at 9.5 s minus the 1 s floor, not minus the whole 3 s attempt"
        );
        // An attempt timeout under the floor is its own floor.
        let short = Cutoffs::new(
            deadline,
            Duration::from_millis(200),
            Duration::from_millis(300),
            now,
        );
        assert_eq!(deadline - short.abandon, Duration::from_millis(100));
        assert_eq!(deadline - short.last_start, Duration::from_millis(400));
    }

    #[test]
    fn lambdas_default_three_seconds_with_the_default_settings_leave_time_to_start() {
        let now = Instant::now();
        let defaults = EngineSettings::default();
        let deadline = now + Duration::from_secs(3);
        let cutoffs = Cutoffs::new(
            deadline,
            defaults.deadline_safety,
            defaults.attempt_timeout,
            now,
        );
        // Abandon at 2.5 s; starts until 1.5 s; an attempt at 1.2 s gets 1.3 s, cut to the
        // abandon point; one at the start gets 2.5 s, not the configured 5 s.
        assert_eq!(cutoffs.last_start - now, Duration::from_millis(1_500));
        assert_eq!(
            cutoffs.attempt_limit(defaults.attempt_timeout, now + Duration::from_millis(1_200)),
            (Duration::from_millis(1_300), true)
        );
        assert_eq!(
            cutoffs.attempt_limit(defaults.attempt_timeout, now),
            (Duration::from_millis(2_500), true)
        );
        let long = Cutoffs::new(
            now + Duration::from_secs(60),
            defaults.deadline_safety,
            defaults.attempt_timeout,
            now,
        );
        assert_eq!(
            long.attempt_limit(defaults.attempt_timeout, now),
            (defaults.attempt_timeout, false)
        );
    }
}
