//! The call path's part in delivery outcomes: before a batch's records are acknowledged,
//! every request the batch ends (sent, a duplicate, dead-lettered) gets its outcome timer on
//! the status queue, and a request ended without a call (`expired`, `not-placed`) gets its
//! outcome fixed first, when nothing may have placed it. The status path publishes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::core::calls::calls_of;
use crate::core::clock::Clock;
use crate::core::code::Code;
use crate::core::delivery::{self, Check, Fix, Fixed, Guard, Outcome, OutcomeDetail};
use crate::core::ledger::stored_key;
use crate::core::ports::{detail_json, CheckQueue, OutcomeLedger, PortError};
use crate::core::record::Record;
use crate::core::redact::scrub_phone_numbers;
use crate::core::redial::Unreached;
use crate::core::report::{BatchReport, Fate, RecordOutcome};

/// `OUTCOME_WAIT_SECONDS`'s default: how long a placed call's final event is waited for.
pub const DEFAULT_OUTCOME_WAIT: Duration = Duration::from_secs(3_600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeSettings {
    /// `OUTCOME_WAIT_SECONDS`.
    pub wait: Duration,
    /// `IDEMPOTENCY_TTL_SECONDS`: how long an outcome's item is kept.
    pub ledger_ttl: Duration,
}

/// What the call path does for one record's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Placed, maybe placed, or decided elsewhere: its timer waits for the final event of
    /// the call under `request_key` (the request's own key, or a redial's), for the outcome
    /// under `outcome_key` (the request's).
    Wait {
        outcome_key: String,
        request_key: String,
    },
    /// Ended without a call: its outcome is fixed now if nothing may have placed it (the
    /// request's item under `request_key` is checked), then published at once.
    Unplaced {
        outcome_key: String,
        request_key: Option<String>,
        outcome: Outcome,
        code: Code,
        /// A redial that ended without a call: the request's calls before it are listed,
        /// and its outcome is `unreached`.
        redial: Option<u8>,
    },
}

/// The plan for a record the batch ends; `None` for one SQS will deliver again (or that the
/// function did not end: no outcome until it does).
pub fn plan(outcome: &RecordOutcome, record: &Record<'_>) -> Option<Plan> {
    let key = || record.ledger_key();
    let request = || {
        record
            .redial
            .map_or_else(key, |call| call.request_key.to_owned())
    };
    let wait = || Plan::Wait {
        outcome_key: request(),
        request_key: key(),
    };
    let code = outcome.reason.as_ref().map(|reason| &reason.code);
    // A redial its request no longer wants: no call of the request's, nothing to wait for.
    if code == Some(&Code::RedialNotDue) {
        return None;
    }
    match outcome.fate {
        Fate::Sent | Fate::Duplicate if !outcome.held => Some(wait()),
        _ if !outcome.dead_lettered => None,
        _ => {
            let code = code.cloned().unwrap_or(Code::Unknown);
            match code {
                // Maybe placed, or held by another delivery that decides it.
                Code::OutcomeUnknown | Code::InProgressElsewhere | Code::Abandoned => Some(wait()),
                // A redial ended without its call: the request, called before, ends unreached.
                _ if record.redial.is_some() => Some(Plan::Unplaced {
                    outcome_key: request(),
                    request_key: Some(key()),
                    outcome: Outcome::Unreached,
                    code,
                    redial: Some(record.call_number()),
                }),
                // The key is another body's, or the body never got as far as its key: this
                // record's outcome is its own, under its SQS message id (so a bad second
                // body under a used key still gets one).
                Code::IdempotencyKeyReused
                | Code::MissingBody
                | Code::MalformedJson
                | Code::SchemaViolation
                | Code::InvalidField
                | Code::UnsupportedContent
                | Code::NotPermitted => Some(Plan::Unplaced {
                    outcome_key: stored_key(record.message_id),
                    request_key: None,
                    outcome: Outcome::NotPlaced,
                    code,
                    redial: None,
                }),
                _ => Some(Plan::Unplaced {
                    outcome_key: key(),
                    request_key: Some(key()),
                    outcome: delivery::unplaced(&code, outcome.fate == Fate::Expired),
                    code,
                    redial: None,
                }),
            }
        }
    }
}

/// A redial ended without its call removes its request's kept body with the outcome, only as
/// the call queued, with the request's own body (`body_hash`).
fn guard_of<'a>(plan: &'a Plan, body_hash: Option<&'a str>) -> Option<Guard<'a>> {
    match plan {
        Plan::Unplaced {
            outcome_key,
            redial: Some(call),
            ..
        } => Some(Guard {
            request_key: outcome_key,
            call: *call,
            queued_body: body_hash,
        }),
        _ => None,
    }
}

/// The body's hash a redial's guard checks; no other outcome needs it, so none is computed.
fn queued_body(plan: &Plan, record: &Record<'_>) -> Option<String> {
    matches!(
        plan,
        Plan::Unplaced {
            redial: Some(_),
            ..
        }
    )
    .then(|| crate::core::ledger::body_hash(record.body.unwrap_or_default()))
}

/// Why a redial that ended without its call ends its request.
fn redial_end(code: &Code) -> Unreached {
    match code {
        Code::Expired => Unreached::TimeToLive,
        Code::DailyLimit => Unreached::DailyLimit,
        _ => Unreached::RedialNotPlaced,
    }
}

pub struct CallOutcomes<O, Q> {
    ledger: O,
    timers: Q,
    settings: OutcomeSettings,
    clock: Arc<dyn Clock>,
}

impl<O: OutcomeLedger, Q: CheckQueue> CallOutcomes<O, Q> {
    pub fn new(ledger: O, timers: Q, settings: OutcomeSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            ledger,
            timers,
            settings,
            clock,
        }
    }

    /// Arms the timers of the requests the batch ends, fixing the unplaced ones first. A
    /// record whose timer could not be armed is held: SQS delivers it again, and that
    /// delivery arms it.
    pub async fn arm(&self, report: &mut BatchReport, records: &[Record<'_>], until: Instant) {
        let now_ms = crate::core::clock::epoch_ms(self.clock.wall());
        let plans: Vec<(usize, Plan)> = report
            .outcomes
            .iter()
            .zip(records)
            .enumerate()
            .filter_map(|(index, (outcome, record))| Some((index, plan(outcome, record)?)))
            .collect();
        if plans.is_empty() {
            return;
        }
        let checks = plans.iter().map(|(index, plan)| {
            self.check_for(plan, &report.outcomes[*index], &records[*index], now_ms)
        });
        let (checks, unfixed): (Vec<Check>, Vec<bool>) =
            futures::future::join_all(checks).await.into_iter().unzip();
        let armed = tokio::time::timeout_at(until, self.timers.arm(&checks)).await;
        let armed = armed
            .unwrap_or_else(|_| vec![Err(crate::core::ports::PortError::NoAnswer); checks.len()]);
        for (((index, _), result), unfixed) in plans.iter().zip(armed).zip(unfixed) {
            // An outcome that could not be fixed now: its next delivery fixes it.
            report.outcomes[*index].held |= unfixed;
            let Err(error) = result else { continue };
            let outcome = &mut report.outcomes[*index];
            // Kept for another delivery, which arms it: even a record the dead-letter queue
            // holds now (a second letter is the lesser harm; a request without an outcome
            // is the greater).
            tracing::warn!(message_id = %outcome.message_id, error = %scrub_phone_numbers(&error.to_string()),
                dead_lettered = outcome.dead_lettered,
                "the outcome timer could not be armed: the record is kept for another delivery");
            outcome.held = true;
        }
    }

    /// The detail of an outcome fixed without a call; a redial's lists its request's
    /// earlier calls and own ids, and why it ends.
    async fn unplaced_detail(
        &self,
        plan: &Plan,
        record: &Record<'_>,
        outcome: &RecordOutcome,
        now_ms: u64,
    ) -> Result<OutcomeDetail, PortError> {
        let Plan::Unplaced {
            outcome_key,
            outcome: fixed,
            code,
            redial,
            ..
        } = plan
        else {
            return Err(PortError::Invalid("a plan that waits fixes nothing".into()));
        };
        let mut detail = OutcomeDetail {
            outcome_id: delivery::outcome_id(outcome_key),
            outcome: *fixed,
            idempotency_key: record.idempotency_key.clone().into_owned(),
            sqs_message_id: outcome.message_id.clone(),
            calls: Vec::new(),
            code: Some(code.word().into_owned()),
            reason: None,
            decided_at: now_ms,
        };
        if let Some(call) = redial {
            let (first, calls) = calls_of(
                &self.ledger,
                outcome_key,
                call.saturating_sub(1),
                None,
                now_ms,
            )
            .await?;
            if let Some(first) = first {
                detail.idempotency_key = first.ids.idempotency_key;
                detail.sqs_message_id = first.ids.sqs_message_id;
            }
            detail.calls = calls;
            detail.reason = Some(redial_end(code).as_str());
        }
        Ok(detail)
    }

    /// The timer a plan arms: at once for an outcome fixed now (or one that stood), after
    /// the wait for one that waits for its final event; and whether an outcome to fix now
    /// could not be (the ledger out of reach): the record is then kept for another delivery.
    async fn check_for(
        &self,
        plan: &Plan,
        outcome: &RecordOutcome,
        record: &Record<'_>,
        now_ms: u64,
    ) -> (Check, bool) {
        let waiting = |outcome_key: &str, request_key: &str| Check {
            outcome_key: outcome_key.to_owned(),
            request_key: request_key.to_owned(),
            due_ms: now_ms + self.settings.wait.as_millis() as u64,
            delay: self.settings.wait.min(delivery::MAX_TIMER_DELAY),
        };
        let (outcome_key, request_key, fixed) = match plan {
            Plan::Wait {
                outcome_key,
                request_key,
            } => return (waiting(outcome_key, request_key), false),
            Plan::Unplaced {
                outcome_key,
                request_key,
                outcome,
                ..
            } => (outcome_key, request_key, outcome),
        };
        let unplaced = request_key.as_deref();
        let request_key = unplaced.unwrap_or(outcome_key);
        let Ok(detail) = self.unplaced_detail(plan, record, outcome, now_ms).await else {
            // The request's earlier calls unread: another delivery fixes it.
            return (waiting(outcome_key, request_key), true);
        };
        let body_hash = queued_body(plan, record);
        let fix = Fix {
            guard: guard_of(plan, body_hash.as_deref()),
            outcome_key,
            unplaced,
            outcome: *fixed,
            detail: detail_json(&detail),
            expiration: now_ms / 1_000 + self.settings.ledger_ttl.as_secs(),
            // The status path publishes it, when its timer comes (at once).
            publishing_until_ms: 0,
            now_ms,
        };
        let now = Check {
            due_ms: now_ms,
            delay: Duration::ZERO,
            ..waiting(outcome_key, request_key)
        };
        match self.ledger.fix(&fix).await {
            // Superseded: not the call queued (a later one, or not the request's), which decides.
            Ok(Fixed::Written | Fixed::Standing(_) | Fixed::Superseded) => (now, false),
            // Something may have placed it: its call's events (or the wait) decide.
            Ok(Fixed::MaybePlaced) => (waiting(outcome_key, request_key), false),
            Err(error) => {
                tracing::warn!(message_id = %outcome.message_id, error = %scrub_phone_numbers(&error.to_string()),
                    "the outcome could not be fixed now: the record is kept for another delivery, and its timer decides after the wait if none comes");
                (waiting(outcome_key, request_key), true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::Reason;
    use crate::core::service::ServiceCode;

    fn ended(fate: Fate, code: Option<Code>, dead_lettered: bool) -> RecordOutcome {
        RecordOutcome {
            reason: code.map(|code| Reason {
                code,
                message: "m".into(),
            }),
            dead_lettered,
            ..RecordOutcome::new("sqs-1", fate)
        }
    }

    fn record() -> Record<'static> {
        Record {
            message_id: "sqs-1",
            idempotency_key: "order-42".into(),
            ..Record::default()
        }
    }

    #[test]
    fn a_placed_or_duplicate_request_waits_for_its_final_event() {
        for fate in [Fate::Sent, Fate::Duplicate] {
            assert_eq!(
                plan(&ended(fate, None, false), &record()),
                Some(Plan::Wait {
                    outcome_key: "order-42".into(),
                    request_key: "order-42".into()
                })
            );
        }
    }

    #[test]
    fn a_record_sqs_delivers_again_gets_nothing_yet() {
        for fate in [
            Fate::Transient,
            Fate::Deferred,
            Fate::Abandoned,
            Fate::Permanent,
        ] {
            assert_eq!(plan(&ended(fate, None, false), &record()), None, "{fate:?}");
        }
        let mut held = ended(Fate::Sent, None, false);
        held.held = true;
        assert_eq!(plan(&held, &record()), None);
    }

    #[test]
    fn a_dead_lettered_request_is_unplaced_unless_it_may_have_been_placed() {
        let refused = Code::Service(ServiceCode::from("BadRequestException"));
        let bad = plan(
            &ended(Fate::Permanent, Some(refused.clone()), true),
            &record(),
        );
        assert_eq!(
            bad,
            Some(Plan::Unplaced {
                outcome_key: "order-42".into(),
                request_key: Some("order-42".into()),
                outcome: Outcome::NotPlaced,
                code: refused,
                redial: None
            })
        );
        let expired = plan(&ended(Fate::Expired, Some(Code::Expired), true), &record());
        assert!(matches!(
            expired,
            Some(Plan::Unplaced {
                outcome: Outcome::Expired,
                ..
            })
        ));
        for code in [Code::OutcomeUnknown, Code::InProgressElsewhere] {
            assert_eq!(
                plan(&ended(Fate::Permanent, Some(code), true), &record()),
                Some(Plan::Wait {
                    outcome_key: "order-42".into(),
                    request_key: "order-42".into()
                })
            );
        }
    }

    #[test]
    fn a_body_that_never_reached_its_key_gets_its_own_outcome_under_its_message_id() {
        for code in [
            Code::MalformedJson,
            Code::SchemaViolation,
            Code::MissingBody,
        ] {
            assert_eq!(
                plan(&ended(Fate::Permanent, Some(code.clone()), true), &record()),
                Some(Plan::Unplaced {
                    outcome_key: "sqs-1".into(),
                    request_key: None,
                    outcome: Outcome::NotPlaced,
                    code,
                    redial: None
                })
            );
        }
    }

    #[test]
    fn a_second_body_under_a_reused_key_gets_its_own_outcome() {
        let reused = plan(
            &ended(Fate::Permanent, Some(Code::IdempotencyKeyReused), true),
            &record(),
        );
        assert_eq!(
            reused,
            Some(Plan::Unplaced {
                outcome_key: "sqs-1".into(),
                request_key: None,
                outcome: Outcome::NotPlaced,
                code: Code::IdempotencyKeyReused,
                redial: None
            })
        );
    }

    #[test]
    fn a_redial_waits_under_its_own_key_for_its_request_and_ends_it_unreached_without_a_call() {
        let redial = Record {
            redial: Some(crate::core::redial::CallOf {
                call: 2,
                request_key: "order-42",
                at_ms: None,
            }),
            ..record()
        };
        assert_eq!(
            plan(&ended(Fate::Sent, None, false), &redial),
            Some(Plan::Wait {
                outcome_key: "order-42".into(),
                request_key: "redial#2#order-42".into()
            })
        );
        for (code, fate, why) in [
            (Code::Expired, Fate::Expired, Unreached::TimeToLive),
            (Code::DailyLimit, Fate::Permanent, Unreached::DailyLimit),
        ] {
            assert_eq!(
                plan(&ended(fate, Some(code.clone()), true), &redial),
                Some(Plan::Unplaced {
                    outcome_key: "order-42".into(),
                    request_key: Some("redial#2#order-42".into()),
                    outcome: Outcome::Unreached,
                    code: code.clone(),
                    redial: Some(2)
                })
            );
            assert_eq!(redial_end(&code), why);
        }
    }
}
