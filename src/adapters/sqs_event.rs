//! Lambda's SQS event, read borrowing from the invocation's payload, and each record read
//! into the core's [`Record`]: every fact the engine and the settlement use, read the same
//! way everywhere.
//!
//! The event is read into these types rather than `aws_lambda_events`' `SqsEvent`, which
//! holds every member of every record as a `String` and both attribute sets as `HashMap`s
//! (8,600 instructions a record more than this reading, callgrind; docs/performance.md).
//! These accept and refuse exactly what `SqsEvent` does (a test reads the same payloads
//! through both), keep what it keeps, and copy a string only when it holds an escape.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_lambda_events::encodings::Base64Data;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::core::dead_letter::FIRST_SENT_ATTRIBUTE;
use crate::core::record::{Attribute, Record};
use crate::core::redial::{self, CallOf};

/// Lambda's SQS event: its records.
#[derive(Debug, Deserialize)]
pub struct Event<'a> {
    #[serde(rename = "Records", borrow)]
    pub records: Vec<Message<'a>>,
}

/// One SQS record, as Lambda gives it. The members the function does not use are still
/// read, so that a payload `SqsEvent` refuses is refused here too.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message<'a> {
    #[serde(default, borrow)]
    pub message_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub receipt_handle: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub body: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub md5_of_body: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub md5_of_message_attributes: Option<Text<'a>>,
    /// SQS's own attributes (`null` reads as none).
    #[serde(default, borrow)]
    attributes: Option<Pairs<Text<'a>, Text<'a>>>,
    /// The producer's message attributes (`null` reads as none).
    #[serde(default, borrow)]
    message_attributes: Option<Pairs<Text<'a>, MessageAttribute<'a>>>,
    #[serde(default, borrow, rename = "eventSourceARN")]
    pub event_source_arn: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub event_source: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub aws_region: Option<Text<'a>>,
}

/// One message attribute.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttribute<'a> {
    #[serde(default, borrow)]
    pub string_value: Option<Text<'a>>,
    #[serde(default)]
    pub binary_value: Option<Base64Data>,
    #[serde(default, borrow)]
    pub string_list_values: Vec<Text<'a>>,
    #[serde(default)]
    pub binary_list_values: Vec<Base64Data>,
    #[serde(default, borrow)]
    pub data_type: Option<Text<'a>>,
}

/// A string of the payload: borrowed from it, or copied when it holds an escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seen;
        impl<'de> Visitor<'de> for Seen {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Seen)
    }
}

/// A JSON object's members in order. A name given twice counts once, with its last value,
/// as in the map `SqsEvent` reads it into.
#[derive(Debug, Default)]
pub struct Pairs<K, V>(Vec<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Pairs<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Members<K, V> {
            type Value = Pairs<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

impl<'a> Message<'a> {
    /// SQS's attribute `name` (the last, if the payload names it twice).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        let pairs = &self.attributes.as_ref()?.0;
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key.as_str() == name)
            .map(|(_, value)| value.as_str())
    }

    /// The message attribute `name` (the last, if the payload names it twice).
    pub fn message_attribute(&self, name: &str) -> Option<&MessageAttribute<'a>> {
        let pairs = &self.message_attributes.as_ref()?.0;
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key.as_str() == name)
            .map(|(_, value)| value)
    }

    /// Every message attribute once (the last of a name given twice), by name.
    fn message_attributes(&self) -> Vec<(&str, &MessageAttribute<'a>)> {
        let Some(pairs) = &self.message_attributes else {
            return Vec::new();
        };
        let mut all: Vec<(&str, &MessageAttribute<'a>)> = pairs
            .0
            .iter()
            .rev()
            .map(|(name, value)| (name.as_str(), value))
            .collect();
        // A stable sort keeps the last of each name first, and `dedup` keeps the first.
        all.sort_by_key(|(name, _)| *name);
        all.dedup_by_key(|(name, _)| *name);
        all
    }

    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_ref().map(Text::as_str)
    }

    pub fn body(&self) -> Option<&str> {
        self.body.as_ref().map(Text::as_str)
    }

    pub fn event_source_arn(&self) -> Option<&str> {
        self.event_source_arn.as_ref().map(Text::as_str)
    }

    pub fn receipt_handle(&self) -> Option<&str> {
        self.receipt_handle.as_ref().map(Text::as_str)
    }
}

impl MessageAttribute<'_> {
    /// Its string value when its data type is `data_type` (`Number`, `String`).
    fn typed(&self, data_type: &str) -> Option<&str> {
        (self.data_type.as_ref().map(Text::as_str) == Some(data_type))
            .then_some(self.string_value.as_ref()?.as_str())
    }
}

/// The core's record for `message`, whose id is `message_id` (checked by the caller).
pub fn record_of<'a>(message: &'a Message<'a>, message_id: &'a str) -> Record<'a> {
    let attributes: Vec<(&str, Attribute<'_>)> = message
        .message_attributes()
        .into_iter()
        .map(|(name, value)| {
            (
                name,
                Attribute {
                    data_type: value.data_type.as_ref().map(Text::as_str),
                    string_value: value.string_value.as_ref().map(Text::as_str),
                    binary_value: value.binary_value.as_ref().map(|b| b.0.as_slice()),
                },
            )
        })
        .collect();
    Record {
        message_id,
        body: message.body(),
        receive_count: receive_count(message),
        fifo_group: fifo_group(message),
        sent_at: sent_at(message),
        idempotency_key: idempotency_key(message, message_id),
        queue_arn: message.event_source_arn(),
        receipt_handle: message.receipt_handle(),
        first_received_at: first_received_at(message),
        first_sent_at: first_sent_at(message),
        redial: redial_of(message),
        attributes,
    }
}

/// When the request was first sent, as a dead letter's `DispatchFirstSent` (a `Number`,
/// epoch milliseconds) says; a value that is not one counts for nothing.
pub fn first_sent_at(message: &Message<'_>) -> Option<SystemTime> {
    message
        .message_attribute(FIRST_SENT_ATTRIBUTE)?
        .typed("Number")
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Which call of which request a redial is, from the attributes the status path sets on it
/// (`DispatchRedialCall`, a `Number` from 2 to 5; `DispatchRedialRequest`, a `String`, the
/// request's ledger key; `DispatchRedialAt`, a `Number`, when its interval is longer than
/// SQS's longest delay). Both of the first two or none: a record without them is a first call.
pub fn redial_of<'a>(message: &'a Message<'a>) -> Option<CallOf<'a>> {
    let attribute = |name: &str, data_type: &str| message.message_attribute(name)?.typed(data_type);
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
pub fn receive_count(message: &Message<'_>) -> Option<u32> {
    message
        .attribute("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
}

/// An attribute of epoch milliseconds, as a time.
fn epoch_ms_attribute(message: &Message<'_>, name: &str) -> Option<SystemTime> {
    message
        .attribute(name)
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// When the producer sent the record: its `SentTimestamp` attribute, epoch milliseconds.
pub fn sent_at(message: &Message<'_>) -> Option<SystemTime> {
    epoch_ms_attribute(message, "SentTimestamp")
}

/// When SQS first delivered the record: its `ApproximateFirstReceiveTimestamp` attribute.
pub fn first_received_at(message: &Message<'_>) -> Option<SystemTime> {
    epoch_ms_attribute(message, "ApproximateFirstReceiveTimestamp")
}

pub use crate::core::dead_letter::IDEMPOTENCY_KEY_ATTRIBUTE;

/// The key the idempotency ledger knows a record by: the producer's `IdempotencyKey` (a
/// String message attribute), else on a FIFO queue its `MessageDeduplicationId` (scoped to
/// the queue and the message group, as SQS may scope it per group and several queues may
/// share a table), else its SQS `messageId`.
pub fn idempotency_key<'a>(message: &'a Message<'a>, message_id: &'a str) -> Cow<'a, str> {
    let producers = message
        .message_attribute(IDEMPOTENCY_KEY_ATTRIBUTE)
        .and_then(|attribute| attribute.typed("String"))
        .filter(|key| !key.is_empty());
    if let Some(key) = producers {
        return Cow::Borrowed(key);
    }
    let deduplication = is_fifo(message)
        .then(|| message.attribute("MessageDeduplicationId"))
        .flatten()
        .filter(|key| !key.is_empty());
    match deduplication {
        Some(id) => Cow::Owned(format!(
            "fifo:{}:{}:{id}",
            message.event_source_arn().unwrap_or_default(),
            fifo_group(message).unwrap_or_default()
        )),
        None => Cow::Borrowed(message_id),
    }
}

/// Whether the record comes from a FIFO queue: its queue ARN ends in `.fifo`.
pub fn is_fifo(message: &Message<'_>) -> bool {
    message
        .event_source_arn()
        .is_some_and(|arn| arn.ends_with(".fifo"))
}

/// The `MessageGroupId` of a record from a FIFO queue; `None` for a standard queue, where
/// there is no order to keep.
pub fn fifo_group<'a>(message: &'a Message<'a>) -> Option<&'a str> {
    if is_fifo(message) {
        message.attribute("MessageGroupId")
    } else {
        None
    }
}

/// Whether `lean` holds what `aws_lambda_events` reads from the same payload: every member
/// of every record, and each attribute set as the map it makes (the last of a name given
/// twice).
#[cfg(test)]
pub fn agrees(lean: &Event<'_>, sqs: &aws_lambda_events::sqs::SqsEvent) -> bool {
    let text = |t: &Option<Text<'_>>| t.as_ref().map(|t| t.as_str().to_owned());
    type Seen = (
        Option<String>,
        Option<Vec<u8>>,
        Vec<String>,
        Vec<Vec<u8>>,
        Option<String>,
    );
    let ours_seen = |a: &MessageAttribute<'_>| -> Seen {
        (
            text(&a.string_value),
            a.binary_value.as_ref().map(|b| b.0.clone()),
            a.string_list_values
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            a.binary_list_values.iter().map(|b| b.0.clone()).collect(),
            text(&a.data_type),
        )
    };
    let theirs_seen = |a: &aws_lambda_events::sqs::SqsMessageAttribute| -> Seen {
        (
            a.string_value.clone(),
            a.binary_value.as_ref().map(|b| b.0.clone()),
            a.string_list_values.clone(),
            a.binary_list_values.iter().map(|b| b.0.clone()).collect(),
            a.data_type.clone(),
        )
    };
    lean.records.len() == sqs.records.len()
        && lean.records.iter().zip(&sqs.records).all(|(ours, theirs)| {
            // Read through the accessors the function uses: each name once, its last value.
            let distinct = |pairs: Option<Vec<&str>>| {
                let mut names = pairs.unwrap_or_default();
                names.sort_unstable();
                names.dedup();
                names.len()
            };
            let system_names = ours
                .attributes
                .as_ref()
                .map(|pairs| pairs.0.iter().map(|(k, _)| k.as_str()).collect());
            let attributes_agree = distinct(system_names) == theirs.attributes.len()
                && theirs
                    .attributes
                    .iter()
                    .all(|(name, value)| ours.attribute(name) == Some(value.as_str()));
            let listed = ours.message_attributes();
            let message_attributes_agree = listed.len() == theirs.message_attributes.len()
                && listed.windows(2).all(|pair| pair[0].0 < pair[1].0)
                && listed.iter().all(|(name, attribute)| {
                    theirs
                        .message_attributes
                        .get(*name)
                        .is_some_and(|a| theirs_seen(a) == ours_seen(attribute))
                        && ours
                            .message_attribute(name)
                            .is_some_and(|a| ours_seen(a) == ours_seen(attribute))
                });
            text(&ours.message_id) == theirs.message_id
                && text(&ours.receipt_handle) == theirs.receipt_handle
                && text(&ours.body) == theirs.body
                && text(&ours.md5_of_body) == theirs.md5_of_body
                && text(&ours.md5_of_message_attributes) == theirs.md5_of_message_attributes
                && text(&ours.event_source_arn) == theirs.event_source_arn
                && text(&ours.event_source) == theirs.event_source
                && text(&ours.aws_region) == theirs.aws_region
                && attributes_agree
                && message_attributes_agree
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record read from `json`'s text, as the Lambda adapter reads it (the text kept for
    /// the test's life).
    fn parse(json: serde_json::Value) -> Message<'static> {
        serde_json::from_str(Box::leak(json.to_string().into_boxed_str())).unwrap()
    }

    fn message(arn: &str, attributes: serde_json::Value) -> Message<'static> {
        parse(serde_json::json!({
            "messageId": "m", "eventSourceARN": arn, "attributes": attributes
        }))
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
        let with = |attribute: serde_json::Value| -> Message<'static> {
            parse(serde_json::json!({
                "messageId": "m",
                "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                "attributes": {"SentTimestamp": "1764000000000"},
                "messageAttributes": {"DispatchFirstSent": attribute}
            }))
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
            parse(serde_json::json!({
                "messageId": "m", "eventSourceARN": arn, "attributes": attributes,
                "messageAttributes": key
            }))
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
        let with = |attributes: serde_json::Value| -> Message<'static> {
            parse(serde_json::json!({
                "messageId": "m", "messageAttributes": attributes
            }))
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

    use proptest::prelude::*;

    /// Values a member may hold: strings plain and escaped, and every other JSON kind.
    const VALUES: &[&str] = &[
        r#""plain""#,
        r#""esc\"aped\u00e9\n""#,
        "null",
        "7",
        "true",
        "[]",
        r#"["a"]"#,
        "{}",
        r#"{"k":"v"}"#,
        r#"{"k":"v","k":"w"}"#,
        r#"{"k":7}"#,
        r#"{"k":null}"#,
    ];

    /// Message attributes: well formed, and each way one can be wrong.
    const ATTRIBUTES: &[&str] = &[
        r#"{"dataType":"String","stringValue":"x"}"#,
        r#"{"dataType":"Number","stringValue":"1764000000000"}"#,
        r#"{"dataType":"Binary","binaryValue":"AAEC"}"#,
        r#"{"binaryValue":"!!"}"#,
        r#"{"binaryValue":null,"stringValue":null,"dataType":null}"#,
        r#"{"stringListValues":null}"#,
        r#"{"stringListValues":["a","b\"c"],"binaryListValues":["AAEC"]}"#,
        r#"{"binaryListValues":["%%"]}"#,
        r#"{"dataType":7}"#,
        r#"{"dataType":"String","stringValue":"x","extra":[1]}"#,
        "null",
        r#""x""#,
        "{}",
    ];

    /// A record's own members (message attributes have their own generator below), and one
    /// no SQS record has.
    fn members() -> Vec<&'static str> {
        let attribute_level = ["stringValue", "binaryValue", "stringListValues"];
        let own = [
            "binaryListValues",
            "dataType",
            "Records",
            "messageAttributes",
        ];
        crate::adapters::lambda::EVENT_MEMBERS
            .iter()
            .copied()
            .filter(|member| !attribute_level.contains(member) && !own.contains(member))
            .chain(["somethingElse"])
            .collect()
    }

    /// A record's message attributes: up to three, named from three names (so a name may
    /// come twice), each one of `ATTRIBUTES[which]`.
    fn attributes(which: &[usize]) -> impl Strategy<Value = String> {
        let which = which.to_vec();
        proptest::collection::vec((0..3usize, 0..which.len()), 0..4).prop_map(move |all| {
            let members: Vec<String> = all
                .iter()
                .map(|(name, a)| {
                    format!(
                        r#""{}":{}"#,
                        ["IdempotencyKey", "DispatchFirstSent", "n"][*name],
                        ATTRIBUTES[which[*a]]
                    )
                })
                .collect();
            format!(r#""messageAttributes":{{{}}}"#, members.join(","))
        })
    }

    /// SQS's own attributes as Lambda gives them, a name given twice, and none.
    const SYSTEM_ATTRIBUTES: &[&str] = &[
        r#"{"ApproximateReceiveCount":"3","SentTimestamp":"1764000000000"}"#,
        r#"{"MessageGroupId":"g","MessageDeduplicationId":"d","MessageGroupId":"h"}"#,
        "null",
    ];

    /// A member, well formed more often than not (so that most records are read, and their
    /// values compared), else holding any kind of JSON value.
    fn member() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (0..members().len(), 0..2usize).prop_map(|(m, v)| format!(
                r#""{}":{}"#,
                members()[m],
                VALUES[v]
            )),
            2 => (0..SYSTEM_ATTRIBUTES.len())
                .prop_map(|a| format!(r#""attributes":{}"#, SYSTEM_ATTRIBUTES[a])),
            1 => (0..members().len(), 0..VALUES.len()).prop_map(|(m, v)| format!(
                r#""{}":{}"#,
                members()[m],
                VALUES[v]
            )),
            1 => (0..VALUES.len()).prop_map(|v| format!(r#""messageAttributes":{}"#, VALUES[v])),
            3 => attributes(&[0, 1, 2, 4, 6, 9, 12]),
            1 => attributes(&(0..ATTRIBUTES.len()).collect::<Vec<_>>()),
        ]
    }

    fn payload() -> impl Strategy<Value = String> {
        let record = proptest::collection::vec(member(), 0..4)
            .prop_map(|members| format!("{{{}}}", members.join(",")));
        let records = proptest::collection::vec(record, 0..4);
        // Mostly an event; sometimes one with no records to read, or none at all.
        (records, 0..10usize).prop_map(|(records, shape)| {
            let records = records.join(",");
            match shape {
                0..=4 => format!(r#"{{"Records":[{records}]}}"#),
                5 | 6 => format!(r#"{{"Records":[{records}],"other":{{"x":1}}}}"#),
                7 => r#"{"Records":null}"#.to_owned(),
                8 => r#"{"records":[]}"#.to_owned(),
                _ => format!(r#"[{records}]"#),
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3_000, rng_seed: proptest::test_runner::RngSeed::Fixed(27), failure_persistence: None, ..ProptestConfig::default() })]
        /// The function's reading of an event accepts and refuses exactly the payloads
        /// `aws_lambda_events`' `SqsEvent` does, and holds the same values when it accepts.
        #[test]
        fn any_payload_reads_as_aws_lambda_events_reads_it(text in payload()) {
            let ours = serde_json::from_str::<Event<'_>>(&text);
            let theirs = serde_json::from_str::<aws_lambda_events::sqs::SqsEvent>(&text);
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{}: {:?} / {:?}", text, ours.as_ref().err(), theirs.as_ref().err());
            if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                prop_assert!(agrees(&ours, &theirs), "{}", text);
            }
        }
    }

    #[test]
    fn a_name_given_twice_counts_once_with_its_last_value() {
        let m = parse(serde_json::from_str::<serde_json::Value>("{}").unwrap());
        assert_eq!(m.attribute("x"), None);
        let text = r#"{"messageId":"m","attributes":{"ApproximateReceiveCount":"1","ApproximateReceiveCount":"4"},
            "messageAttributes":{"IdempotencyKey":{"dataType":"String","stringValue":"a"},"IdempotencyKey":{"dataType":"String","stringValue":"b"}}}"#;
        let m: Message<'_> = serde_json::from_str(text).unwrap();
        assert_eq!(receive_count(&m), Some(4));
        let record = record_of(&m, "m");
        assert_eq!(record.idempotency_key, "b");
        assert_eq!(record.attributes.len(), 1, "{:?}", record.attributes);
        assert_eq!(record.attributes[0].1.string_value, Some("b"));
    }
}
