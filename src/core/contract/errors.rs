//! Why a body was refused, said without quoting it: member names only from the contract,
//! no values, no phone numbers; what the JSON parser said cut to 300 characters (before the
//! error's prefix of up to 44 is added).

use super::v1::StrictBody;
use super::InvalidMessage;

pub(super) fn explain_rejection(body: &str) -> InvalidMessage {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let parsed: Result<StrictBody, _> = serde_path_to_error::deserialize(&mut deserializer);
    match parsed {
        Err(err) => {
            // A schema error can surface before a syntax error later in the body; a body
            // that is not JSON at all must say so.
            if err.inner().classify() == serde_json::error::Category::Data {
                if let Err(syntax) = serde_json::from_str::<serde::de::IgnoredAny>(body) {
                    return describe_json_error(".", &syntax);
                }
            }
            describe_json_error(&contract_path(err.path()), err.inner())
        }
        Ok(_) => match deserializer.end() {
            Err(err) => describe_json_error(".", &err),
            // Unreachable in practice: both parsers agree. Still a structured answer.
            Ok(()) => InvalidMessage::MalformedJson("rejected by the parser".to_owned()),
        },
    }
}

/// Every member name of the contract: a rejection may quote these, never a key the sender
/// chose (it can be a phone number, or 200 KB long).
pub(super) const CONTRACT_MEMBERS: [&str; 24] = [
    "DestinationPhoneNumber",
    "OriginationPhoneNumber",
    "CallerId",
    "ConfigurationSetName",
    "Content",
    "TimeToLive",
    "Redial",
    "On",
    "MaxCalls",
    "IntervalSeconds",
    "SSMLMessage",
    "PlainTextMessage",
    "CallInstructionsMessage",
    "LanguageCode",
    "VoiceId",
    "Text",
    // v2-shaped bodies
    "OriginationIdentity",
    "MessageBody",
    "MessageBodyTextType",
    "MaxPricePerMinute",
    "Context",
    "DryRun",
    "ProtectConfigurationId",
    "MessageFeedbackEnabled",
];

/// The most of what the JSON parser said that a rejection reason keeps, in characters (and
/// `…` when cut); the error's prefix (`the body is not valid JSON: `, 28, or `the body does
/// not match the message schema: `, 44) comes on top. It travels in the dead letter's
/// `DispatchError` attribute and in a log line.
pub const MAX_REASON_CHARS: usize = 300;

/// The path to the rejected value with only the contract's own names: any other key is `?`.
pub(super) fn contract_path(path: &serde_path_to_error::Path) -> String {
    named_path(path, &CONTRACT_MEMBERS)
}

/// `path` as `Records.3.attributes`, naming only the keys in `names` (any other key is `?`,
/// since a key can be the sender's own text); `.` for the root.
pub fn named_path(path: &serde_path_to_error::Path, names: &[&str]) -> String {
    use serde_path_to_error::Segment;
    let segments: Vec<String> = path
        .iter()
        .map(|segment| match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } | Segment::Enum { variant: key }
                if names.contains(&key.as_str()) =>
            {
                key.clone()
            }
            _ => "?".to_owned(),
        })
        .collect();
    if segments.is_empty() {
        ".".to_owned()
    } else {
        segments.join(".")
    }
}

/// serde's "unknown field `<key>`, expected ..." (and "unknown variant") quotes the sender's
/// key: name its position instead (serde's message ends with the line and column).
pub(super) fn unquote_sender_key(detail: &str) -> String {
    for (prefix, what) in [
        ("unknown field `", "unknown field"),
        ("unknown variant `", "unknown variant"),
    ] {
        if let Some(rest) = detail.strip_prefix(prefix) {
            let after_key = ["`, expected", "`, there are no"]
                .iter()
                .filter_map(|end| rest.rfind(end))
                .max();
            let tail = after_key.map_or("", |at| &rest[at + 1..]);
            return format!("{what} (a member that is not in the contract){tail}");
        }
    }
    detail.to_owned()
}

/// At most `MAX_REASON_CHARS` characters.
pub(super) fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

pub(super) fn describe_json_error(path: &str, err: &serde_json::Error) -> InvalidMessage {
    let detail = unquote_sender_key(&redact_values(&err.to_string()));
    let located = if path == "." || path.is_empty() {
        detail
    } else {
        format!("at `{path}`: {detail}")
    };
    let located = bounded(crate::core::redact::scrub_phone_numbers(&located));
    match err.classify() {
        serde_json::error::Category::Data => InvalidMessage::SchemaViolation(located),
        _ => InvalidMessage::MalformedJson(located),
    }
}

/// serde's type errors quote the offending value (`invalid type: string "123456", expected
/// ...`), which could be a one-time code or a phone number: keep only what was expected.
pub(super) fn redact_values(detail: &str) -> String {
    for prefix in ["invalid type", "invalid value"] {
        if let Some(rest) = detail.strip_prefix(prefix) {
            if let Some(at) = rest.rfind(", expected ") {
                return format!("{prefix}, {}", &rest[at + 2..]);
            }
            return prefix.to_owned();
        }
    }
    detail.to_owned()
}
