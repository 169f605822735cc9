//! The v1-shaped body (`Content`, the Pinpoint SMS Voice API's members), parsed strictly
//! and validated into a [`VoiceMessage`].

use serde::de::Deserializer;
use serde::Deserialize;

use super::rules::{
    is_functions_origination, known_voice, phone_field, redial, set_origin, text_field,
    time_to_live, v2_set_name, within_the_grant, RedialBody,
};
use crate::core::phone::PhoneNumber;

use super::{
    object, Backend, InvalidMessage, MessageDefaults, OriginationSource, Speech, VoiceContent,
    VoiceMessage, MAX_PLAIN_TEXT_CHARS, MAX_SSML_CHARS,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct MessageBody {
    pub(super) destination_phone_number: String,
    #[serde(default)]
    pub(super) origination_phone_number: Option<String>,
    #[serde(default)]
    pub(super) caller_id: Option<String>,
    #[serde(default)]
    pub(super) configuration_set_name: Option<String>,
    #[serde(deserialize_with = "object")]
    pub(super) content: ContentBody,
    #[serde(default)]
    pub(super) time_to_live: Option<u64>,
    #[serde(default)]
    pub(super) redial: Option<RedialBody>,
}

/// The whole body, which must be a JSON object.
pub(super) struct StrictBody(pub(super) MessageBody);

impl<'de> Deserialize<'de> for StrictBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object(deserializer).map(StrictBody)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) enum ContentBody {
    #[serde(rename = "SSMLMessage", deserialize_with = "object")]
    Ssml(SpeechBody),
    #[serde(rename = "PlainTextMessage", deserialize_with = "object")]
    PlainText(SpeechBody),
    #[serde(rename = "CallInstructionsMessage", deserialize_with = "object")]
    CallInstructions(CallInstructionsBody),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct SpeechBody {
    #[serde(default)]
    pub(super) language_code: Option<String>,
    #[serde(default)]
    pub(super) voice_id: Option<String>,
    pub(super) text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct CallInstructionsBody {
    pub(super) text: String,
}

pub(super) fn validate(
    body: MessageBody,
    defaults: &MessageDefaults,
) -> Result<VoiceMessage, InvalidMessage> {
    let destination = phone_field("DestinationPhoneNumber", &body.destination_phone_number)?;
    let named_origination = body.origination_phone_number.as_deref();
    let named_set = body.configuration_set_name.as_deref();
    let origination = origination(named_origination, defaults)?;
    let caller_id = body
        .caller_id
        .as_deref()
        .map(|raw| phone_field("CallerId", raw))
        .transpose()?;
    let configuration_set = configuration_set(named_set, defaults)?;
    if defaults.backend == Backend::V2 {
        // Under v2 the body's number and set go to v2 as they are.
        v2_set_name(named_set)?;
        within_the_grant(
            "OriginationPhoneNumber",
            named_origination,
            named_set,
            defaults,
        )?;
    }
    Ok(VoiceMessage {
        destination,
        origination,
        origination_source: OriginationSource::of(named_origination, |named| {
            is_functions_origination(named, defaults)
        }),
        caller_id,
        configuration_set_origin: set_origin(named_set, defaults),
        configuration_set,
        content: content(body.content, defaults)?,
        time_to_live: time_to_live(body.time_to_live)?,
        redial: redial(body.redial)?,
        correlation: Vec::new(),
        v2: None,
        expires_at: None,
    })
}

/// The body's origination number, else `ORIGINATION_PHONE_NUMBER`; under v2 with
/// `ORIGINATION_IDENTITY` none is needed (the identity is the origination).
fn origination(
    named: Option<&str>,
    defaults: &MessageDefaults,
) -> Result<Option<PhoneNumber>, InvalidMessage> {
    match named {
        Some(raw) => Ok(Some(phone_field("OriginationPhoneNumber", raw)?)),
        None if defaults.origination.is_some() => Ok(defaults.origination.clone()),
        None if defaults.v2_identity.is_some() => Ok(None),
        None => Err(InvalidMessage::InvalidField {
            field: "OriginationPhoneNumber",
            problem: "missing, and no ORIGINATION_PHONE_NUMBER default is configured".to_owned(),
        }),
    }
}

/// The body's configuration set (never empty), else `CONFIGURATION_SET_NAME`.
fn configuration_set(
    named: Option<&str>,
    defaults: &MessageDefaults,
) -> Result<Option<String>, InvalidMessage> {
    match named {
        Some(name) if name.trim().is_empty() => Err(InvalidMessage::InvalidField {
            field: "ConfigurationSetName",
            problem: "must not be empty".to_owned(),
        }),
        Some(name) => Ok(Some(name.to_owned())),
        None => Ok(defaults.configuration_set.clone()),
    }
}

/// What the call says, within the service's limits; under v2, a voice v2 knows and no call
/// instructions (v2 has no counterpart).
fn content(body: ContentBody, defaults: &MessageDefaults) -> Result<VoiceContent, InvalidMessage> {
    let content = match body {
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
        ContentBody::CallInstructions(_) if defaults.backend == Backend::V2 => {
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
    if let VoiceContent::Ssml(speech) | VoiceContent::PlainText(speech) = &content {
        known_voice(speech.voice_id.as_deref(), defaults)?;
    }
    Ok(content)
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
