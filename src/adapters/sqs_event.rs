//! Facts about an SQS record as Lambda delivers it, read the same way everywhere.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsMessage;

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

/// The longest a receive can be before its invocation ends: Lambda's 15-minute timeout plus
/// the event source's longest batching window (5 minutes).
pub const RECEIVE_AGE_BOUND: std::time::Duration = std::time::Duration::from_secs(1_200);

/// SQS keeps a received message invisible at most 12 hours in all, counted from that receive,
/// and refuses a `ChangeMessageVisibility` past it ("you can continue to extend the visibility
/// timeout to a maximum of 12 hours"): the longest visibility timeout that can still be set at
/// `now`, in whole seconds. The receive's own time is not in the record; on the first receive
/// it is `ApproximateFirstReceiveTimestamp`, and no receive is older than
/// [`RECEIVE_AGE_BOUND`] while its invocation runs, so that bounds it otherwise.
pub fn visibility_left(message: &SqsMessage, now: SystemTime, ceiling_seconds: u32) -> u32 {
    let since_first =
        first_received_at(message).map(|first| now.duration_since(first).unwrap_or_default());
    let age = since_first.map_or(RECEIVE_AGE_BOUND, |since| since.min(RECEIVE_AGE_BOUND));
    u64::from(ceiling_seconds).saturating_sub(age.as_secs()) as u32
}

/// The message attribute a producer sets to name a call across its own retries.
pub const IDEMPOTENCY_KEY_ATTRIBUTE: &str = "IdempotencyKey";

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
    fn visibility_can_be_set_up_to_twelve_hours_from_this_receive() {
        let first_ms = 1_764_000_000_000u64;
        let m: SqsMessage = serde_json::from_value(serde_json::json!({
            "attributes": {"ApproximateFirstReceiveTimestamp": first_ms.to_string()}
        }))
        .unwrap();
        let at = |seconds: u64| {
            SystemTime::UNIX_EPOCH + Duration::from_millis(first_ms + seconds * 1_000)
        };
        // The first receive, 60 s into its invocation: 12 h from then.
        assert_eq!(visibility_left(&m, at(60), 43_200), 43_140);
        // A later receive (the first was hours ago): it is at most 20 minutes old.
        assert_eq!(visibility_left(&m, at(50_000), 43_200), 42_000);
        let unknown = SqsMessage::default();
        assert_eq!(visibility_left(&unknown, at(50_000), 43_200), 42_000);
        // Never zero: a backoff always holds.
        assert!(visibility_left(&m, at(1_000_000), 43_200) > 0);
    }
}
