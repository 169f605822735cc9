//! After the sends: permanent failures and expired records to the dead-letter queue,
//! transient ones delayed before SQS redelivers them, deferred ones (never attempted)
//! released when they are worth trying again: at once, or when the pacer or the breaker
//! said. Both steps are bounded by the invocation deadline, and neither can lose a message:
//! a record leaves `batchItemFailures` only once the DLQ holds it.

use std::collections::BTreeMap;

use aws_lambda_events::sqs::SqsMessage;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::backoff::{Backoff, MAX_VISIBILITY_SECONDS};
use crate::dead_letter::dead_letter;
use crate::ports::{DeadLetterQueue, RedeliveryDelay, VisibilityDelay};
use crate::report::{BatchReport, Fate};

pub struct Settlement<D, R> {
    dead_letters: Option<D>,
    redelivery: Option<(R, Backoff)>,
}

impl<D: DeadLetterQueue, R: RedeliveryDelay> Settlement<D, R> {
    /// `dead_letters`: where permanent failures go (none: they are reported, and redrive
    /// takes them to the DLQ after `maxReceiveCount`). `redelivery`: how transient failures
    /// are spaced out (none: they come back when the queue's visibility timeout ends).
    pub fn new(dead_letters: Option<D>, redelivery: Option<(R, Backoff)>) -> Self {
        Self {
            dead_letters,
            redelivery,
        }
    }

    /// Settles the report's records; `messages` are the event's records, in the report's
    /// order. Work still pending at `until` is given up: its records stay reported.
    pub async fn settle(&self, report: &mut BatchReport, messages: &[SqsMessage], until: Instant) {
        let (dead_lettered, delayed) = tokio::join!(
            self.forward_permanent(report, messages, until),
            self.schedule_redelivery(report, messages, until),
        );
        for index in dead_lettered {
            report.outcomes[index].dead_lettered = true;
        }
        for (index, seconds) in delayed {
            report.outcomes[index].retry_delay_seconds = Some(seconds);
        }
    }

    /// Returns the indexes of the records the DLQ accepted.
    async fn forward_permanent(
        &self,
        report: &BatchReport,
        messages: &[SqsMessage],
        until: Instant,
    ) -> Vec<usize> {
        let Some(dlq) = &self.dead_letters else {
            return Vec::new();
        };
        let time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let mut indexes = Vec::new();
        let mut letters = Vec::new();
        for (index, (outcome, message)) in report.outcomes.iter().zip(messages).enumerate() {
            if !outcome.fate.is_final_failure() {
                continue;
            }
            match dead_letter(message, outcome, &time) {
                Some(letter) => {
                    if letter.reason.is_none() {
                        tracing::warn!(
                            message_id = %outcome.message_id,
                            error_code = outcome.reason.as_ref().map(|r| r.code.as_str()),
                            reason = outcome.reason.as_ref().map(|r| r.message.as_str()),
                            "dead letter carries no DispatchError attribute: the original uses all 10 attributes"
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
            .collect()
    }

    /// Sets each reported record's visibility: a transient failure waits out its backoff; a
    /// deferred record, which was never attempted, comes back when the engine said it is
    /// worth trying again (the pacer's expected wait, the breaker's remaining open time), or
    /// at once (in a FIFO group it still waits behind the failed record that holds the
    /// group). A transient failure the engine could not retry for the same reasons waits at
    /// least as long. Returns `(index, seconds)` for every record whose visibility was set.
    async fn schedule_redelivery(
        &self,
        report: &BatchReport,
        messages: &[SqsMessage],
        until: Instant,
    ) -> Vec<(usize, u32)> {
        let Some((redelivery, backoff)) = &self.redelivery else {
            return Vec::new();
        };
        // Records of one batch come from one queue, but nothing relies on that.
        let mut by_queue: BTreeMap<&str, Vec<(usize, VisibilityDelay<'_>)>> = BTreeMap::new();
        for (index, (outcome, message)) in report.outcomes.iter().zip(messages).enumerate() {
            let hinted = outcome.retry_after.map_or(0, whole_seconds);
            let seconds = match outcome.fate {
                Fate::Transient => backoff
                    .delay(outcome.receive_count.unwrap_or(1), fastrand::f64())
                    .max(hinted),
                Fate::Deferred => hinted,
                Fate::Sent | Fate::Permanent | Fate::Expired => continue,
            };
            let (Some(arn), Some(receipt_handle)) = (
                message.event_source_arn.as_deref(),
                message.receipt_handle.as_deref(),
            ) else {
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

/// A wait as a visibility timeout: whole seconds, rounded up (never back sooner than asked),
/// at most SQS's 12 hours.
fn whole_seconds(wait: std::time::Duration) -> u32 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.min(u64::from(MAX_VISIBILITY_SECONDS)) as u32
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::ports::DeadLetter;
    use crate::report::{Reason, RecordOutcome};

    /// Accepts every letter except those whose body is "refuse"; can be made to hang.
    #[derive(Default)]
    struct MemoryDlq {
        bodies: Mutex<Vec<String>>,
        hang: bool,
    }

    impl DeadLetterQueue for MemoryDlq {
        async fn send(&self, letters: &[DeadLetter<'_>]) -> Vec<Result<(), String>> {
            if self.hang {
                std::future::pending::<()>().await;
            }
            letters
                .iter()
                .map(|letter| {
                    if letter.body == "refuse" {
                        Err("refused".to_owned())
                    } else {
                        self.bodies.lock().unwrap().push(letter.body.to_owned());
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
        ) -> Vec<Result<(), String>> {
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

    fn batch(fates: &[(Fate, &str)]) -> (BatchReport, Vec<SqsMessage>) {
        let outcomes = fates
            .iter()
            .enumerate()
            .map(|(n, (fate, _))| RecordOutcome {
                reason: Some(Reason {
                    code: "X".into(),
                    message: "x".into(),
                }),
                receive_count: Some(3),
                ..RecordOutcome::new(&format!("m{n}"), *fate)
            })
            .collect();
        let messages = fates
            .iter()
            .enumerate()
            .map(|(n, (_, body))| {
                serde_json::from_value(serde_json::json!({
                    "messageId": format!("m{n}"), "receiptHandle": format!("rh{n}"),
                    "body": body, "eventSourceARN": ARN,
                    "attributes": {"ApproximateReceiveCount": "3"}
                }))
                .unwrap()
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

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(5)
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
        assert_eq!(report.failed_message_ids(), ["m1"]);
        let dlq = settlement.dead_letters.as_ref().unwrap();
        assert_eq!(*dlq.bodies.lock().unwrap(), ["bad"]);
    }

    #[tokio::test]
    async fn expired_records_are_dead_lettered_like_permanent_failures() {
        let (mut report, messages) = batch(&[(Fate::Expired, "late"), (Fate::Transient, "t")]);
        let settlement = Settlement::new(Some(MemoryDlq::default()), None::<(MemoryVisibility, _)>);
        settlement.settle(&mut report, &messages, later()).await;
        assert!(report.outcomes[0].dead_lettered);
        assert_eq!(report.failed_message_ids(), ["m1"]);
        let dlq = settlement.dead_letters.as_ref().unwrap();
        assert_eq!(*dlq.bodies.lock().unwrap(), ["late"]);
    }

    #[tokio::test]
    async fn deferred_records_come_back_when_the_engine_said_and_transient_ones_no_sooner() {
        let (mut report, messages) = batch(&[
            (Fate::Deferred, "rate limited"),
            (Fate::Transient, "breaker opened after it failed"),
            (Fate::Deferred, "way too long"),
        ]);
        report.outcomes[0].retry_after = Some(Duration::from_millis(6_200));
        report.outcomes[1].retry_after = Some(Duration::from_secs(100));
        report.outcomes[2].retry_after = Some(Duration::from_secs(100_000));
        let settlement = Settlement::new(
            None::<MemoryDlq>,
            Some((MemoryVisibility::default(), Backoff::new(10, 900))),
        );
        settlement.settle(&mut report, &messages, later()).await;
        let delays: Vec<Option<u32>> = report
            .outcomes
            .iter()
            .map(|o| o.retry_delay_seconds)
            .collect();
        assert_eq!(
            delays,
            [Some(7), Some(100), Some(MAX_VISIBILITY_SECONDS)],
            "rounded up; the hint beats a shorter backoff; 12 h at most"
        );
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
        assert_eq!(report.failed_message_ids(), ["m0"]);
    }

    #[tokio::test]
    async fn without_a_dead_letter_queue_permanent_failures_stay_reported() {
        let (mut report, messages) = batch(&[(Fate::Permanent, "bad")]);
        let settlement: Settlement<MemoryDlq, MemoryVisibility> = Settlement::new(None, None);
        settlement.settle(&mut report, &messages, later()).await;
        assert_eq!(report.failed_message_ids(), ["m0"]);
    }

    #[tokio::test]
    async fn transient_failures_back_off_and_deferred_records_are_released() {
        let (mut report, messages) = batch(&[
            (Fate::Transient, "t"),
            (Fate::Deferred, "d"),
            (Fate::Sent, "s"),
            (Fate::Permanent, "p"),
        ]);
        let backoff = Backoff::new(10, 900);
        let settlement = Settlement::new(
            None::<MemoryDlq>,
            Some((MemoryVisibility::default(), backoff)),
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
            report.failed_message_ids(),
            ["m0", "m1", "m3"],
            "fates unchanged"
        );
    }
}
