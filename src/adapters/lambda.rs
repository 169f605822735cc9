//! The Lambda side: an SQS event in, the partial batch response out.

use std::time::{Instant as StdInstant, SystemTime};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use tokio::time::Instant;

use crate::adapters::sqs_event as record;
use crate::core::engine::{BatchEngine, Record};
use crate::core::ports::{DeadLetterQueue, Ledger, NoLedger, RedeliveryDelay, VoiceSender};
use crate::core::report::BatchReport;
use crate::core::settle::Settlement;
use crate::observe::metrics::MetricsContext;

/// Why a whole event is refused. Only an event Lambda itself would never send lands here:
/// refusing it before any call is placed makes SQS redeliver every record, none sent twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("record {index} has no messageId, so its fate could not be reported; refusing the batch before sending anything")]
    MissingMessageId { index: usize },
}

impl From<EventError> for lambda_runtime::Diagnostic {
    fn from(err: EventError) -> Self {
        Self {
            error_type: "MissingMessageId".to_owned(),
            error_message: err.to_string(),
        }
    }
}

pub struct VoiceDispatch<S, D, R, L = NoLedger> {
    engine: BatchEngine<S, L>,
    settlement: Settlement<D, R>,
    metrics: Option<MetricsContext>,
}

impl<S: VoiceSender, D: DeadLetterQueue, R: RedeliveryDelay, L: Ledger> VoiceDispatch<S, D, R, L> {
    pub fn new(engine: BatchEngine<S, L>, settlement: Settlement<D, R>) -> Self {
        Self {
            engine,
            settlement,
            metrics: None,
        }
    }

    /// The engine, with the instance's pacer and circuit breaker.
    pub fn engine(&self) -> &BatchEngine<S, L> {
        &self.engine
    }

    /// Writes CloudWatch EMF metrics after every batch.
    pub fn with_metrics(mut self, metrics: Option<MetricsContext>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The Lambda entry point.
    pub async fn handle_lambda(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, EventError> {
        let deadline = deadline_of(event.context.deadline);
        let report = self.handle(&event.payload, deadline).await?;
        Ok(report.to_response())
    }

    /// Runs one event against `deadline` (wall-clock, as Lambda gives it).
    pub async fn handle(
        &self,
        event: &SqsEvent,
        deadline: SystemTime,
    ) -> Result<BatchReport, EventError> {
        let started = StdInstant::now();
        let records =
            records_of(event).inspect_err(|err| tracing::error!(error = %err, "event refused"))?;
        let deadline = instant_of(deadline);
        let reserve = self.engine.reserve(deadline);
        let mut report = self
            .engine
            .run_with_reserve(&records, deadline, reserve)
            .await;
        // The sends stopped by `deadline - reserve / 2`; settling gets until a quarter of the
        // reserve is left, and that last quarter is for the answer.
        let until = deadline
            .checked_sub(reserve / 4)
            .unwrap_or_else(Instant::now);
        // Boxed: the nested async state machines are otherwise deep enough to exceed the
        // compiler's layout recursion limit where `main` awaits the runtime.
        Box::pin(self.settlement.settle(&mut report, &event.records, until)).await;
        let counts = report.counts();
        let delayed = report
            .outcomes
            .iter()
            .filter_map(|outcome| outcome.retry_delay_seconds)
            .collect::<Vec<u32>>();
        tracing::info!(
            records = records.len(),
            sent = counts.sent,
            transient = counts.transient,
            permanent = counts.permanent,
            deferred = counts.deferred,
            expired = counts.expired,
            abandoned = counts.abandoned,
            duplicate = counts.duplicate,
            circuit_open = report.circuit.open_at_end,
            dead_lettered = counts.dead_lettered,
            redelivery_delayed = delayed.len(),
            longest_delay_seconds = delayed.iter().max().copied(),
            reported_failures = report.failed_message_ids().len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0,
            "batch done"
        );
        if let Some(metrics) = &self.metrics {
            metrics.emit(&report);
        }
        Ok(report)
    }
}

fn records_of(event: &SqsEvent) -> Result<Vec<Record<'_>>, EventError> {
    event
        .records
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let message_id = message
                .message_id
                .as_deref()
                .filter(|id| !id.is_empty())
                .ok_or(EventError::MissingMessageId { index })?;
            Ok(Record {
                message_id,
                body: message.body.as_deref(),
                receive_count: record::receive_count(message),
                fifo_group: record::fifo_group(message),
                sent_at: record::sent_at(message),
                idempotency_key: record::idempotency_key(message, message_id),
            })
        })
        .collect()
}

/// Before 2001-09-09 in epoch milliseconds: no real deadline is that early.
const EARLIEST_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;

/// Lambda gives `Lambda-Runtime-Deadline-Ms` in Unix epoch milliseconds. Some runtime
/// emulators (cargo-lambda's among them) send the time left instead, `600000`; read as a
/// date that is 1970, and every record would be deferred. A value too small to be a date is
/// read as the milliseconds left.
fn deadline_of(deadline_ms: u64) -> SystemTime {
    if deadline_ms < EARLIEST_EPOCH_DEADLINE_MS {
        tracing::debug!(
            deadline_ms,
            "deadline is not an epoch time; reading it as the time left"
        );
        SystemTime::now() + std::time::Duration::from_millis(deadline_ms)
    } else {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(deadline_ms)
    }
}

/// Lambda gives the deadline as wall-clock time; timers need a monotonic instant.
fn instant_of(deadline: SystemTime) -> Instant {
    let remaining = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Instant::now() + remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> SqsEvent {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn receive_count_and_fifo_group_come_from_the_attributes() {
        let event = event(serde_json::json!({"Records": [
            {"messageId": "m1", "body": "{}", "attributes": {"ApproximateReceiveCount": "3", "MessageGroupId": "g"},
             "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:calls.fifo"},
            {"messageId": "m2", "body": "{}", "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "g"},
             "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:calls"}
        ]}));
        let records = records_of(&event).unwrap();
        assert_eq!(records[0].receive_count, Some(3));
        assert_eq!(records[0].fifo_group, Some("g"));
        assert_eq!(
            records[1].fifo_group, None,
            "a standard queue has no ordering to keep"
        );
    }

    #[test]
    fn a_record_without_a_message_id_refuses_the_event() {
        let event = event(serde_json::json!({"Records": [
            {"messageId": "m1", "body": "{}"},
            {"messageId": "", "body": "{}"}
        ]}));
        assert_eq!(
            records_of(&event).unwrap_err(),
            EventError::MissingMessageId { index: 1 }
        );
    }

    #[test]
    fn an_epoch_deadline_is_a_date_and_a_small_one_is_the_time_left() {
        let epoch_ms = 1_795_548_578_445;
        assert_eq!(
            deadline_of(epoch_ms),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(epoch_ms)
        );
        let left = deadline_of(600_000)
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(
            left > std::time::Duration::from_secs(599)
                && left <= std::time::Duration::from_secs(600)
        );
    }

    #[test]
    fn a_past_deadline_is_now() {
        let before = Instant::now();
        let instant = instant_of(SystemTime::UNIX_EPOCH);
        assert!(instant >= before && instant <= Instant::now());
    }
}
