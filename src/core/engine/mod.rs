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
//!
//! - [`budget`]: the invocation's cutoffs and what a too-short one says;
//! - [`lanes`]: standard records side by side, FIFO groups in order, copies shared;
//! - [`claim`]: the ledger's claim before the first attempt and its last write after;
//! - [`attempt`]: the gate (expiry, breaker, pacer), one send, what a failure means.

mod attempt;
mod budget;
mod claim;
mod lanes;
mod outcomes;
mod progress;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use crate::core::breaker::BreakerSettings;
use crate::core::clock::{Clock, SystemClock};
use crate::core::code::Code;
use crate::core::contract::{MessageDefaults, VoiceMessage};
use crate::core::draws::Draws;
use crate::core::expiry::Expiry;
use crate::core::ledger::{Finish, UnknownOutcome};
use crate::core::pacing::{Pacer, SendRate};
use crate::core::ports::{Ledger, NoLedger, OutcomeLine, VoiceSender};
use crate::core::record::Record;
use crate::core::redact::scrub_phone_numbers;
use crate::core::redial::{Keep, RedialPolicy, MAX_KEPT_BODY_BYTES};
use crate::core::report::{BatchReport, CircuitReport, Fate, Reason, RecordOutcome, Regions};
use crate::core::route::{self, Failover, FailoverSettings, Region, Route};

use budget::Cutoffs;

/// A record ready for its attempts: its message, expiry, starting outcome, and what the
/// ledger keeps for a redial.
type Prepared = (VoiceMessage, Option<Expiry>, AttemptLoop, Option<Keep>);
pub use budget::{start_floor, START_FLOOR};
use outcomes::{deferred, epoch_ms, unsent, AttemptLoop};
use progress::Progress;

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
    /// How long a placed call's final event is waited for (`OUTCOME_WAIT_SECONDS`): a body
    /// kept for a redial must outlast its time to live and this wait in the ledger.
    pub outcome_wait: Duration,
    /// The function's redial policy (`REDIAL_*`), when it can redial (the ledger, the status
    /// path and the call queue are there); `None`: every request is called once.
    pub redial: Option<RedialPolicy>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        let defaults = crate::core::defaults::DEFAULTS;
        Self {
            defaults: MessageDefaults::default(),
            max_concurrency: defaults.max_concurrency,
            deadline_safety: defaults.deadline_safety,
            message_ttl: defaults.message_ttl,
            max_attempts: defaults.max_attempts,
            retry_base: defaults.retry_base,
            send_rate: None,
            breaker: BreakerSettings::default(),
            attempt_timeout: defaults.send_attempt_timeout,
            on_unknown: UnknownOutcome::default(),
            ledger_ttl: defaults.idempotency_ttl,
            outcome_wait: crate::core::outcome_timer::DEFAULT_OUTCOME_WAIT,
            redial: None,
        }
    }
}

pub struct BatchEngine<S, L = NoLedger> {
    /// The primary region: its sender, pacer and breaker, which live as long as the
    /// instance (a warm instance remembers its pace and whether the service was failing).
    primary: Region<S>,
    /// The failover region, when `FAILOVER_REGION` is set.
    failover: Option<Failover<S>>,
    settings: EngineSettings,
    ledger: Option<L>,
    /// Told each outcome as soon as it is known (the per-record line).
    tell: OutcomeLine,
    /// What telling costs, against the time left to start sends.
    telling: budget::Telling,
    /// What this engine has said once (the reserve cut, a too-short invocation).
    said: budget::SaidOnce,
    clock: Arc<dyn Clock>,
    /// Jitter and claim ids.
    draws: Draws,
}

impl<S: VoiceSender> BatchEngine<S> {
    pub fn new(sender: S, settings: EngineSettings) -> Self {
        Self {
            primary: Region::new(sender, settings.send_rate, settings.breaker, None),
            failover: None,
            settings,
            ledger: None,
            tell: |_| {},
            telling: budget::Telling::default(),
            said: budget::SaidOnce::default(),
            clock: Arc::new(SystemClock),
            draws: Draws::new(),
        }
    }

    /// The same engine keeping an idempotency ledger (none: it keeps none).
    pub fn with_ledger<L: Ledger>(self, ledger: Option<L>) -> BatchEngine<S, L> {
        BatchEngine {
            primary: self.primary,
            failover: self.failover,
            settings: self.settings,
            ledger,
            tell: self.tell,
            telling: self.telling,
            said: self.said,
            clock: self.clock,
            draws: self.draws,
        }
    }
}

impl<S: VoiceSender, L: Ledger> BatchEngine<S, L> {
    /// The same engine telling `line` each outcome as soon as it is known.
    pub fn with_outcome_line(mut self, line: OutcomeLine) -> Self {
        self.tell = line;
        self
    }

    /// The same engine with a failover region: calls go there while the primary region's
    /// service is failing on its side, through `sender` (a client for that region), with
    /// its own pacer and breaker. Lines, dead letters and metrics then name the region.
    pub fn with_failover(mut self, sender: S, failover: FailoverSettings) -> Self {
        // While the failover region carries the calls nothing waits on the primary's probe:
        // the primary is probed every open period, not ever more rarely.
        let primary = self.primary.tagged(failover.primary_tag());
        self.primary = Region {
            breaker: primary.breaker.steady_while_regional(),
            ..primary
        };
        self.failover = Some(Failover::new(sender, failover, self.settings.breaker));
        self
    }

    /// The same engine reading the wall clock from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same engine drawing its jitter and claim ids from `draws` (a seeded source, in
    /// tests).
    pub fn with_draws(mut self, draws: Draws) -> Self {
        self.draws = draws;
        self
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The primary region's pacer, when sends are paced.
    pub fn pacer(&self) -> Option<&Pacer> {
        self.primary.pacer.as_ref()
    }

    /// With failover on, the two regions as outcomes name them.
    pub fn regions(&self) -> Option<Regions> {
        let failover = self.failover.as_ref()?;
        Some(Regions {
            primary: self.primary.tag.clone()?,
            failover: failover.region.tag.clone()?,
        })
    }

    /// The region a route takes.
    fn region(&self, route: Route) -> &Region<S> {
        match (&self.failover, route) {
            (Some(failover), Route::Failover) => &failover.region,
            _ => &self.primary,
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
        let now = Instant::now();
        let cutoffs = Cutoffs::new(deadline, reserve, self.settings.attempt_timeout, now);
        let opened_before = self.primary.breaker.times_opened();
        let (lanes, copies) = lanes::lanes(records);
        self.telling.begin(records.len());
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut lanes = futures::stream::iter(lanes)
            .map(|lane| self.run_lane(lane, records, cutoffs))
            .buffer_unordered(self.settings.max_concurrency.max(1));
        // Each outcome is told as soon as it is known, not after settling: what is left for
        // the last part of the reserve stays small whatever the batch size and the CPU.
        while let Some(finished) = lanes.next().await {
            for (index, outcome) in finished {
                self.tell(&outcome);
                outcomes[index] = Some(outcome);
            }
        }
        for (copy, first) in copies {
            outcomes[copy] = outcomes[first].clone();
            if let Some(outcome) = &outcomes[copy] {
                self.tell(outcome);
            }
        }
        BatchReport {
            outcomes: outcomes
                .into_iter()
                .zip(records)
                .map(|(outcome, record)| {
                    outcome.unwrap_or_else(|| {
                        let outcome =
                            deferred(record, Code::Unprocessed, "the engine produced no outcome");
                        self.tell(&outcome);
                        outcome
                    })
                })
                .collect(),
            circuit: CircuitReport {
                opened: self.primary.breaker.times_opened() - opened_before,
                open_at_end: self.primary.breaker.is_open(Instant::now()),
                outage_at_end: self.primary.breaker.open_for_an_outage(Instant::now()),
            },
            regions: self.regions(),
        }
    }

    /// A panic anywhere in this record's processing becomes this record's failure; the rest
    /// of the batch goes on. Before its send started, nothing was placed: transient, and
    /// its claim released. After, the call may have been placed: abandoned, and its claim
    /// recorded unknown, as for any abandoned call.
    async fn process_isolated(&self, record: &Record<'_>, cutoffs: Cutoffs) -> RecordOutcome {
        let started = Instant::now();
        let progress = Progress::default();
        let outcome = match AssertUnwindSafe(self.process(record, cutoffs, &progress))
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
                self.after_panic(record, cutoffs, progress, &detail).await
            }
        };
        RecordOutcome {
            latency: started.elapsed(),
            ..outcome
        }
    }

    /// The outcome of a record whose processing panicked, and the ledger's last write for
    /// the claim it held.
    async fn after_panic(
        &self,
        record: &Record<'_>,
        cutoffs: Cutoffs,
        progress: Progress,
        detail: &str,
    ) -> RecordOutcome {
        let left = progress.left();
        let maybe_placed = left.maybe_placed;
        let (fate, message) = if maybe_placed {
            let message = format!("{detail}; the send had started: the call may have been placed");
            (Fate::Abandoned, message)
        } else {
            (Fate::Transient, detail.to_owned())
        };
        let reason = Reason {
            code: Code::Panic,
            message: scrub_phone_numbers(&message),
        };
        let outcome = RecordOutcome {
            fate,
            reason: Some(reason),
            ..left.so_far.unwrap_or_else(|| RecordOutcome {
                receive_count: record.receive_count,
                ..RecordOutcome::new(record.message_id, fate)
            })
        };
        if let (Some(ledger), Some((claim, placed_before))) = (&self.ledger, left.claim) {
            let maybe_placed = maybe_placed || placed_before;
            self.finish(ledger, &claim, &outcome, maybe_placed, cutoffs)
                .await;
        }
        outcome
    }

    /// One record: its body read, then sent (the ledger claimed first when there is one),
    /// unless it is already past its time to live.
    async fn process(
        &self,
        record: &Record<'_>,
        cutoffs: Cutoffs,
        progress: &Progress,
    ) -> RecordOutcome {
        let (message, expiry, attempt, keep) = match self.prepare(record) {
            Ok(prepared) => prepared,
            Err(refused) => return *refused,
        };
        progress.prepared(&attempt.outcome);
        let expired = expiry.filter(|e| e.is_past(Instant::now()));
        let Some(ledger) = &self.ledger else {
            return match expired {
                Some(expiry) => attempt.expired(&expiry),
                None => {
                    let run = self.attempts(record, &message, expiry, cutoffs, attempt, progress);
                    run.await.0
                }
            };
        };
        // The claim (and the expired path, which claims too) boxed: held inline, its future
        // sized every record's future, ledger or not, and the batch holds one for each record
        // in flight and moves each into place whole.
        if let Some(expiry) = expired {
            let expired =
                self.expired_with_ledger(ledger, record, cutoffs, attempt, &expiry, progress);
            return Box::pin(expired).await;
        }
        // Nothing to claim while no region would take the call.
        if self
            .route_now(route::pinned(&message).is_none(), Instant::now())
            .is_err()
        {
            return self
                .attempts(record, &message, expiry, cutoffs, attempt, progress)
                .await
                .0;
        }
        let (claim, attempt) =
            match Box::pin(self.claim_if_due(ledger, record, cutoffs, attempt, keep)).await {
                Ok(claimed) => claimed,
                Err(refused) => return refused,
            };
        // With failover on, a key an earlier delivery may have placed under stays unknown until
        // a delivery settles it: released, the next delivery could call from the failover region.
        let placed_before = attempt.maybe_placed_before && self.failover.is_some();
        progress.hold(&claim, placed_before);
        let (outcome, maybe_placed) = self
            .attempts(record, &message, expiry, cutoffs, attempt, progress)
            .await;
        let maybe_placed = maybe_placed || placed_before;
        self.record_claimed(ledger, &claim, &message, &outcome, maybe_placed, cutoffs)
            .await;
        outcome
    }

    /// The ledger's last write for a claimed record: a dry run placed nothing, so its key
    /// stays free for the real call; anything else is finished as it came out.
    async fn record_claimed(
        &self,
        ledger: &L,
        claim: &crate::core::ledger::Claim,
        message: &VoiceMessage,
        outcome: &RecordOutcome,
        maybe_placed: bool,
        cutoffs: Cutoffs,
    ) {
        let dry_run = message.v2.as_ref().and_then(|v2| v2.dry_run) == Some(true);
        if dry_run && outcome.fate == Fate::Sent {
            let release = ledger.finish(claim, &Finish::Release);
            let _ = tokio::time::timeout_at(cutoffs.record_by, release).await;
        } else {
            self.finish(ledger, claim, outcome, maybe_placed, cutoffs)
                .await;
        }
    }

    /// The record's message, its expiry, the outcome its attempts start from and what the
    /// ledger keeps for a redial; `Err` is a body that can never be sent, or a redial not due.
    fn prepare(&self, record: &Record<'_>) -> Result<Prepared, Box<RecordOutcome>> {
        let mut message =
            VoiceMessage::from_body(record.body, &self.settings.defaults).map_err(|invalid| {
                let reason = Reason {
                    code: invalid.code(),
                    message: invalid.to_string(),
                };
                Box::new(unsent(record, Fate::Permanent, reason))
            })?;
        message
            .correlation
            .push(("SqsMessageId", record.message_id.to_owned()));
        if record.idempotency_key != record.message_id {
            message
                .correlation
                .push(("IdempotencyKey", record.idempotency_key.to_string()));
        }
        let ttl = self.ttl_of(&message);
        let wall = self.clock.wall();
        let expiry = Expiry::of(record.first_sent(), ttl, wall, Instant::now());
        // When the call stops being worth placing, so the service can enforce it too.
        message.expires_at = Some(expiry.map_or_else(|| Instant::now() + ttl, |e| e.at()));
        let attempt = AttemptLoop::new(RecordOutcome {
            destination: Some(message.destination.masked().to_string()),
            receive_count: record.receive_count,
            first_sent_at: record.first_sent(),
            expires_at: expiry.map(|e| e.at()),
            ..RecordOutcome::new(record.message_id, Fate::Deferred)
        });
        if let Some(scheduled) = self.not_yet(record) {
            return Err(Box::new(scheduled));
        }
        let (keep, attempt) = self.keep(record, &message, attempt);
        Ok((message, expiry, attempt, keep))
    }

    /// A redial whose interval is longer than SQS's longest delay, received before its time:
    /// kept until then (`RedialScheduled`), never called early.
    fn not_yet(&self, record: &Record<'_>) -> Option<RecordOutcome> {
        let at_ms = record.redial.and_then(|call| call.at_ms)?;
        let early = at_ms.saturating_sub(epoch_ms(self.clock.wall()));
        if early == 0 {
            return None;
        }
        let mut outcome = deferred(
            record,
            Code::RedialScheduled,
            &format!(
                "redial {} of its request is due in {} s: kept until then",
                record.call_number(),
                early.div_ceil(1_000)
            ),
        );
        outcome.retry_at = Some(Instant::now() + Duration::from_millis(early));
        Some(outcome)
    }

    /// What the ledger keeps with a first call whose policy redials. A message asking for a
    /// redial the function cannot make (no ledger, no status path) is still called once,
    /// with one WARN line and `RedialUnavailable`.
    fn keep(
        &self,
        record: &Record<'_>,
        message: &VoiceMessage,
        mut attempt: AttemptLoop,
    ) -> (Option<Keep>, AttemptLoop) {
        if record.redial.is_some() {
            return (None, attempt);
        }
        let available = self
            .settings
            .redial
            .as_ref()
            .filter(|_| self.ledger.is_some());
        let body = record.body.unwrap_or_default();
        let Some(policy) = available.map(|defaults| defaults.with(message.redial.as_ref())) else {
            return (None, redial_unavailable(record, message, attempt));
        };
        if !policy.redials() {
            return (None, attempt);
        }
        let ttl = self.ttl_of(message);
        // Kept, the body must fit an item, and the item outlast the request's life and the
        // wait for its last call's final event.
        let outlives = ttl + self.settings.outcome_wait <= self.settings.ledger_ttl;
        if body.len() > MAX_KEPT_BODY_BYTES || !outlives {
            tracing::warn!(
                message_id = %record.message_id,
                body_bytes = body.len(),
                time_to_live_seconds = ttl.as_secs(),
                "the body is too long, or its time to live too long for the ledger, to keep for a redial: called once"
            );
            attempt.outcome.redial_unavailable = true;
            return (None, attempt);
        }
        let first_sent = record.first_sent().unwrap_or_else(|| self.clock.wall());
        let keep = Keep {
            body: body.to_owned(),
            policy,
            first_sent_ms: epoch_ms(first_sent),
            ttl,
        };
        (Some(keep), attempt)
    }

    /// How long the message stays worth placing: its own `TimeToLive`, else `MESSAGE_TTL_SECONDS`.
    fn ttl_of(&self, message: &VoiceMessage) -> Duration {
        message
            .time_to_live
            .map_or(self.settings.message_ttl, |seconds| {
                Duration::from_secs(u64::from(seconds))
            })
    }

    /// Too late, but perhaps placed by an earlier delivery: the ledger says which.
    async fn expired_with_ledger(
        &self,
        ledger: &L,
        record: &Record<'_>,
        cutoffs: Cutoffs,
        attempt: AttemptLoop,
        expiry: &Expiry,
        progress: &Progress,
    ) -> RecordOutcome {
        match self
            .claim_if_due(ledger, record, cutoffs, attempt, None)
            .await
        {
            // Placed already, or a redial its request no longer wants.
            Err(refused) if refused.fate == Fate::Duplicate => refused,
            Err(refused) => AttemptLoop::new(refused).expired(expiry),
            Ok((claim, attempt)) => {
                progress.hold(&claim, false);
                self.finish(ledger, &claim, &attempt.outcome, false, cutoffs)
                    .await;
                attempt.expired(expiry)
            }
        }
    }
}

/// A message whose `Redial` member asks for a redial (any but `"On": []`) the function cannot
/// make: called once, said once (WARN, `RedialUnavailable`).
fn redial_unavailable(
    record: &Record<'_>,
    message: &VoiceMessage,
    mut attempt: AttemptLoop,
) -> AttemptLoop {
    let asked = message
        .redial
        .as_ref()
        .is_some_and(|own| own.on.as_ref().is_none_or(|on| !on.is_empty()));
    if asked {
        tracing::warn!(
            message_id = %record.message_id,
            "the message asks for redial, which needs the idempotency ledger and delivery outcomes: called once"
        );
        attempt.outcome.redial_unavailable = true;
    }
    attempt
}

#[cfg(test)]
mod tests;
