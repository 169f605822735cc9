//! The outcomes the engine gives a record, and the way one record's attempts build its
//! outcome.

use tokio::time::Instant;

use crate::core::breaker::Open;
use crate::core::classify::{Disposition, SendFailure, Signal};
use crate::core::code::Code;
use crate::core::expiry::Expiry;
use crate::core::pacing::Pacer;
use crate::core::record::Record;
use crate::core::redact::scrub_phone_numbers;
use crate::core::report::{Fate, Reason, RecordOutcome};
use crate::core::route::RegionTag;

use super::progress::Progress;

/// One record's way through its attempts: the outcome so far, which after a failed attempt
/// holds that failure.
pub(super) struct AttemptLoop {
    pub(super) outcome: RecordOutcome,
    /// An earlier delivery's attempt may have placed the call (the ledger held its outcome
    /// as unknown): this record never moves to the failover region, where a second call
    /// could not be told from the first.
    pub(super) maybe_placed_before: bool,
}

impl AttemptLoop {
    pub(super) fn new(outcome: RecordOutcome) -> Self {
        Self {
            outcome,
            maybe_placed_before: false,
        }
    }

    /// One more attempt goes out, through `region`; `progress` keeps count for a panic.
    pub(super) fn counted(&mut self, region: Option<&RegionTag>, progress: &Progress) {
        self.outcome.attempts += 1;
        self.outcome.region = region.cloned();
        progress.attempted(self.outcome.attempts, region);
    }

    pub(super) fn failed(
        &mut self,
        failure: &SendFailure,
        disposition: Disposition,
        signal: Option<Signal>,
    ) {
        self.outcome.signal = signal;
        self.outcome.fate = match disposition {
            Disposition::Redeliver => Fate::Transient,
            Disposition::GiveUp => Fate::Permanent,
        };
        self.outcome.reason = Some(reason_of(failure));
    }

    /// The record cannot be tried (again) now. Never attempted: `deferred` says why and
    /// when to come back. Attempted: the last failure stands, and comes back no sooner.
    pub(super) fn not_now(
        mut self,
        deferred: RecordOutcome,
        retry_at: Option<Instant>,
    ) -> RecordOutcome {
        self.outcome.retry_at = retry_at;
        if self.outcome.attempts == 0 {
            self.outcome.fate = deferred.fate;
            self.outcome.reason = deferred.reason;
        }
        self.outcome
    }

    pub(super) fn expired(mut self, expiry: &Expiry) -> RecordOutcome {
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
            code: Code::Expired,
            message,
        });
        self.outcome
    }

    /// Refused until `until`, which is after the record's time to live ends (v2's daily
    /// call limit for one destination): it can never be placed in time.
    pub(super) fn expires_first(
        mut self,
        expiry: &Expiry,
        until: Instant,
        because: Option<&str>,
    ) -> RecordOutcome {
        let now = Instant::now();
        let code = self.outcome.reason.as_ref().map(|last| &last.code);
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
            code: Code::Expired,
            message,
        });
        self.outcome
    }

    /// A redial refused for the recipient's daily call limit: the request ends unreached.
    pub(super) fn daily_limited(mut self, because: Option<&str>) -> RecordOutcome {
        let code = self
            .outcome
            .reason
            .as_ref()
            .map(|last| last.code.word().into_owned());
        let message = format!(
            "redial refused for the recipient's daily call limit ({}{}): the request ends unreached, with no further call",
            code.as_deref().unwrap_or("refused"),
            because.map(|why| format!(", {why}")).unwrap_or_default()
        );
        self.outcome.fate = Fate::Permanent;
        self.outcome.retry_at = None;
        self.outcome.reason = Some(Reason {
            code: Code::DailyLimit,
            message,
        });
        self.outcome
    }

    pub(super) fn abandoned(mut self) -> RecordOutcome {
        self.outcome.fate = Fate::Abandoned;
        self.outcome.reason = Some(Reason {
            code: Code::Abandoned,
            message:
                "abandoned in flight at the invocation deadline; the call may have been placed"
                    .to_owned(),
        });
        self.outcome
    }
}

pub(super) fn deadline_reached(record: &Record<'_>) -> RecordOutcome {
    deferred(
        record,
        Code::DeadlineReached,
        "not started: too close to the invocation deadline",
    )
}

pub(super) fn too_short(record: &Record<'_>) -> RecordOutcome {
    deferred(
        record,
        Code::InvocationTooShort,
        "not started: the invocation is too short for any send (DEADLINE_SAFETY_MS and SEND_ATTEMPT_TIMEOUT_MS); see the ERROR line",
    )
}

pub(super) fn circuit_open(record: &Record<'_>, open: Open) -> RecordOutcome {
    deferred(
        record,
        Code::CircuitOpen,
        &format!(
            "not sent: the voice service is failing and the circuit breaker is open for another {} s",
            open.remaining.as_secs()
        ),
    )
}

pub(super) fn rate_limited(record: &Record<'_>, pacer: &Pacer, slot: Instant) -> RecordOutcome {
    deferred(
        record,
        Code::RateLimited,
        &format!(
            "not sent: no send permit before the send cutoff or the record's expiry at the current pace of {} (limit {}); next free slot in {} s",
            pacer.rate(),
            pacer.limit(),
            slot.saturating_duration_since(Instant::now()).as_secs()
        ),
    )
}

pub(super) use crate::core::clock::epoch_ms;

/// The failure's code, and its message with the service's `Reason` (v2) when it gave one:
/// both reach the logs and the dead letter's `DispatchError`.
pub(super) fn reason_of(failure: &SendFailure) -> Reason {
    let mut message = failure.message().to_owned();
    if let Some(reason) = failure.reason() {
        message.push_str(&format!(" (Reason: {reason})"));
    }
    if let SendFailure::Service {
        resource_type: Some(resource_type),
        ..
    } = failure
    {
        message.push_str(&format!(" (ResourceType: {})", resource_type.as_str()));
    }
    Reason {
        code: failure.code(),
        message: scrub_phone_numbers(&message),
    }
}

/// A record left unsent, with its fate and why.
pub(super) fn unsent(record: &Record<'_>, fate: Fate, reason: Reason) -> RecordOutcome {
    RecordOutcome {
        reason: Some(reason),
        receive_count: record.receive_count,
        first_sent_at: record.first_sent(),
        ..RecordOutcome::new(record.message_id, fate)
    }
}

pub(super) fn deferred(record: &Record<'_>, code: Code, message: &str) -> RecordOutcome {
    unsent(
        record,
        Fate::Deferred,
        Reason {
            code,
            message: message.to_owned(),
        },
    )
}
