//! The message contract: the JSON body of an SQS record, parsed strictly and validated into a
//! [`VoiceMessage`] ready to send. Member names are the `SendVoiceMessage` API's own.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

pub mod v2_limits;

use crate::core::expiry::{MAX_BODY_TTL_SECONDS, MIN_TTL_SECONDS};
use crate::core::phone::PhoneNumber;

/// Longest `Text` the service takes for plain text and call instructions, in characters.
pub const MAX_PLAIN_TEXT_CHARS: usize = 3_000;
/// Longest SSML `Text` (tags included), in characters.
pub const MAX_SSML_CHARS: usize = 6_000;

/// Values a message may leave out, taken from the function's configuration.
#[derive(Debug, Clone, Default)]
pub struct MessageDefaults {
    pub origination: Option<PhoneNumber>,
    pub configuration_set: Option<String>,
    /// With the v2 backend (`VOICE_API=v2`), the voices v2 knows (its `VoiceId` enum): a body
    /// naming another is refused, and a `CallInstructionsMessage`, which v2 has no
    /// counterpart for, is unsupported. `None`: v1, whose voices are free strings.
    pub v2_voices: Option<&'static [&'static str]>,
    /// The v2 backend's `ORIGINATION_IDENTITY`: a body may leave its origination out.
    pub v2_identity: Option<String>,
    /// v2's `CONFIGURED_RESOURCES_ONLY`: the role may place calls only from `v2_identity`
    /// and with `configuration_set`. A body naming another origination or set is refused
    /// here: IAM would answer `AccessDeniedException`, which says the account is refused
    /// and would hold every call back behind the breaker.
    pub configured_resources_only: bool,
}

/// A validated voice-call request.
#[derive(Debug, Clone)]
pub struct VoiceMessage {
    pub destination: PhoneNumber,
    /// Always there for a v1-shaped body (the body's or the default); a v2-shaped body may
    /// name an `OriginationIdentity` instead (in `v2`).
    pub origination: Option<PhoneNumber>,
    /// Whether the body named `origination` itself (it then wins over every default).
    pub origination_from_body: bool,
    /// Whether the call's origination is the function's own (`ORIGINATION_IDENTITY` or
    /// `ORIGINATION_PHONE_NUMBER`), taken by default or named again by the body.
    pub origination_is_default: bool,
    pub caller_id: Option<PhoneNumber>,
    pub configuration_set: Option<String>,
    /// Whether `configuration_set` is the function's own (`CONFIGURATION_SET_NAME`), taken
    /// as the default or named by the body.
    pub configuration_set_is_default: bool,
    pub content: VoiceContent,
    /// How long the request stays worth placing, when the body says (`TimeToLive`, seconds);
    /// otherwise `MESSAGE_TTL_SECONDS` applies.
    pub time_to_live: Option<u32>,
    /// What ties the call back to its record (v2 copies it into delivery events as
    /// `Context`): the SQS message id, and the idempotency key when it is not that id.
    pub correlation: Vec<(&'static str, String)>,
    /// The v2 API's own members, from a v2-shaped body (`MessageBody`), passed through.
    pub v2: Option<V2Members>,
    /// When the call stops being worth placing (sent time + time to live), set by the engine:
    /// v2 is told the time left, so a redelivered call is never placed late by the service.
    pub expires_at: Option<std::time::SystemTime>,
}

/// What a v2-shaped body adds to the call, validated against the API's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V2Members {
    pub origination_identity: Option<String>,
    pub max_price_per_minute: Option<String>,
    /// At most 5 entries; keys at most 100 characters, values at most 800.
    pub context: Vec<(String, String)>,
    pub dry_run: Option<bool>,
    pub protect_configuration_id: Option<String>,
    pub message_feedback_enabled: Option<bool>,
}

/// What the call says: exactly one of the three kinds `SendVoiceMessage` takes.
#[derive(Debug, Clone)]
pub enum VoiceContent {
    Ssml(Speech),
    PlainText(Speech),
    CallInstructions { text: SpokenText },
}

#[derive(Debug, Clone)]
pub struct Speech {
    pub language_code: Option<String>,
    pub voice_id: Option<String>,
    pub text: SpokenText,
}

/// The words of a call. They can hold one-time codes, so `Debug` shows only their length and
/// nothing here implements `Display`: the text cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SpokenText(String);

impl SpokenText {
    /// The text as the service needs it. Never log this.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SpokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpokenText(<{} chars redacted>)", self.0.chars().count())
    }
}

/// Why a record's body is not a valid voice message. Messages never quote the body's values
/// (phone numbers and text are personal or secret); they name fields and rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    #[error("the record has no body")]
    MissingBody,
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body does not match the message schema: {0}")]
    SchemaViolation(String),
    #[error("{field}: {problem}")]
    InvalidField {
        field: &'static str,
        problem: String,
    },
    #[error("{0}")]
    UnsupportedContent(String),
    /// The body names a resource the function may not use (`CONFIGURED_RESOURCES_ONLY`).
    #[error("{0}")]
    NotPermitted(String),
}

impl InvalidMessage {
    /// The stable code logs, metrics and dead-letter reasons carry.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingBody => "MissingBody",
            Self::MalformedJson(_) => "MalformedJson",
            Self::SchemaViolation(_) => "SchemaViolation",
            Self::InvalidField { .. } => "InvalidField",
            Self::UnsupportedContent(_) => "UnsupportedContent",
            Self::NotPermitted(_) => "NotPermitted",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MessageBody {
    destination_phone_number: String,
    #[serde(default)]
    origination_phone_number: Option<String>,
    #[serde(default)]
    caller_id: Option<String>,
    #[serde(default)]
    configuration_set_name: Option<String>,
    #[serde(deserialize_with = "object")]
    content: ContentBody,
    #[serde(default)]
    time_to_live: Option<u64>,
}

/// The whole body, which must be a JSON object.
struct StrictBody(MessageBody);

impl<'de> Deserialize<'de> for StrictBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object(deserializer).map(StrictBody)
    }
}

/// Deserializes `T` from a JSON object only. Derived struct impls also take the positional
/// array form (`["+1206...", null, ...]`), which the API never accepts and which would let
/// a malformed message through.
fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
enum ContentBody {
    #[serde(rename = "SSMLMessage", deserialize_with = "object")]
    Ssml(SpeechBody),
    #[serde(rename = "PlainTextMessage", deserialize_with = "object")]
    PlainText(SpeechBody),
    #[serde(rename = "CallInstructionsMessage", deserialize_with = "object")]
    CallInstructions(CallInstructionsBody),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct SpeechBody {
    #[serde(default)]
    language_code: Option<String>,
    #[serde(default)]
    voice_id: Option<String>,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CallInstructionsBody {
    text: String,
}

impl VoiceMessage {
    /// Parses and validates one record's body, filling what it leaves out from `defaults`.
    pub fn from_body(
        body: Option<&str>,
        defaults: &MessageDefaults,
    ) -> Result<VoiceMessage, InvalidMessage> {
        let body = body.ok_or(InvalidMessage::MissingBody)?;
        // The fast path: most bodies are valid v1 bodies, and tracking the path costs on
        // every value. Only a refused body is looked at again: its shape first, so that a
        // v2 body is not also explained as a failed v1 one.
        match serde_json::from_str::<StrictBody>(body) {
            Ok(parsed) => validate(parsed.0, defaults),
            Err(_) => match v2_shape(body) {
                Shape::Both => Err(InvalidMessage::SchemaViolation(
                    "a body has either `Content` (v1) or `MessageBody` (v2), not both".to_owned(),
                )),
                Shape::V2 if defaults.v2_voices.is_none() => Err(InvalidMessage::SchemaViolation(
                    "a v2-shaped body (`MessageBody`) needs the v2 backend: VOICE_API=v2"
                        .to_owned(),
                )),
                Shape::V2 => validate_v2(parse_v2(body)?, defaults),
                Shape::Other => Err(explain_rejection(body)),
            },
        }
    }
}

enum Shape {
    V2,
    Both,
    Other,
}

/// The two members that tell the shapes apart; the rest is skipped without being built.
#[derive(Deserialize)]
struct ShapeMembers {
    #[serde(rename = "MessageBody", default)]
    message_body: Option<serde::de::IgnoredAny>,
    #[serde(rename = "Content", default)]
    content: Option<serde::de::IgnoredAny>,
}

/// Whether a body the v1 contract refused is v2-shaped: an object with `MessageBody`.
fn v2_shape(body: &str) -> Shape {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let Ok(members) = object::<_, ShapeMembers>(&mut deserializer) else {
        return Shape::Other;
    };
    match (members.message_body.is_some(), members.content.is_some()) {
        (true, true) => Shape::Both,
        (true, false) => Shape::V2,
        _ => Shape::Other,
    }
}

/// The v2 API's `SendVoiceMessage` members, as a body may give them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct V2Body {
    destination_phone_number: String,
    #[serde(default)]
    origination_identity: Option<String>,
    message_body: String,
    #[serde(default)]
    message_body_text_type: Option<String>,
    #[serde(default)]
    voice_id: Option<String>,
    #[serde(default)]
    configuration_set_name: Option<String>,
    #[serde(default)]
    max_price_per_minute: Option<String>,
    #[serde(default)]
    time_to_live: Option<u64>,
    #[serde(default)]
    context: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    protect_configuration_id: Option<String>,
    #[serde(default)]
    message_feedback_enabled: Option<bool>,
}

fn parse_v2(body: &str) -> Result<V2Body, InvalidMessage> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|err| describe_json_error(&contract_path(err.path()), err.inner()))
}

/// A v2-shaped body against the v2 API's limits.
fn validate_v2(body: V2Body, defaults: &MessageDefaults) -> Result<VoiceMessage, InvalidMessage> {
    let invalid = |field: &'static str, problem: &str| InvalidMessage::InvalidField {
        field,
        problem: problem.to_owned(),
    };
    let destination = phone_field("DestinationPhoneNumber", &body.destination_phone_number)?;
    if let Some(identity) = &body.origination_identity {
        if !v2_limits::is_origination_identity(identity) {
            return Err(invalid("OriginationIdentity", v2_limits::IDENTITY_RULE));
        }
    }
    if let Some(id) = &body.protect_configuration_id {
        if !v2_limits::is_resource_name(id) {
            return Err(invalid(
                "ProtectConfigurationId",
                v2_limits::RESOURCE_NAME_RULE,
            ));
        }
    }
    if let Some(price) = &body.max_price_per_minute {
        if !v2_limits::is_price(price) {
            return Err(invalid("MaxPricePerMinute", v2_limits::PRICE_RULE));
        }
    }
    v2_set_name(body.configuration_set_name.as_deref())?;
    within_the_grant(
        "OriginationIdentity",
        body.origination_identity.as_deref(),
        body.configuration_set_name.as_deref(),
        defaults,
    )?;
    let speech = |limit: usize, field: &'static str| -> Result<Speech, InvalidMessage> {
        Ok(Speech {
            language_code: None,
            voice_id: body.voice_id.clone(),
            text: text_field(field, body.message_body.clone(), limit)?,
        })
    };
    let content = match body.message_body_text_type.as_deref() {
        None | Some("TEXT") => {
            VoiceContent::PlainText(speech(MAX_PLAIN_TEXT_CHARS, "MessageBody")?)
        }
        Some("SSML") => VoiceContent::Ssml(speech(MAX_SSML_CHARS, "MessageBody")?),
        Some(_) => return Err(invalid("MessageBodyTextType", "TEXT or SSML")),
    };
    if let (Some(voices), Some(voice)) = (defaults.v2_voices, &body.voice_id) {
        if !voices.contains(&voice.as_str()) {
            return Err(invalid("VoiceId", "not a voice the v2 API knows"));
        }
    }
    let time_to_live = time_to_live(body.time_to_live)?;
    let context: Vec<(String, String)> = body.context.unwrap_or_default().into_iter().collect();
    if context.len() > v2_limits::MAX_CONTEXT_ENTRIES {
        return Err(invalid("Context", "at most 5 entries"));
    }
    if context
        .iter()
        .any(|(key, value)| !v2_limits::is_context_key(key) || !v2_limits::is_context_value(value))
    {
        return Err(invalid(
            "Context",
            "keys 1 to 100 characters without white space; values 1 to 800, not starting or ending with white space",
        ));
    }
    let configuration_set_is_default =
        is_functions_set(body.configuration_set_name.as_deref(), defaults);
    let origination_is_default = body
        .origination_identity
        .as_deref()
        .is_none_or(|named| is_functions_origination(named, defaults));
    Ok(VoiceMessage {
        destination,
        origination: defaults.origination.clone(),
        origination_from_body: false,
        origination_is_default,
        caller_id: None,
        configuration_set: body
            .configuration_set_name
            .or_else(|| defaults.configuration_set.clone()),
        configuration_set_is_default,
        content,
        time_to_live,
        correlation: Vec::new(),
        v2: Some(V2Members {
            origination_identity: body.origination_identity,
            max_price_per_minute: body.max_price_per_minute,
            context,
            dry_run: body.dry_run,
            protect_configuration_id: body.protect_configuration_id,
            message_feedback_enabled: body.message_feedback_enabled,
        }),
        expires_at: None,
    })
}

fn explain_rejection(body: &str) -> InvalidMessage {
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
const CONTRACT_MEMBERS: [&str; 20] = [
    "DestinationPhoneNumber",
    "OriginationPhoneNumber",
    "CallerId",
    "ConfigurationSetName",
    "Content",
    "TimeToLive",
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

/// The longest rejection reason, in characters: it travels in the dead letter's
/// `DispatchError` attribute and in a log line.
pub const MAX_REASON_CHARS: usize = 300;

/// The path to the rejected value with only the contract's own names: any other key is `?`.
fn contract_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let segments: Vec<String> = path
        .iter()
        .map(|segment| match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } | Segment::Enum { variant: key }
                if CONTRACT_MEMBERS.contains(&key.as_str()) =>
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
fn unquote_sender_key(detail: &str) -> String {
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
fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn describe_json_error(path: &str, err: &serde_json::Error) -> InvalidMessage {
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
fn redact_values(detail: &str) -> String {
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

fn validate(body: MessageBody, defaults: &MessageDefaults) -> Result<VoiceMessage, InvalidMessage> {
    let destination = phone_field("DestinationPhoneNumber", &body.destination_phone_number)?;
    let origination_from_body = body.origination_phone_number.is_some();
    let body_origination = body.origination_phone_number.clone();
    let body_set = body.configuration_set_name.clone();
    let origination = match body.origination_phone_number {
        Some(raw) => Some(phone_field("OriginationPhoneNumber", &raw)?),
        None if defaults.origination.is_some() => defaults.origination.clone(),
        // v2 with ORIGINATION_IDENTITY: the identity is the origination.
        None if defaults.v2_identity.is_some() => None,
        None => {
            return Err(InvalidMessage::InvalidField {
                field: "OriginationPhoneNumber",
                problem: "missing, and no ORIGINATION_PHONE_NUMBER default is configured"
                    .to_owned(),
            })
        }
    };
    let caller_id = body
        .caller_id
        .map(|raw| phone_field("CallerId", &raw))
        .transpose()?;
    let configuration_set_is_default =
        is_functions_set(body.configuration_set_name.as_deref(), defaults);
    let origination_is_default = body_origination
        .as_deref()
        .is_none_or(|named| is_functions_origination(named, defaults));
    let configuration_set = match body.configuration_set_name {
        Some(name) if name.trim().is_empty() => {
            return Err(InvalidMessage::InvalidField {
                field: "ConfigurationSetName",
                problem: "must not be empty".to_owned(),
            })
        }
        Some(name) => Some(name),
        None => defaults.configuration_set.clone(),
    };
    if defaults.v2_voices.is_some() {
        // Under v2 the body's number and set go to v2 as they are.
        v2_set_name(body_set.as_deref())?;
        within_the_grant(
            "OriginationPhoneNumber",
            body_origination.as_deref(),
            body_set.as_deref(),
            defaults,
        )?;
    }
    let content = match body.content {
        ContentBody::Ssml(speech) => VoiceContent::Ssml(speech_content(
            speech,
            "Content.SSMLMessage.Text",
            MAX_SSML_CHARS,
        )?),
        ContentBody::PlainText(speech) => VoiceContent::PlainText(speech_content(
            speech,
            "Content.PlainTextMessage.Text",
            MAX_PLAIN_TEXT_CHARS,
        )?),
        ContentBody::CallInstructions(_) if defaults.v2_voices.is_some() => {
            return Err(InvalidMessage::UnsupportedContent(
                "CallInstructionsMessage has no counterpart in the v2 API (VOICE_API=v2): never sent"
                    .to_owned(),
            ))
        }
        ContentBody::CallInstructions(call) => VoiceContent::CallInstructions {
            text: text_field(
                "Content.CallInstructionsMessage.Text",
                call.text,
                MAX_PLAIN_TEXT_CHARS,
            )?,
        },
    };
    if let (Some(voices), VoiceContent::Ssml(speech) | VoiceContent::PlainText(speech)) =
        (defaults.v2_voices, &content)
    {
        if let Some(voice) = &speech.voice_id {
            if !voices.contains(&voice.to_ascii_uppercase().as_str()) {
                return Err(InvalidMessage::InvalidField {
                    field: "VoiceId",
                    problem: "not a voice the v2 API knows (VOICE_API=v2)".to_owned(),
                });
            }
        }
    }
    let time_to_live = time_to_live(body.time_to_live)?;
    Ok(VoiceMessage {
        destination,
        origination,
        origination_from_body,
        origination_is_default,
        caller_id,
        configuration_set,
        configuration_set_is_default,
        content,
        time_to_live,
        correlation: Vec::new(),
        v2: None,
        expires_at: None,
    })
}

/// Whether the set a body names (or leaves out) is the function's `CONFIGURATION_SET_NAME`,
/// named again by name or by ARN.
fn is_functions_set(named: Option<&str>, defaults: &MessageDefaults) -> bool {
    let Some(own) = defaults.configuration_set.as_deref() else {
        return false;
    };
    named.is_none_or(|named| named == own || set_name(named) == set_name(own))
}

/// A configuration set's name, from its name or its ARN
/// (`arn:<partition>:sms-voice:<region>:<account>:configuration-set/<name>`).
fn set_name(set: &str) -> &str {
    match set.rsplit_once(":configuration-set/") {
        Some((_, name)) if set.starts_with("arn:") => name,
        _ => set,
    }
}

/// Whether an origination a body names is the function's own: `ORIGINATION_IDENTITY` or
/// `ORIGINATION_PHONE_NUMBER`, as configured.
fn is_functions_origination(named: &str, defaults: &MessageDefaults) -> bool {
    defaults.v2_identity.as_deref() == Some(named)
        || defaults
            .origination
            .as_ref()
            .is_some_and(|number| number.as_str() == named)
}

/// A configuration set named by a body under v2: its name or ARN, within v2's pattern.
fn v2_set_name(set: Option<&str>) -> Result<(), InvalidMessage> {
    match set {
        Some(set) if !v2_limits::is_resource_name(set) => Err(InvalidMessage::InvalidField {
            field: "ConfigurationSetName",
            problem: v2_limits::RESOURCE_NAME_RULE.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Under `CONFIGURED_RESOURCES_ONLY`, a body may name only the function's own origination
/// identity and configuration set (or leave them out): the role may use no other.
fn within_the_grant(
    origination_field: &'static str,
    origination: Option<&str>,
    set: Option<&str>,
    defaults: &MessageDefaults,
) -> Result<(), InvalidMessage> {
    if !defaults.configured_resources_only {
        return Ok(());
    }
    if origination.is_some_and(|named| Some(named) != defaults.v2_identity.as_deref()) {
        return Err(InvalidMessage::NotPermitted(format!(
            "{origination_field}: the function may place calls only from ORIGINATION_IDENTITY (CONFIGURED_RESOURCES_ONLY=true); leave it out"
        )));
    }
    if set.is_some() && !is_functions_set(set, defaults) {
        return Err(InvalidMessage::NotPermitted(
            "ConfigurationSetName: the function may use only CONFIGURATION_SET_NAME (CONFIGURED_RESOURCES_ONLY=true); leave it out"
                .to_owned(),
        ));
    }
    Ok(())
}

/// A body's `TimeToLive`, the same in both shapes: whole seconds within the API's range.
fn time_to_live(seconds: Option<u64>) -> Result<Option<u32>, InvalidMessage> {
    seconds
        .map(|seconds| {
            u32::try_from(seconds)
                .ok()
                .filter(|seconds| (MIN_TTL_SECONDS..=MAX_BODY_TTL_SECONDS).contains(seconds))
                .ok_or_else(|| InvalidMessage::InvalidField {
                    field: "TimeToLive",
                    problem: format!(
                        "seconds from {MIN_TTL_SECONDS} to {MAX_BODY_TTL_SECONDS} allowed"
                    ),
                })
        })
        .transpose()
}

fn phone_field(field: &'static str, raw: &str) -> Result<PhoneNumber, InvalidMessage> {
    PhoneNumber::parse(raw).map_err(|err| InvalidMessage::InvalidField {
        field,
        problem: err.to_string(),
    })
}

fn speech_content(
    speech: SpeechBody,
    field: &'static str,
    max_chars: usize,
) -> Result<Speech, InvalidMessage> {
    Ok(Speech {
        language_code: speech.language_code,
        voice_id: speech.voice_id,
        text: text_field(field, speech.text, max_chars)?,
    })
}

fn text_field(
    field: &'static str,
    text: String,
    max_chars: usize,
) -> Result<SpokenText, InvalidMessage> {
    if text.trim().is_empty() {
        return Err(InvalidMessage::InvalidField {
            field,
            problem: "must not be empty".to_owned(),
        });
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(InvalidMessage::InvalidField {
            field,
            problem: format!("{chars} characters, at most {max_chars} allowed"),
        });
    }
    Ok(SpokenText(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> MessageDefaults {
        MessageDefaults {
            origination: PhoneNumber::parse("+12065550100").ok(),
            configuration_set: Some("default-set".to_owned()),
            v2_voices: None,
            v2_identity: None,
            configured_resources_only: false,
        }
    }

    fn parse(body: &str) -> Result<VoiceMessage, InvalidMessage> {
        VoiceMessage::from_body(Some(body), &defaults())
    }

    const FULL: &str = r#"{"DestinationPhoneNumber": "+12065550142",
        "OriginationPhoneNumber": "+12065550199",
        "CallerId": "+12065550199",
        "ConfigurationSetName": "alerts",
        "Content": {"SSMLMessage": {"LanguageCode": "en-US", "VoiceId": "Matthew", "Text": "<speak>Disk full on db-1</speak>"}}}"#;

    #[test]
    fn a_key_outside_the_contract_is_named_by_position_never_quoted() {
        for (key, at) in [
            ("+12065550177", "line 1 column 57"),
            (
                "x`, expected one of `Text` at line 9 column 9",
                "line 1 column 90",
            ),
        ] {
            let body = format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", {}: 1, "Content": {{"SSMLMessage": {{"Text": "x"}}}}}}"#,
                serde_json::to_string(key).unwrap()
            );
            let err = parse(&body).unwrap_err();
            let reason = err.to_string();
            assert_eq!(err.code(), "SchemaViolation");
            assert!(
                !reason.contains("2065550177") && !reason.contains("line 9"),
                "{reason}"
            );
            assert!(
                reason.contains("not in the contract") && reason.contains(at),
                "{reason}"
            );
        }
        let huge = format!(
            r#"{{"Content": {{"SSMLMessage": {{"{}": 1}}}}}}"#,
            "K".repeat(200_000)
        );
        let reason = parse(&huge).unwrap_err().to_string();
        assert!(
            reason.chars().count() <= MAX_REASON_CHARS + 40,
            "{} chars",
            reason.len()
        );
        assert!(!reason.contains("KKKK"), "{reason:.200}");
        assert!(
            reason.contains("Content.SSMLMessage"),
            "the path keeps the contract's names: {reason:.200}"
        );
    }

    #[test]
    fn the_readme_example_parses_with_every_member() {
        let message = parse(FULL).unwrap();
        assert_eq!(message.destination.as_str(), "+12065550142");
        assert_eq!(message.origination.unwrap().as_str(), "+12065550199");
        assert_eq!(message.caller_id.unwrap().as_str(), "+12065550199");
        assert_eq!(message.configuration_set.as_deref(), Some("alerts"));
        let VoiceContent::Ssml(speech) = message.content else {
            panic!("expected SSML content");
        };
        assert_eq!(speech.language_code.as_deref(), Some("en-US"));
        assert_eq!(speech.voice_id.as_deref(), Some("Matthew"));
        assert_eq!(speech.text.as_str(), "<speak>Disk full on db-1</speak>");
    }

    fn v2_defaults() -> MessageDefaults {
        MessageDefaults {
            v2_voices: Some(&["MATTHEW", "JOANNA"]),
            ..defaults()
        }
    }

    #[test]
    fn under_v2_with_an_identity_a_body_may_leave_its_origination_out() {
        let bare = r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"SSMLMessage": {"Text": "x"}}}"#;
        let no_number = MessageDefaults {
            origination: None,
            ..defaults()
        };
        assert_eq!(
            VoiceMessage::from_body(Some(bare), &no_number)
                .unwrap_err()
                .code(),
            "InvalidField"
        );
        let with_identity = MessageDefaults {
            v2_identity: Some("pool-1".to_owned()),
            ..no_number
        };
        let message = VoiceMessage::from_body(Some(bare), &with_identity).unwrap();
        assert!(message.origination.is_none() && !message.origination_from_body);
        let own = r#"{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "+12065550111", "Content": {"SSMLMessage": {"Text": "x"}}}"#;
        assert!(
            VoiceMessage::from_body(Some(own), &with_identity)
                .unwrap()
                .origination_from_body
        );
    }

    #[test]
    fn a_v2_shaped_body_is_taken_under_v2_with_its_own_members() {
        let body = r#"{"DestinationPhoneNumber": "+12065550142", "OriginationIdentity": "pool-1",
            "MessageBody": "<speak>x</speak>", "MessageBodyTextType": "SSML", "VoiceId": "JOANNA",
            "MaxPricePerMinute": "0.10", "TimeToLive": 300, "Context": {"ticket": "T-1"},
            "DryRun": true, "ProtectConfigurationId": "pc-1", "MessageFeedbackEnabled": false}"#;
        let message = VoiceMessage::from_body(Some(body), &v2_defaults()).unwrap();
        assert!(matches!(message.content, VoiceContent::Ssml(_)));
        assert_eq!(message.time_to_live, Some(300));
        let v2 = message.v2.unwrap();
        assert_eq!(v2.origination_identity.as_deref(), Some("pool-1"));
        assert_eq!(v2.context, [("ticket".to_owned(), "T-1".to_owned())]);
        assert_eq!(
            (v2.dry_run, v2.message_feedback_enabled),
            (Some(true), Some(false))
        );
        assert_eq!(v2.max_price_per_minute.as_deref(), Some("0.10"));
    }

    #[test]
    fn v2_shapes_that_are_refused_say_why() {
        let v2 = v2_defaults();
        let code = |body: &str, defaults: &MessageDefaults| {
            VoiceMessage::from_body(Some(body), defaults).unwrap_err()
        };
        let plain = r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi"}"#;
        let v1_mode = code(plain, &defaults());
        assert_eq!(v1_mode.code(), "SchemaViolation");
        assert!(v1_mode.to_string().contains("VOICE_API=v2"), "{v1_mode}");
        let both = r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi",
            "Content": {"SSMLMessage": {"Text": "x"}}}"#;
        assert_eq!(code(both, &v2).code(), "SchemaViolation");
        for (body, field) in [
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "MessageBodyTextType": "HTML"}"#,
                "MessageBodyTextType",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "VoiceId": "Marvin"}"#,
                "VoiceId",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "TimeToLive": 4}"#,
                "TimeToLive",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "OriginationIdentity": ""}"#,
                "OriginationIdentity",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "Context": {"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6"}}"#,
                "Context",
            ),
            // The model's patterns, which the service would refuse with a
            // ValidationException after a request: refused before any.
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "OriginationIdentity": " pool-1"}"#,
                "OriginationIdentity",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "ConfigurationSetName": ""}"#,
                "ConfigurationSetName",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "ConfigurationSetName": "my set"}"#,
                "ConfigurationSetName",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "ProtectConfigurationId": "pc 1"}"#,
                "ProtectConfigurationId",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "MaxPricePerMinute": "1"}"#,
                "MaxPricePerMinute",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "Context": {"": "1"}}"#,
                "Context",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "Context": {"a key": "1"}}"#,
                "Context",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "Context": {"a": ""}}"#,
                "Context",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "Context": {"a": "T-1 "}}"#,
                "Context",
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "   "}"#,
                "MessageBody",
            ),
        ] {
            let err = code(body, &v2);
            assert!(
                matches!(err, InvalidMessage::InvalidField { field: f, .. } if f == field),
                "{body}: {err}"
            );
        }
        let text = format!(
            r#"{{"DestinationPhoneNumber": "+12065550142", "MessageBody": "{}"}}"#,
            "a".repeat(3_001)
        );
        assert_eq!(
            code(&text, &v2).code(),
            "InvalidField",
            "TEXT at most 3,000"
        );
        let ssml = format!(
            r#"{{"DestinationPhoneNumber": "+12065550142", "MessageBody": "{}", "MessageBodyTextType": "SSML"}}"#,
            "a".repeat(3_001)
        );
        assert!(
            VoiceMessage::from_body(Some(&ssml), &v2).is_ok(),
            "SSML up to 6,000"
        );
        let unknown =
            r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "Priority": 1}"#;
        assert_eq!(code(unknown, &v2).code(), "SchemaViolation");
        // A wrong type names the v2 member it is in.
        let typed =
            r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "DryRun": "yes"}"#;
        let err = code(typed, &v2);
        assert_eq!(err.code(), "SchemaViolation");
        assert!(err.to_string().contains("`DryRun`"), "{err}");
    }

    #[test]
    fn under_v2_a_v1_shaped_body_names_a_set_within_the_v2_pattern() {
        let named = r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetName": "my set",
            "Content": {"SSMLMessage": {"Text": "x"}}}"#;
        assert!(parse(named).is_ok(), "v1's names are v1's business");
        let err = VoiceMessage::from_body(Some(named), &v2_defaults()).unwrap_err();
        assert!(
            matches!(
                err,
                InvalidMessage::InvalidField {
                    field: "ConfigurationSetName",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_functions_own_set_and_origination_are_recognised_by_name_arn_or_number() {
        let set_arn = "arn:aws:sms-voice:us-east-1:123456789012:configuration-set/default-set";
        let by_arn = MessageDefaults {
            configuration_set: Some(set_arn.to_owned()),
            v2_identity: Some("pool-1".to_owned()),
            ..v2_defaults()
        };
        let v2 = |members: &str| {
            VoiceMessage::from_body(
                Some(&format!(
                    r#"{{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi"{members}}}"#
                )),
                &by_arn,
            )
            .unwrap()
        };
        assert!(v2(r#", "ConfigurationSetName": "default-set""#).configuration_set_is_default);
        assert!(
            v2(&format!(r#", "ConfigurationSetName": "{set_arn}""#)).configuration_set_is_default
        );
        assert!(!v2(r#", "ConfigurationSetName": "other-set""#).configuration_set_is_default);
        assert!(v2("").origination_is_default);
        assert!(v2(r#", "OriginationIdentity": "pool-1""#).origination_is_default);
        assert!(!v2(r#", "OriginationIdentity": "pool-2""#).origination_is_default);
        // A v1-shaped body naming ORIGINATION_PHONE_NUMBER names the function's own number.
        let v1 = |origination: &str| {
            parse(&format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "{origination}", "Content": {{"SSMLMessage": {{"Text": "x"}}}}}}"#
            ))
            .unwrap()
        };
        assert!(v1("+12065550100").origination_is_default);
        assert!(!v1("+12065550111").origination_is_default);
    }

    #[test]
    fn with_configured_resources_only_a_body_may_name_no_other_identity_or_set() {
        let identity = "arn:aws:sms-voice:us-east-1:123456789012:pool/pool-1";
        let pinned = MessageDefaults {
            v2_identity: Some(identity.to_owned()),
            configured_resources_only: true,
            ..v2_defaults()
        };
        let refused = |body: &str| {
            let err = VoiceMessage::from_body(Some(body), &pinned).unwrap_err();
            assert_eq!(err.code(), "NotPermitted", "{body}: {err}");
            assert!(
                err.to_string().contains("CONFIGURED_RESOURCES_ONLY"),
                "{err}"
            );
            err.to_string()
        };
        let other_identity = refused(
            r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "OriginationIdentity": "pool-2"}"#,
        );
        assert!(
            other_identity.starts_with("OriginationIdentity"),
            "{other_identity}"
        );
        let other_set = refused(
            r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "ConfigurationSetName": "other"}"#,
        );
        assert!(other_set.starts_with("ConfigurationSetName"), "{other_set}");
        let own_number = refused(
            r#"{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "+12065550111", "Content": {"SSMLMessage": {"Text": "x"}}}"#,
        );
        assert!(
            own_number.starts_with("OriginationPhoneNumber"),
            "{own_number}"
        );
        refused(
            r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetName": "other", "Content": {"SSMLMessage": {"Text": "x"}}}"#,
        );
        // Its own identity and set, named or left out, go through.
        for body in [
            format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "OriginationIdentity": "{identity}", "ConfigurationSetName": "default-set"}}"#
            ),
            r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi"}"#.to_owned(),
            r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetName": "default-set", "Content": {"SSMLMessage": {"Text": "x"}}}"#.to_owned(),
        ] {
            assert!(VoiceMessage::from_body(Some(&body), &pinned).is_ok(), "{body}");
        }
        // An identity that is a number: a v1-shaped body naming that very number is the
        // function's own origination.
        let pinned_to_number = MessageDefaults {
            v2_identity: Some("+12065550111".to_owned()),
            ..pinned.clone()
        };
        assert!(VoiceMessage::from_body(
            Some(r#"{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "+12065550111", "Content": {"SSMLMessage": {"Text": "x"}}}"#),
            &pinned_to_number
        )
        .is_ok());
        // The function's set given as an ARN, named by the body by its name: the same set.
        let pinned_by_arn = MessageDefaults {
            configuration_set: Some(
                "arn:aws:sms-voice:us-east-1:123456789012:configuration-set/default-set".to_owned(),
            ),
            ..pinned.clone()
        };
        assert!(VoiceMessage::from_body(
            Some(r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "ConfigurationSetName": "default-set"}"#),
            &pinned_by_arn
        )
        .is_ok());
        // Without the setting, another identity is the body's to name.
        assert!(VoiceMessage::from_body(
            Some(r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "OriginationIdentity": "pool-2"}"#),
            &v2_defaults()
        )
        .is_ok());
    }

    #[test]
    fn under_v2_an_unknown_voice_is_refused_and_call_instructions_are_unsupported() {
        let v2 = MessageDefaults {
            v2_voices: Some(&["MATTHEW", "JOANNA"]),
            ..defaults()
        };
        let voiced = |voice: &str| {
            format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", "Content": {{"SSMLMessage": {{"VoiceId": "{voice}", "Text": "x"}}}}}}"#
            )
        };
        assert!(VoiceMessage::from_body(Some(&voiced("Matthew")), &v2).is_ok());
        let err = VoiceMessage::from_body(Some(&voiced("Marvin")), &v2).unwrap_err();
        assert_eq!(err.code(), "InvalidField");
        assert!(
            VoiceMessage::from_body(Some(&voiced("Marvin")), &defaults()).is_ok(),
            "v1: free"
        );
        let instructions = r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"CallInstructionsMessage": {"Text": "x"}}}"#;
        assert_eq!(
            VoiceMessage::from_body(Some(instructions), &v2)
                .unwrap_err()
                .code(),
            "UnsupportedContent"
        );
        assert!(VoiceMessage::from_body(Some(instructions), &defaults()).is_ok());
    }

    #[test]
    fn the_functions_set_is_recognised_taken_or_named() {
        let taken = parse(r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"SSMLMessage": {"Text": "x"}}}"#).unwrap();
        assert!(taken.configuration_set_is_default);
        let named = parse(r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetName": "default-set", "Content": {"SSMLMessage": {"Text": "x"}}}"#).unwrap();
        assert!(
            named.configuration_set_is_default,
            "the same name is the same set"
        );
        let own = parse(r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetName": "its-own", "Content": {"SSMLMessage": {"Text": "x"}}}"#).unwrap();
        assert!(!own.configuration_set_is_default);
    }

    #[test]
    fn origination_and_configuration_set_fall_back_to_the_defaults() {
        let message = parse(
            r#"{"DestinationPhoneNumber": "+12065550142",
                "Content": {"CallInstructionsMessage": {"Text": "Hello"}}}"#,
        )
        .unwrap();
        assert_eq!(message.origination.unwrap().as_str(), "+12065550100");
        assert_eq!(message.configuration_set.as_deref(), Some("default-set"));
        assert!(message.caller_id.is_none());
    }

    #[test]
    fn a_message_with_no_origination_and_no_default_is_invalid() {
        let err = VoiceMessage::from_body(
            Some(r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"CallInstructionsMessage": {"Text": "Hi"}}}"#),
            &MessageDefaults::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "InvalidField");
        assert!(
            err.to_string().starts_with("OriginationPhoneNumber:"),
            "{err}"
        );
    }

    #[test]
    fn plain_text_content_keeps_language_and_voice() {
        let message = parse(
            r#"{"DestinationPhoneNumber": "+12065550142",
                "Content": {"PlainTextMessage": {"LanguageCode": "de-DE", "VoiceId": "Hans", "Text": "Hallo"}}}"#,
        )
        .unwrap();
        let VoiceContent::PlainText(speech) = message.content else {
            panic!("expected plain text content");
        };
        assert_eq!(speech.voice_id.as_deref(), Some("Hans"));
        assert_eq!(speech.text.as_str(), "Hallo");
    }

    #[test]
    fn a_body_may_set_its_own_time_to_live_within_the_v2_bounds() {
        let with_ttl = |ttl: &str| {
            parse(&format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", "TimeToLive": {ttl},
                    "Content": {{"CallInstructionsMessage": {{"Text": "Hi"}}}}}}"#
            ))
        };
        assert_eq!(with_ttl("5").unwrap().time_to_live, Some(5));
        assert_eq!(with_ttl("259200").unwrap().time_to_live, Some(259_200));
        assert_eq!(parse(FULL).unwrap().time_to_live, None);
        for bad in ["4", "259201", "0", "99999999999"] {
            let err = with_ttl(bad).unwrap_err();
            assert_eq!(err.code(), "InvalidField", "{bad}");
            assert!(err.to_string().starts_with("TimeToLive:"), "{err}");
        }
        for wrong_type in ["-5", "60.5", "\"60\""] {
            assert_eq!(
                with_ttl(wrong_type).unwrap_err().code(),
                "SchemaViolation",
                "{wrong_type}"
            );
        }
    }

    #[test]
    fn a_missing_body_is_its_own_error() {
        let err = VoiceMessage::from_body(None, &defaults()).unwrap_err();
        assert_eq!(err, InvalidMessage::MissingBody);
    }

    #[test]
    fn a_body_that_is_not_json_is_malformed() {
        for body in [
            "",
            "not json",
            "{\"DestinationPhoneNumber\":",
            "{} trailing",
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.code(), "MalformedJson", "{body:?}: {err}");
        }
    }

    #[test]
    fn an_unknown_member_is_rejected_by_position_with_the_members_it_could_be() {
        let err = parse(
            r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetNme": "alerts",
                "Content": {"CallInstructionsMessage": {"Text": "Hi"}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "SchemaViolation");
        let reason = err.to_string();
        assert!(!reason.contains("ConfigurationSetNme"), "{reason}");
        assert!(reason.contains("line 1 column 64"), "{reason}");
        assert!(reason.contains("`ConfigurationSetName`"), "{reason}");
    }

    #[test]
    fn an_unknown_member_inside_content_is_rejected() {
        let err = parse(
            r#"{"DestinationPhoneNumber": "+12065550142",
                "Content": {"SSMLMessage": {"Text": "<speak>x</speak>", "Voice": "Joanna"}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "SchemaViolation");
        assert!(err.to_string().contains("Voice"), "{err}");
    }

    #[test]
    fn content_must_hold_exactly_one_kind() {
        for content in [
            r#"{}"#,
            r#"{"SSMLMessage": {"Text": "a"}, "PlainTextMessage": {"Text": "b"}}"#,
            r#"{"SMSMessage": {"Text": "a"}}"#,
        ] {
            let body =
                format!(r#"{{"DestinationPhoneNumber": "+12065550142", "Content": {content}}}"#);
            let err = parse(&body).unwrap_err();
            assert!(
                matches!(err.code(), "SchemaViolation" | "MalformedJson"),
                "{content}: {err}"
            );
        }
    }

    #[test]
    fn objects_cannot_be_given_in_positional_array_form() {
        for body in [
            r#"["+12065550142", null, null, null, {"CallInstructionsMessage": {"Text": "Hi"}}]"#,
            r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"SSMLMessage": ["en-US", "Joanna", "Hi"]}}"#,
            r#"{"DestinationPhoneNumber": "+12065550142", "Content": [{"SSMLMessage": {"Text": "Hi"}}]}"#,
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.code(), "SchemaViolation", "{body}: {err}");
            assert!(err.to_string().contains("expected a JSON object"), "{err}");
        }
    }

    #[test]
    fn destination_is_required_and_must_be_e164() {
        let missing =
            parse(r#"{"Content": {"CallInstructionsMessage": {"Text": "Hi"}}}"#).unwrap_err();
        assert_eq!(missing.code(), "SchemaViolation");
        assert!(
            missing.to_string().contains("DestinationPhoneNumber"),
            "{missing}"
        );

        let bad = parse(
            r#"{"DestinationPhoneNumber": "2065550142", "Content": {"CallInstructionsMessage": {"Text": "Hi"}}}"#,
        )
        .unwrap_err();
        assert_eq!(bad.code(), "InvalidField");
        assert!(
            bad.to_string().starts_with("DestinationPhoneNumber:"),
            "{bad}"
        );
    }

    #[test]
    fn caller_id_and_origination_must_be_e164_when_given() {
        for member in ["CallerId", "OriginationPhoneNumber"] {
            let body = format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", "{member}": "+0123",
                    "Content": {{"CallInstructionsMessage": {{"Text": "Hi"}}}}}}"#
            );
            let err = parse(&body).unwrap_err();
            assert!(err.to_string().starts_with(member), "{err}");
        }
    }

    #[test]
    fn text_must_not_be_empty() {
        let err = parse(
            r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"PlainTextMessage": {"Text": "  "}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            InvalidMessage::InvalidField {
                field: "Content.PlainTextMessage.Text",
                problem: "must not be empty".to_owned()
            }
        );
    }

    fn with_text(kind: &str, chars: usize) -> String {
        format!(
            r#"{{"DestinationPhoneNumber": "+12065550142", "Content": {{"{kind}": {{"Text": "{}"}}}}}}"#,
            "é".repeat(chars)
        )
    }

    #[test]
    fn text_length_limits_count_characters_per_kind() {
        assert!(parse(&with_text("PlainTextMessage", 3_000)).is_ok());
        assert!(parse(&with_text("CallInstructionsMessage", 3_000)).is_ok());
        assert!(parse(&with_text("SSMLMessage", 6_000)).is_ok());
        for (kind, chars) in [
            ("PlainTextMessage", 3_001),
            ("CallInstructionsMessage", 3_001),
            ("SSMLMessage", 6_001),
        ] {
            let err = parse(&with_text(kind, chars)).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{chars} characters")),
                "{err}"
            );
        }
    }

    #[test]
    fn schema_errors_never_quote_the_values_they_reject() {
        let err = parse(
            r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"SSMLMessage": "your code is 493817"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "SchemaViolation");
        assert!(!err.to_string().contains("493817"), "{err}");
        assert!(err.to_string().contains("Content.SSMLMessage"), "{err}");

        let err = parse(r#"{"DestinationPhoneNumber": 12065550142, "Content": {}}"#).unwrap_err();
        assert!(!err.to_string().contains("5550142"), "{err}");
    }

    #[test]
    fn debug_output_hides_text_and_numbers() {
        let debug = format!("{:?}", parse(FULL).unwrap());
        assert!(!debug.contains("Disk full"), "{debug}");
        assert!(!debug.contains("5550142"), "{debug}");
    }
}
