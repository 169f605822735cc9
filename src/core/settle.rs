//! After the sends: permanent failures and expired records to the dead-letter queue,
//! transient ones delayed before SQS redelivers them, deferred ones (never attempted)
//! released when they are worth trying again: at once, or when the pacer or the breaker
//! said. Both steps are bounded by the invocation deadline, and neither can lose a message:
//! a record leaves `batchItemFailures` only once the DLQ holds it.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::core::backoff::{Backoff, MAX_VISIBILITY_SECONDS};
use crate::core::clock::{Clock, SystemClock};
use crate::core::code::Code;
use crate::core::dead_letter::dead_letter;
use crate::core::draws::Draws;
use crate::core::ports::{DeadLetter, DeadLetterQueue, RedeliveryDelay, VisibilityDelay};
use crate::core::record::Record;
use crate::core::report::{BatchReport, Fate, Reason, RecordOutcome};

pub struct Settlement<D, R> {
    dead_letters: Option<D>,
    redelivery: Option<(R, Redelivery)>,
    clock: Arc<dyn Clock>,
    /// The backoff's jitter.
    draws: Draws,
}

/// Each message id of a batch and the indexes it appears at.
type Copies<'a> = BTreeMap<&'a str, Vec<usize>>;

/// When records that SQS will deliver again should come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redelivery {
    /// Spaces out transient failures, and releases deferred records at once. Without it,
    /// both come back after the queue's visibility timeout unless the engine named a time.
    pub backoff: Option<Backoff>,
    /// The queue's `maxReceiveCount`, when known (`MAX_RECEIVE_COUNT`). From the receive that
    /// uses half of it, the remaining receives are spread over the remaining time to live,
    /// so that redrive can never move a message before the function gives up on it.
    pub receive_limit: Option<u32>,
}

impl Redelivery {
    /// The visibility timeout for a record SQS will deliver again; `None`: leave it.
    pub fn delay(&self, outcome: &RecordOutcome, now: Instant, draw: f64) -> Option<u32> {
        let receive_count = outcome.receive_count.unwrap_or(1);
        let own = match outcome.fate {
            Fate::Transient => self
                .backoff
                .map(|backoff| backoff.delay(receive_count, draw)),
            // An abandoned send may have been placed: never straight back, at least half the
            // backoff's ceiling.
            Fate::Abandoned => self.backoff.map(|backoff| {
                let floor = (backoff.ceiling(receive_count) / 2).max(1);
                backoff.delay(receive_count, draw).max(floor)
            }),
            // No send could start in its invocation: the configuration leaves no time (it is
            // said at ERROR). Backed off like a transient failure, not released at once, since
            // the next invocation will be as short.
            Fate::Deferred
                if outcome
                    .reason
                    .as_ref()
                    .is_some_and(|r| r.code == Code::InvocationTooShort) =>
            {
                self.backoff
                    .map(|backoff| backoff.delay(receive_count, draw))
            }
            Fate::Deferred => self.backoff.map(|_| 0),
            Fate::Sent | Fate::Permanent | Fate::Expired | Fate::Duplicate => return None,
        };
        // Never back sooner than the engine said; at least a second, as 0 would be "now".
        let named = outcome
            .retry_at
            .map(|at| whole_seconds(at.saturating_duration_since(now)).max(1));
        let spread = match (self.receive_limit, outcome.expires_at) {
            (Some(limit), Some(expires)) if receive_count.saturating_mul(2) >= limit => {
                let receives_left = limit.saturating_sub(receive_count).max(1);
                Some(whole_seconds(
                    expires.saturating_duration_since(now) / receives_left,
                ))
            }
            _ => None,
        };
        [own, named, spread]
            .into_iter()
            .flatten()
            .max()
            .map(|seconds| seconds.min(MAX_VISIBILITY_SECONDS))
    }
}

impl<D: DeadLetterQueue, R: RedeliveryDelay> Settlement<D, R> {
    /// `dead_letters`: where permanent failures and expired records go (none: they are
    /// reported, and redrive takes them to the DLQ after `maxReceiveCount`). `redelivery`:
    /// how reported records are spaced out (none: they come back when the queue's
    /// visibility timeout ends).
    pub fn new(dead_letters: Option<D>, redelivery: Option<(R, Redelivery)>) -> Self {
        Self {
            dead_letters,
            redelivery,
            clock: Arc::new(SystemClock),
            draws: Draws::new(),
        }
    }

    /// The same settlement drawing its jitter from `draws` (a seeded source, in tests).
    pub fn with_draws(mut self, draws: Draws) -> Self {
        self.draws = draws;
        self
    }

    /// The same settlement reading the wall clock from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Settles the report's records; `messages` are the batch's records, in the report's
    /// order. Work still pending at `until` is given up: its records stay reported.
    pub async fn settle(&self, report: &mut BatchReport, messages: &[Record<'_>], until: Instant) {
        let (dead_lettered, delayed) = tokio::join!(
            self.forward_permanent(report, messages, until),
            self.schedule_redelivery(report, messages, until, |outcome| {
                self.last_receive(outcome).is_none()
            }),
        );
        for index in dead_lettered {
            report.outcomes[index].dead_lettered = true;
        }
        // A last receive the DLQ did not take comes back to SQS after all: delayed as usual.
        let refused = |outcome: &RecordOutcome| {
            self.last_receive(outcome).is_some() && !outcome.dead_lettered
        };
        let delayed_late = if report.outcomes.iter().any(refused) {
            self.schedule_redelivery(report, messages, until, refused)
                .await
        } else {
            Vec::new()
        };
        for (index, seconds) in delayed.into_iter().chain(delayed_late) {
            report.outcomes[index].retry_delay_seconds = Some(seconds);
        }
    }

    /// Returns the indexes of the records the DLQ accepted. A message id that appears twice
    /// in the batch is forwarded once; its copies share the answer.
    async fn forward_permanent(
        &self,
        report: &BatchReport,
        messages: &[Record<'_>],
        until: Instant,
    ) -> Vec<usize> {
        let Some(dlq) = &self.dead_letters else {
            return Vec::new();
        };
        let (indexes, letters, copies) = self.letters(report, messages);
        if letters.is_empty() {
            return Vec::new();
        }
        let Ok(results) = tokio::time::timeout_at(until, dlq.send(&letters)).await else {
            tracing::error!(
                letters = letters.len(),
                "dead-letter queue did not answer before the deadline; the records stay reported"
            );
            return Vec::new();
        };
        indexes
            .into_iter()
            .zip(results)
            .filter_map(|(index, result)| match result {
                Ok(()) => Some(index),
                Err(error) => {
                    tracing::error!(
                        message_id = %report.outcomes[index].message_id,
                        error = %error,
                        "dead-letter queue refused the record; it stays reported"
                    );
                    None
                }
            })
            .flat_map(|index| copies[report.outcomes[index].message_id.as_str()].clone())
            .collect()
    }

    /// The letters for the records that end here (permanent, expired, or on their last
    /// receive), one per message id: their indexes, the letters, and each id's copies.
    fn letters<'a>(
        &self,
        report: &'a BatchReport,
        messages: &[Record<'a>],
    ) -> (Vec<usize>, Vec<DeadLetter<'a>>, Copies<'a>) {
        let time = OffsetDateTime::from(self.clock.wall())
            .format(&Rfc3339)
            .unwrap_or_default();
        let (mut indexes, mut letters) = (Vec::new(), Vec::new());
        let mut copies: Copies<'a> = BTreeMap::new();
        for (index, (outcome, message)) in report.outcomes.iter().zip(messages).enumerate() {
            let last_receive = self.last_receive(outcome);
            if !outcome.fate.is_final_failure() && last_receive.is_none() {
                continue;
            }
            let seen = copies.entry(outcome.message_id.as_str()).or_default();
            seen.push(index);
            if seen.len() > 1 {
                continue;
            }
            let given_up = last_receive.map(|limit| on_last_receive(outcome, limit));
            let outcome = given_up.as_ref().unwrap_or(outcome);
            match dead_letter(message, outcome, &time) {
                Some(letter) => {
                    if letter.reason.is_none() {
                        tracing::warn!(
                            message_id = %outcome.message_id,
                            error_code = outcome.reason.as_ref().map(|r| r.code.word()).as_deref(),
                            reason = outcome.reason.as_ref().map(|r| r.message.as_str()),
                            "dead letter carries no DispatchError attribute: the original uses all 10 attributes"
                        );
                    }
                    if !letter.left_out.is_empty() {
                        tracing::warn!(
                            message_id = %outcome.message_id,
                            left_out = letter.left_out.join(","),
                            "dead letter carries not all of its request's identity: the original's attributes leave no room; redriven, it counts its time to live from the redrive (without DispatchFirstSent) and is a new request to the ledger (without IdempotencyKey)"
                        );
                    }
                    indexes.push(index);
                    letters.push(letter);
                }
                None => tracing::warn!(
                    message_id = %outcome.message_id,
                    "record has no body to dead-letter; it stays reported and redrive takes it"
                ),
            }
        }
        (indexes, letters, copies)
    }

    /// The visibility each wanted record should get, by source queue: what the policy asks,
    /// at most what is left of SQS's 12 hours from this receive.
    fn delays<'a>(
        &self,
        report: &BatchReport,
        messages: &[Record<'a>],
        policy: &Redelivery,
        wanted: impl Fn(&RecordOutcome) -> bool,
    ) -> BTreeMap<&'a str, Vec<(usize, VisibilityDelay<'a>)>> {
        let now = Instant::now();
        let wall_now = self.clock.wall();
        // Records of one batch come from one queue, but nothing relies on that.
        let mut by_queue: BTreeMap<&str, Vec<(usize, VisibilityDelay<'_>)>> = BTreeMap::new();
        for (index, (outcome, message)) in report.outcomes.iter().zip(messages).enumerate() {
            if !wanted(outcome) {
                continue;
            }
            let Some(seconds) = policy.delay(outcome, now, self.draws.unit()) else {
                continue;
            };
            let seconds = seconds.min(message.visibility_left(wall_now, MAX_VISIBILITY_SECONDS));
            let (Some(arn), Some(receipt_handle)) = (message.queue_arn, message.receipt_handle)
            else {
                continue;
            };
            by_queue.entry(arn).or_default().push((
                index,
                VisibilityDelay {
                    receipt_handle,
                    seconds,
                },
            ));
        }
        by_queue
    }

    /// `Some(MAX_RECEIVE_COUNT)` when this is a record's last receive before the queue's
    /// redrive would move it to the dead-letter queue, and SQS would deliver it again: the
    /// function dead-letters it itself, so the letter says why (redrive's would not).
    fn last_receive(&self, outcome: &RecordOutcome) -> Option<u32> {
        self.dead_letters.as_ref()?;
        let limit = self.redelivery.as_ref()?.1.receive_limit?;
        let redelivered = matches!(
            outcome.fate,
            Fate::Transient | Fate::Deferred | Fate::Abandoned
        );
        (redelivered && outcome.receive_count? >= limit).then_some(limit)
    }

    /// Sets each reported record's visibility: a transient failure waits out its backoff; a
    /// deferred record, which was never attempted, comes back when the engine said it is
    /// worth trying again (the pacer's slot, the breaker's remaining open time), or
    /// at once (in a FIFO group it still waits behind the failed record that holds the
    /// group). A transient failure the engine could not retry for the same reasons waits at
    /// least as long. Returns `(index, seconds)` for every record whose visibility was set.
    async fn schedule_redelivery(
        &self,
        report: &BatchReport,
        messages: &[Record<'_>],
        until: Instant,
        wanted: impl Fn(&RecordOutcome) -> bool,
    ) -> Vec<(usize, u32)> {
        let Some((redelivery, policy)) = &self.redelivery else {
            return Vec::new();
        };
        let by_queue = self.delays(report, messages, policy, wanted);
        let mut delayed = Vec::new();
        for (arn, entries) in by_queue {
            let delays: Vec<VisibilityDelay<'_>> = entries.iter().map(|(_, d)| *d).collect();
            let Ok(results) = tokio::time::timeout_at(until, redelivery.delay(arn, &delays)).await
            else {
                tracing::error!(
                    records = delays.len(),
                    "visibility change did not finish before the deadline; those records come back after the queue's visibility timeout"
                );
                continue;
            };
            for ((index, delay), result) in entries.into_iter().zip(results) {
                match result {
                    Ok(()) => delayed.push((index, delay.seconds)),
                    Err(error) => tracing::warn!(
                        message_id = %report.outcomes[index].message_id,
                        error = %error,
                        "could not delay redelivery; the record comes back after the queue's visibility timeout"
                    ),
                }
            }
        }
        delayed
    }
}

/// The outcome as its dead letter tells it on the last receive: its own code, and a reason
/// that says the receives ran out.
fn on_last_receive(outcome: &RecordOutcome, limit: u32) -> RecordOutcome {
    let (code, why) = outcome
        .reason
        .as_ref()
        .map_or((Code::Unknown, "no reason given"), |r| {
            (r.code.clone(), r.message.as_str())
        });
    RecordOutcome {
        reason: Some(Reason {
            code,
            message: format!(
                "{why}; receive {} of the queue's MAX_RECEIVE_COUNT={limit} ({}): dead-lettered by the function so the reason is kept",
                outcome.receive_count.unwrap_or(limit),
                outcome.fate.as_str()
            ),
        }),
        ..outcome.clone()
    }
}

/// A wait as a visibility timeout: whole seconds, rounded up (never back sooner than asked),
/// at most SQS's 12 hours.
fn whole_seconds(wait: std::time::Duration) -> u32 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.min(u64::from(MAX_VISIBILITY_SECONDS)) as u32
}

#[cfg(test)]
mod tests {
    use crate::core::ports::PortError;
    use std::sync::Mutex;
    use std::time::Duration;

    use std::time::SystemTime;

    use super::*;
    use crate::core::record::RECEIVE_AGE_BOUND;
    use crate::core::report::{Reason, RecordOutcome};

    /// Accepts every letter except those whose body is "refuse"; can be made to hang.
    #[derive(Default)]
    struct MemoryDlq {
        bodies: Mutex<Vec<String>>,
        /// Each accepted letter's `DispatchError`.
        reasons: Mutex<Vec<Option<String>>>,
        hang: bool,
    }

    impl DeadLetterQueue for MemoryDlq {
        async fn send(&self, letters: &[DeadLetter<'_>]) -> Vec<Result<(), PortError>> {
            if self.hang {
                std::future::pending::<()>().await;
            }
            letters
                .iter()
                .map(|letter| {
                    if letter.body == "refuse" {
                        Err(PortError::Entry {
                            code: "Refused".to_owned(),
                            message: "refused".to_owned(),
                        })
                    } else {
                        self.bodies.lock().unwrap().push(letter.body.to_owned());
                        self.reasons.lock().unwrap().push(letter.reason.clone());
                        Ok(())
                    }
                })
                .collect()
        }
    }

    #[derive(Default)]
    struct MemoryVisibility {
        set: Mutex<Vec<(String, String, u32)>>,
    }

    impl RedeliveryDelay for MemoryVisibility {
        async fn delay(
            &self,
            arn: &str,
            delays: &[VisibilityDelay<'_>],
        ) -> Vec<Result<(), PortError>> {
            let mut set = self.set.lock().unwrap();
            delays
                .iter()
                .map(|d| {
                    set.push((arn.to_owned(), d.receipt_handle.to_owned(), d.seconds));
                    Ok(())
                })
                .collect()
        }
    }

    const ARN: &str = "arn:aws:sqs:us-east-1:123456789012:calls";

    fn batch(fates: &[(Fate, &'static str)]) -> (BatchReport, Vec<Record<'static>>) {
        let outcomes = fates
            .iter()
            .enumerate()
            .map(|(n, (fate, _))| RecordOutcome {
                reason: Some(Reason {
                    code: Code::Timeout,
                    message: "x".into(),
                }),
                receive_count: Some(3),
                ..RecordOutcome::new(&format!("m{n}"), *fate)
            })
            .collect();
        let messages = fates
            .iter()
            .enumerate()
            .map(|(n, (_, body))| Record {
                message_id: Box::leak(format!("m{n}").into_boxed_str()),
                receipt_handle: Some(Box::leak(format!("rh{n}").into_boxed_str())),
                body: Some(body),
                queue_arn: Some(ARN),
                receive_count: Some(3),
                ..Record::default()
            })
            .collect();
        (
            BatchReport {
                outcomes,
                ..Default::default()
            },
            messages,
        )
    }

    fn with_backoff() -> Redelivery {
        Redelivery {
            backoff: Some(Backoff::new(10, 900)),
            receive_limit: None,
        }
    }

    fn failed(fate: Fate, receive_count: u32) -> RecordOutcome {
        RecordOutcome {
            receive_count: Some(receive_count),
            ..RecordOutcome::new("m", fate)
        }
    }

    #[test]
    fn without_backoff_only_a_named_time_moves_a_record() {
        let policy = Redelivery::default();
        let now = Instant::now();
        assert_eq!(policy.delay(&failed(Fate::Transient, 1), now, 0.5), None);
        assert_eq!(policy.delay(&failed(Fate::Deferred, 1), now, 0.5), None);
        let mut rate_limited = failed(Fate::Deferred, 1);
        rate_limited.retry_at = Some(now + Duration::from_secs(30));
        assert_eq!(policy.delay(&rate_limited, now, 0.5), Some(30));
        rate_limited.retry_at = Some(now);
        assert_eq!(
            policy.delay(&rate_limited, now, 0.5),
            Some(1),
            "a named time is at least a second away"
        );
        assert_eq!(policy.delay(&failed(Fate::Expired, 1), now, 0.5), None);
    }

    #[test]
    fn a_record_no_send_could_start_for_is_backed_off_like_a_transient_failure() {
        let policy = with_backoff();
        let now = Instant::now();
        let mut too_short = failed(Fate::Deferred, 3);
        too_short.reason = Some(Reason {
            code: Code::InvocationTooShort,
            message: "not started".into(),
        });
        assert_eq!(policy.delay(&too_short, now, 0.999), Some(40));
        assert_eq!(
            policy.delay(&failed(Fate::Deferred, 3), now, 0.999),
            Some(0),
            "other deferrals come back at once"
        );
    }

    #[test]
    fn an_abandoned_send_comes_back_after_at_least_half_the_backoff() {
        let policy = with_backoff();
        let now = Instant::now();
        let abandoned = failed(Fate::Abandoned, 3);
        assert_eq!(policy.delay(&abandoned, now, 0.0), Some(20), "half of 40 s");
        assert_eq!(policy.delay(&abandoned, now, 0.999), Some(40));
        let first = failed(Fate::Abandoned, 1);
        assert_eq!(policy.delay(&first, now, 0.0), Some(5));
    }

    #[test]
    fn from_half_the_receive_limit_the_rest_is_spread_over_the_time_left() {
        let policy = Redelivery {
            backoff: Some(Backoff::new(10, 900)),
            receive_limit: Some(100),
        };
        let now = Instant::now();
        let mut record = failed(Fate::Transient, 49);
        record.expires_at = Some(now + Duration::from_secs(72 * 3_600));
        assert_eq!(
            policy.delay(&record, now, 0.0),
            Some(0),
            "below half: backoff only"
        );
        record.receive_count = Some(50);
        assert_eq!(
            policy.delay(&record, now, 0.0),
            Some(72 * 3_600 / 50),
            "50 receives left for 72 h: one every 86.4 min"
        );
        record.receive_count = Some(99);
        assert_eq!(
            policy.delay(&record, now, 0.0),
            Some(MAX_VISIBILITY_SECONDS),
            "never past SQS's 12 hours"
        );
        record.expires_at = Some(now + Duration::from_secs(600));
        record.receive_count = Some(60);
        assert_eq!(
            policy.delay(&record, now, 1.0),
            Some(900),
            "the backoff when it is longer"
        );
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn on_the_last_receive_a_record_sqs_would_redeliver_is_dead_lettered_with_its_reason() {
        let fates = [
            (Fate::Deferred, "too short"),
            (Fate::Transient, "failing"),
            (Fate::Abandoned, "cut off"),
            (Fate::Sent, "ok"),
            (Fate::Deferred, "refuse"),
        ];
        let limited = |limit| Redelivery {
            receive_limit: Some(limit),
            ..with_backoff()
        };
        // Receive 3 of 3: redrive would move them next, without a reason.
        let (mut report, messages) = batch(&fates);
        report.outcomes[0].reason = Some(Reason {
            code: Code::DeadlineReached,
            message: "not started: too close to the invocation deadline".into(),
        });
        let settlement = Settlement::new(
            Some(MemoryDlq::default()),
            Some((MemoryVisibility::default(), limited(3))),
        );
        settlement.settle(&mut report, &messages, later()).await;
        assert_eq!(report.reported_message_ids(), ["m4"], "{report:?}");
        let dead: Vec<bool> = report.outcomes.iter().map(|o| o.dead_lettered).collect();
        assert_eq!(dead, [true, true, true, false, false]);
        let delays: Vec<Option<u32>> = report
            .outcomes
            .iter()
            .map(|o| o.retry_delay_seconds)
            .collect();
        assert_eq!(
            delays,
            [None, None, None, None, Some(0)],
            "nothing to delay while the DLQ holds them; the one it refused comes back as usual"
        );
        let dlq = settlement.dead_letters.as_ref().unwrap();
        let reasons = dlq.reasons.lock().unwrap().clone();
        let first: serde_json::Value =
            serde_json::from_str(reasons[0].as_deref().unwrap()).unwrap();
        assert_eq!(first["code"], "DeadlineReached");
        let message = first["message"].as_str().unwrap();
        assert!(
            message.starts_with("not started: too close to the invocation deadline; ")
                && message.contains("receive 3 of the queue's MAX_RECEIVE_COUNT=3 (deferred)"),
            "{message}"
        );
        // Receive 3 of 4: SQS still delivers it again; nothing dead-lettered.
        let (mut report, messages) = batch(&fates);
        let settlement = Settlement::new(
            Some(MemoryDlq::default()),
            Some((MemoryVisibility::default(), limited(4))),
        );
        settlement.settle(&mut report, &messages, later()).await;
        assert_eq!(report.reported_message_ids(), ["m0", "m1", "m2", "m4"]);
        // No dead-letter queue of the function's own: left to redrive, as before.
        let (mut report, messages) = batch(&fates);
        let settlement = Settlement::new(
            None::<MemoryDlq>,
            Some((MemoryVisibility::default(), limited(3))),
        );
        settlement.settle(&mut report, &messages, later()).await;
        assert_eq!(report.reported_message_ids(), ["m0", "m1", "m2", "m4"]);
    }

    #[tokio::test]
    async fn accepted_dead_letters_leave_the_response_and_refused_ones_stay() {
        let (mut report, messages) = batch(&[
            (Fate::Permanent, "bad"),
            (Fate::Permanent, "refuse"),
            (Fate::Sent, "ok"),
        ]);
        let settlement = Settlement::new(Some(MemoryDlq::default()), None::<(MemoryVisibility, _)>);
        settlement.settle(&mut report, &messages, later()).await;
        assert!(report.outcomes[0].dead_lettered);
        assert!(!report.outcomes[1].dead_lettered);
        assert_eq!(report.reported_message_ids(), ["m1"]);
        let dlq = settlement.dead_letters.as_ref().unwrap();
        assert_eq!(*dlq.bodies.lock().unwrap(), ["bad"]);
    }

    #[tokio::test]
    async fn expired_records_are_dead_lettered_like_permanent_failures() {
        let (mut report, messages) = batch(&[(Fate::Expired, "late"), (Fate::Transient, "t")]);
        let settlement = Settlement::new(Some(MemoryDlq::default()), None::<(MemoryVisibility, _)>);
        settlement.settle(&mut report, &messages, later()).await;
        assert!(report.outcomes[0].dead_lettered);
        assert_eq!(report.reported_message_ids(), ["m1"]);
        let dlq = settlement.dead_letters.as_ref().unwrap();
        assert_eq!(*dlq.bodies.lock().unwrap(), ["late"]);
    }

    #[tokio::test]
    async fn a_visibility_never_reaches_past_twelve_hours_from_the_receive() {
        let (mut report, mut messages) = batch(&[(Fate::Deferred, "a"), (Fate::Deferred, "b")]);
        let first_ms =
            |seconds_ago: u64| Some(SystemTime::now() - Duration::from_secs(seconds_ago));
        // First received 10 minutes ago (this receive), and 11.5 hours ago (an earlier one).
        messages[0].first_received_at = first_ms(600);
        messages[1].first_received_at = first_ms(41_400);
        let now = Instant::now();
        for outcome in &mut report.outcomes {
            outcome.retry_at = Some(now + Duration::from_secs(100_000));
        }
        let settlement = Settlement::new(
            None::<MemoryDlq>,
            Some((MemoryVisibility::default(), with_backoff())),
        );
        settlement.settle(&mut report, &messages, later()).await;
        let first = report.outcomes[0].retry_delay_seconds.unwrap();
        assert!(
            (42_595..=42_600).contains(&first),
            "12 h less the 10 minutes since this receive: {first}"
        );
        assert_eq!(
            report.outcomes[1].retry_delay_seconds,
            Some(42_000),
            "a later receive is at most 20 minutes old, whenever the first one was"
        );
    }

    #[tokio::test]
    async fn deferred_records_come_back_when_the_engine_said_and_transient_ones_no_sooner() {
        let (mut report, messages) = batch(&[
            (Fate::Deferred, "rate limited"),
            (Fate::Transient, "breaker opened after it failed"),
            (Fate::Deferred, "way too long"),
        ]);
        let now = Instant::now();
        report.outcomes[0].retry_at = Some(now + Duration::from_millis(6_200));
        report.outcomes[1].retry_at = Some(now + Duration::from_secs(100));
        report.outcomes[2].retry_at = Some(now + Duration::from_secs(100_000));
        let settlement = Settlement::new(
            None::<MemoryDlq>,
            Some((MemoryVisibility::default(), with_backoff())),
        );
        settlement.settle(&mut report, &messages, later()).await;
        let delays: Vec<Option<u32>> = report
            .outcomes
            .iter()
            .map(|o| o.retry_delay_seconds)
            .collect();
        assert_eq!(
            delays,
            [
                Some(7),
                Some(100),
                Some(MAX_VISIBILITY_SECONDS - RECEIVE_AGE_BOUND.as_secs() as u32)
            ],
            "rounded up; the hint beats a shorter backoff; at most what is left of 12 h \
             since a receive of unknown time"
        );
    }

    #[tokio::test]
    async fn a_message_id_twice_in_the_batch_is_dead_lettered_once_for_both() {
        let (mut report, messages) = batch(&[(Fate::Permanent, "bad"), (Fate::Permanent, "bad")]);
        report.outcomes[1].message_id = "m0".into();
        let settlement = Settlement::new(Some(MemoryDlq::default()), None::<(MemoryVisibility, _)>);
        settlement.settle(&mut report, &messages, later()).await;
        assert!(report.outcomes.iter().all(|o| o.dead_lettered));
        let dlq = settlement.dead_letters.as_ref().unwrap();
        assert_eq!(*dlq.bodies.lock().unwrap(), ["bad"], "one letter");
    }

    #[tokio::test]
    async fn a_dead_letter_queue_that_does_not_answer_in_time_leaves_everything_reported() {
        let (mut report, messages) = batch(&[(Fate::Permanent, "bad")]);
        let dlq = MemoryDlq {
            hang: true,
            ..Default::default()
        };
        let settlement = Settlement::new(Some(dlq), None::<(MemoryVisibility, _)>);
        let until = Instant::now() + Duration::from_millis(50);
        settlement.settle(&mut report, &messages, until).await;
        assert_eq!(report.reported_message_ids(), ["m0"]);
    }

    #[tokio::test]
    async fn without_a_dead_letter_queue_permanent_failures_stay_reported() {
        let (mut report, messages) = batch(&[(Fate::Permanent, "bad")]);
        let settlement: Settlement<MemoryDlq, MemoryVisibility> = Settlement::new(None, None);
        settlement.settle(&mut report, &messages, later()).await;
        assert_eq!(report.reported_message_ids(), ["m0"]);
    }

    #[tokio::test]
    async fn transient_failures_back_off_and_deferred_records_are_released() {
        let (mut report, messages) = batch(&[
            (Fate::Transient, "t"),
            (Fate::Deferred, "d"),
            (Fate::Sent, "s"),
            (Fate::Permanent, "p"),
        ]);
        let settlement = Settlement::new(
            None::<MemoryDlq>,
            Some((MemoryVisibility::default(), with_backoff())),
        );
        settlement.settle(&mut report, &messages, later()).await;

        let transient = report.outcomes[0].retry_delay_seconds.unwrap();
        assert!(
            transient <= 40,
            "receive 3 of base 10: at most 40 s, got {transient}"
        );
        assert_eq!(report.outcomes[1].retry_delay_seconds, Some(0));
        assert_eq!(report.outcomes[2].retry_delay_seconds, None);
        assert_eq!(report.outcomes[3].retry_delay_seconds, None);
        let (visibility, _) = settlement.redelivery.as_ref().unwrap();
        let set = visibility.set.lock().unwrap();
        let handles: Vec<&str> = set
            .iter()
            .map(|(arn, rh, _)| {
                assert_eq!(arn, ARN);
                rh.as_str()
            })
            .collect();
        assert_eq!(handles, ["rh0", "rh1"]);
        assert_eq!(
            report.reported_message_ids(),
            ["m0", "m1", "m3"],
            "fates unchanged"
        );
    }
}
