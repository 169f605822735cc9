//! Delivery events, as the voice service emits them after it accepts a call: per
//! destination, scripted ([`EventScript`]) — answered, busy, no answer, failed, or none at
//! all; duplicated, reordered, before the call's answer reaches the caller, with or without
//! `context` — into a sink the test chooses ([`crate::FakeVoice::events`]), as bare records.
//! [`envelope`] wraps one the way it reaches a queue: an EventBridge event, an SNS
//! notification, or the bare record (SNS raw delivery).

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::ReceivedCall;

/// How a call ends, as its events tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEnd {
    /// Initiated, ringing, answered, completed.
    Answered,
    /// Initiated, busy.
    Busy,
    /// Initiated, ringing, no answer.
    NoAnswer,
    /// Initiated, failed.
    Failed,
    /// Initiated, then the service's own time to live ran out (v2's `VOICE_TTL_EXPIRED`).
    TtlExpired,
    /// Initiated, then the carrier never said: the service's `UNKNOWN` after 72 hours.
    Unknown,
    /// No event at all.
    Silent,
}

/// The events of a destination's calls.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventScript {
    pub end: CallEnd,
    /// How the destination's later calls end, in order (the second call's first); past the
    /// list, as its last. Empty: every call ends as `end`.
    #[serde(default)]
    pub then: Vec<CallEnd>,
    /// After the call is accepted, before the first event.
    #[serde(default)]
    pub delay_ms: u64,
    /// Every event twice.
    #[serde(default)]
    pub duplicate: bool,
    /// The events in reverse order.
    #[serde(default)]
    pub reorder: bool,
    /// v2: the call's `Context` in each event (AWS's own example has none).
    #[serde(default)]
    pub context: bool,
    /// Emitted before the call's answer leaves the fake: the events overtake it.
    #[serde(default)]
    pub before_answer: bool,
    /// With `before_answer`: how long the answer is then held, so the events surely arrive
    /// first.
    #[serde(default)]
    pub hold_answer_ms: u64,
}

impl EventScript {
    pub fn new(end: CallEnd) -> Self {
        Self {
            end,
            then: Vec::new(),
            delay_ms: 0,
            duplicate: false,
            reorder: false,
            context: false,
            before_answer: false,
            hold_answer_ms: 0,
        }
    }

    /// The destination's later calls end as `ends` say, in order.
    pub fn then(mut self, ends: &[CallEnd]) -> Self {
        self.then = ends.to_vec();
        self
    }

    /// How the destination's `nth` accepted call ends (0 for the first).
    pub fn end_of(&self, nth: usize) -> CallEnd {
        match nth {
            0 => self.end,
            n => self
                .then
                .get(n - 1)
                .or(self.then.last())
                .copied()
                .unwrap_or(self.end),
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay_ms = delay.as_millis() as u64;
        self
    }

    pub fn duplicated(mut self) -> Self {
        self.duplicate = true;
        self
    }

    pub fn reordered(mut self) -> Self {
        self.reorder = true;
        self
    }

    pub fn with_context(mut self) -> Self {
        self.context = true;
        self
    }

    pub fn before_answer(mut self) -> Self {
        self.before_answer = true;
        self
    }

    /// Emitted before the answer, which is then held for `hold`.
    pub fn before_answer_by(mut self, hold: Duration) -> Self {
        self.before_answer = true;
        self.hold_answer_ms = hold.as_millis() as u64;
        self
    }
}

/// The v2 and v1 words of each event a script can emit, and whether it is final.
const INITIATED: (&str, &str, bool) = ("VOICE_INITIATED", "INITIATED_CALL", false);
const RINGING: (&str, &str, bool) = ("VOICE_RINGING", "RINGING", false);
const ANSWERED: (&str, &str, bool) = ("VOICE_ANSWERED", "ANSWERED", false);
const COMPLETED: (&str, &str, bool) = ("VOICE_COMPLETED", "COMPLETED_CALL", true);
const BUSY: (&str, &str, bool) = ("VOICE_BUSY", "BUSY", true);
const NO_ANSWER: (&str, &str, bool) = ("VOICE_NO_ANSWER", "NO_ANSWER", true);
const FAILED: (&str, &str, bool) = ("VOICE_FAILED", "FAILED", true);
// v1 has no TTL event: its nearest is a failed call.
const TTL_EXPIRED: (&str, &str, bool) = ("VOICE_TTL_EXPIRED", "FAILED", true);
const UNKNOWN: (&str, &str, bool) = ("UNKNOWN", "UNKNOWN", true);

/// The records a script emits for one accepted call, in the order they go out.
pub fn records(script: &EventScript, call: &ReceivedCall, message_id: &str) -> Vec<Value> {
    let kinds: &[(&str, &str, bool)] = match script.end {
        CallEnd::Answered => &[INITIATED, RINGING, ANSWERED, COMPLETED],
        CallEnd::Busy => &[INITIATED, BUSY],
        CallEnd::NoAnswer => &[INITIATED, RINGING, NO_ANSWER],
        CallEnd::Failed => &[INITIATED, FAILED],
        CallEnd::TtlExpired => &[INITIATED, TTL_EXPIRED],
        CallEnd::Unknown => &[INITIATED, UNKNOWN],
        CallEnd::Silent => &[],
    };
    let requested_ms = epoch_ms(call.received_at);
    let mut records: Vec<Value> = kinds
        .iter()
        .enumerate()
        .map(|(index, (v2, v1, is_final))| {
            let at = requested_ms + script.delay_ms + 10 * index as u64;
            record(
                call,
                message_id,
                if call.api == "v2" { v2 } else { v1 },
                *is_final,
                at,
                requested_ms,
                script.context,
            )
        })
        .collect();
    if script.reorder {
        records.reverse();
    }
    if script.duplicate {
        records = records.into_iter().flat_map(|r| [r.clone(), r]).collect();
    }
    records
}

fn record(
    call: &ReceivedCall,
    message_id: &str,
    event_type: &str,
    is_final: bool,
    at_ms: u64,
    requested_ms: u64,
    with_context: bool,
) -> Value {
    let status = event_type.trim_start_matches("VOICE_");
    let mut record = json!({
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": at_ms,
        "isFinal": is_final,
        "originationPhoneNumber": call.origination.clone().unwrap_or_default(),
        "destinationPhoneNumber": call.destination,
        "isoCountryCode": "US",
        "messageId": message_id,
        "messageRequestTimestamp": requested_ms,
        "messageStatus": status,
        "messageStatusDescription": format!("the call is {}", status.to_ascii_lowercase()),
    });
    if with_context && call.api == "v2" && !call.context.is_empty() {
        record["context"] = call
            .context
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    record
}

fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// How a record reaches a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    EventBridge,
    Sns,
    Bare,
}

/// `record` as it arrives in a queue by `envelope`.
pub fn envelope(envelope: Envelope, record: &Value) -> String {
    match envelope {
        Envelope::EventBridge => json!({
            "version": "0",
            "id": format!("eb-{}", record["messageId"].as_str().unwrap_or_default()),
            "detail-type": "Voice Message Delivery Status Updated",
            "source": "aws.sms-voice",
            "account": "123456789012",
            "time": "2026-12-06T12:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": record,
        })
        .to_string(),
        Envelope::Sns => json!({
            "Type": "Notification",
            "MessageId": format!("sns-{}", record["messageId"].as_str().unwrap_or_default()),
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:voice-events",
            "Message": record.to_string(),
            "Timestamp": "2026-12-06T12:00:00.000Z",
            "SignatureVersion": "1",
        })
        .to_string(),
        Envelope::Bare => record.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(api: &'static str) -> ReceivedCall {
        ReceivedCall {
            destination: "+12065550142".into(),
            origination: Some("+12065550100".into()),
            caller_id: None,
            configuration_set: None,
            content_kind: "TEXT".into(),
            text: "t".into(),
            voice_id: None,
            language_code: None,
            api,
            time_to_live: None,
            context: vec![("IdempotencyKey".into(), "k".into())],
            v2_options: Default::default(),
            status: 200,
            received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000),
            signing_region: None,
            message_id: Some("m-1".into()),
        }
    }

    #[test]
    fn a_script_emits_each_api_its_own_types_duplicated_and_reordered_as_asked() {
        let types = |records: &[Value]| -> Vec<String> {
            records
                .iter()
                .map(|r| r["eventType"].as_str().unwrap().to_owned())
                .collect()
        };
        let busy = EventScript::new(CallEnd::Busy);
        assert_eq!(
            types(&records(&busy, &call("v2"), "m-1")),
            ["VOICE_INITIATED", "VOICE_BUSY"]
        );
        assert_eq!(
            types(&records(&busy, &call("v1"), "m-1")),
            ["INITIATED_CALL", "BUSY"]
        );
        let twice = EventScript::new(CallEnd::Busy).duplicated().reordered();
        assert_eq!(
            types(&records(&twice, &call("v2"), "m-1")),
            [
                "VOICE_BUSY",
                "VOICE_BUSY",
                "VOICE_INITIATED",
                "VOICE_INITIATED"
            ]
        );
        assert!(records(&EventScript::new(CallEnd::Silent), &call("v2"), "m-1").is_empty());
    }

    #[test]
    fn context_is_there_only_when_asked_and_only_under_v2() {
        let plain = records(&EventScript::new(CallEnd::Busy), &call("v2"), "m-1");
        assert!(plain[0].get("context").is_none());
        let with = records(
            &EventScript::new(CallEnd::Busy).with_context(),
            &call("v2"),
            "m-1",
        );
        assert_eq!(with[0]["context"]["IdempotencyKey"], "k");
        let v1 = records(
            &EventScript::new(CallEnd::Busy).with_context(),
            &call("v1"),
            "m-1",
        );
        assert!(v1[0].get("context").is_none());
    }

    #[test]
    fn the_three_envelopes_carry_the_record() {
        let record = records(&EventScript::new(CallEnd::Busy), &call("v2"), "m-1").remove(1);
        let eb: Value = serde_json::from_str(&envelope(Envelope::EventBridge, &record)).unwrap();
        assert_eq!(eb["detail"], record);
        let sns: Value = serde_json::from_str(&envelope(Envelope::Sns, &record)).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(sns["Message"].as_str().unwrap()).unwrap(),
            record
        );
        assert_eq!(envelope(Envelope::Bare, &record), record.to_string());
    }
}
