//! The Lambda side: an SQS event in, read into the core's records, and the partial batch
//! response out.

use std::time::SystemTime;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use lambda_runtime::Context;

use crate::adapters::sqs_event::{self, Event};
use crate::adapters::status_event::{recognise, StatusMessage};
use crate::app::{ArmTimers, VoiceDispatch};
use crate::core::ports::{
    CallQueue, CheckQueue, DeadLetterQueue, Ledger, OutcomeBus, OutcomeLedger, RedeliveryDelay,
    VoiceSender,
};
use crate::core::record::Record;
use crate::core::report::BatchReport;
use crate::status::StatusDispatch;

/// Why a whole event is refused. Only an event Lambda itself would never send lands here:
/// refusing it before any call is placed makes SQS redeliver every record, none sent twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("record {index} has no messageId, so its fate could not be reported; refusing the batch before sending anything")]
    MissingMessageId { index: usize },
    /// Said by where and what kind, never by the text found there (a body's number): the
    /// path names only the SQS event's own members (any other key is `?`).
    #[error("the payload is not an SQS event ({kind} at {path}, line {line}, column {column}); refusing the batch before sending anything")]
    Unreadable {
        kind: &'static str,
        path: String,
        line: usize,
        column: usize,
    },
}

impl From<EventError> for lambda_runtime::Diagnostic {
    fn from(err: EventError) -> Self {
        let error_type = match err {
            EventError::MissingMessageId { .. } => "MissingMessageId",
            EventError::Unreadable { .. } => "UnreadableEvent",
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// The SQS event in an invocation's payload, borrowing from it. Read here, once, rather than
/// by the runtime (`adapters::payloads` takes the payload before the runtime reads it), which
/// reads every payload through `serde_path_to_error` (a path kept for each key of each
/// record, for an error message the function never needs). A payload that is no SQS event
/// is refused whole, as the runtime would.
pub fn sqs_event(payload: &[u8]) -> Result<Event<'_>, EventError> {
    // Read as text when it is UTF-8, as Lambda's JSON payloads are: checked once, whole,
    // rather than string by string as `from_slice` checks each (a fifth of the event's
    // reading). Otherwise read as bytes, which accepts and refuses the same payloads: its
    // error (or, for bytes only in a member the event does not keep, its event) as before.
    let read = match std::str::from_utf8(payload) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(payload),
    };
    read.map_err(|err| {
        let kind = match err.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "not the shape of one",
            serde_json::error::Category::Eof => "cut short",
        };
        logged(EventError::Unreadable {
            kind,
            path: event_path(payload),
            line: err.line(),
            column: err.column(),
        })
    })
}

/// `refused`, said in the log (at ERROR, without the payload's text) as it is returned.
fn logged(refused: EventError) -> EventError {
    tracing::error!(error = %refused, "event refused");
    refused
}

/// A payload refused before any of it was read: there is no place within it to name.
fn unread(kind: &'static str) -> EventError {
    logged(EventError::Unreadable {
        kind,
        path: ".".to_owned(),
        line: 0,
        column: 0,
    })
}

/// The members of Lambda's SQS event, the only keys an error's path names.
pub(crate) const EVENT_MEMBERS: &[&str] = &[
    "Records",
    "messageId",
    "receiptHandle",
    "body",
    "md5OfBody",
    "md5OfMessageAttributes",
    "attributes",
    "messageAttributes",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
    "stringValue",
    "binaryValue",
    "stringListValues",
    "binaryListValues",
    "dataType",
];

/// Where in `text` reading it as an SQS event fails, read again (only for a payload
/// refused) with the path kept: `Records.3.attributes`, say.
fn event_path(text: &[u8]) -> String {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    match serde_path_to_error::deserialize::<_, Event<'_>>(&mut deserializer) {
        Err(err) => crate::core::contract::named_path(err.path(), EVENT_MEMBERS),
        Ok(_) => ".".to_owned(),
    }
}

impl<S: VoiceSender, D: DeadLetterQueue, R: RedeliveryDelay, L: Ledger, T: ArmTimers>
    VoiceDispatch<S, D, R, L, T>
{
    /// The Lambda entry point.
    pub async fn handle_lambda(
        &self,
        payload: Option<Bytes>,
        context: &Context,
    ) -> Result<SqsBatchResponse, EventError> {
        let payload = taken(payload)?;
        let sqs = sqs_event(&payload)?;
        let deadline = deadline_of(context.deadline);
        let report = self.handle_event(&sqs, deadline).await?;
        Ok(report.to_response())
    }

    /// Runs one event against `deadline` (wall-clock, as Lambda gives it).
    pub async fn handle_event(
        &self,
        event: &Event<'_>,
        deadline: SystemTime,
    ) -> Result<BatchReport, EventError> {
        let records = records_of(event).map_err(logged)?;
        Ok(self.run(&records, deadline).await)
    }

    /// Runs an `aws_lambda_events` SQS event (tests and the local runner build them), read
    /// as Lambda's payload is: written out as JSON, and read back as the function reads it.
    pub async fn handle(
        &self,
        event: &SqsEvent,
        deadline: SystemTime,
    ) -> Result<BatchReport, EventError> {
        let text = serde_json::to_string(event).map_err(|_| unread("unreadable"))?;
        self.handle_event(&sqs_event(text.as_bytes())?, deadline)
            .await
    }
}

/// The Lambda entry point with delivery outcomes on: one binary for the call queue and the
/// status queue. A record is routed by the queue it came from: the status queue's
/// (`status_queue_url`) to the status path, where a body that is neither a delivery event
/// nor an outcome timer is dead-lettered as `MalformedEvent`; every other record (a call,
/// valid or not) to the call path, as without outcomes. So a body shaped like a timer on the
/// call queue is a bad call, never a status message under the call function's role. Both
/// paths run against the same deadline; the answer lists what either keeps.
pub async fn handle_routed<C, O, B, Q, D, R, K>(
    calls: &C,
    status: &StatusDispatch<O, B, Q, D, R, K>,
    status_queue_url: &str,
    payload: Option<Bytes>,
    context: &Context,
) -> Result<SqsBatchResponse, EventError>
where
    C: CallPath,
    O: OutcomeLedger,
    B: OutcomeBus,
    Q: CheckQueue,
    D: DeadLetterQueue,
    R: RedeliveryDelay,
    K: CallQueue,
{
    let payload = taken(payload)?;
    let sqs = sqs_event(&payload)?;
    let deadline = deadline_of(context.deadline);
    let records = records_of(&sqs).map_err(logged)?;
    let (mut call_records, mut status_records, mut messages) = (Vec::new(), Vec::new(), Vec::new());
    let status_queue = status_queue_url.rsplit('/').next().unwrap_or_default();
    for record in records {
        let from_status_queue = record
            .queue_arn
            .is_some_and(|arn| arn.rsplit(':').next() == Some(status_queue));
        if !from_status_queue {
            call_records.push(record);
            continue;
        }
        messages.push(record.body.and_then(recognise).unwrap_or_else(|| {
            StatusMessage::Malformed("neither a delivery event nor an outcome timer".into())
        }));
        status_records.push(record);
    }
    let calls_done = async {
        if call_records.is_empty() {
            BatchReport::default()
        } else {
            calls.run_calls(&call_records, deadline).await
        }
    };
    let status_done = async {
        if status_records.is_empty() {
            BatchReport::default()
        } else {
            status.run(&status_records, &messages, deadline).await
        }
    };
    let (mut report, status_report) = tokio::join!(calls_done, status_done);
    report.outcomes.extend(status_report.outcomes);
    Ok(report.to_response())
}

/// The call path as the router sees it.
pub trait CallPath: Sync {
    fn run_calls(
        &self,
        records: &[Record<'_>],
        deadline: SystemTime,
    ) -> impl std::future::Future<Output = BatchReport> + Send;
}

impl<S: VoiceSender, D: DeadLetterQueue, R: RedeliveryDelay, L: Ledger, T: ArmTimers> CallPath
    for VoiceDispatch<S, D, R, L, T>
{
    fn run_calls(
        &self,
        records: &[Record<'_>],
        deadline: SystemTime,
    ) -> impl std::future::Future<Output = BatchReport> + Send {
        self.run(records, deadline)
    }
}

/// The partial batch response a report makes.
pub trait ToResponse {
    fn to_response(&self) -> SqsBatchResponse;
}

impl ToResponse for BatchReport {
    /// Every record SQS must keep is listed.
    fn to_response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = self
            .reported_message_ids()
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.to_owned();
                failure
            })
            .collect();
        response
    }
}

/// The invocation's payload, as `adapters::payloads` took it; none (the layer not in front
/// of the runtime) is refused, as an event with nothing to read.
fn taken(payload: Option<Bytes>) -> Result<Bytes, EventError> {
    payload.ok_or_else(|| unread("missing"))
}

fn records_of<'a>(event: &'a Event<'a>) -> Result<Vec<Record<'a>>, EventError> {
    event
        .records
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let message_id = message
                .message_id()
                .filter(|id| !id.is_empty())
                .ok_or(EventError::MissingMessageId { index })?;
            Ok(sqs_event::record_of(message, message_id))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::{Fate, FateCounts, RecordOutcome};

    fn outcome(id: &str, fate: Fate) -> RecordOutcome {
        RecordOutcome::new(id, fate)
    }

    /// An event read from `json`'s text as the function reads a payload (the text kept for
    /// the test's life).
    fn event(json: serde_json::Value) -> Event<'static> {
        sqs_event(Box::leak(json.to_string().into_boxed_str()).as_bytes()).unwrap()
    }

    #[test]
    fn the_sample_events_read_as_the_runtime_would_read_them() {
        for name in [
            "fifo-two-groups",
            "hostile-bodies",
            "mixed-batch",
            "single-message",
        ] {
            let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            // The runtime's own reading: serde_path_to_error over serde_json.
            let runtimes: SqsEvent =
                serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
                    .unwrap();
            let ours = sqs_event(text.as_bytes()).unwrap();
            assert!(sqs_event::agrees(&ours, &runtimes), "{name}");
            assert!(!ours.records.is_empty(), "{name}");
        }
    }

    /// Read as text or as bytes, a payload is the same event or the same refusal, bytes that
    /// are not UTF-8 included: in a member the function keeps, in one it passes over, in a
    /// key, cut in the middle of a character.
    #[test]
    fn a_payload_reads_alike_as_text_and_as_bytes() {
        let valid = r#"{"Records":[{"messageId":"m-1","body":"{\"a\":\"\u00e9\u263a\"}","eventSource":"aws:sqs","attributes":{"ApproximateReceiveCount":"2"},"extra":"é☺"}]}"#;
        let mut payloads = vec![valid.as_bytes().to_vec()];
        for (needle, bad) in [
            ("m-1", &b"m-\xff"[..]),
            ("aws:sqs", &b"aws:\xc3"[..]),
            ("é☺\"", &b"\xed\xa0\x80\""[..]),
            ("extra", &b"ex\xfftra"[..]),
            ("☺\"}]}", &b"\xe2\x98"[..]),
        ] {
            let at = valid.find(needle).unwrap();
            let mut bytes = valid.as_bytes()[..at].to_vec();
            bytes.extend_from_slice(bad);
            if !needle.starts_with('☺') {
                bytes.extend_from_slice(&valid.as_bytes()[at + needle.len()..]);
            }
            payloads.push(bytes);
        }
        let as_bytes = |payload: &[u8]| {
            serde_json::from_slice::<Event<'_>>(payload)
                .map(|event| format!("{event:?}"))
                .map_err(|err| (err.classify(), err.line(), err.column()))
        };
        let mut read = 0;
        for payload in &payloads {
            let ours = sqs_event(payload).map(|event| format!("{event:?}"));
            match (ours, as_bytes(payload)) {
                (Ok(ours), Ok(theirs)) => {
                    read += 1;
                    assert_eq!(ours, theirs);
                }
                (Err(EventError::Unreadable { line, column, .. }), Err((_, l, c))) => {
                    assert_eq!((line, column), (l, c), "{payload:?}");
                }
                (ours, theirs) => panic!("{payload:?}: {ours:?} against {theirs:?}"),
            }
        }
        assert_eq!(
            read, 2,
            "the valid payload, and the one with bytes only in `extra`"
        );
    }

    #[test]
    fn a_payload_that_is_no_sqs_event_is_refused_whole_without_the_text_it_holds() {
        let shapes = [
            (
                r#"{"Records":[{"messageId":"m-1"},{"messageId":"m-2","attributes":"+12065550142"}]}"#,
                "not the shape of one",
                "Records.1.attributes",
            ),
            (
                r#"{"Records":[{"messageId":"m-1","messageAttributes":{"+12065550142":{"dataType":7}}}]}"#,
                "not the shape of one",
                "Records.0.messageAttributes.?.dataType",
            ),
            (
                r#"{"Records":"+12065550142"}"#,
                "not the shape of one",
                "Records",
            ),
            // The runtime no longer reads the payload first (adapters::payloads): text that
            // is not JSON, or is cut short, is refused here.
            (
                r#"{"Records":[{"messageId":"m-1","body":+12065550142}]}"#,
                "not JSON",
                "Records.0.body",
            ),
            (
                r#"{"Records":[{"messageId":"m-1","body":"+12065550142"#,
                "cut short",
                "Records.0.body",
            ),
        ];
        for (text, kind, path) in shapes {
            let refused = sqs_event(text.as_bytes()).map(|_| ()).unwrap_err();
            assert!(
                matches!(refused, EventError::Unreadable { kind: k, .. } if k == kind),
                "{text}: {refused:?}"
            );
            let said = refused.to_string();
            assert!(!said.contains("5550142"), "{said}");
            assert!(said.contains(path), "{said}");
            let diagnostic = lambda_runtime::Diagnostic::from(refused);
            assert_eq!(diagnostic.error_type, "UnreadableEvent");
        }
    }

    #[test]
    fn an_invocation_whose_payload_was_not_taken_is_refused_as_missing() {
        let refused = taken(None).unwrap_err();
        assert!(
            matches!(
                refused,
                EventError::Unreadable {
                    kind: "missing",
                    ..
                }
            ),
            "{refused:?}"
        );
        let diagnostic = lambda_runtime::Diagnostic::from(refused);
        assert_eq!(diagnostic.error_type, "UnreadableEvent");
        assert_eq!(&taken(Some(Bytes::from_static(b"{}"))).unwrap()[..], b"{}");
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
    fn every_fate_but_sent_and_duplicate_is_reported_once_in_event_order() {
        let report = BatchReport {
            outcomes: vec![
                outcome("a", Fate::Sent),
                outcome("b", Fate::Transient),
                outcome("c", Fate::Permanent),
                outcome("d", Fate::Deferred),
                outcome("b", Fate::Transient),
                outcome("e", Fate::Expired),
                outcome("f", Fate::Abandoned),
                outcome("g", Fate::Duplicate),
            ],
            ..Default::default()
        };
        let ids: Vec<String> = report
            .to_response()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(
            ids,
            ["b", "c", "d", "e", "f"],
            "a duplicate is done: SQS deletes it"
        );
        assert_eq!(
            report.counts(),
            FateCounts {
                sent: 1,
                transient: 2,
                permanent: 1,
                deferred: 1,
                expired: 1,
                abandoned: 1,
                duplicate: 1,
                dead_lettered: 0,
            }
        );
    }

    #[test]
    fn an_empty_batch_answers_an_empty_list() {
        let json = serde_json::to_value(BatchReport::default().to_response()).unwrap();
        assert_eq!(json, serde_json::json!({"batchItemFailures": []}));
    }
}
