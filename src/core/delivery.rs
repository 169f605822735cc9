//! What a voice delivery event means for a request: the call's status, whether it is final,
//! and the one outcome the producer is told. Pure rules: the envelopes the events arrive in
//! (EventBridge, SNS, bare) and where they are recorded are adapters'.
//!
//! A request ends in exactly one [`Outcome`]. It is fixed once, when nothing more will be
//! tried for it: by the first final event of its call, by the call path for a request that
//! was never placed, or by the timer when no final event came within the wait.

use std::time::Duration;

use serde::Serialize;

use crate::core::code::Code;

/// A call's status, as a delivery event says it (v1 and v2 words alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    Initiated,
    Ringing,
    Answered,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    /// The service's own time to live for the call ran out (v2).
    TtlExpired,
    /// The carrier never said (the service gives up after 72 hours).
    Unknown,
}

/// Every status with its words: the v1 event type, the v2 event type, the status the
/// outcome event carries, and the metric a final one counts in.
struct StatusWords {
    status: CallStatus,
    v1: Option<&'static str>,
    v2: &'static str,
    word: &'static str,
    metric: Option<&'static str>,
}

const STATUSES: [StatusWords; 9] = [
    StatusWords {
        status: CallStatus::Initiated,
        v1: Some("INITIATED_CALL"),
        v2: "VOICE_INITIATED",
        word: "INITIATED",
        metric: None,
    },
    StatusWords {
        status: CallStatus::Ringing,
        v1: Some("RINGING"),
        v2: "VOICE_RINGING",
        word: "RINGING",
        metric: None,
    },
    StatusWords {
        status: CallStatus::Answered,
        v1: Some("ANSWERED"),
        v2: "VOICE_ANSWERED",
        word: "ANSWERED",
        metric: Some("Answered"),
    },
    StatusWords {
        status: CallStatus::Completed,
        v1: Some("COMPLETED_CALL"),
        v2: "VOICE_COMPLETED",
        word: "COMPLETED",
        metric: Some("Completed"),
    },
    StatusWords {
        status: CallStatus::Busy,
        v1: Some("BUSY"),
        v2: "VOICE_BUSY",
        word: "BUSY",
        metric: Some("Busy"),
    },
    StatusWords {
        status: CallStatus::NoAnswer,
        v1: Some("NO_ANSWER"),
        v2: "VOICE_NO_ANSWER",
        word: "NO_ANSWER",
        metric: Some("NoAnswer"),
    },
    StatusWords {
        status: CallStatus::Failed,
        v1: Some("FAILED"),
        v2: "VOICE_FAILED",
        word: "FAILED",
        metric: Some("CallFailed"),
    },
    StatusWords {
        status: CallStatus::TtlExpired,
        v1: None,
        v2: "VOICE_TTL_EXPIRED",
        word: "TTL_EXPIRED",
        metric: Some("CallExpired"),
    },
    StatusWords {
        status: CallStatus::Unknown,
        v1: Some("UNKNOWN"),
        v2: "VOICE_UNKNOWN",
        word: "UNKNOWN",
        metric: Some("CallOutcomeUnknown"),
    },
];

/// The metrics a call's status is counted in, one per final status (and `Answered`).
pub const STATUS_METRICS: [&str; 7] = [
    "Answered",
    "Completed",
    "Busy",
    "NoAnswer",
    "CallFailed",
    "CallExpired",
    "CallOutcomeUnknown",
];

impl CallStatus {
    fn words(self) -> &'static StatusWords {
        let index = match self {
            CallStatus::Initiated => 0,
            CallStatus::Ringing => 1,
            CallStatus::Answered => 2,
            CallStatus::Completed => 3,
            CallStatus::Busy => 4,
            CallStatus::NoAnswer => 5,
            CallStatus::Failed => 6,
            CallStatus::TtlExpired => 7,
            CallStatus::Unknown => 8,
        };
        &STATUSES[index]
    }

    /// Reads an event's `eventType` (v1 or v2), or a stored status word.
    pub fn parse(word: &str) -> Option<Self> {
        STATUSES
            .iter()
            .find(|w| w.v1 == Some(word) || w.v2 == word || w.word == word)
            .map(|w| w.status)
    }

    /// Its word in the ledger and in the outcome event.
    pub fn as_str(self) -> &'static str {
        self.words().word
    }

    /// The metric it is counted in, if any.
    pub fn metric(self) -> Option<&'static str> {
        self.words().metric
    }

    /// Nothing later will change what became of the call. Decided by the type, not by the
    /// event's `isFinal`: an `ANSWERED` is not final, yet it already means reached.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed
                | CallStatus::Busy
                | CallStatus::NoAnswer
                | CallStatus::Failed
                | CallStatus::TtlExpired
                | CallStatus::Unknown
        )
    }

    /// The request's outcome this status fixes, if it fixes one: an answer does (the
    /// person was reached, whatever comes after); ringing does not.
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            CallStatus::Answered | CallStatus::Completed => Some(Outcome::Reached),
            CallStatus::Busy
            | CallStatus::NoAnswer
            | CallStatus::Failed
            | CallStatus::TtlExpired => Some(Outcome::Unreached),
            CallStatus::Unknown => Some(Outcome::Unknown),
            CallStatus::Initiated | CallStatus::Ringing => None,
        }
    }
}

/// One delivery event, read from whichever envelope it came in. No phone number: the
/// adapter never keeps one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEvent {
    /// The call's id (`SendVoiceMessage`'s `MessageId`).
    pub call_id: String,
    pub status: CallStatus,
    /// `eventTimestamp`, epoch milliseconds.
    pub at_ms: u64,
}

/// What the producer is told became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A call was answered (or its audio played through).
    Reached,
    /// The call ended busy, unanswered, failed, or past the service's own time to live.
    Unreached,
    /// Never placed before its time to live, and no attempt may have placed it.
    Expired,
    /// A permanent failure, and no attempt may have placed it.
    NotPlaced,
    /// Placed or maybe placed, and no final event said what became of it in time.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reached => "reached",
            Outcome::Unreached => "unreached",
            Outcome::Expired => "expired",
            Outcome::NotPlaced => "not-placed",
            Outcome::Unknown => "unknown",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        [
            Outcome::Reached,
            Outcome::Unreached,
            Outcome::Expired,
            Outcome::NotPlaced,
            Outcome::Unknown,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == word)
    }

    /// Its metric on the status path.
    pub fn metric(self) -> &'static str {
        match self {
            Outcome::Reached => "OutcomeReached",
            Outcome::Unreached => "OutcomeUnreached",
            Outcome::Expired => "OutcomeExpired",
            Outcome::NotPlaced => "OutcomeNotPlaced",
            Outcome::Unknown => "OutcomeUnknownPublished",
        }
    }
}

/// One call of a request, as the outcome event lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub message_id: String,
    /// The status that decided it (`None`: no event said anything final).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// When that status was reported, epoch milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// The Region that placed it, with failover on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The outcome event's detail: stable for a request, the same on every publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeDetail {
    pub outcome_id: String,
    pub outcome: Outcome,
    pub idempotency_key: String,
    pub sqs_message_id: String,
    pub calls: Vec<CallRecord>,
    /// For `not-placed` and `expired`: the function's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For `unreached` under a redial policy: why no call follows (`CallsUsedUp`,
    /// `TimeToLive`, `DailyLimit`, `NotRedialled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// When the outcome was fixed, epoch milliseconds.
    pub decided_at: u64,
}

/// The outcome's stable id: derived from the ledger key it is kept under, so every publish
/// of it, by any instance, carries the same one.
pub fn outcome_id(outcome_key: &str) -> String {
    crate::core::ledger::body_hash(&format!("voice-dispatch-outcome:{outcome_key}"))[..32]
        .to_owned()
}

/// An event for a call the ledger does not know may have overtaken the write that records
/// the call: that write is made before the invocation that placed the call answers, so
/// within the function's longest timeout (15 minutes) plus the event source's longest
/// batching window (5 minutes). Younger than that, it is redelivered; older, it is counted
/// and dropped.
pub const UNRECORDED_CALL_WINDOW: Duration = crate::core::record::RECEIVE_AGE_BOUND;

/// What to do with an event for a call the ledger does not know, `age` after it happened.
pub fn unrecorded_call(age: Duration) -> Unrecorded {
    if age < UNRECORDED_CALL_WINDOW {
        Unrecorded::Redeliver
    } else {
        Unrecorded::Drop
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrecorded {
    Redeliver,
    Drop,
}

/// A call as the ledger holds it: the request that placed it, and the status that decides
/// it so far (a final one, or `Answered`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub call_id: String,
    pub request_key: String,
    pub status: Option<CallStatus>,
    /// When that status was reported, epoch milliseconds.
    pub at_ms: Option<u64>,
    /// This event changed it (the first final, or the first answer): counted once.
    pub newly: bool,
}

/// A request's item, as its outcome needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestState {
    pub status: crate::core::ledger::Status,
    /// The call's id, once `SENT` with one.
    pub call_id: Option<String>,
    pub ids: crate::core::ledger::RequestIds,
    /// The Region that placed it (failover on).
    pub region: Option<String>,
    /// What a redial needs, while one may still come (a first call whose policy redials).
    pub keep: Option<crate::core::redial::Keep>,
    /// Epoch seconds after which the item is void (its key may be used again), whatever the
    /// table's TTL has deleted yet.
    pub expiration: u64,
}

impl RequestState {
    /// Whether the item still speaks for its key at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expiration >= now_ms / 1_000
    }
}

/// An outcome as the ledger keeps it: the detail is stored as published, so every publish
/// of it is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOutcome {
    pub outcome: Outcome,
    pub detail: String,
    pub published: bool,
    /// Until when (epoch milliseconds) the delivery that fixed it is publishing it: another
    /// that finds it unpublished before then comes back later rather than publish it too.
    pub publishing_until_ms: u64,
}

/// How long the delivery that fixed an outcome has to publish it before another may.
pub const PUBLISH_LEASE: Duration = Duration::from_secs(30);

/// What a delivery that finds an outcome standing does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Published already: nothing.
    Done,
    /// Its writer is still publishing it: look again later.
    Wait,
    /// Its writer did not publish it in time (it died): publish it.
    Publish,
}

impl StoredOutcome {
    pub fn standing(&self, now_ms: u64) -> Standing {
        match (self.published, now_ms < self.publishing_until_ms) {
            (true, _) => Standing::Done,
            (false, true) => Standing::Wait,
            (false, false) => Standing::Publish,
        }
    }
}

/// One conditional write of an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix<'a> {
    /// The request key it is kept under (the ledger adds its prefix).
    pub outcome_key: &'a str,
    /// For `expired` and `not-placed`: the request's item, which must show no claim, call or
    /// unknown outcome (nothing may have placed it).
    pub unplaced: Option<&'a str>,
    pub outcome: Outcome,
    pub detail: String,
    /// Epoch seconds after which the item is void (the table's TTL).
    pub expiration: u64,
    /// Until when this delivery is publishing it (epoch milliseconds).
    pub publishing_until_ms: u64,
    /// Now, epoch milliseconds: an item past its stored expiration counts as absent, whether
    /// or not the store's TTL has deleted it yet.
    pub now_ms: u64,
    /// With redial: the request's body is removed with the fix, and a later call refuses it.
    pub guard: Option<Guard<'a>>,
}

/// What a fix came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fixed {
    /// This write fixed it.
    Written,
    /// One stood already.
    Standing(StoredOutcome),
    /// The request's item shows it may have been placed: not fixed.
    MaybePlaced,
    /// A later call of the request is queued (redial): this call no longer decides.
    Superseded,
}

/// A request that keeps a body for a redial: fixing its outcome removes the body in the same
/// write, unless a call later than `call` was queued meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard<'a> {
    pub request_key: &'a str,
    pub call: u8,
    /// For a redial ended without its call: the call must be exactly the one queued, and its
    /// body the request's (this hash), or it fixes nothing.
    pub queued_body: Option<&'a str>,
}

/// An outcome timer: a message on the status queue that looks at a request after `delay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The key its outcome is kept under.
    pub outcome_key: String,
    /// The request's ledger key.
    pub request_key: String,
    /// When `unknown` is fixed if nothing final came, epoch milliseconds.
    pub due_ms: u64,
    /// When this message is delivered.
    pub delay: Duration,
}

/// What a status-queue message is, once read from its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusMessage {
    Event(DeliveryEvent),
    Check(Check),
    /// It is an event or a timer by its envelope, but cannot be read: why, without any of
    /// its values.
    Malformed(String),
}

/// What a request's ledger state says when its timer comes due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStep {
    /// Fix this outcome now.
    Fix(Outcome),
    /// Not yet: look again after this long (at most SQS's 900 s delay).
    Rearm(Duration),
}

/// SQS's longest `DelaySeconds`.
pub const MAX_TIMER_DELAY: Duration = Duration::from_secs(900);

/// The timer's decision for a request with no outcome yet: the call's final (or answered)
/// status fixes it; past the wait with none, it is `unknown`; otherwise it looks again.
pub fn check(call_status: Option<CallStatus>, now_ms: u64, due_ms: u64) -> CheckStep {
    if let Some(outcome) = call_status.and_then(CallStatus::outcome) {
        return CheckStep::Fix(outcome);
    }
    if now_ms >= due_ms {
        return CheckStep::Fix(Outcome::Unknown);
    }
    CheckStep::Rearm(Duration::from_millis(due_ms - now_ms).min(MAX_TIMER_DELAY))
}

/// What the call path fixes for a request it ends without a call, if no attempt may have
/// placed it: `expired` for a record past its time to live, `not-placed` with its code for
/// a permanent failure.
pub fn unplaced(code: &Code, expired: bool) -> Outcome {
    if expired || *code == Code::Expired {
        Outcome::Expired
    } else {
        Outcome::NotPlaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_event_types_read_as_the_same_statuses() {
        let pairs = [
            ("INITIATED_CALL", "VOICE_INITIATED", CallStatus::Initiated),
            ("RINGING", "VOICE_RINGING", CallStatus::Ringing),
            ("ANSWERED", "VOICE_ANSWERED", CallStatus::Answered),
            ("COMPLETED_CALL", "VOICE_COMPLETED", CallStatus::Completed),
            ("BUSY", "VOICE_BUSY", CallStatus::Busy),
            ("NO_ANSWER", "VOICE_NO_ANSWER", CallStatus::NoAnswer),
            ("FAILED", "VOICE_FAILED", CallStatus::Failed),
        ];
        for (v1, v2, status) in pairs {
            assert_eq!(CallStatus::parse(v1), Some(status), "{v1}");
            assert_eq!(CallStatus::parse(v2), Some(status), "{v2}");
            assert_eq!(CallStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(
            CallStatus::parse("VOICE_TTL_EXPIRED"),
            Some(CallStatus::TtlExpired)
        );
        assert_eq!(CallStatus::parse("UNKNOWN"), Some(CallStatus::Unknown));
        assert_eq!(CallStatus::parse("SMS_DELIVERED"), None);
        assert_eq!(CallStatus::parse("VOICE_ALL"), None);
    }

    #[test]
    fn the_type_decides_what_is_final_and_an_answer_already_means_reached() {
        let finals: Vec<_> = STATUSES
            .iter()
            .map(|w| w.status)
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [
                CallStatus::Completed,
                CallStatus::Busy,
                CallStatus::NoAnswer,
                CallStatus::Failed,
                CallStatus::TtlExpired,
                CallStatus::Unknown
            ]
        );
        assert!(!CallStatus::Answered.is_final());
        assert_eq!(CallStatus::Answered.outcome(), Some(Outcome::Reached));
        assert_eq!(CallStatus::Completed.outcome(), Some(Outcome::Reached));
        for status in [
            CallStatus::Busy,
            CallStatus::NoAnswer,
            CallStatus::Failed,
            CallStatus::TtlExpired,
        ] {
            assert_eq!(status.outcome(), Some(Outcome::Unreached), "{status:?}");
        }
        assert_eq!(CallStatus::Unknown.outcome(), Some(Outcome::Unknown));
        assert_eq!(CallStatus::Ringing.outcome(), None);
        assert_eq!(CallStatus::Initiated.outcome(), None);
    }

    #[test]
    fn every_status_that_fixes_an_outcome_has_its_metric() {
        let metrics: Vec<_> = STATUSES.iter().filter_map(|w| w.metric).collect();
        assert_eq!(metrics, STATUS_METRICS);
        for words in &STATUSES {
            assert_eq!(words.metric.is_some(), words.status.outcome().is_some());
        }
    }

    #[test]
    fn outcomes_say_their_words_and_read_them_back() {
        for outcome in [
            Outcome::Reached,
            Outcome::Unreached,
            Outcome::Expired,
            Outcome::NotPlaced,
            Outcome::Unknown,
        ] {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                serde_json::json!(outcome.as_str())
            );
        }
    }

    #[test]
    fn the_outcome_id_is_stable_per_key_and_differs_between_keys() {
        assert_eq!(outcome_id("order-42"), outcome_id("order-42"));
        assert_ne!(outcome_id("order-42"), outcome_id("order-43"));
        assert_eq!(outcome_id("order-42").len(), 32);
    }

    #[test]
    fn an_unrecorded_call_is_redelivered_while_the_send_may_still_be_recording_it() {
        assert_eq!(unrecorded_call(Duration::ZERO), Unrecorded::Redeliver);
        assert_eq!(
            unrecorded_call(UNRECORDED_CALL_WINDOW - Duration::from_secs(1)),
            Unrecorded::Redeliver
        );
        assert_eq!(unrecorded_call(UNRECORDED_CALL_WINDOW), Unrecorded::Drop);
        assert_eq!(UNRECORDED_CALL_WINDOW, Duration::from_secs(1_200));
    }

    #[test]
    fn the_timer_fixes_from_the_call_or_at_the_wait_and_otherwise_looks_again() {
        let due = 1_000_000;
        assert_eq!(
            check(Some(CallStatus::Busy), 0, due),
            CheckStep::Fix(Outcome::Unreached)
        );
        assert_eq!(
            check(Some(CallStatus::Answered), 0, due),
            CheckStep::Fix(Outcome::Reached)
        );
        assert_eq!(
            check(Some(CallStatus::Ringing), due, due),
            CheckStep::Fix(Outcome::Unknown)
        );
        assert_eq!(check(None, due + 1, due), CheckStep::Fix(Outcome::Unknown));
        assert_eq!(
            check(None, due - 5_000, due),
            CheckStep::Rearm(Duration::from_secs(5))
        );
        // The default wait (3,600 s) is kept in steps of at most 900 s: the call path arms
        // the first timer for 900 s, and each that comes due early arms the next.
        let wait_ms = 3_600_000;
        let (mut now, mut timers) = (MAX_TIMER_DELAY.as_millis() as u64, 1);
        while let CheckStep::Rearm(after) = check(None, now, wait_ms) {
            assert!(after <= MAX_TIMER_DELAY);
            now += after.as_millis() as u64;
            timers += 1;
        }
        assert_eq!(now, wait_ms, "fixed exactly at the wait");
        assert_eq!(
            timers, 4,
            "armed once, re-armed three times, fixed by the fourth"
        );
    }

    #[test]
    fn an_outcome_found_unpublished_is_left_to_its_writer_until_its_lease_ends() {
        let stored = |published, until| StoredOutcome {
            outcome: Outcome::Reached,
            detail: String::new(),
            published,
            publishing_until_ms: until,
        };
        assert_eq!(stored(true, 2_000).standing(1_000), Standing::Done);
        assert_eq!(stored(false, 2_000).standing(1_000), Standing::Wait);
        assert_eq!(stored(false, 2_000).standing(2_000), Standing::Publish);
        assert_eq!(stored(true, 0).standing(2_000), Standing::Done);
    }

    #[test]
    fn an_unplaced_request_is_expired_or_not_placed() {
        assert_eq!(unplaced(&Code::Expired, false), Outcome::Expired);
        assert_eq!(unplaced(&Code::MalformedJson, true), Outcome::Expired);
        assert_eq!(unplaced(&Code::MalformedJson, false), Outcome::NotPlaced);
    }
}
