//! The small traits the core needs from the outside world. Adapters implement them for AWS;
//! tests implement them with fakes.

use std::future::Future;

use crate::core::classify::SendFailure;
use crate::core::contract::VoiceMessage;
pub use crate::core::dead_letter::{DeadLetter, FifoIds};
use crate::core::delivery::{
    Check, DeliveryEvent, Fix, Fixed, OutcomeDetail, RecordedCall, RequestState,
};
use crate::core::ledger::{Claim, Entry, Finish};
use crate::core::report::RecordOutcome;

/// Why a queue or the ledger did not do what the core asked, said as a sentence an operator
/// reads (never a phone number or a message's text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The call failed as a whole: no answer in time, no connection, or an error answer (the
    /// SDK's error said as a sentence).
    #[error("{0}")]
    Call(String),
    /// The service refused this one entry of a batch call, with its code.
    #[error("{code}: {message}")]
    Entry { code: String, message: String },
    /// The request could not be built, or the answer not read as written.
    #[error("{0}")]
    Invalid(String),
    /// Its batch call never answered for it.
    #[error("not sent")]
    NotSent,
    /// The caller stopped waiting: its deadline came first.
    #[error("no answer before the deadline")]
    NoAnswer,
    /// There is no ledger to ask.
    #[error("no idempotency ledger is configured")]
    NoLedger,
}

/// Where the engine tells each record's outcome as soon as it is known: the per-record log
/// line, written by the observing side.
pub type OutcomeLine = fn(&RecordOutcome);

/// Places one voice call.
pub trait VoiceSender: Send + Sync {
    /// One attempt. The engine bounds the wait (the attempt timeout, or less near the
    /// deadline) with its own timer and drops the future past it: a sender sets no timer.
    fn send(
        &self,
        message: &VoiceMessage,
    ) -> impl Future<Output = Result<SentCall, SendFailure>> + Send;
}

/// What the service says about an accepted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCall {
    /// The service's `MessageId`, for tracing a call in its own logs and events.
    pub message_id: Option<String>,
}

/// The dead-letter queue, for records that can never be sent.
pub trait DeadLetterQueue: Send + Sync {
    /// Sends the letters. The answer has one entry per letter, in order: `Ok` once the
    /// queue holds that letter.
    fn send(
        &self,
        letters: &[DeadLetter<'_>],
    ) -> impl Future<Output = Vec<Result<(), PortError>>> + Send;
}

/// Delays the next delivery of received records.
pub trait RedeliveryDelay: Send + Sync {
    /// Sets the visibility timeout of records received from the queue `queue_arn`. One
    /// answer per entry, in order.
    fn delay(
        &self,
        queue_arn: &str,
        delays: &[VisibilityDelay<'_>],
    ) -> impl Future<Output = Vec<Result<(), PortError>>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisibilityDelay<'a> {
    pub receipt_handle: &'a str,
    pub seconds: u32,
}

/// The idempotency ledger: who has placed, or is placing, the call for a key.
pub trait Ledger: Send + Sync {
    /// Takes `claim.key` for `claim.entry` if [`crate::core::ledger::may_claim`] allows it, in one
    /// atomic step; otherwise answers the entry in the way.
    fn claim(&self, claim: &Claim) -> impl Future<Output = Result<ClaimAnswer, PortError>> + Send;

    /// Records what became of `claim`. `Sent` is written whoever holds the key now (the call
    /// went out) and takes the key over; `Unknown` and `Release` touch only the caller's own
    /// claim, still in progress.
    fn finish(
        &self,
        claim: &Claim,
        last: &Finish,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Whether call `call` of the request `request_key` is still wanted: the request keeps
    /// its body (no outcome fixed), with the same hash, and this call is the one queued.
    /// A ledger that keeps no bodies wants every call.
    fn redial_due(
        &self,
        _request_key: &str,
        _call: u8,
        _body_hash: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send {
        async { Ok(true) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAnswer {
    /// The key is this record's; `replaced` is the entry it took over, if any.
    Claimed { replaced: Option<Entry> },
    /// Someone else's entry stands.
    Refused(Entry),
}

/// No ledger: the type of an engine without one. Never called.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLedger;

impl Ledger for NoLedger {
    async fn claim(&self, _claim: &Claim) -> Result<ClaimAnswer, PortError> {
        Err(PortError::NoLedger)
    }

    async fn finish(&self, _claim: &Claim, _last: &Finish) -> Result<(), PortError> {
        Err(PortError::NoLedger)
    }
}

/// A ledger shared by several engines (instances, in tests) is still a ledger.
impl<T: Ledger> Ledger for std::sync::Arc<T> {
    fn claim(&self, claim: &Claim) -> impl Future<Output = Result<ClaimAnswer, PortError>> + Send {
        self.as_ref().claim(claim)
    }

    fn finish(
        &self,
        claim: &Claim,
        last: &Finish,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.as_ref().finish(claim, last)
    }

    fn redial_due(
        &self,
        request_key: &str,
        call: u8,
        body_hash: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send {
        self.as_ref().redial_due(request_key, call, body_hash)
    }
}

/// The ledger's side of delivery outcomes: each call's events, found by its message id, and
/// each request's one outcome, fixed once.
pub trait OutcomeLedger: Send + Sync {
    /// Records `event` on its call's item unless a final status stands there; answers the
    /// call as the ledger holds it then, or `None` when it knows no such call.
    fn record_event(
        &self,
        event: &DeliveryEvent,
    ) -> impl Future<Output = Result<Option<RecordedCall>, PortError>> + Send;

    /// What the ledger holds for one call.
    fn call(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<RecordedCall>, PortError>> + Send;

    /// A request's item, read consistently.
    fn request(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<RequestState>, PortError>> + Send;

    /// Fixes an outcome unless one stands (one conditional write).
    fn fix(&self, fix: &Fix<'_>) -> impl Future<Output = Result<Fixed, PortError>> + Send;

    /// Marks a fixed outcome published.
    fn published(&self, outcome_key: &str) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Marks call `call` of the request `request_key` queued, if the request still keeps its
    /// body (no outcome fixed) and no later call was queued: `false` otherwise.
    fn mark_redial(
        &self,
        request_key: &str,
        call: u8,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// A redial: the request's body put back on the call queue as its next call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redial<'a> {
    pub body: &'a str,
    /// 2 to 5.
    pub call: u8,
    /// The request's ledger key.
    pub request_key: &'a str,
    pub first_sent_ms: u64,
    /// SQS's delay: the interval's rest, at most 900 s.
    pub delay: std::time::Duration,
    /// A call due later than SQS's longest delay: when (epoch milliseconds). The call path
    /// keeps it until then.
    pub kept_until_ms: Option<u64>,
}

/// The call queue, where a redial goes.
pub trait CallQueue: Send + Sync {
    fn redial(&self, redial: &Redial<'_>) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Whether there is a queue to redial on at all.
    fn available(&self) -> bool {
        true
    }
}

/// A call queue that may not be configured: without one, redial is off and nothing asks.
impl<T: CallQueue> CallQueue for Option<T> {
    async fn redial(&self, redial: &Redial<'_>) -> Result<(), PortError> {
        match self {
            Some(queue) => queue.redial(redial).await,
            None => NoCallQueue.redial(redial).await,
        }
    }

    fn available(&self) -> bool {
        self.as_ref().is_some_and(CallQueue::available)
    }
}

/// No call queue: redial is off. Never called.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallQueue;

impl CallQueue for NoCallQueue {
    async fn redial(&self, _redial: &Redial<'_>) -> Result<(), PortError> {
        Err(PortError::Invalid("no call queue: redial is off".into()))
    }

    fn available(&self) -> bool {
        false
    }
}

/// Where outcomes are published (EventBridge). One answer per detail, in order.
pub trait OutcomeBus: Send + Sync {
    fn publish(&self, details: &[&str]) -> impl Future<Output = Vec<Result<(), PortError>>> + Send;
}

/// The status queue, where outcome timers wait. One answer per check, in order.
pub trait CheckQueue: Send + Sync {
    fn arm(&self, checks: &[Check]) -> impl Future<Output = Vec<Result<(), PortError>>> + Send;
}

impl<T: OutcomeLedger> OutcomeLedger for std::sync::Arc<T> {
    fn record_event(
        &self,
        event: &DeliveryEvent,
    ) -> impl Future<Output = Result<Option<RecordedCall>, PortError>> + Send {
        self.as_ref().record_event(event)
    }

    fn call(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<RecordedCall>, PortError>> + Send {
        self.as_ref().call(call_id)
    }

    fn request(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<RequestState>, PortError>> + Send {
        self.as_ref().request(key)
    }

    fn fix(&self, fix: &Fix<'_>) -> impl Future<Output = Result<Fixed, PortError>> + Send {
        self.as_ref().fix(fix)
    }

    fn published(&self, outcome_key: &str) -> impl Future<Output = Result<(), PortError>> + Send {
        self.as_ref().published(outcome_key)
    }

    fn mark_redial(
        &self,
        request_key: &str,
        call: u8,
    ) -> impl Future<Output = Result<bool, PortError>> + Send {
        self.as_ref().mark_redial(request_key, call)
    }
}

/// The detail's JSON, as it is stored and published.
pub fn detail_json(detail: &OutcomeDetail) -> String {
    serde_json::to_string(detail).unwrap_or_default()
}
