//! The rules both body shapes share: phone numbers, text limits, the time to live, the
//! function's own set and origination, what `CONFIGURED_RESOURCES_ONLY` permits, and the
//! voices v2 knows.

use super::v2_limits;
use super::{Backend, InvalidMessage, MessageDefaults, SpokenText};
use crate::core::classify::Origin;
use crate::core::expiry::{MAX_BODY_TTL_SECONDS, MIN_TTL_SECONDS};
use crate::core::phone::PhoneNumber;
use crate::core::redial::{RedialOn, RedialOverride, MAX_CALLS};

/// Whose the set a body names (or leaves out) is: the function's, or the body's own (or none).
pub(super) fn set_origin(named: Option<&str>, defaults: &MessageDefaults) -> Origin {
    if is_functions_set(named, defaults) {
        Origin::Configured
    } else {
        Origin::Message
    }
}

/// Whether the set a body names (or leaves out) is the function's `CONFIGURATION_SET_NAME`,
/// named again by name or by ARN.
pub(super) fn is_functions_set(named: Option<&str>, defaults: &MessageDefaults) -> bool {
    let Some(own) = defaults.configuration_set.as_deref() else {
        return false;
    };
    named.is_none_or(|named| named == own || set_name(named) == set_name(own))
}

/// A configuration set's name, from its name or its ARN
/// (`arn:<partition>:sms-voice:<region>:<account>:configuration-set/<name>`).
pub(super) fn set_name(set: &str) -> &str {
    match set.rsplit_once(":configuration-set/") {
        Some((_, name)) if set.starts_with("arn:") => name,
        _ => set,
    }
}

/// Whether an origination a body names is the function's own: `ORIGINATION_IDENTITY` or
/// `ORIGINATION_PHONE_NUMBER`, as configured.
pub(super) fn is_functions_origination(named: &str, defaults: &MessageDefaults) -> bool {
    defaults.v2_identity.as_deref() == Some(named)
        || defaults
            .origination
            .as_ref()
            .is_some_and(|number| number.as_str() == named)
}

/// A configuration set named by a body under v2: its name or ARN, within v2's pattern.
pub(super) fn v2_set_name(set: Option<&str>) -> Result<(), InvalidMessage> {
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
pub(super) fn within_the_grant(
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
pub(super) fn time_to_live(seconds: Option<u64>) -> Result<Option<u32>, InvalidMessage> {
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

/// A body's `Redial` member, the same in both shapes: each part optional (the function's
/// `REDIAL_*` fill what it leaves out).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct RedialBody {
    #[serde(default)]
    on: Option<Vec<String>>,
    #[serde(default)]
    max_calls: Option<u64>,
    #[serde(default)]
    interval_seconds: Option<u64>,
}

/// Validates a body's `Redial`: `On` a list of `BUSY`, `NO_ANSWER`, `FAILED` (empty: no
/// redial for this message), `MaxCalls` 1 to 5, `IntervalSeconds` 1 to the longest time to
/// live a body may have (a redial past the message's own is never made).
pub(super) fn redial(body: Option<RedialBody>) -> Result<Option<RedialOverride>, InvalidMessage> {
    let Some(body) = body else {
        return Ok(None);
    };
    let invalid =
        |field: &'static str, problem: String| InvalidMessage::InvalidField { field, problem };
    let on = body
        .on
        .map(|words| {
            let mut on = Vec::with_capacity(words.len());
            for word in &words {
                let parsed = RedialOn::parse(word).ok_or_else(|| {
                    invalid(
                        "Redial.On",
                        "each one of BUSY, NO_ANSWER, FAILED".to_owned(),
                    )
                })?;
                if !on.contains(&parsed) {
                    on.push(parsed);
                }
            }
            Ok(on)
        })
        .transpose()?;
    let max_calls = body
        .max_calls
        .map(|calls| {
            u8::try_from(calls)
                .ok()
                .filter(|calls| (1..=MAX_CALLS).contains(calls))
                .ok_or_else(|| invalid("Redial.MaxCalls", format!("calls in all from 1 to {MAX_CALLS} (the service's limit of calls to one recipient a day)")))
        })
        .transpose()?;
    let interval = body
        .interval_seconds
        .map(|seconds| {
            (1..=u64::from(MAX_BODY_TTL_SECONDS))
                .contains(&seconds)
                .then(|| std::time::Duration::from_secs(seconds))
                .ok_or_else(|| {
                    invalid(
                        "Redial.IntervalSeconds",
                        format!("seconds from 1 to {MAX_BODY_TTL_SECONDS}"),
                    )
                })
        })
        .transpose()?;
    Ok(Some(RedialOverride {
        on,
        max_calls,
        interval,
    }))
}

pub(super) fn phone_field(field: &'static str, raw: &str) -> Result<PhoneNumber, InvalidMessage> {
    PhoneNumber::parse(raw).map_err(|err| InvalidMessage::InvalidField {
        field,
        problem: err.to_string(),
    })
}

pub(super) fn text_field(
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

/// Under v2, a voice must be one v2 knows, in any case (the v2 adapter sends it upper-cased);
/// v1's voices are free strings.
pub(super) fn known_voice(
    voice: Option<&str>,
    defaults: &MessageDefaults,
) -> Result<(), InvalidMessage> {
    match voice {
        Some(voice)
            if defaults.backend == Backend::V2
                && !defaults
                    .v2_voices
                    .contains(&voice.to_ascii_uppercase().as_str()) =>
        {
            Err(InvalidMessage::InvalidField {
                field: "VoiceId",
                problem: "not a voice the v2 API knows (VOICE_API=v2)".to_owned(),
            })
        }
        _ => Ok(()),
    }
}
