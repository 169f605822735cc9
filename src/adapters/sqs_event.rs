//! Lambda's SQS record read into the core's [`Record`]: every fact the engine and the
//! settlement use, read the same way everywhere.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsMessage;

use crate::core::dead_letter::FIRST_SENT_ATTRIBUTE;
use crate::core::record::{Attribute, Record};
use crate::core::redial::{self, CallOf};

/// The core's record for `message`, whose id is `message_id` (checked by the caller).
pub fn record_of<'a>(message: &'a SqsMessage, message_id: &'a str) -> Record<'a> {
    let mut attributes: Vec<(&str, Attribute<'_>)> = message
        .message_attributes
        .iter()
        .map(|(name, value)| {
            (
                name.as_str(),
                Attribute {
                    data_type: value.data_type.as_deref(),
                    string_value: value.string_value.as_deref(),
                    binary_value: value.binary_value.as_ref().map(|b| b.0.as_slice()),
                },
            )
        })
        .collect();
    attributes.sort_by_key(|(name, _)| *name);
    Record {
        message_id,
        body: message.body.as_deref(),
        receive_count: receive_count(message),
        fifo_group: fifo_group(message),
        sent_at: sent_at(message),
        idempotency_key: idempotency_key(message, message_id),
        queue_arn: message.event_source_arn.as_deref(),
        receipt_handle: message.receipt_handle.as_deref(),
        first_received_at: first_received_at(message),
        first_sent_at: first_sent_at(message),
        redial: redial_of(message),
        attributes,
    }
}

/// When the request was first sent, as a dead letter's `DispatchFirstSent` (a `Number`,
/// epoch milliseconds) says; a value that is not one counts for nothing.
pub fn first_sent_at(message: &SqsMessage) -> Option<SystemTime> {
    message
        .message_attributes
        .get(FIRST_SENT_ATTRIBUTE)
        .filter(|attribute| attribute.data_type.as_deref() == Some("Number"))
        .and_then(|attribute| attribute.string_value.as_deref())
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Which call of which request a redial is, from the attributes the status path sets on it
/// (`DispatchRedialCall`, a `Number` from 2 to 5; `DispatchRedialRequest`, a `String`, the
/// request's ledger key; `DispatchRedialAt`, a `Number`, when its interval is longer than
/// SQS's longest delay). Both of the first two or none: a record without them is a first call.
pub fn redial_of(message: &SqsMessage) -> Option<CallOf<'_>> {
    let attribute = |name: &str, data_type: &str| {
        message
            .message_attributes
            .get(name)
            .filter(|attribute| attribute.data_type.as_deref() == Some(data_type))
            .and_then(|attribute| attribute.string_value.as_deref())
    };
    let call = attribute(redial::CALL_ATTRIBUTE, "Number")?
        .trim()
        .parse::<u8>()
        .ok()
        .filter(|call| (2..=redial::MAX_CALLS).contains(call))?;
    let request_key = attribute(redial::REQUEST_ATTRIBUTE, "String")
        .filter(|key| !key.is_empty() && key.len() <= MAX_REQUEST_KEY_BYTES)?;
    let at_ms = attribute(redial::AT_ATTRIBUTE, "Number").and_then(|ms| ms.trim().parse().ok());
    Some(CallOf {
        call,
        request_key,
        at_ms,
    })
}

/// The longest request key a redial names: a stored key is at most 512 bytes, or a hash.
const MAX_REQUEST_KEY_BYTES: usize = 600;

/// How many times SQS has delivered the record, this delivery included.
pub fn receive_count(message: &SqsMessage) -> Option<u32> {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
}

/// When the producer sent the record: its `SentTimestamp` attribute, epoch milliseconds.
pub fn sent_at(message: &SqsMessage) -> Option<SystemTime> {
    message
        .attributes
        .get("SentTimestamp")
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// When SQS first delivered the record: its `ApproximateFirstReceiveTimestamp` attribute.
pub fn first_received_at(message: &SqsMessage) -> Option<SystemTime> {
    message
        .attributes
        .get("ApproximateFirstReceiveTimestamp")
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

pub use crate::core::dead_letter::IDEMPOTENCY_KEY_ATTRIBUTE;

/// The key the idempotency ledger knows a record by: the producer's `IdempotencyKey` (a
/// String message attribute), else on a FIFO queue its `MessageDeduplicationId` (scoped to
/// the queue and the message group, as SQS may scope it per group and several queues may
/// share a table), else its SQS `messageId`.
pub fn idempotency_key<'a>(message: &'a SqsMessage, message_id: &'a str) -> Cow<'a, str> {
    let producers = message
        .message_attributes
        .get(IDEMPOTENCY_KEY_ATTRIBUTE)
        .filter(|attribute| attribute.data_type.as_deref() == Some("String"))
        .and_then(|attribute| attribute.string_value.as_deref())
        .filter(|key| !key.is_empty());
    if let Some(key) = producers {
        return Cow::Borrowed(key);
    }
    let deduplication = is_fifo(message)
        .then(|| message.attributes.get("MessageDeduplicationId"))
        .flatten()
        .filter(|key| !key.is_empty());
    match deduplication {
        Some(id) => Cow::Owned(format!(
            "fifo:{}:{}:{id}",
            message.event_source_arn.as_deref().unwrap_or_default(),
            fifo_group(message).unwrap_or_default()
        )),
        None => Cow::Borrowed(message_id),
    }
}

/// Whether the record comes from a FIFO queue: its queue ARN ends in `.fifo`.
pub fn is_fifo(message: &SqsMessage) -> bool {
    message
        .event_source_arn
        .as_deref()
        .is_some_and(|arn| arn.ends_with(".fifo"))
}

/// The `MessageGroupId` of a record from a FIFO queue; `None` for a standard queue, where
/// there is no order to keep.
pub fn fifo_group(message: &SqsMessage) -> Option<&str> {
    if is_fifo(message) {
        message.attributes.get("MessageGroupId").map(String::as_str)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(arn: &str, attributes: serde_json::Value) -> SqsMessage {
        serde_json::from_value(serde_json::json!({
            "messageId": "m", "eventSourceARN": arn, "attributes": attributes
        }))
        .unwrap()
    }

    #[test]
    fn the_receive_count_comes_from_the_attributes() {
        let m = message(
            "arn:aws:sqs:us-east-1:1:q",
            serde_json::json!({"ApproximateReceiveCount": "4"}),
        );
        assert_eq!(receive_count(&m), Some(4));
        let m = message(
            "arn:aws:sqs:us-east-1:1:q",
            serde_json::json!({"ApproximateReceiveCount": "x"}),
        );
        assert_eq!(receive_count(&m), None);
    }

    #[test]
    fn the_send_time_comes_from_the_sent_timestamp_in_epoch_milliseconds() {
        let m = message(
            "arn:aws:sqs:us-east-1:1:q",
            serde_json::json!({"SentTimestamp": "1764000000123"}),
        );
        assert_eq!(
            sent_at(&m),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123))
        );
        let m = message(
            "arn:aws:sqs:us-east-1:1:q",
            serde_json::json!({"SentTimestamp": "soon"}),
        );
        assert_eq!(sent_at(&m), None);
    }

    #[test]
    fn the_first_send_comes_from_a_number_attribute_and_counts_when_earlier() {
        let with = |attribute: serde_json::Value| -> SqsMessage {
            serde_json::from_value(serde_json::json!({
                "messageId": "m",
                "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                "attributes": {"SentTimestamp": "1764000000000"},
                "messageAttributes": {"DispatchFirstSent": attribute}
            }))
            .unwrap()
        };
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let earlier =
            with(serde_json::json!({"dataType": "Number", "stringValue": "1763990000000"}));
        let record = record_of(&earlier, "m");
        assert_eq!(record.first_sent_at, Some(at(1_763_990_000_000)));
        assert_eq!(record.first_sent(), Some(at(1_763_990_000_000)));
        // Later than SentTimestamp: a message's life is never extended.
        let later = with(serde_json::json!({"dataType": "Number", "stringValue": "1764009999000"}));
        assert_eq!(
            record_of(&later, "m").first_sent(),
            Some(at(1_764_000_000_000))
        );
        for bad in [
            serde_json::json!({"dataType": "String", "stringValue": "1763990000000"}),
            serde_json::json!({"dataType": "Number", "stringValue": "yesterday"}),
        ] {
            assert_eq!(record_of(&with(bad), "m").first_sent_at, None);
        }
    }

    #[test]
    fn the_idempotency_key_is_the_producers_then_the_fifo_deduplication_id_then_the_message_id() {
        let with_attribute = |arn: &str, attributes: serde_json::Value, key: serde_json::Value| {
            serde_json::from_value::<SqsMessage>(serde_json::json!({
                "messageId": "m", "eventSourceARN": arn, "attributes": attributes,
                "messageAttributes": key
            }))
            .unwrap()
        };
        let dedup = serde_json::json!({"MessageDeduplicationId": "d", "MessageGroupId": "g"});
        let producer = serde_json::json!({"IdempotencyKey": {"dataType": "String", "stringValue": "order-42"}});
        let m = with_attribute(
            "arn:aws:sqs:us-east-1:1:q.fifo",
            dedup.clone(),
            producer.clone(),
        );
        assert_eq!(idempotency_key(&m, "m"), "order-42");
        let m = with_attribute(
            "arn:aws:sqs:us-east-1:1:q.fifo",
            dedup.clone(),
            serde_json::json!({}),
        );
        assert_eq!(
            idempotency_key(&m, "m"),
            "fifo:arn:aws:sqs:us-east-1:1:q.fifo:g:d",
            "scoped to its queue and group"
        );
        let m = with_attribute("arn:aws:sqs:us-east-1:1:q", dedup, serde_json::json!({}));
        assert_eq!(
            idempotency_key(&m, "m"),
            "m",
            "a standard queue has no deduplication id"
        );
        let binary =
            serde_json::json!({"IdempotencyKey": {"dataType": "Binary", "binaryValue": "AAEC"}});
        let m = with_attribute("arn:aws:sqs:us-east-1:1:q", serde_json::json!({}), binary);
        assert_eq!(
            idempotency_key(&m, "m"),
            "m",
            "only a String attribute names the key"
        );
    }

    #[test]
    fn only_fifo_queues_have_groups() {
        let attrs = serde_json::json!({"MessageGroupId": "g"});
        assert_eq!(
            fifo_group(&message("arn:aws:sqs:us-east-1:1:q.fifo", attrs.clone())),
            Some("g")
        );
        assert_eq!(
            fifo_group(&message("arn:aws:sqs:us-east-1:1:q", attrs)),
            None
        );
    }

    #[test]
    fn a_redial_is_known_by_its_reserved_attributes_and_nothing_less() {
        let with = |attributes: serde_json::Value| -> SqsMessage {
            serde_json::from_value(serde_json::json!({
                "messageId": "m", "messageAttributes": attributes
            }))
            .unwrap()
        };
        let call = |value: &str| serde_json::json!({"stringValue": value, "dataType": "Number"});
        let key = serde_json::json!({"stringValue": "order-42", "dataType": "String"});
        let m = with(serde_json::json!({
            "DispatchRedialCall": call("3"), "DispatchRedialRequest": key,
            "DispatchRedialAt": call("1796500000000")
        }));
        assert_eq!(
            redial_of(&m),
            Some(CallOf {
                call: 3,
                request_key: "order-42",
                at_ms: Some(1_796_500_000_000)
            })
        );
        assert_eq!(record_of(&m, "m").ledger_key(), "redial#3#order-42");
        for (name, attributes) in [
            (
                "no request",
                serde_json::json!({"DispatchRedialCall": call("2")}),
            ),
            ("no call", serde_json::json!({"DispatchRedialRequest": key})),
            (
                "call 1",
                serde_json::json!({"DispatchRedialCall": call("1"), "DispatchRedialRequest": key}),
            ),
            (
                "call 6",
                serde_json::json!({"DispatchRedialCall": call("6"), "DispatchRedialRequest": key}),
            ),
            (
                "a String call",
                serde_json::json!({
                    "DispatchRedialCall": {"stringValue": "2", "dataType": "String"},
                    "DispatchRedialRequest": key
                }),
            ),
        ] {
            let m = with(attributes);
            assert_eq!(redial_of(&m), None, "{name}");
            assert_eq!(record_of(&m, "m").ledger_key(), "m", "{name}");
        }
    }
}
