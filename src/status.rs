//! The status use case, beside the call path ([`crate::app`]): a batch of status-queue
//! messages (delivery events and outcome timers), each recorded against its request in the
//! ledger, and each request's one outcome fixed and published once. What an event means is
//! [`crate::core::delivery`]'s; the envelopes, DynamoDB and EventBridge are adapters'.
//!
//! Each message ends done (deleted), redelivered with backoff (the ledger or EventBridge
//! out of reach; a young event for a call not recorded yet), or dead-lettered (unreadable).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::core::calls::calls_of;
use crate::core::clock::{epoch_ms, Clock, SystemClock};
use crate::core::code::Code;
use crate::core::delivery::{
    self, CallRecord, Check, CheckStep, DeliveryEvent, Fix, Fixed, Guard, Outcome, OutcomeDetail,
    RecordedCall, Standing, StatusMessage, StoredOutcome, Unrecorded,
};
use crate::core::ledger::RequestIds;
use crate::core::ledger::{call_of_key, redial_key};
use crate::core::ports::{
    detail_json, CallQueue, CheckQueue, DeadLetterQueue, NoCallQueue, OutcomeBus, OutcomeLedger,
    PortError, RedeliveryDelay, Redial,
};
use crate::core::record::Record;
use crate::core::redact::scrub_phone_numbers;
use crate::core::redial::{self, Keep, Next as RedialNext, Unreached};
use crate::core::report::{BatchReport, Fate, Reason, RecordOutcome};
use crate::core::settle::Settlement;
use crate::observe::metrics::MetricsContext;

/// Publishes tried per outcome within one invocation before its message is redelivered.
const PUBLISH_TRIES: u32 = 3;

/// What one message came to before publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handled {
    Done,
    /// An outcome to publish (fixed now, or fixed earlier and not yet published).
    Publish {
        outcome_key: String,
        outcome: Outcome,
        detail: String,
    },
    Rearm(Check),
    Failed(Code, String),
    Malformed(String),
}

/// How a call ends its request: the outcome, the call whose status decided it, why no call
/// follows it (redial), and the request's kept body to remove with the outcome.
struct Ended<'a> {
    outcome: Outcome,
    call: Option<&'a RecordedCall>,
    why: Option<Unreached>,
    guard: Option<Guard<'a>>,
}

/// The status path's counts for one batch, as metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatusCounts {
    pub counts: BTreeMap<&'static str, u32>,
}

impl StatusCounts {
    fn add(&mut self, metric: &'static str) {
        *self.counts.entry(metric).or_default() += 1;
    }
}

pub struct StatusDispatch<O, B, Q, D, R, C = NoCallQueue> {
    ledger: O,
    bus: B,
    timers: Q,
    /// Where a redial goes (redial on).
    calls: C,
    settlement: Settlement<D, R>,
    ledger_ttl: Duration,
    clock: Arc<dyn Clock>,
    metrics: Option<MetricsContext>,
}

impl<O, B, Q, D, R> StatusDispatch<O, B, Q, D, R>
where
    O: OutcomeLedger,
    B: OutcomeBus,
    Q: CheckQueue,
    D: DeadLetterQueue,
    R: RedeliveryDelay,
{
    pub fn new(
        ledger: O,
        bus: B,
        timers: Q,
        settlement: Settlement<D, R>,
        ledger_ttl: Duration,
    ) -> Self {
        Self {
            ledger,
            bus,
            timers,
            calls: NoCallQueue,
            settlement,
            ledger_ttl,
            clock: Arc::new(SystemClock),
            metrics: None,
        }
    }

    /// The same use case putting redials on `calls` (the call queue).
    pub fn with_redial<C: CallQueue>(self, calls: C) -> StatusDispatch<O, B, Q, D, R, C> {
        StatusDispatch {
            ledger: self.ledger,
            bus: self.bus,
            timers: self.timers,
            calls,
            settlement: self.settlement,
            ledger_ttl: self.ledger_ttl,
            clock: self.clock,
            metrics: self.metrics,
        }
    }
}

impl<O, B, Q, D, R, C> StatusDispatch<O, B, Q, D, R, C>
where
    O: OutcomeLedger,
    B: OutcomeBus,
    Q: CheckQueue,
    D: DeadLetterQueue,
    R: RedeliveryDelay,
    C: CallQueue,
{
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_metrics(mut self, metrics: Option<MetricsContext>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs one batch of status messages (`messages[i]` read from `records[i]`) against
    /// `deadline`: each message's fate, settled before the answer is due.
    pub async fn run(
        &self,
        records: &[Record<'_>],
        messages: &[StatusMessage],
        deadline: SystemTime,
    ) -> BatchReport {
        let started = std::time::Instant::now();
        let until = Instant::now()
            + deadline
                .duration_since(self.clock.wall())
                .unwrap_or_default()
                .mul_f64(0.8);
        let mut counts = StatusCounts::default();
        let handled =
            futures::future::join_all(messages.iter().map(|message| self.handle(message)));
        let handled: Vec<(Handled, Vec<&'static str>)> =
            match tokio::time::timeout_at(until, handled).await {
                Ok(handled) => handled,
                Err(_) => messages
                    .iter()
                    .map(|_| {
                        let why = "no answer from the ledger before the deadline".to_owned();
                        (Handled::Failed(Code::LedgerUnavailable, why), Vec::new())
                    })
                    .collect(),
            };
        let mut handled: Vec<Handled> = handled
            .into_iter()
            .map(|(handled, metrics)| {
                metrics.into_iter().for_each(|metric| counts.add(metric));
                handled
            })
            .collect();
        self.publish(&mut handled, &mut counts, until).await;
        self.rearm(&mut handled, until).await;
        let mut report = BatchReport {
            outcomes: records
                .iter()
                .zip(&handled)
                .map(|(record, handled)| outcome_of(record, handled))
                .collect(),
            ..BatchReport::default()
        };
        Box::pin(self.settlement.settle(&mut report, records, until)).await;
        crate::observe::lines::status_batch_done(&report, &counts, started.elapsed());
        if let Some(metrics) = &self.metrics {
            metrics.emit_status(&counts.counts);
        }
        report
    }

    async fn handle(&self, message: &StatusMessage) -> (Handled, Vec<&'static str>) {
        let mut metrics = Vec::new();
        let handled = match message {
            StatusMessage::Malformed(why) => Handled::Malformed(why.clone()),
            StatusMessage::Event(event) => self.event(event, &mut metrics).await,
            StatusMessage::Check(check) => self.check(check, &mut metrics).await,
        };
        (handled, metrics)
    }

    /// A delivery event: recorded on its call's item; then a redial, or the request's
    /// outcome fixed, when the event's status decides the call.
    async fn event(&self, event: &DeliveryEvent, metrics: &mut Vec<&'static str>) -> Handled {
        let Some(outcome) = event.status.outcome() else {
            return Handled::Done;
        };
        let call = match self.ledger.record_event(event).await {
            Ok(Some(call)) => call,
            Ok(None) => return self.unrecorded(event, metrics),
            Err(error) => return ledger_failed(&error),
        };
        if call.newly {
            metrics.extend(event.status.metric());
        }
        // The first final status recorded decides, whatever this event says.
        let outcome = call.status.and_then(|s| s.outcome()).unwrap_or(outcome);
        let (request_key, number) = call_of_key(&call.request_key);
        self.after_call(request_key, number, Some(&call), outcome, metrics)
            .await
    }

    fn unrecorded(&self, event: &DeliveryEvent, metrics: &mut Vec<&'static str>) -> Handled {
        let now_ms = epoch_ms(self.clock.wall());
        let age = Duration::from_millis(now_ms.saturating_sub(event.at_ms));
        match delivery::unrecorded_call(age) {
            Unrecorded::Redeliver => Handled::Failed(
                Code::CallNotRecorded,
                "an event for a call the ledger does not know yet: delivered again".into(),
            ),
            Unrecorded::Drop => {
                tracing::warn!(
                    call_id = %event.call_id,
                    event_type = event.status.as_str(),
                    age_seconds = age.as_secs(),
                    "an event for a call the ledger does not know, too old to wait for: dropped"
                );
                metrics.push("UnrecordedCallEvent");
                Handled::Done
            }
        }
    }

    /// An outcome timer: its call decides, or the wait's end does.
    async fn check(&self, check: &Check, metrics: &mut Vec<&'static str>) -> Handled {
        let now_ms = epoch_ms(self.clock.wall());
        let request = match self.ledger.request(&check.request_key).await {
            Ok(request) => request.filter(|request| request.is_live(now_ms)),
            Err(error) => return ledger_failed(&error),
        };
        let call_id = request.as_ref().and_then(|r| r.call_id.clone());
        let call = match call_id {
            Some(id) => match self.ledger.call(&id).await {
                Ok(call) => call,
                Err(error) => return ledger_failed(&error),
            },
            None => None,
        };
        match delivery::check(call.as_ref().and_then(|c| c.status), now_ms, check.due_ms) {
            CheckStep::Rearm(delay) => Handled::Rearm(Check {
                delay,
                ..check.clone()
            }),
            CheckStep::Fix(outcome) => {
                let (_, number) = call_of_key(&check.request_key);
                self.after_call(&check.outcome_key, number, call.as_ref(), outcome, metrics)
                    .await
            }
        }
    }

    /// After call `number` of the request `request_key` came to `outcome` (or its wait
    /// ended): the next call when the request's policy redials, else the request's outcome.
    async fn after_call(
        &self,
        request_key: &str,
        number: u8,
        call: Option<&RecordedCall>,
        outcome: Outcome,
        metrics: &mut Vec<&'static str>,
    ) -> Handled {
        let now_ms = epoch_ms(self.clock.wall());
        let read = calls_of(&self.ledger, request_key, number, call, now_ms).await;
        let (first, calls) = match read {
            Ok(read) => read,
            Err(error) => return ledger_failed(&error),
        };
        let keep = first.as_ref().and_then(|first| first.keep.as_ref());
        let mut ended = Ended {
            outcome,
            call,
            why: None,
            guard: keep.map(|_| Guard {
                request_key,
                call: number,
                queued_body: None,
            }),
        };
        if let (Some(keep), Some(call), Outcome::Unreached) = (keep, call, outcome) {
            match self.next_call(keep, number, call) {
                RedialNext::Redial { call, at_ms } => {
                    return self.redial(request_key, keep, call, at_ms, metrics).await
                }
                RedialNext::Final(_, why) => ended.why = why,
            }
        }
        let ids = first.map(|first| first.ids).unwrap_or_default();
        self.settle_request(request_key, ids, calls, &ended, metrics)
            .await
    }

    /// What the policy says after call `number`'s final status (no redial without a call
    /// queue to put it on).
    fn next_call(&self, keep: &Keep, number: u8, call: &RecordedCall) -> RedialNext {
        let Some(status) = call.status else {
            return RedialNext::Final(Outcome::Unknown, None);
        };
        if !self.calls.available() {
            return RedialNext::Final(Outcome::Unreached, Some(Unreached::NotRedialled));
        }
        let now_ms = epoch_ms(self.clock.wall());
        redial::next(
            &keep.policy,
            &redial::Ended {
                call: number,
                status,
                // A final status always has its time; were it missing, now is the latest.
                final_at_ms: call.at_ms.unwrap_or(now_ms),
                first_sent_ms: keep.first_sent_ms,
                ttl: keep.ttl,
            },
        )
    }

    /// Puts the request back on the call queue as call `call`, due at `at_ms`, once the
    /// request's item says this call is the one queued (refused once its outcome is fixed or
    /// a later call was queued): its own key makes it one call, however often this is asked.
    async fn redial(
        &self,
        request_key: &str,
        keep: &Keep,
        call: u8,
        at_ms: u64,
        metrics: &mut Vec<&'static str>,
    ) -> Handled {
        let now_ms = epoch_ms(self.clock.wall());
        match self.ledger.request(&redial_key(request_key, call)).await {
            // Claimed already: that call's own timer takes it from here.
            Ok(Some(state)) if state.is_live(now_ms) => return Handled::Done,
            Ok(_) => {}
            Err(error) => return ledger_failed(&error),
        }
        match self.ledger.mark_redial(request_key, call).await {
            Ok(true) => {}
            // The outcome stands (a timer fixed it first) or a later call is queued.
            Ok(false) => return Handled::Done,
            Err(error) => return ledger_failed(&error),
        }
        let due_in = Duration::from_millis(at_ms.saturating_sub(now_ms));
        let redial = Redial {
            body: &keep.body,
            call,
            request_key,
            first_sent_ms: keep.first_sent_ms,
            delay: due_in.min(delivery::MAX_TIMER_DELAY),
            kept_until_ms: (due_in > delivery::MAX_TIMER_DELAY).then_some(at_ms),
        };
        match self.calls.redial(&redial).await {
            Ok(()) => {
                tracing::info!(
                    outcome_id = %delivery::outcome_id(request_key),
                    call,
                    due_in_seconds = due_in.as_secs(),
                    "redial queued"
                );
                metrics.push("Redialled");
                Handled::Done
            }
            Err(error) => Handled::Failed(
                Code::RedialNotQueued,
                scrub_phone_numbers(&format!(
                    "the redial could not be put on the call queue: {error}"
                )),
            ),
        }
    }

    /// Fixes the request's outcome unless one stands; what to publish, if anything.
    async fn settle_request(
        &self,
        outcome_key: &str,
        ids: RequestIds,
        calls: Vec<CallRecord>,
        ended: &Ended<'_>,
        metrics: &mut Vec<&'static str>,
    ) -> Handled {
        let (outcome, call) = (ended.outcome, ended.call);
        let now_ms = epoch_ms(self.clock.wall());
        let detail = OutcomeDetail {
            outcome_id: delivery::outcome_id(outcome_key),
            outcome,
            idempotency_key: ids.idempotency_key,
            sqs_message_id: ids.sqs_message_id,
            calls,
            code: None,
            reason: ended.why.map(Unreached::as_str),
            decided_at: now_ms,
        };
        let fix = Fix {
            outcome_key,
            unplaced: None,
            outcome,
            detail: detail_json(&detail),
            expiration: now_ms / 1_000 + self.ledger_ttl.as_secs(),
            publishing_until_ms: now_ms + delivery::PUBLISH_LEASE.as_millis() as u64,
            now_ms,
            guard: ended.guard,
        };
        match self.ledger.fix(&fix).await {
            Ok(Fixed::Written) => Handled::Publish {
                outcome_key: outcome_key.to_owned(),
                outcome,
                detail: fix.detail,
            },
            Ok(Fixed::Standing(stood)) => {
                let final_event = call.is_some_and(|c| c.newly) && outcome != Outcome::Unknown;
                standing(outcome_key, stood, final_event, now_ms, metrics)
            }
            // A later call decides (redial): this call's end fixes nothing.
            Ok(Fixed::MaybePlaced | Fixed::Superseded) => Handled::Done,
            Err(error) => ledger_failed(&error),
        }
    }

    /// Publishes every outcome the batch fixed (or found unpublished), retrying refused
    /// entries; marks each published. One that never went out is redelivered.
    async fn publish(&self, handled: &mut [Handled], counts: &mut StatusCounts, until: Instant) {
        let mut waiting: Vec<usize> = (0..handled.len())
            .filter(|&i| matches!(handled[i], Handled::Publish { .. }))
            .collect();
        let mut last_error = BTreeMap::new();
        for attempt in 0..PUBLISH_TRIES {
            if waiting.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let details: Vec<&str> = waiting
                .iter()
                .map(|&i| match &handled[i] {
                    Handled::Publish { detail, .. } => detail.as_str(),
                    _ => "",
                })
                .collect();
            let results = tokio::time::timeout_at(until, self.bus.publish(&details))
                .await
                .unwrap_or_else(|_| vec![Err(PortError::NoAnswer); details.len()]);
            let mut still = Vec::new();
            for (&index, result) in waiting.iter().zip(results) {
                match result {
                    Ok(()) => self.published(&mut handled[index], counts).await,
                    Err(error) => {
                        last_error.insert(index, error);
                        still.push(index);
                    }
                }
            }
            waiting = still;
        }
        for index in waiting {
            let error = last_error.remove(&index).unwrap_or(PortError::NotSent);
            let error = scrub_phone_numbers(&error.to_string());
            tracing::error!(%error, "the outcome event could not be published: delivered again");
            counts.add("OutcomeNotPublished");
            handled[index] = Handled::Failed(Code::OutcomeNotPublished, error);
        }
    }

    async fn published(&self, handled: &mut Handled, counts: &mut StatusCounts) {
        if let Handled::Publish {
            outcome_key,
            outcome,
            ..
        } = handled
        {
            counts.add(outcome.metric());
            tracing::info!(
                outcome_id = %delivery::outcome_id(outcome_key),
                outcome = outcome.as_str(),
                "outcome published"
            );
            if let Err(error) = self.ledger.published(outcome_key).await {
                let error = scrub_phone_numbers(&error.to_string());
                tracing::warn!(%error, "an outcome published could not be marked so: a later timer may publish it again, with the same outcomeId");
            }
        }
        *handled = Handled::Done;
    }

    /// Arms the next timer of every request still waiting; one not armed is redelivered.
    async fn rearm(&self, handled: &mut [Handled], until: Instant) {
        let indexes: Vec<usize> = (0..handled.len())
            .filter(|&i| matches!(handled[i], Handled::Rearm(_)))
            .collect();
        let checks: Vec<Check> = indexes
            .iter()
            .filter_map(|&i| match &handled[i] {
                Handled::Rearm(check) => Some(check.clone()),
                _ => None,
            })
            .collect();
        if checks.is_empty() {
            return;
        }
        let results = tokio::time::timeout_at(until, self.timers.arm(&checks))
            .await
            .unwrap_or_else(|_| vec![Err(PortError::NoAnswer); checks.len()]);
        for (index, result) in indexes.into_iter().zip(results) {
            handled[index] = match result {
                Ok(()) => Handled::Done,
                Err(error) => {
                    Handled::Failed(Code::TimerNotArmed, scrub_phone_numbers(&error.to_string()))
                }
            };
        }
    }
}

/// An outcome found standing: published already (a final event after `unknown` is counted),
/// being published by the delivery that fixed it (this one comes back later), or left
/// unpublished by a writer that died (published now).
fn standing(
    outcome_key: &str,
    stood: StoredOutcome,
    final_event: bool,
    now_ms: u64,
    metrics: &mut Vec<&'static str>,
) -> Handled {
    match stood.standing(now_ms) {
        Standing::Done => {
            if stood.outcome == Outcome::Unknown && final_event {
                tracing::warn!(outcome_id = %delivery::outcome_id(outcome_key),
                    "a final event came after the outcome was published as unknown: counted, not published");
                metrics.push("LateFinal");
            }
            Handled::Done
        }
        Standing::Wait => Handled::Failed(
            Code::OutcomeNotPublished,
            "the outcome is being published by the delivery that fixed it: looked at again later"
                .into(),
        ),
        Standing::Publish => Handled::Publish {
            outcome_key: outcome_key.to_owned(),
            outcome: stood.outcome,
            detail: stood.detail,
        },
    }
}

fn ledger_failed(error: &PortError) -> Handled {
    Handled::Failed(
        Code::LedgerUnavailable,
        scrub_phone_numbers(&format!(
            "the idempotency ledger could not be read or written: {error}"
        )),
    )
}

/// A message's fate: done, redelivered (transient), or dead-lettered (permanent).
fn outcome_of(record: &Record<'_>, handled: &Handled) -> RecordOutcome {
    let mut outcome = RecordOutcome::new(record.message_id, Fate::Sent);
    outcome.receive_count = record.receive_count;
    let (fate, code, message) = match handled {
        Handled::Failed(code, message) => (Fate::Transient, code.clone(), message.clone()),
        Handled::Malformed(why) => (Fate::Permanent, Code::MalformedEvent, why.clone()),
        _ => return outcome,
    };
    tracing::warn!(
        message_id = %record.message_id,
        error_code = %code.word(),
        reason = %message,
        receive_count = record.receive_count,
        "status message not done: {}",
        if fate == Fate::Transient { "delivered again" } else { "dead-lettered" }
    );
    outcome.fate = fate;
    outcome.reason = Some(Reason { code, message });
    outcome
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::adapters::memory_ledger::MemoryLedger;
    use crate::core::clock::SetClock;
    use crate::core::delivery::{CallStatus, PUBLISH_LEASE};
    use crate::core::ledger::{Claim, Entry, Finish, RequestIds, Status, UnknownOutcome};
    use crate::core::ports::Ledger;
    use crate::core::ports::{DeadLetter, VisibilityDelay};

    /// EventBridge: refuses the first `refusals` publishes, keeps the rest.
    #[derive(Default)]
    struct Bus {
        refusals: AtomicU32,
        published: Mutex<Vec<String>>,
    }

    impl OutcomeBus for Arc<Bus> {
        async fn publish(&self, details: &[&str]) -> Vec<Result<(), PortError>> {
            details
                .iter()
                .map(|detail| {
                    let refused = self
                        .refusals
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if refused {
                        return Err(PortError::Entry {
                            code: "InternalFailure".into(),
                            message: "refused".into(),
                        });
                    }
                    self.published.lock().unwrap().push((*detail).to_owned());
                    Ok(())
                })
                .collect()
        }
    }

    #[derive(Default)]
    struct Timers(Mutex<Vec<Check>>);

    impl CheckQueue for Arc<Timers> {
        async fn arm(&self, checks: &[Check]) -> Vec<Result<(), PortError>> {
            self.0.lock().unwrap().extend(checks.iter().cloned());
            checks.iter().map(|_| Ok(())).collect()
        }
    }

    struct Nowhere;

    impl DeadLetterQueue for Nowhere {
        async fn send(&self, letters: &[DeadLetter<'_>]) -> Vec<Result<(), PortError>> {
            letters.iter().map(|_| Ok(())).collect()
        }
    }

    impl RedeliveryDelay for Nowhere {
        async fn delay(
            &self,
            _: &str,
            delays: &[VisibilityDelay<'_>],
        ) -> Vec<Result<(), PortError>> {
            delays.iter().map(|_| Ok(())).collect()
        }
    }

    type Dispatch = StatusDispatch<Arc<MemoryLedger>, Arc<Bus>, Arc<Timers>, Nowhere, Nowhere>;

    const NOW_MS: u64 = 1_796_500_000_000;

    fn wall() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(NOW_MS)
    }

    /// The status path over these fakes, on the tests' wall clock, with no call queue.
    fn status_over(ledger: &Arc<MemoryLedger>, bus: &Arc<Bus>, timers: Arc<Timers>) -> Dispatch {
        StatusDispatch::new(
            Arc::clone(ledger),
            Arc::clone(bus),
            timers,
            Settlement::new(
                None::<Nowhere>,
                None::<(Nowhere, crate::core::settle::Redelivery)>,
            ),
            Duration::from_secs(86_400),
        )
        .with_clock(Arc::new(SetClock::at(wall())))
    }

    /// The status path, a ledger holding one placed call (`voice-1`, request `order-42`), and
    /// the bus and timers it uses.
    async fn placed() -> (Dispatch, Arc<MemoryLedger>, Arc<Bus>, Arc<Timers>) {
        let ledger = Arc::new(MemoryLedger::default());
        let claim = Claim {
            keep: None,
            key: "order-42".into(),
            entry: Entry {
                status: Status::InProgress,
                body_hash: "h".into(),
                claim_id: "c".into(),
                lease_until_ms: NOW_MS + 60_000,
                expiration: NOW_MS / 1_000 + 86_400,
                voice_message_id: None,
            },
            now_ms: NOW_MS,
            on_unknown: UnknownOutcome::Retry,
            request: RequestIds {
                sqs_message_id: "sqs-1".into(),
                idempotency_key: "order-42".into(),
            },
        };
        ledger.claim(&claim).await.unwrap();
        let sent = Finish::Sent {
            voice_message_id: Some("voice-1".into()),
            region: None,
        };
        ledger.finish(&claim, &sent).await.unwrap();
        let (bus, timers) = (Arc::new(Bus::default()), Arc::new(Timers::default()));
        let dispatch = status_over(&ledger, &bus, Arc::clone(&timers));
        (dispatch, ledger, bus, timers)
    }

    fn event(status: CallStatus) -> StatusMessage {
        StatusMessage::Event(DeliveryEvent {
            call_id: "voice-1".into(),
            status,
            at_ms: NOW_MS,
        })
    }

    /// Each message's fate after one batch, with or without a call queue.
    /// Request `order-42`'s first call's timer, at its due.
    fn due_now() -> StatusMessage {
        StatusMessage::Check(Check {
            outcome_key: "order-42".into(),
            request_key: "order-42".into(),
            due_ms: NOW_MS,
            delay: Duration::ZERO,
        })
    }

    async fn run<C: CallQueue>(
        dispatch: &StatusDispatch<Arc<MemoryLedger>, Arc<Bus>, Arc<Timers>, Nowhere, Nowhere, C>,
        messages: &[StatusMessage],
    ) -> Vec<Fate> {
        let ids: Vec<String> = (0..messages.len()).map(|i| format!("m{i}")).collect();
        let records: Vec<Record<'_>> = ids
            .iter()
            .map(|id| Record {
                message_id: id,
                ..Record::default()
            })
            .collect();
        let report = dispatch
            .run(&records, messages, wall() + Duration::from_secs(30))
            .await;
        report.outcomes.iter().map(|o| o.fate).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_event_publishes_its_requests_outcome_once_however_often_it_comes() {
        let (dispatch, _, bus, _) = placed().await;
        assert_eq!(
            run(&dispatch, &[event(CallStatus::Busy)]).await,
            [Fate::Sent]
        );
        assert_eq!(
            run(
                &dispatch,
                &[event(CallStatus::Busy), event(CallStatus::NoAnswer)]
            )
            .await,
            [Fate::Sent, Fate::Sent]
        );
        let published = bus.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1, "{published:?}");
        let detail: serde_json::Value = serde_json::from_str(&published[0]).unwrap();
        assert_eq!(detail["outcome"], "unreached");
        assert_eq!(detail["calls"][0]["status"], "BUSY");
        assert_eq!(detail["sqsMessageId"], "sqs-1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_publish_is_retried_in_place_and_then_left_for_another_delivery() {
        let (dispatch, _, bus, _) = placed().await;
        // Refused twice: the third try in the same invocation publishes.
        bus.refusals.store(2, Ordering::SeqCst);
        assert_eq!(
            run(&dispatch, &[event(CallStatus::Busy)]).await,
            [Fate::Sent]
        );
        assert_eq!(bus.published.lock().unwrap().len(), 1);

        let (dispatch, _, bus, _) = placed().await;
        bus.refusals.store(PUBLISH_TRIES, Ordering::SeqCst);
        assert_eq!(
            run(&dispatch, &[event(CallStatus::Busy)]).await,
            [Fate::Transient],
            "never published: delivered again"
        );
        // Delivered again while its writer's lease lasts: left to it, delivered again.
        assert_eq!(
            run(&dispatch, &[event(CallStatus::Busy)]).await,
            [Fate::Transient]
        );
        assert!(bus.published.lock().unwrap().is_empty());
        // Past the lease: published by whoever comes, with the detail fixed the first time.
        tokio::time::advance(PUBLISH_LEASE).await;
        assert_eq!(
            run(&dispatch, &[event(CallStatus::Busy)]).await,
            [Fate::Sent]
        );
        let published = bus.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1);
        assert!(
            published[0].contains("\"decidedAt\":1796500000000"),
            "{}",
            published[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_before_its_due_is_armed_again_and_at_its_due_fixes_unknown() {
        let (dispatch, _, bus, timers) = placed().await;
        let check = |due_ms| {
            StatusMessage::Check(Check {
                outcome_key: "order-42".into(),
                request_key: "order-42".into(),
                due_ms,
                delay: Duration::ZERO,
            })
        };
        assert_eq!(
            run(&dispatch, &[check(NOW_MS + 2_000_000)]).await,
            [Fate::Sent]
        );
        let armed = timers.0.lock().unwrap().clone();
        assert_eq!(armed.len(), 1);
        assert_eq!(
            armed[0].delay,
            Duration::from_secs(900),
            "at most SQS's longest delay"
        );
        assert!(bus.published.lock().unwrap().is_empty());
        assert_eq!(run(&dispatch, &[check(NOW_MS)]).await, [Fate::Sent]);
        let published = bus.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1);
        assert!(
            published[0].contains("\"outcome\":\"unknown\""),
            "{}",
            published[0]
        );
        // A final event after it: counted, not published.
        assert_eq!(
            run(&dispatch, &[event(CallStatus::Busy)]).await,
            [Fate::Sent]
        );
        assert_eq!(bus.published.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_for_a_call_not_recorded_waits_while_young_and_is_dropped_after() {
        let (dispatch, _, bus, _) = placed().await;
        let unknown = |age: Duration| {
            StatusMessage::Event(DeliveryEvent {
                call_id: "voice-never".into(),
                status: CallStatus::Busy,
                at_ms: NOW_MS - age.as_millis() as u64,
            })
        };
        let young = delivery::UNRECORDED_CALL_WINDOW - Duration::from_secs(1);
        assert_eq!(run(&dispatch, &[unknown(young)]).await, [Fate::Transient]);
        assert_eq!(
            run(&dispatch, &[unknown(delivery::UNRECORDED_CALL_WINDOW)]).await,
            [Fate::Sent],
            "dropped, not delivered again"
        );
        assert!(bus.published.lock().unwrap().is_empty());
        let malformed = StatusMessage::Malformed("no messageId".into());
        assert_eq!(run(&dispatch, &[malformed]).await, [Fate::Permanent]);
    }

    /// The call queue: keeps every redial asked for.
    #[derive(Default)]
    struct Calls(Mutex<Vec<Queued>>);

    /// A redial as queued: call, request key, first send, delay, kept until.
    type Queued = (u8, String, u64, Duration, Option<u64>);

    impl CallQueue for Arc<Calls> {
        async fn redial(&self, redial: &Redial<'_>) -> Result<(), PortError> {
            self.0.lock().unwrap().push((
                redial.call,
                redial.request_key.to_owned(),
                redial.first_sent_ms,
                redial.delay,
                redial.kept_until_ms,
            ));
            Ok(())
        }
    }

    type Redialling =
        StatusDispatch<Arc<MemoryLedger>, Arc<Bus>, Arc<Timers>, Nowhere, Nowhere, Arc<Calls>>;

    /// Call `call` of request `order-42` placed as `voice-<call>`, the first keeping `policy`.
    async fn place_call(
        ledger: &MemoryLedger,
        call: u8,
        policy: &crate::core::redial::RedialPolicy,
    ) {
        let claim = Claim {
            keep: (call == 1).then(|| Keep {
                body: "{}".into(),
                policy: policy.clone(),
                first_sent_ms: NOW_MS - 60_000,
                ttl: Duration::from_secs(3_600),
            }),
            key: redial_key("order-42", call),
            entry: Entry {
                status: Status::InProgress,
                body_hash: "h".into(),
                claim_id: format!("c{call}"),
                lease_until_ms: NOW_MS + 60_000,
                expiration: NOW_MS / 1_000 + 86_400,
                voice_message_id: None,
            },
            now_ms: NOW_MS,
            on_unknown: UnknownOutcome::Retry,
            request: RequestIds {
                sqs_message_id: format!("sqs-{call}"),
                idempotency_key: "order-42".into(),
            },
        };
        ledger.claim(&claim).await.unwrap();
        let sent = Finish::Sent {
            voice_message_id: Some(format!("voice-{call}")),
            region: None,
        };
        ledger.finish(&claim, &sent).await.unwrap();
    }

    fn redialling(
        policy_on: &[crate::core::redial::RedialOn],
        max_calls: u8,
        interval_s: u64,
    ) -> (
        Redialling,
        Arc<MemoryLedger>,
        Arc<Bus>,
        Arc<Calls>,
        crate::core::redial::RedialPolicy,
    ) {
        let ledger = Arc::new(MemoryLedger::default());
        let bus = Arc::new(Bus::default());
        let calls = Arc::new(Calls::default());
        let dispatch = status_over(&ledger, &bus, Arc::default()).with_redial(Arc::clone(&calls));
        let policy = crate::core::redial::RedialPolicy {
            on: policy_on.to_vec(),
            max_calls,
            interval: Duration::from_secs(interval_s),
        };
        (dispatch, ledger, bus, calls, policy)
    }

    fn ended(call: u8, status: CallStatus, ago_s: u64) -> StatusMessage {
        StatusMessage::Event(DeliveryEvent {
            call_id: format!("voice-{call}"),
            status,
            at_ms: NOW_MS - ago_s * 1_000,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_redialled_status_queues_the_next_call_an_interval_after_its_final_event_and_holds_the_outcome(
    ) {
        use crate::core::redial::RedialOn;
        let (dispatch, ledger, bus, calls, policy) = redialling(&[RedialOn::NoAnswer], 3, 120);
        place_call(&ledger, 1, &policy).await;
        // The final event came 20 s ago: the next call is due in 100 s.
        assert_eq!(
            run(&dispatch, &[ended(1, CallStatus::NoAnswer, 20)]).await,
            [Fate::Sent]
        );
        assert_eq!(
            calls.0.lock().unwrap().clone(),
            [(
                2,
                "order-42".to_owned(),
                NOW_MS - 60_000,
                Duration::from_secs(100),
                None
            )]
        );
        assert!(
            bus.published.lock().unwrap().is_empty(),
            "held back while a redial may come"
        );
        // The same event again, and again once call 2 is claimed: no second redial of call 1.
        place_call(&ledger, 2, &policy).await;
        run(&dispatch, &[ended(1, CallStatus::NoAnswer, 20)]).await;
        assert_eq!(calls.0.lock().unwrap().len(), 1);
        // Call 2 answered: reached, with both calls, and the kept body removed.
        run(
            &dispatch,
            &[
                ended(2, CallStatus::Answered, 5),
                ended(2, CallStatus::Completed, 1),
            ],
        )
        .await;
        let published = bus.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1, "{published:?}");
        let detail: serde_json::Value = serde_json::from_str(&published[0]).unwrap();
        assert_eq!(detail["outcome"], "reached");
        assert_eq!(detail["sqsMessageId"], "sqs-1", "the request's own ids");
        let statuses: Vec<&str> = detail["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["NO_ANSWER", "ANSWERED"]);
        assert_eq!(
            ledger.request("order-42").await.unwrap().unwrap().keep,
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_call_the_policy_allows_ends_the_request_unreached_with_every_call() {
        use crate::core::redial::RedialOn;
        let (dispatch, ledger, bus, calls, policy) = redialling(&[RedialOn::Busy], 2, 60);
        place_call(&ledger, 1, &policy).await;
        place_call(&ledger, 2, &policy).await;
        run(&dispatch, &[ended(1, CallStatus::Busy, 300)]).await;
        assert!(
            calls.0.lock().unwrap().is_empty(),
            "call 2 is placed already"
        );
        run(&dispatch, &[ended(2, CallStatus::Busy, 1)]).await;
        assert!(calls.0.lock().unwrap().is_empty());
        let published = bus.published.lock().unwrap().clone();
        let detail: serde_json::Value = serde_json::from_str(&published[0]).unwrap();
        assert_eq!(detail["outcome"], "unreached");
        assert_eq!(detail["reason"], "CallsUsedUp");
        assert_eq!(detail["calls"].as_array().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_redial_starts_past_the_time_to_live_and_a_long_interval_is_kept_by_the_call_path() {
        use crate::core::redial::RedialOn;
        // First sent 60 s ago with a 3,600 s time to live: a 3,541 s interval ends past it.
        let (dispatch, ledger, bus, calls, policy) = redialling(&[RedialOn::Failed], 5, 3_541);
        place_call(&ledger, 1, &policy).await;
        run(&dispatch, &[ended(1, CallStatus::Failed, 0)]).await;
        assert!(calls.0.lock().unwrap().is_empty());
        let published = bus.published.lock().unwrap().clone();
        let detail: serde_json::Value = serde_json::from_str(&published[0]).unwrap();
        assert_eq!(
            (detail["outcome"].as_str(), detail["reason"].as_str()),
            (Some("unreached"), Some("TimeToLive"))
        );

        // 1,800 s: SQS delays 900 s, and the call path keeps it until its time.
        let (dispatch, ledger, bus, calls, policy) = redialling(&[RedialOn::Failed], 5, 1_800);
        place_call(&ledger, 1, &policy).await;
        run(&dispatch, &[ended(1, CallStatus::Failed, 0)]).await;
        assert_eq!(
            calls.0.lock().unwrap().clone(),
            [(
                2,
                "order-42".to_owned(),
                NOW_MS - 60_000,
                Duration::from_secs(900),
                Some(NOW_MS + 1_800_000)
            )]
        );
        assert!(bus.published.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_final_status_there_is_no_redial_and_the_wait_ends_it_unknown() {
        use crate::core::redial::RedialOn;
        let (dispatch, ledger, bus, calls, policy) = redialling(&RedialOn::ALL, 5, 60);
        place_call(&ledger, 1, &policy).await;
        let due = due_now();
        run(&dispatch, &[due]).await;
        assert!(calls.0.lock().unwrap().is_empty());
        let published = bus.published.lock().unwrap().clone();
        assert!(
            published[0].contains("\"outcome\":\"unknown\""),
            "{}",
            published[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_event_after_the_wait_fixed_unknown_calls_no_one_again() {
        use crate::core::redial::RedialOn;
        let (dispatch, ledger, bus, calls, policy) = redialling(&[RedialOn::Busy], 3, 60);
        place_call(&ledger, 1, &policy).await;
        let due = due_now();
        run(&dispatch, &[due]).await;
        assert_eq!(
            ledger.request("order-42").await.unwrap().unwrap().keep,
            None,
            "removed with the outcome"
        );
        // The busy event comes after: counted, never a redial.
        run(&dispatch, &[ended(1, CallStatus::Busy, 0)]).await;
        assert!(calls.0.lock().unwrap().is_empty());
        assert!(!ledger.mark_redial("order-42", 2).await.unwrap());
        assert_eq!(bus.published.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn once_the_next_call_is_queued_the_previous_calls_wait_fixes_nothing() {
        use crate::core::redial::RedialOn;
        let (dispatch, ledger, bus, _, policy) = redialling(&[RedialOn::Busy], 3, 60);
        place_call(&ledger, 1, &policy).await;
        // Call 1's timer read no final status; meanwhile its busy event queued call 2.
        assert!(ledger.mark_redial("order-42", 2).await.unwrap());
        let call_1_due = due_now();
        let fates = run(&dispatch, &[call_1_due]).await;
        assert_eq!(fates, [Fate::Sent]);
        assert!(
            bus.published.lock().unwrap().is_empty(),
            "nothing fixed while call 2 may come"
        );
        assert!(ledger
            .request("order-42")
            .await
            .unwrap()
            .unwrap()
            .keep
            .is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_call_queue_a_kept_request_ends_at_its_call() {
        use crate::core::redial::RedialOn;
        let (_, ledger, bus, _, policy) = redialling(&[RedialOn::Busy], 3, 60);
        place_call(&ledger, 1, &policy).await;
        let dispatch = status_over(&ledger, &bus, Arc::default());
        let fates = run(&dispatch, &[ended(1, CallStatus::Busy, 0)]).await;
        assert_eq!(fates, [Fate::Sent]);
        let published = bus.published.lock().unwrap().clone();
        assert!(
            published[0].contains("\"reason\":\"NotRedialled\""),
            "{}",
            published[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_requests_lapsed_call_under_a_reused_key_does_not_stop_a_redial() {
        use crate::core::redial::RedialOn;
        let (dispatch, ledger, _, calls, policy) = redialling(&[RedialOn::Busy], 3, 60);
        // Call 2 of an earlier request under the same key, past its expiration (the table's
        // TTL has not deleted it yet).
        let stale = Claim {
            keep: None,
            key: redial_key("order-42", 2),
            entry: Entry {
                status: Status::Sent,
                body_hash: "old".into(),
                claim_id: "old".into(),
                lease_until_ms: 0,
                expiration: NOW_MS / 1_000 - 1,
                voice_message_id: Some("voice-old".into()),
            },
            now_ms: NOW_MS - 90_000_000,
            on_unknown: UnknownOutcome::Retry,
            request: RequestIds::default(),
        };
        ledger.claim(&stale).await.unwrap();
        place_call(&ledger, 1, &policy).await;
        run(&dispatch, &[ended(1, CallStatus::Busy, 0)]).await;
        assert_eq!(
            calls.0.lock().unwrap().len(),
            1,
            "the lapsed item is no call of this request's"
        );
    }
}
