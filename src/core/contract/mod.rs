//! The message contract: the JSON body of an SQS record, parsed strictly and validated into a
//! [`VoiceMessage`] ready to send. Member names are the `SendVoiceMessage` API's own.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

mod errors;
mod rules;
mod v1;
mod v2;
pub mod v2_limits;

pub use errors::{named_path, MAX_REASON_CHARS};

use crate::core::classify::{Origin, Origins};
use crate::core::code::Code;
use crate::core::phone::PhoneNumber;

/// Longest `Text` the service takes for plain text and call instructions, in characters.
pub const MAX_PLAIN_TEXT_CHARS: usize = 3_000;
/// Longest SSML `Text` (tags included), in characters.
pub const MAX_SSML_CHARS: usize = 6_000;

/// Which voice API places the calls (`VOICE_API`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// Amazon Pinpoint SMS Voice v1 (`aws-sdk-pinpointsmsvoice`), the default.
    #[default]
    V1,
    /// AWS End User Messaging SMS and Voice v2 (`aws-sdk-pinpointsmsvoicev2`): it also takes
    /// v2-shaped bodies, knows a fixed set of voices, and has no call instructions.
    V2,
}

/// Values a message may leave out, taken from the function's configuration.
#[derive(Debug, Clone, Default)]
pub struct MessageDefaults {
    pub origination: Option<PhoneNumber>,
    pub configuration_set: Option<String>,
    /// The backend the message goes to.
    pub backend: Backend,
    /// The voices v2 knows (its `VoiceId` enum), in upper case: under v2 a body naming
    /// another is refused. Unused under v1, whose voices are free strings.
    pub v2_voices: &'static [&'static str],
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
    /// Whose origination the call uses: the function's by default, the function's named
    /// again by the body, or the body's own.
    pub origination_source: OriginationSource,
    pub caller_id: Option<PhoneNumber>,
    pub configuration_set: Option<String>,
    /// Whose `configuration_set` is: the function's own (`CONFIGURATION_SET_NAME`), taken as
    /// the default or named by the body, or the body's own (or none).
    pub configuration_set_origin: Origin,
    pub content: VoiceContent,
    /// How long the request stays worth placing, when the body says (`TimeToLive`, seconds);
    /// otherwise `MESSAGE_TTL_SECONDS` applies.
    pub time_to_live: Option<u32>,
    /// The body's own redial policy (`Redial`), over the function's `REDIAL_*`.
    pub redial: Option<crate::core::redial::RedialOverride>,
    /// What ties the call back to its record (v2 copies it into delivery events as
    /// `Context`): the SQS message id, and the idempotency key when it is not that id.
    pub correlation: Vec<(&'static str, String)>,
    /// The v2 API's own members, from a v2-shaped body (`MessageBody`), passed through.
    pub v2: Option<V2Members>,
    /// When the call stops being worth placing (sent time + time to live), set by the engine:
    /// v2 is told the time left, so a redelivered call is never placed late by the service.
    pub expires_at: Option<tokio::time::Instant>,
}

/// Whose origination a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginationSource {
    /// The function's own (`ORIGINATION_IDENTITY` or `ORIGINATION_PHONE_NUMBER`): the body
    /// named none.
    Default,
    /// The function's own, named again by the body (it then wins over every default).
    NamedDefault,
    /// One the body named that is not the function's.
    Body,
}

impl OriginationSource {
    /// What the body said: `named` is its origination, if it named one.
    pub fn of(named: Option<&str>, is_functions: impl FnOnce(&str) -> bool) -> Self {
        match named {
            None => Self::Default,
            Some(named) if is_functions(named) => Self::NamedDefault,
            Some(_) => Self::Body,
        }
    }

    /// Whether the body named an origination (it then wins over every default).
    pub fn named_by_body(self) -> bool {
        self != Self::Default
    }

    /// Whose the origination is, as a "does not exist" answer is read.
    pub fn origin(self) -> Origin {
        match self {
            Self::Default | Self::NamedDefault => Origin::Configured,
            Self::Body => Origin::Message,
        }
    }
}

impl VoiceMessage {
    /// Whose set and origination the call uses.
    pub fn origins(&self) -> Origins {
        Origins {
            set: self.configuration_set_origin,
            identity: self.origination_source.origin(),
        }
    }
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
    pub fn code(&self) -> Code {
        match self {
            Self::MissingBody => Code::MissingBody,
            Self::MalformedJson(_) => Code::MalformedJson,
            Self::SchemaViolation(_) => Code::SchemaViolation,
            Self::InvalidField { .. } => Code::InvalidField,
            Self::UnsupportedContent(_) => Code::UnsupportedContent,
            Self::NotPermitted(_) => Code::NotPermitted,
        }
    }
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
        match serde_json::from_str::<v1::StrictBody>(body) {
            Ok(parsed) => v1::validate(parsed.0, defaults),
            Err(_) => match v2_shape(body) {
                Shape::Both => Err(InvalidMessage::SchemaViolation(
                    "a body has either `Content` (v1) or `MessageBody` (v2), not both".to_owned(),
                )),
                Shape::V2 if defaults.backend == Backend::V1 => {
                    Err(InvalidMessage::SchemaViolation(
                        "a v2-shaped body (`MessageBody`) needs the v2 backend: VOICE_API=v2"
                            .to_owned(),
                    ))
                }
                Shape::V2 => v2::validate(v2::parse(body)?, defaults),
                Shape::Other => Err(errors::explain_rejection(body)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> MessageDefaults {
        MessageDefaults {
            origination: PhoneNumber::parse("+12065550100").ok(),
            configuration_set: Some("default-set".to_owned()),
            backend: Backend::V1,
            v2_voices: &[],
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
            assert_eq!(err.code(), Code::SchemaViolation);
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
        // The cut text, its `…`, and the schema error's prefix.
        let prefix = "the body does not match the message schema: "
            .chars()
            .count();
        assert!(
            reason.chars().count() <= MAX_REASON_CHARS + 1 + prefix,
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
            backend: Backend::V2,
            v2_voices: &["MATTHEW", "JOANNA"],
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
            Code::InvalidField
        );
        let with_identity = MessageDefaults {
            v2_identity: Some("pool-1".to_owned()),
            ..no_number
        };
        let message = VoiceMessage::from_body(Some(bare), &with_identity).unwrap();
        assert!(message.origination.is_none());
        assert_eq!(message.origination_source, OriginationSource::Default);
        let own = r#"{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "+12065550111", "Content": {"SSMLMessage": {"Text": "x"}}}"#;
        assert_eq!(
            VoiceMessage::from_body(Some(own), &with_identity)
                .unwrap()
                .origination_source,
            OriginationSource::Body
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
        assert_eq!(v1_mode.code(), Code::SchemaViolation);
        assert!(v1_mode.to_string().contains("VOICE_API=v2"), "{v1_mode}");
        let both = r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi",
            "Content": {"SSMLMessage": {"Text": "x"}}}"#;
        assert_eq!(code(both, &v2).code(), Code::SchemaViolation);
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
            Code::InvalidField,
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
        assert_eq!(code(unknown, &v2).code(), Code::SchemaViolation);
        // A wrong type names the v2 member it is in.
        let typed =
            r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "DryRun": "yes"}"#;
        let err = code(typed, &v2);
        assert_eq!(err.code(), Code::SchemaViolation);
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
        let set = |members: &str| v2(members).configuration_set_origin;
        assert_eq!(
            set(r#", "ConfigurationSetName": "default-set""#),
            Origin::Configured
        );
        let by_its_arn = format!(r#", "ConfigurationSetName": "{set_arn}""#);
        assert_eq!(set(&by_its_arn), Origin::Configured);
        assert_eq!(
            set(r#", "ConfigurationSetName": "other-set""#),
            Origin::Message
        );
        let source = |members: &str| v2(members).origination_source;
        assert_eq!(source(""), OriginationSource::Default);
        let named_again = r#", "OriginationIdentity": "pool-1""#;
        assert_eq!(source(named_again), OriginationSource::NamedDefault);
        let its_own = r#", "OriginationIdentity": "pool-2""#;
        assert_eq!(source(its_own), OriginationSource::Body);
        // A v1-shaped body naming ORIGINATION_PHONE_NUMBER names the function's own number.
        let v1 = |origination: &str| {
            parse(&format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "{origination}", "Content": {{"SSMLMessage": {{"Text": "x"}}}}}}"#
            ))
            .unwrap()
        };
        let source = |origination: &str| v1(origination).origination_source;
        assert_eq!(source("+12065550100"), OriginationSource::NamedDefault);
        assert_eq!(source("+12065550111"), OriginationSource::Body);
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
            assert_eq!(err.code(), Code::NotPermitted, "{body}: {err}");
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
    fn both_shapes_check_the_voice_alike_in_any_case() {
        let v1_shaped = r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"SSMLMessage": {"VoiceId": "joanna", "Text": "x"}}}"#;
        let v2_shaped = r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "x", "VoiceId": "joanna"}"#;
        for body in [v1_shaped, v2_shaped] {
            assert!(
                VoiceMessage::from_body(Some(body), &v2_defaults()).is_ok(),
                "{body}"
            );
            let unknown = body.replace("joanna", "marvin");
            let refused = VoiceMessage::from_body(Some(&unknown), &v2_defaults()).unwrap_err();
            assert_eq!(
                refused.to_string(),
                "VoiceId: not a voice the v2 API knows (VOICE_API=v2)"
            );
        }
    }

    #[test]
    fn under_v2_an_unknown_voice_is_refused_and_call_instructions_are_unsupported() {
        let v2 = MessageDefaults {
            backend: Backend::V2,
            v2_voices: &["MATTHEW", "JOANNA"],
            ..defaults()
        };
        let voiced = |voice: &str| {
            format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", "Content": {{"SSMLMessage": {{"VoiceId": "{voice}", "Text": "x"}}}}}}"#
            )
        };
        assert!(VoiceMessage::from_body(Some(&voiced("Matthew")), &v2).is_ok());
        let err = VoiceMessage::from_body(Some(&voiced("Marvin")), &v2).unwrap_err();
        assert_eq!(err.code(), Code::InvalidField);
        assert!(
            VoiceMessage::from_body(Some(&voiced("Marvin")), &defaults()).is_ok(),
            "v1: free"
        );
        let instructions = r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"CallInstructionsMessage": {"Text": "x"}}}"#;
        assert_eq!(
            VoiceMessage::from_body(Some(instructions), &v2)
                .unwrap_err()
                .code(),
            Code::UnsupportedContent
        );
        assert!(VoiceMessage::from_body(Some(instructions), &defaults()).is_ok());
    }

    #[test]
    fn the_functions_set_is_recognised_taken_or_named() {
        let taken = parse(r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"SSMLMessage": {"Text": "x"}}}"#).unwrap();
        assert_eq!(taken.configuration_set_origin, Origin::Configured);
        let named = parse(r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetName": "default-set", "Content": {"SSMLMessage": {"Text": "x"}}}"#).unwrap();
        assert_eq!(
            named.configuration_set_origin,
            Origin::Configured,
            "the same name is the same set"
        );
        let own = parse(r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetName": "its-own", "Content": {"SSMLMessage": {"Text": "x"}}}"#).unwrap();
        assert_eq!(own.configuration_set_origin, Origin::Message);
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
        assert_eq!(err.code(), Code::InvalidField);
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
            assert_eq!(err.code(), Code::InvalidField, "{bad}");
            assert!(err.to_string().starts_with("TimeToLive:"), "{err}");
        }
        for wrong_type in ["-5", "60.5", "\"60\""] {
            assert_eq!(
                with_ttl(wrong_type).unwrap_err().code(),
                Code::SchemaViolation,
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
            assert_eq!(err.code(), Code::MalformedJson, "{body:?}: {err}");
        }
    }

    #[test]
    fn an_unknown_member_is_rejected_by_position_with_the_members_it_could_be() {
        let err = parse(
            r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetNme": "alerts",
                "Content": {"CallInstructionsMessage": {"Text": "Hi"}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), Code::SchemaViolation);
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
        assert_eq!(err.code(), Code::SchemaViolation);
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
                matches!(err.code(), Code::SchemaViolation | Code::MalformedJson),
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
            assert_eq!(err.code(), Code::SchemaViolation, "{body}: {err}");
            assert!(err.to_string().contains("expected a JSON object"), "{err}");
        }
    }

    #[test]
    fn destination_is_required_and_must_be_e164() {
        let missing =
            parse(r#"{"Content": {"CallInstructionsMessage": {"Text": "Hi"}}}"#).unwrap_err();
        assert_eq!(missing.code(), Code::SchemaViolation);
        assert!(
            missing.to_string().contains("DestinationPhoneNumber"),
            "{missing}"
        );

        let bad = parse(
            r#"{"DestinationPhoneNumber": "2065550142", "Content": {"CallInstructionsMessage": {"Text": "Hi"}}}"#,
        )
        .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidField);
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
        assert_eq!(err.code(), Code::SchemaViolation);
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

    #[test]
    fn a_body_may_ask_for_its_own_redial_in_either_shape_strictly() {
        use crate::core::redial::{RedialOn, RedialOverride};
        let v1 = parse(
            r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"PlainTextMessage": {"Text": "hi"}},
                "Redial": {"On": ["BUSY", "NO_ANSWER"], "MaxCalls": 3, "IntervalSeconds": 300}}"#,
        )
        .unwrap();
        assert_eq!(
            v1.redial,
            Some(RedialOverride {
                on: Some(vec![RedialOn::Busy, RedialOn::NoAnswer]),
                max_calls: Some(3),
                interval: Some(std::time::Duration::from_secs(300)),
            })
        );
        let v2 = VoiceMessage::from_body(
            Some(r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "Redial": {"MaxCalls": 5}}"#),
            &v2_defaults(),
        )
        .unwrap();
        assert_eq!(v2.redial.unwrap().max_calls, Some(5));
        assert_eq!(parse(FULL).unwrap().redial, None);
        for (redial, field) in [
            (r#"{"On": ["RINGING"]}"#, "Redial.On"),
            (r#"{"On": ["+12065550142"]}"#, "Redial.On"),
            (r#"{"MaxCalls": 6}"#, "Redial.MaxCalls"),
            (r#"{"MaxCalls": 0}"#, "Redial.MaxCalls"),
            (r#"{"IntervalSeconds": 0}"#, "Redial.IntervalSeconds"),
            (r#"{"IntervalSeconds": 259201}"#, "Redial.IntervalSeconds"),
        ] {
            let body = format!(
                r#"{{"DestinationPhoneNumber": "+12065550142", "Content": {{"PlainTextMessage": {{"Text": "hi"}}}}, "Redial": {redial}}}"#
            );
            let err = parse(&body).unwrap_err();
            assert_eq!(err.code(), Code::InvalidField, "{redial}");
            assert!(err.to_string().starts_with(field), "{err}");
            assert!(!err.to_string().contains("+1206"), "{err}");
        }
        let unknown = parse(
            r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"PlainTextMessage": {"Text": "hi"}}, "Redial": {"Every": 5}}"#,
        )
        .unwrap_err();
        assert_eq!(unknown.code(), Code::SchemaViolation, "{unknown}");
    }
}
