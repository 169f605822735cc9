//! Facts about an SQS record as Lambda delivers it, read the same way everywhere.

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
}
