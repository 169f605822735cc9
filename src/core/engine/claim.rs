//! The idempotency ledger around a record's attempts: its key claimed before the first, and
//! what became of it written after the last (`finish`). Nothing is ever sent unrecorded.

use std::time::Duration;

use tokio::time::Instant;

use super::budget::Cutoffs;
use super::outcomes::{epoch_ms, AttemptLoop};
use super::BatchEngine;
use crate::core::code::Code;
use crate::core::ledger::{self, Claim, Entry, Finish, Refusal, Status, UnknownOutcome};
use crate::core::ports::{ClaimAnswer, Ledger, PortError, VoiceSender};
use crate::core::record::Record;
use crate::core::redact::scrub_phone_numbers;
use crate::core::redial::Keep;
use crate::core::report::{Fate, Reason, RecordOutcome};

impl<S: VoiceSender, L: Ledger> BatchEngine<S, L> {
    /// Claims the record's key before its first attempt. `Err` is the record's outcome when
    /// it must not be sent now: already sent, held elsewhere, the key reused for another
    /// message, an unknown outcome under at-most-once, or the ledger out of reach.
    pub(super) async fn claim(
        &self,
        ledger: &L,
        record: &Record<'_>,
        cutoffs: Cutoffs,
        attempt: AttemptLoop,
        keep: Option<Keep>,
    ) -> Result<(Claim, AttemptLoop), RecordOutcome> {
        let claim = self.new_claim(record, cutoffs, keep);
        let answer = tokio::time::timeout_at(cutoffs.last_start, ledger.claim(&claim)).await;
        let outcome = attempt.outcome;
        let error = match answer {
            // Our own claim, written by an earlier try whose answer was lost (the SDK retries
            // a PutItem): it is ours.
            Ok(Ok(ClaimAnswer::Refused(standing)))
                if standing.claim_id == claim.entry.claim_id
                    && standing.status == Status::InProgress =>
            {
                // What that lost write replaced is not known: with failover on, it may have
                // been an unknown outcome, so the record stays in the primary region.
                // (Only `retry` lets a claim take an unknown outcome over.)
                let mut attempt = AttemptLoop::new(outcome);
                attempt.maybe_placed_before =
                    self.failover.is_some() && self.settings.on_unknown == UnknownOutcome::Retry;
                return Ok((claim, attempt));
            }
            Ok(Ok(ClaimAnswer::Claimed { replaced })) => {
                let mut attempt = AttemptLoop::new(outcome);
                if let Some(earlier) = replaced.filter(|e| e.status != Status::Sent) {
                    tracing::warn!(
                        message_id = %record.message_id,
                        earlier_status = earlier.status.as_str(),
                        "an earlier attempt's outcome is unknown: calling again (ON_UNKNOWN_OUTCOME=retry)"
                    );
                    attempt.maybe_placed_before = true;
                }
                return Ok((claim, attempt));
            }
            Ok(Ok(ClaimAnswer::Refused(standing))) => {
                return Err(refused(
                    outcome,
                    &ledger::refusal(&standing, &claim),
                    &claim,
                ));
            }
            Ok(Err(error)) => {
                format!("not sent: the idempotency ledger could not be written: {error}")
            }
            Err(_elapsed) => {
                "not sent: the idempotency ledger did not answer before the send cutoff".to_owned()
            }
        };
        self.release_uncertain_claim(ledger, &claim, cutoffs).await;
        Err(with_reason(
            outcome,
            Fate::Transient,
            Code::LedgerUnavailable,
            &error,
        ))
    }

    /// [`Self::claim`] for a record its request still wants: a redial is claimed only while
    /// its request keeps its body (no outcome fixed), with the same hash, and this call is
    /// the one queued; otherwise it is not called (`RedialNotDue`).
    pub(super) async fn claim_if_due(
        &self,
        ledger: &L,
        record: &Record<'_>,
        cutoffs: Cutoffs,
        attempt: AttemptLoop,
        keep: Option<Keep>,
    ) -> Result<(Claim, AttemptLoop), RecordOutcome> {
        let Some(call) = record.redial else {
            return self.claim(ledger, record, cutoffs, attempt, keep).await;
        };
        let hash = ledger::body_hash(record.body.unwrap_or_default());
        let due = ledger.redial_due(call.request_key, call.call, &hash);
        let error = match tokio::time::timeout_at(cutoffs.last_start, due).await {
            Ok(Ok(true)) => return self.claim(ledger, record, cutoffs, attempt, keep).await,
            Ok(Ok(false)) => {
                return Err(with_reason(
                    attempt.outcome,
                    Fate::Duplicate,
                    Code::RedialNotDue,
                    "its request no longer wants this call (its outcome is fixed, a later call is queued, or the body is not the request's): not called",
                ))
            }
            Ok(Err(error)) => format!("not sent: the idempotency ledger could not be read: {error}"),
            Err(_elapsed) => {
                "not sent: the idempotency ledger did not answer before the send cutoff".to_owned()
            }
        };
        Err(with_reason(
            attempt.outcome,
            Fate::Transient,
            Code::LedgerUnavailable,
            &error,
        ))
    }

    /// The claim this record's attempts would hold: leased until the invocation's deadline,
    /// kept for `IDEMPOTENCY_TTL_SECONDS`.
    fn new_claim(&self, record: &Record<'_>, cutoffs: Cutoffs, keep: Option<Keep>) -> Claim {
        let now_ms = epoch_ms(self.clock.wall());
        let lease_ms = cutoffs
            .deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        Claim {
            key: record.ledger_key(),
            entry: Entry {
                status: Status::InProgress,
                body_hash: ledger::body_hash(record.body.unwrap_or_default()),
                claim_id: self.draws.claim_id(),
                lease_until_ms: now_ms.saturating_add(lease_ms),
                expiration: (now_ms / 1_000).saturating_add(self.settings.ledger_ttl.as_secs()),
                voice_message_id: None,
            },
            now_ms,
            on_unknown: self.settings.on_unknown,
            request: ledger::RequestIds {
                sqs_message_id: record.message_id.to_owned(),
                idempotency_key: record.idempotency_key.clone().into_owned(),
            },
            keep,
        }
    }

    /// A claim that failed or timed out may still have been written: released, best effort,
    /// so that it does not stand as an unknown outcome once its lease runs out. With failover
    /// on and `ON_UNKNOWN_OUTCOME=retry`, that write may have taken over an unknown outcome,
    /// which a release would forget: it is written back as unknown instead (only the
    /// caller's own claim is touched, so nothing happens if it was never written).
    async fn release_uncertain_claim(&self, ledger: &L, claim: &Claim, cutoffs: Cutoffs) {
        let last = if self.failover.is_some() && self.settings.on_unknown == UnknownOutcome::Retry {
            Finish::Unknown
        } else {
            Finish::Release
        };
        let written = ledger.finish(claim, &last);
        let _ = tokio::time::timeout_at(cutoffs.record_by, written).await;
    }

    /// Writes what became of a claimed record (the ledger's last write), retrying until the
    /// cutoff; then an ERROR line for a placed call (the record still counts as sent), a
    /// WARN line otherwise.
    pub(super) async fn finish(
        &self,
        ledger: &L,
        claim: &Claim,
        outcome: &RecordOutcome,
        maybe_placed: bool,
        cutoffs: Cutoffs,
    ) {
        let last = match outcome.fate {
            Fate::Sent => Finish::Sent {
                voice_message_id: outcome.voice_message_id.clone(),
                region: outcome
                    .region
                    .as_ref()
                    .map(|region| region.name.to_string()),
            },
            _ if maybe_placed => Finish::Unknown,
            _ => Finish::Release,
        };
        let mut tries = 0u32;
        let error = loop {
            tries += 1;
            let written =
                tokio::time::timeout_at(cutoffs.record_by, ledger.finish(claim, &last)).await;
            let error = match written {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error,
                Err(_elapsed) => PortError::NoAnswer,
            };
            let retry = Duration::from_millis(50u64 << tries.min(5));
            if Instant::now() + retry >= cutoffs.record_by {
                break error;
            }
            tokio::time::sleep(retry).await;
        };
        let fate = outcome.fate.as_str();
        match last {
            Finish::Sent { .. } => tracing::error!(
                message_id = %outcome.message_id, fate, tries, error = %scrub_phone_numbers(&error.to_string()),
                "the call was placed but the ledger could not record it: a redelivery would call again"
            ),
            _ => tracing::warn!(
                message_id = %outcome.message_id, fate, error = %scrub_phone_numbers(&error.to_string()),
                "the ledger could not record the outcome; the claim lapses with its lease"
            ),
        }
    }
}

/// The outcome of a record whose claim the ledger refused.
fn refused(mut outcome: RecordOutcome, refusal: &Refusal, claim: &Claim) -> RecordOutcome {
    match refusal {
        Refusal::AlreadySent { voice_message_id } => {
            outcome.fate = Fate::Duplicate;
            outcome.reason = None;
            outcome.voice_message_id = voice_message_id.clone();
            outcome
        }
        Refusal::InProgressElsewhere { lease_until_ms } => {
            let lease_left = lease_until_ms.saturating_sub(claim.now_ms);
            outcome.retry_at = Some(Instant::now() + Duration::from_millis(lease_left));
            with_reason(
                outcome,
                Fate::Deferred,
                Code::InProgressElsewhere,
                "another invocation is sending this key; back when its lease ends",
            )
        }
        Refusal::KeyReused => with_reason(
            outcome,
            Fate::Permanent,
            Code::IdempotencyKeyReused,
            "its idempotency key was already used for a different message",
        ),
        Refusal::OutcomeUnknown => with_reason(
            outcome,
            Fate::Permanent,
            Code::OutcomeUnknown,
            "an earlier attempt may have placed the call; ON_UNKNOWN_OUTCOME=dead-letter calls at most once",
        ),
    }
}

fn with_reason(mut outcome: RecordOutcome, fate: Fate, code: Code, message: &str) -> RecordOutcome {
    outcome.fate = fate;
    outcome.reason = Some(Reason {
        code,
        message: scrub_phone_numbers(message),
    });
    outcome
}
