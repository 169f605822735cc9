//! After the sends: permanent failures to the dead-letter queue, transient ones delayed
//! before SQS redelivers them. Both are bounded by the invocation deadline, and neither can
//! lose a message: a record leaves `batchItemFailures` only once the DLQ holds it.

use std::collections::BTreeMap;

use aws_lambda_events::sqs::SqsMessage;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::backoff::Backoff;
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
            self.delay_transient(report, messages, until),
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
            if outcome.fate != Fate::Permanent {
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

    /// Returns `(index, seconds)` for every record whose redelivery was delayed.
    async fn delay_transient(
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
            if outcome.fate != Fate::Transient {
                continue;
            }
            let (Some(arn), Some(receipt_handle)) = (
                message.event_source_arn.as_deref(),
                message.receipt_handle.as_deref(),
            ) else {
                continue;
            };
            let seconds = backoff.delay(outcome.receive_count.unwrap_or(1), fastrand::f64());
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
