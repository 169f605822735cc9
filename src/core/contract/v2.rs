//! The v2-shaped body (`MessageBody`, the End User Messaging v2 API's own members), taken
//! under the v2 backend and validated against the API's limits.

use serde::Deserialize;

use super::errors::{contract_path, describe_json_error};
use super::rules::{
    is_functions_origination, known_voice, phone_field, redial, set_origin, text_field,
    time_to_live, v2_set_name, within_the_grant, RedialBody,
};
use super::v2_limits;
use super::{
    InvalidMessage, MessageDefaults, OriginationSource, Speech, V2Members, VoiceContent,
    VoiceMessage, MAX_PLAIN_TEXT_CHARS, MAX_SSML_CHARS,
};

/// The v2 API's `SendVoiceMessage` members, as a body may give them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct V2Body {
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
    #[serde(default)]
    redial: Option<RedialBody>,
}

pub(super) fn parse(body: &str) -> Result<V2Body, InvalidMessage> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|err| describe_json_error(&contract_path(err.path()), err.inner()))
}

/// A v2-shaped body against the v2 API's limits.
pub(super) fn validate(
    body: V2Body,
    defaults: &MessageDefaults,
) -> Result<VoiceMessage, InvalidMessage> {
    let destination = phone_field("DestinationPhoneNumber", &body.destination_phone_number)?;
    resources(&body, defaults)?;
    let content = content(&body)?;
    known_voice(body.voice_id.as_deref(), defaults)?;
    let time_to_live = time_to_live(body.time_to_live)?;
    let redial = redial(body.redial)?;
    let context = context(body.context.unwrap_or_default())?;
    let named_set = body.configuration_set_name.as_deref();
    let configuration_set_origin = set_origin(named_set, defaults);
    let origination_source = OriginationSource::of(body.origination_identity.as_deref(), |named| {
        is_functions_origination(named, defaults)
    });
    Ok(VoiceMessage {
        destination,
        origination: defaults.origination.clone(),
        origination_source,
        caller_id: None,
        configuration_set: body
            .configuration_set_name
            .or_else(|| defaults.configuration_set.clone()),
        configuration_set_origin,
        content,
        time_to_live,
        redial,
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

fn invalid(field: &'static str, problem: &str) -> InvalidMessage {
    InvalidMessage::InvalidField {
        field,
        problem: problem.to_owned(),
    }
}

/// A member, its value if given, v2's pattern for it, and that pattern in words.
type PatternCheck<'a> = (
    &'static str,
    Option<&'a String>,
    fn(&str) -> bool,
    &'static str,
);

/// The resources a body names, within v2's patterns and what the role may use.
fn resources(body: &V2Body, defaults: &MessageDefaults) -> Result<(), InvalidMessage> {
    let checks: [PatternCheck<'_>; 3] = [
        (
            "OriginationIdentity",
            body.origination_identity.as_ref(),
            v2_limits::is_origination_identity,
            v2_limits::IDENTITY_RULE,
        ),
        (
            "ProtectConfigurationId",
            body.protect_configuration_id.as_ref(),
            v2_limits::is_resource_name,
            v2_limits::RESOURCE_NAME_RULE,
        ),
        (
            "MaxPricePerMinute",
            body.max_price_per_minute.as_ref(),
            v2_limits::is_price,
            v2_limits::PRICE_RULE,
        ),
    ];
    for (field, value, valid, rule) in checks {
        if value.is_some_and(|value| !valid(value)) {
            return Err(invalid(field, rule));
        }
    }
    v2_set_name(body.configuration_set_name.as_deref())?;
    within_the_grant(
        "OriginationIdentity",
        body.origination_identity.as_deref(),
        body.configuration_set_name.as_deref(),
        defaults,
    )
}

/// `MessageBody` as `MessageBodyTextType` says: plain text (the default) or SSML.
fn content(body: &V2Body) -> Result<VoiceContent, InvalidMessage> {
    let speech = |limit: usize| -> Result<Speech, InvalidMessage> {
        Ok(Speech {
            language_code: None,
            voice_id: body.voice_id.clone(),
            text: text_field("MessageBody", body.message_body.clone(), limit)?,
        })
    };
    match body.message_body_text_type.as_deref() {
        None | Some("TEXT") => Ok(VoiceContent::PlainText(speech(MAX_PLAIN_TEXT_CHARS)?)),
        Some("SSML") => Ok(VoiceContent::Ssml(speech(MAX_SSML_CHARS)?)),
        Some(_) => Err(invalid("MessageBodyTextType", "TEXT or SSML")),
    }
}

/// `Context`: at most 5 entries, keys and values within v2's limits.
fn context(
    context: std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, InvalidMessage> {
    let context: Vec<(String, String)> = context.into_iter().collect();
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
    Ok(context)
}
