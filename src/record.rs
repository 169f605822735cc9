//! Facts about an SQS record as Lambda delivers it, read the same way everywhere.

use aws_lambda_events::sqs::SqsMessage;

/// How many times SQS has delivered the record, this delivery included.
pub fn receive_count(message: &SqsMessage) -> Option<u32> {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
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
