//! The Lambda side: an SQS event in, the partial batch response out.

use std::time::{Instant as StdInstant, SystemTime};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use tokio::time::Instant;

use crate::engine::{BatchEngine, Record};
use crate::ports::VoiceSender;
use crate::report::BatchReport;

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

pub struct VoiceDispatch<S> {
    engine: BatchEngine<S>,
}

impl<S: VoiceSender> VoiceDispatch<S> {
    pub fn new(engine: BatchEngine<S>) -> Self {
        Self { engine }
    }

    /// The Lambda entry point.
    pub async fn handle_lambda(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, EventError> {
        let deadline = event.context.deadline();
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
        let report = self.engine.run(&records, instant_of(deadline)).await;
        let counts = report.counts();
        tracing::info!(
            records = records.len(),
            sent = counts.sent,
            transient = counts.transient,
            permanent = counts.permanent,
            deferred = counts.deferred,
            reported_failures = report.failed_message_ids().len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0,
            "batch done"
        );
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
                receive_count: message
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|count| count.parse().ok()),
                fifo_group: fifo_group(message),
            })
        })
        .collect()
}

/// Records of a FIFO queue (its ARN ends in `.fifo`) carry their `MessageGroupId`.
fn fifo_group(message: &SqsMessage) -> Option<&str> {
    let from_fifo_queue = message
        .event_source_arn
        .as_deref()
        .is_some_and(|arn| arn.ends_with(".fifo"));
    if from_fifo_queue {
        message.attributes.get("MessageGroupId").map(String::as_str)
    } else {
        None
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
    fn a_past_deadline_is_now() {
        let before = Instant::now();
        let instant = instant_of(SystemTime::UNIX_EPOCH);
        assert!(instant >= before && instant <= Instant::now());
    }
}
