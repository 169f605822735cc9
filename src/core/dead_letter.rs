//! What a dead letter carries: the original message, unchanged, and why it was given up on.

use serde::Serialize;

use crate::core::code::Code;
use crate::core::record::Attribute;
use crate::core::record::Record;
use crate::core::report::RecordOutcome;

/// The message attribute that carries the reason.
pub const REASON_ATTRIBUTE: &str = "DispatchError";

/// The function's own message attribute for when the request was first sent (epoch
/// milliseconds, a `Number`): a dead letter carries it, so a redriven letter's time to live
/// still counts from the request's first send, not from the redrive. Kept across trips: the
/// earliest of it and `SentTimestamp` counts.
pub const FIRST_SENT_ATTRIBUTE: &str = "DispatchFirstSent";

/// The producer's attribute naming a request for the idempotency ledger; a dead letter sets it
/// to the key the function used when the producer gave none (the message id), so a redriven
/// letter is the same request to the ledger, not a new message.
pub const IDEMPOTENCY_KEY_ATTRIBUTE: &str = "IdempotencyKey";

/// SQS takes at most 10 message attributes per message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// SQS's largest message, body and attributes together: 1 MiB since August 2025 (it was
/// 256 KiB). `template.yaml` sets both queues' `MaximumMessageSize` to it.
pub const MAX_MESSAGE_BYTES: usize = 1_048_576;

/// A record on its way to the dead-letter queue: the original body and attributes,
/// unchanged, plus what identifies its request and the reason.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub body: &'a str,
    pub attributes: Vec<(&'a str, Attribute<'a>)>,
    /// What identifies the request across a redrive (its ledger key, its first send), as
    /// many as the original attributes leave room for, in that order.
    pub identity: Vec<Identity>,
    /// The identity attributes left out for want of room: the caller says so.
    pub left_out: Vec<&'static str>,
    /// The `DispatchError` attribute's JSON; `None` when the original attributes leave no
    /// room for it (ten already, or a body near SQS's size limit).
    pub reason: Option<String>,
    /// Group and deduplication ids, for a FIFO queue.
    pub fifo: Option<FifoIds<'a>>,
}

impl DeadLetter<'_> {
    /// What SQS counts toward the size of a message: the body and every attribute's name,
    /// type and value.
    pub fn size(&self) -> usize {
        let attribute = |name: &str, value: &Attribute<'_>| name.len() + value.size();
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| attribute(name, value))
                .sum::<usize>()
            + self
                .identity
                .iter()
                .map(|identity| {
                    identity.name.len() + identity.data_type.len() + identity.value.len()
                })
                .sum::<usize>()
            + self
                .reason
                .as_deref()
                .map_or(0, |r| REASON_ATTRIBUTE.len() + "String".len() + r.len())
    }
}

/// One of the function's own attributes that identify a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: &'static str,
    pub data_type: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FifoIds<'a> {
    pub group_id: &'a str,
    pub deduplication_id: &'a str,
}

/// The reason, as the `DispatchError` attribute's JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchError<'a> {
    pub code: &'a str,
    pub message: &'a str,
    pub source_message_id: &'a str,
    pub source_queue_arn: Option<&'a str>,
    pub receive_count: Option<u32>,
    /// RFC 3339, UTC.
    pub time: &'a str,
    /// With failover on, the region of the record's last attempt; left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
}

/// The letter for a permanently failed record, or `None` when there is nothing SQS could
/// accept (a record with no body: SQS messages cannot be empty).
///
/// The body is the original's, byte for byte, so the letter can be redriven unchanged. The
/// original attributes are kept; the request's identity is added (its ledger key when the
/// producer gave none, its first send), so that a redrive neither calls it late nor calls it
/// again; a `DispatchError` or `DispatchFirstSent` left by an earlier trip is replaced. When
/// the originals leave too few of SQS's 10 slots, the identity goes first and then the
/// reason; what is left out the caller logs: the forward must never fail for it.
pub fn dead_letter<'a>(
    message: &Record<'a>,
    outcome: &RecordOutcome,
    time: &str,
) -> Option<DeadLetter<'a>> {
    let body = message.body.filter(|body| !body.is_empty())?;
    let mut attributes: Vec<_> = message
        .attributes
        .iter()
        .filter(|(name, _)| !FUNCTIONS_ATTRIBUTES.contains(name))
        .copied()
        .collect();
    attributes.sort_by_key(|(name, _)| *name);
    let (identity, left_out) = identity(message, attributes.len());
    let used = attributes.len() + identity.len();
    let reason = (used < MAX_MESSAGE_ATTRIBUTES).then(|| {
        let (code, text) = outcome
            .reason
            .as_ref()
            .map_or((Code::Unknown.word(), ""), |r| {
                (r.code.word(), r.message.as_str())
            });
        let error = DispatchError {
            code: &code,
            message: text,
            source_message_id: &outcome.message_id,
            source_queue_arn: message.queue_arn,
            receive_count: outcome.receive_count,
            time,
            region: outcome.region.as_ref().map(|tag| &*tag.name),
        };
        serde_json::to_string(&error).unwrap_or_else(|_| format!("{{\"code\":\"{code}\"}}"))
    });
    let fifo = message.fifo_group.map(|group_id| FifoIds {
        group_id,
        deduplication_id: message.message_id,
    });
    let mut letter = DeadLetter {
        body,
        attributes,
        identity,
        left_out,
        reason,
        fifo,
    };
    // A body near the limit leaves no room for the reason, then for the identity: the letter
    // goes without them (the caller logs it) rather than be refused.
    if letter.size() > MAX_MESSAGE_BYTES {
        letter.reason = None;
    }
    while letter.size() > MAX_MESSAGE_BYTES {
        let Some(identity) = letter.identity.pop() else {
            break;
        };
        letter.left_out.insert(0, identity.name);
    }
    Some(letter)
}

/// The attributes a letter carries of the function's own: an original of the same name is
/// replaced (an `IdempotencyKey` the ledger did not use, a `Number` one say, is replaced by
/// the key it did use; a valid producer's key is the same value).
const FUNCTIONS_ATTRIBUTES: [&str; 3] = [
    REASON_ATTRIBUTE,
    FIRST_SENT_ATTRIBUTE,
    IDEMPOTENCY_KEY_ATTRIBUTE,
];

/// The request's identity attributes that fit beside `originals` attributes, and those that
/// do not: the ledger key it was known by, then its first send.
fn identity(message: &Record<'_>, originals: usize) -> (Vec<Identity>, Vec<&'static str>) {
    let key = Identity {
        name: IDEMPOTENCY_KEY_ATTRIBUTE,
        data_type: "String",
        value: message.idempotency_key.to_string(),
    };
    let first_sent = message.first_sent().and_then(|at| {
        let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        Some(Identity {
            name: FIRST_SENT_ATTRIBUTE,
            data_type: "Number",
            value: ms.to_string(),
        })
    });
    let room = MAX_MESSAGE_ATTRIBUTES.saturating_sub(originals);
    let mut wanted = vec![key];
    wanted.extend(first_sent);
    let left_out = wanted
        .iter()
        .skip(room)
        .map(|identity| identity.name)
        .collect();
    (wanted.into_iter().take(room).collect(), left_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::classify::ServiceCode;
    use crate::core::record::Attribute;
    use crate::core::report::{Fate, Reason};
    use std::time::{Duration, UNIX_EPOCH};
    #[test]
    fn a_body_near_the_size_limit_goes_without_the_reason_rather_than_be_refused() {
        let small = message(ARN_FOR_SIZE, Some("x"), 0);
        let letter = dead_letter(&small, &outcome(), "2026-11-24T18:00:00Z").unwrap();
        assert!(letter.reason.is_some());
        let near = "x".repeat(MAX_MESSAGE_BYTES - 50);
        let large = message(ARN_FOR_SIZE, Some(&near), 0);
        let letter = dead_letter(&large, &outcome(), "2026-11-24T18:00:00Z").unwrap();
        assert!(letter.reason.is_none());
        assert!(letter.size() <= MAX_MESSAGE_BYTES);
    }

    const ARN_FOR_SIZE: &str = "arn:aws:sqs:us-east-1:123456789012:calls";

    fn outcome() -> RecordOutcome {
        RecordOutcome {
            reason: Some(Reason {
                code: Code::Service(ServiceCode::BadRequest),
                message: "invalid origination".to_owned(),
            }),
            receive_count: Some(1),
            ..RecordOutcome::new("m-1", Fate::Permanent)
        }
    }

    /// Attribute names and values live as long as the test.
    fn leak(text: String) -> &'static str {
        Box::leak(text.into_boxed_str())
    }

    fn message(arn: &'static str, body: Option<&str>, attribute_count: usize) -> Record<'static> {
        let attributes = (0..attribute_count)
            .map(|n| {
                (
                    leak(format!("attr{n}")),
                    Attribute {
                        data_type: Some("String"),
                        string_value: Some(leak(n.to_string())),
                        binary_value: None,
                    },
                )
            })
            .collect();
        Record {
            message_id: "m-1",
            body: body.map(|body| leak(body.to_owned())),
            receive_count: Some(1),
            fifo_group: arn.ends_with(".fifo").then_some("g-1"),
            queue_arn: Some(arn),
            attributes,
            ..Record::default()
        }
    }

    const STANDARD: &str = "arn:aws:sqs:us-east-1:123456789012:calls";
    const FIFO: &str = "arn:aws:sqs:us-east-1:123456789012:calls.fifo";

    #[test]
    fn the_body_is_byte_identical_and_the_reason_is_json() {
        let body = "{ \"DestinationPhoneNumber\" :\"+12065550142\"  }\n";
        let message = message(STANDARD, Some(body), 2);
        let letter = dead_letter(&message, &outcome(), "2026-11-24T18:00:00Z").unwrap();
        assert_eq!(letter.body.as_bytes(), body.as_bytes());
        assert_eq!(letter.attributes.len(), 2);
        let reason: serde_json::Value = serde_json::from_str(&letter.reason.unwrap()).unwrap();
        assert_eq!(
            reason,
            serde_json::json!({
                "code": "BadRequestException",
                "message": "invalid origination",
                "sourceMessageId": "m-1",
                "sourceQueueArn": STANDARD,
                "receiveCount": 1,
                "time": "2026-11-24T18:00:00Z"
            })
        );
        assert!(letter.fifo.is_none());
    }

    #[test]
    fn with_failover_on_the_reason_names_the_region_of_the_last_attempt() {
        let message = message(STANDARD, Some("{}"), 0);
        let outcome = RecordOutcome {
            region: Some(crate::core::route::RegionTag {
                name: "us-west-2".into(),
                failover: true,
            }),
            ..outcome()
        };
        let letter = dead_letter(&message, &outcome, "2026-11-24T18:00:00Z").unwrap();
        let reason: serde_json::Value = serde_json::from_str(&letter.reason.unwrap()).unwrap();
        assert_eq!(reason["region"], "us-west-2");
        assert_eq!(reason["code"], "BadRequestException");
    }

    /// A message with `attributes` attributes of its own, sent at a known time.
    fn sent_message(attributes: usize) -> Record<'static> {
        Record {
            sent_at: Some(UNIX_EPOCH + Duration::from_millis(1_795_996_800_123)),
            idempotency_key: "m-1".into(),
            ..message(STANDARD, Some("x"), attributes)
        }
    }

    fn names(letter: &DeadLetter<'_>) -> Vec<&'static str> {
        letter
            .identity
            .iter()
            .map(|identity| identity.name)
            .collect()
    }

    #[test]
    fn a_letter_carries_its_requests_ledger_key_and_first_send() {
        let letter = dead_letter(&sent_message(2), &outcome(), "t").unwrap();
        assert_eq!(
            letter.identity,
            [
                Identity {
                    name: IDEMPOTENCY_KEY_ATTRIBUTE,
                    data_type: "String",
                    value: "m-1".into(),
                },
                Identity {
                    name: FIRST_SENT_ATTRIBUTE,
                    data_type: "Number",
                    value: "1795996800123".into(),
                },
            ]
        );
        assert!(letter.reason.is_some() && letter.left_out.is_empty());
    }

    #[test]
    fn the_ledgers_key_replaces_any_original_of_its_name_and_the_earliest_first_send_is_kept() {
        // The producer's key the ledger used, and ones it did not (not a non-empty String).
        for (data_type, value, used) in [
            ("String", "order-42", "order-42"),
            ("Number", "42", "m-1"),
            ("String.uuid", "7e0c", "m-1"),
            ("Binary", "", "m-1"),
        ] {
            let mut message = sent_message(0);
            message.idempotency_key = used.into();
            let original = Attribute {
                data_type: Some(data_type),
                string_value: Some(value),
                binary_value: None,
            };
            message.attributes = vec![(IDEMPOTENCY_KEY_ATTRIBUTE, original)];
            // An earlier trip's first send, before this delivery's SentTimestamp.
            message.first_sent_at = Some(UNIX_EPOCH + Duration::from_millis(1_795_990_000_000));
            let letter = dead_letter(&message, &outcome(), "t").unwrap();
            assert!(
                letter.attributes.is_empty(),
                "{data_type}: replaced, not kept"
            );
            assert_eq!(
                letter.identity[0],
                Identity {
                    name: IDEMPOTENCY_KEY_ATTRIBUTE,
                    data_type: "String",
                    value: used.into(),
                },
                "{data_type}"
            );
            assert_eq!(letter.identity[1].value, "1795990000000");
        }
    }

    #[test]
    fn a_letter_near_the_size_limit_drops_its_reason_then_its_identity_rather_than_be_refused() {
        // The key takes 23 bytes (name, type, value), the first send 36.
        for (margin, kept, left_out) in [
            (
                30,
                vec![IDEMPOTENCY_KEY_ATTRIBUTE],
                vec![FIRST_SENT_ATTRIBUTE],
            ),
            (
                10,
                vec![],
                vec![IDEMPOTENCY_KEY_ATTRIBUTE, FIRST_SENT_ATTRIBUTE],
            ),
        ] {
            let message = Record {
                body: Some(leak("x".repeat(MAX_MESSAGE_BYTES - margin))),
                ..sent_message(0)
            };
            let letter = dead_letter(&message, &outcome(), "t").unwrap();
            assert!(letter.size() <= MAX_MESSAGE_BYTES, "{margin}");
            assert!(letter.reason.is_none());
            assert_eq!(names(&letter), kept, "{margin}");
            assert_eq!(letter.left_out, left_out, "said, so the caller logs it");
        }
    }

    #[test]
    fn the_identity_goes_first_then_the_reason_and_what_has_no_room_is_named() {
        let letter = dead_letter(&sent_message(8), &outcome(), "t").unwrap();
        assert_eq!(names(&letter).len(), 2);
        assert!(letter.reason.is_none());
        let letter = dead_letter(&sent_message(9), &outcome(), "t").unwrap();
        assert_eq!(names(&letter), [IDEMPOTENCY_KEY_ATTRIBUTE]);
        assert_eq!(letter.left_out, [FIRST_SENT_ATTRIBUTE]);
        let letter = dead_letter(&sent_message(10), &outcome(), "t").unwrap();
        assert_eq!(letter.attributes.len(), 10);
        assert!(letter.identity.is_empty() && letter.reason.is_none());
        assert_eq!(
            letter.left_out,
            [IDEMPOTENCY_KEY_ATTRIBUTE, FIRST_SENT_ATTRIBUTE]
        );
    }

    #[test]
    fn an_earlier_reason_and_first_send_are_replaced_not_duplicated() {
        let mut message = sent_message(7);
        message.attributes[0].0 = REASON_ATTRIBUTE;
        message.attributes[1].0 = FIRST_SENT_ATTRIBUTE;
        let letter = dead_letter(&message, &outcome(), "t").unwrap();
        assert_eq!(letter.attributes.len(), 5);
        assert!(letter.attributes.iter().all(|(name, _)| ![
            REASON_ATTRIBUTE,
            FIRST_SENT_ATTRIBUTE
        ]
        .contains(name)));
        assert_eq!(names(&letter).len(), 2);
        assert!(letter.reason.is_some());
    }

    #[test]
    fn fifo_letters_keep_the_group_and_deduplicate_on_the_message_id() {
        let message = message(FIFO, Some("x"), 0);
        let letter = dead_letter(&message, &outcome(), "t").unwrap();
        assert_eq!(
            letter.fifo,
            Some(FifoIds {
                group_id: "g-1",
                deduplication_id: "m-1"
            })
        );
    }

    #[test]
    fn a_record_without_a_body_cannot_be_a_letter() {
        assert!(dead_letter(&message(STANDARD, None, 0), &outcome(), "t").is_none());
        assert!(dead_letter(&message(STANDARD, Some(""), 0), &outcome(), "t").is_none());
    }
}
