//! Recognising a status-queue body: a voice delivery event in any of its three envelopes
//! (an EventBridge event, an SNS notification, the bare record of SNS raw delivery; v1 or v2
//! event types), or the function's own outcome timer. Anything else is a call request, for
//! the call path to read as today.
//!
//! Only the call's id, the event type and its time are kept: never the destination number
//! or the context.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub use crate::core::delivery::StatusMessage;
use crate::core::delivery::{CallStatus, Check, DeliveryEvent};

/// EventBridge's detail-type for voice delivery events.
pub const VOICE_DETAIL_TYPE: &str = "Voice Message Delivery Status Updated";
/// The member that makes a body an outcome timer.
pub const CHECK_MEMBER: &str = "VoiceDispatchCheck";

/// Reads `body` as a status message; `None` when it is none (a call request, valid or not).
pub fn recognise(body: &str) -> Option<StatusMessage> {
    // Cheap first: a call body has none of these members.
    let marked = ["\"eventType\"", "\"detail-type\"", "\"Type\"", CHECK_MEMBER]
        .iter()
        .any(|marker| body.contains(marker));
    if !marked {
        return None;
    }
    let value: Value = serde_json::from_str(body).ok()?;
    let object = value.as_object()?;
    if let Some(check) = object.get(CHECK_MEMBER) {
        return Some(read_check(check));
    }
    if let Some(detail_type) = object.get("detail-type") {
        if detail_type.as_str() != Some(VOICE_DETAIL_TYPE) {
            return Some(StatusMessage::Malformed(
                "an EventBridge event that is not a voice delivery status".into(),
            ));
        }
        return Some(read_record(object.get("detail")));
    }
    let sns_type = object.get("Type").and_then(Value::as_str);
    if matches!(
        sns_type,
        Some("SubscriptionConfirmation" | "UnsubscribeConfirmation")
    ) {
        return Some(StatusMessage::Malformed(
            "an SNS subscription message, not an event: confirm the subscription with its SubscribeURL".into(),
        ));
    }
    if sns_type == Some("Notification") {
        let inner = object
            .get("Message")
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        return Some(match inner {
            Some(record) => read_record(Some(&record)),
            None => StatusMessage::Malformed(
                "an SNS notification whose Message is not a JSON event".into(),
            ),
        });
    }
    if object.contains_key("eventType") {
        return Some(read_record(Some(&value)));
    }
    None
}

/// A delivery record, v1 or v2: `messageId`, `eventType` and `eventTimestamp` are needed.
fn read_record(record: Option<&Value>) -> StatusMessage {
    let Some(record) = record.and_then(Value::as_object) else {
        return StatusMessage::Malformed("the event has no record".into());
    };
    let call_id = record
        .get("messageId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 256);
    let Some(call_id) = call_id else {
        return StatusMessage::Malformed("the event has no messageId".into());
    };
    let Some(event_type) = record.get("eventType").and_then(Value::as_str) else {
        return StatusMessage::Malformed("the event has no eventType".into());
    };
    let Some(status) = CallStatus::parse(event_type) else {
        return StatusMessage::Malformed(format!(
            "eventType {:?} is not a voice call status",
            crate::core::redact::scrub_phone_numbers(truncated(event_type))
        ));
    };
    let at_ms = match record.get("eventTimestamp") {
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) => text.parse().ok(),
        _ => None,
    };
    let Some(at_ms) = at_ms else {
        return StatusMessage::Malformed("the event has no eventTimestamp in epoch ms".into());
    };
    StatusMessage::Event(DeliveryEvent {
        call_id: call_id.to_owned(),
        status,
        at_ms,
    })
}

fn truncated(word: &str) -> &str {
    let end = word
        .char_indices()
        .nth(40)
        .map_or(word.len(), |(index, _)| index);
    &word[..end]
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CheckBody {
    outcome_key: String,
    request_key: String,
    due: u64,
}

fn read_check(value: &Value) -> StatusMessage {
    match CheckBody::deserialize(value) {
        Ok(check) => StatusMessage::Check(Check {
            outcome_key: check.outcome_key,
            request_key: check.request_key,
            due_ms: check.due,
            delay: Duration::ZERO,
        }),
        Err(_) => StatusMessage::Malformed(
            "an outcome timer without OutcomeKey, RequestKey and Due".into(),
        ),
    }
}

/// A timer's body, as [`recognise`] reads it back.
pub fn check_body(check: &Check) -> String {
    serde_json::json!({
        CHECK_MEMBER: {
            "OutcomeKey": check.outcome_key,
            "RequestKey": check.request_key,
            "Due": check.due_ms,
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v2_record() -> Value {
        json!({
            "eventType": "VOICE_BUSY", "eventVersion": "1.0", "eventTimestamp": 1_764_000_000_123u64,
            "isFinal": true, "originationPhoneNumber": "+12065550100",
            "destinationPhoneNumber": "+12065550142", "isoCountryCode": "US",
            "messageId": "call-1", "messageRequestTimestamp": 1_764_000_000_000u64,
            "messageStatus": "BUSY", "messageStatusDescription": "busy"
        })
    }

    fn busy() -> StatusMessage {
        StatusMessage::Event(DeliveryEvent {
            call_id: "call-1".into(),
            status: CallStatus::Busy,
            at_ms: 1_764_000_000_123,
        })
    }

    #[test]
    fn all_three_envelopes_read_as_the_same_event() {
        let record = v2_record();
        let eventbridge = json!({
            "version": "0", "id": "e-1", "detail-type": VOICE_DETAIL_TYPE,
            "source": "aws.sms-voice", "account": "123456789012", "region": "us-east-1",
            "time": "2025-11-24T16:00:00Z", "resources": [], "detail": record
        });
        let sns = json!({
            "Type": "Notification", "MessageId": "sns-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:voice-events",
            "Message": record.to_string(), "Timestamp": "2025-11-24T16:00:00.000Z"
        });
        for body in [eventbridge, sns, record] {
            assert_eq!(recognise(&body.to_string()), Some(busy()), "{body}");
        }
    }

    #[test]
    fn v1_types_without_context_read_like_v2() {
        let v1 = json!({"eventType": "COMPLETED_CALL", "messageId": "call-1", "eventTimestamp": "1764000000123"});
        assert_eq!(
            recognise(&v1.to_string()),
            Some(StatusMessage::Event(DeliveryEvent {
                call_id: "call-1".into(),
                status: CallStatus::Completed,
                at_ms: 1_764_000_000_123
            }))
        );
    }

    #[test]
    fn a_call_body_is_not_a_status_message() {
        for body in [
            r#"{"DestinationPhoneNumber":"+12065550142","Content":{"PlainTextMessage":{"Text":"hi"}}}"#,
            r#"{"DestinationPhoneNumber":"+12065550142","MessageBody":"hi","MessageBodyTextType":"TEXT"}"#,
            "not json",
            "",
        ] {
            assert_eq!(recognise(body), None, "{body}");
        }
    }

    #[test]
    fn an_unreadable_event_is_malformed_and_says_why_without_its_values() {
        let cases = [
            (
                json!({"eventType": "VOICE_BUSY", "eventTimestamp": 1}),
                "no messageId",
            ),
            (
                json!({"eventType": "SMS_DELIVERED", "messageId": "m", "eventTimestamp": 1}),
                "not a voice call status",
            ),
            (
                json!({"eventType": "VOICE_BUSY", "messageId": "m"}),
                "no eventTimestamp",
            ),
            (
                json!({"Type": "Notification", "Message": "+12065550142 not json"}),
                "not a JSON event",
            ),
            (
                json!({"detail-type": "Something Else", "detail": {}}),
                "not a voice delivery status",
            ),
            (
                json!({"VoiceDispatchCheck": {"OutcomeKey": "k"}}),
                "OutcomeKey, RequestKey and Due",
            ),
            (
                json!({"Type": "SubscriptionConfirmation", "SubscribeURL": "https://sns"}),
                "subscription",
            ),
        ];
        for (body, why) in cases {
            match recognise(&body.to_string()) {
                Some(StatusMessage::Malformed(reason)) => {
                    assert!(reason.contains(why), "{reason} / {why}");
                    assert!(!reason.contains("+1206"), "{reason}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_timer_reads_back_as_written() {
        let check = Check {
            outcome_key: "order-42".into(),
            request_key: "order-42".into(),
            due_ms: 1_764_000_360_000,
            delay: Duration::ZERO,
        };
        assert_eq!(
            recognise(&check_body(&check)),
            Some(StatusMessage::Check(check))
        );
    }
}
