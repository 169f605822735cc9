//! `VoiceSender` over AWS End User Messaging SMS and Voice v2 (`SendVoiceMessage`, awsJson1_0),
//! `VOICE_API=v2`. The message is the one v1 would send, mapped onto the v2 members: the
//! origination number (or `ORIGINATION_IDENTITY`) as `OriginationIdentity`, the text as
//! `MessageBody` with `MessageBodyTextType` `SSML` or `TEXT`, the voice as the v2 enum, and
//! the time to live passed on so the service enforces it too.

use aws_sdk_pinpointsmsvoicev2::operation::send_voice_message::builders::SendVoiceMessageFluentBuilder;
use aws_sdk_pinpointsmsvoicev2::operation::send_voice_message::SendVoiceMessageError;
use aws_sdk_pinpointsmsvoicev2::types::{VoiceId, VoiceMessageBodyTextType};
use aws_sdk_pinpointsmsvoicev2::Client;
use futures::future::Either;

use crate::adapters::pinpoint::{describe_sdk_error, ErrorDetails};
use crate::core::classify::{ResourceType, SendFailure, ServiceReason};
use crate::core::contract::v2_limits;
use crate::core::contract::{VoiceContent, VoiceMessage};
use crate::core::ports::{SentCall, VoiceSender};

#[derive(Clone, Debug)]
pub struct PinpointV2Voice {
    client: Client,
    /// `ORIGINATION_IDENTITY`: a phone number, its ID or ARN, or a pool ID or ARN; without
    /// it, the message's origination number.
    origination_identity: Option<String>,
    /// `MAX_PRICE_PER_MINUTE`.
    max_price_per_minute: Option<String>,
}

impl PinpointV2Voice {
    pub fn new(
        client: Client,
        origination_identity: Option<String>,
        max_price_per_minute: Option<String>,
    ) -> Self {
        Self {
            client,
            origination_identity,
            max_price_per_minute,
        }
    }
}

impl PinpointV2Voice {
    /// What the body named (its identity, or its own number), else `ORIGINATION_IDENTITY`,
    /// else the default number.
    fn origination(&self, message: &VoiceMessage) -> Result<String, SendFailure> {
        let number = message.origination.as_ref().map(|n| n.as_str());
        message
            .v2
            .as_ref()
            .and_then(|v2| v2.origination_identity.as_deref())
            .or_else(|| number.filter(|_| message.origination_source.named_by_body()))
            .or(self.origination_identity.as_deref())
            .or(number)
            .map(str::to_owned)
            .ok_or_else(|| {
                SendFailure::InvalidRequest(
                    "no OriginationIdentity: the body names none, and neither ORIGINATION_IDENTITY nor ORIGINATION_PHONE_NUMBER is set"
                        .to_owned(),
                )
            })
    }
}

impl VoiceSender for PinpointV2Voice {
    /// The request is built before the future is handed back: a panic while building it
    /// placed nothing (the engine counts the send as started once it holds the future).
    fn send(
        &self,
        message: &VoiceMessage,
    ) -> impl std::future::Future<Output = Result<SentCall, SendFailure>> + Send {
        // The SDK's future on the heap once, as v1's (`PinpointVoice::send`).
        let call = self
            .request(message)
            .map(|request| Box::pin(request.send()));
        async move {
            call?
                .await
                .map(|output| SentCall {
                    message_id: output.message_id,
                })
                .map_err(|err| describe_sdk_error(err, details))
        }
    }
}

impl PinpointV2Voice {
    /// The `SendVoiceMessage` request for `message`, or why it cannot be made.
    fn request(
        &self,
        message: &VoiceMessage,
    ) -> Result<SendVoiceMessageFluentBuilder, SendFailure> {
        let (speech, text_type) = match &message.content {
            VoiceContent::Ssml(speech) => (speech, VoiceMessageBodyTextType::Ssml),
            VoiceContent::PlainText(speech) => (speech, VoiceMessageBodyTextType::Text),
            VoiceContent::CallInstructions { .. } => {
                return Err(SendFailure::InvalidRequest(
                    "CallInstructionsMessage has no v2 counterpart".to_owned(),
                ))
            }
        };
        let origination = self.origination(message)?;
        let v2 = message.v2.as_ref();
        let request = self
            .client
            .send_voice_message()
            .destination_phone_number(message.destination.as_str())
            .origination_identity(origination)
            .message_body(speech.text.as_str())
            .message_body_text_type(text_type)
            .set_voice_id(
                speech
                    .voice_id
                    .as_deref()
                    .map(|voice| VoiceId::from(voice.to_ascii_uppercase().as_str())),
            )
            .set_configuration_set_name(message.configuration_set.clone())
            .set_max_price_per_minute(
                v2.and_then(|v2| v2.max_price_per_minute.clone())
                    .or_else(|| self.max_price_per_minute.clone()),
            )
            .set_dry_run(v2.and_then(|v2| v2.dry_run))
            .set_protect_configuration_id(v2.and_then(|v2| v2.protect_configuration_id.clone()))
            .set_message_feedback_enabled(v2.and_then(|v2| v2.message_feedback_enabled))
            .set_time_to_live(time_left(message))
            .set_context(context(message));
        Ok(request)
    }
}

/// v2's `Context` (at most 5 entries; keys 1–100 characters, values 1–800 without white
/// space at either end): the body's own entries (validated), then the record's correlation
/// under keys the body did not use, up to 5 in all (the body's keys win). A correlation
/// value is trimmed and cut to the limit, and left out when nothing is left of it: the
/// producer's idempotency key must never make the service refuse the call.
fn context(message: &VoiceMessage) -> Option<std::collections::HashMap<String, String>> {
    let mut context: std::collections::HashMap<String, String> = message
        .v2
        .as_ref()
        .map(|v2| v2.context.iter().cloned().collect())
        .unwrap_or_default();
    for (key, value) in &message.correlation {
        if context.len() >= v2_limits::MAX_CONTEXT_ENTRIES {
            break;
        }
        let cut: String = v2_limits::trim_space(value)
            .chars()
            .take(v2_limits::MAX_CONTEXT_VALUE_CHARS)
            .collect();
        let value = v2_limits::trim_space(&cut);
        if v2_limits::is_context_value(value) {
            context
                .entry((*key).to_owned())
                .or_insert_with(|| value.to_owned());
        }
    }
    (!context.is_empty()).then_some(context)
}

/// v2's `TimeToLive`: the seconds the call has left, within v2's range (5 to 259,200), not
/// the whole time to live again on every delivery. The engine sends nothing past expiry;
/// a call with under 5 s left (or one that reached its expiry on the way here) is told the
/// minimum, 5 s, never left to v2's default of 72 h.
fn time_left(message: &VoiceMessage) -> Option<i32> {
    let left = message
        .expires_at?
        .saturating_duration_since(tokio::time::Instant::now())
        .as_secs();
    i32::try_from(left.clamp(
        u64::from(crate::core::expiry::MIN_TTL_SECONDS),
        u64::from(crate::core::expiry::MAX_BODY_TTL_SECONDS),
    ))
    .ok()
}

/// The `Reason` of the v2 errors that carry one, and the kind of resource a
/// `ResourceNotFoundException` is about.
fn details(error: &SendVoiceMessageError) -> ErrorDetails {
    let reason = match error {
        SendVoiceMessageError::ServiceQuotaExceededException(e) => e.reason().map(|r| r.as_str()),
        SendVoiceMessageError::ValidationException(e) => e.reason().map(|r| r.as_str()),
        SendVoiceMessageError::ConflictException(e) => e.reason().map(|r| r.as_str()),
        SendVoiceMessageError::AccessDeniedException(e) => e.reason().map(|r| r.as_str()),
        _ => None,
    };
    let resource_type = match error {
        SendVoiceMessageError::ResourceNotFoundException(e) => {
            e.resource_type().map(|t| ResourceType::from(t.as_str()))
        }
        _ => None,
    };
    ErrorDetails {
        reason: reason.map(ServiceReason::from),
        resource_type,
    }
}

/// The voice backend `VOICE_API` selects: v1 (the default) or v2. Both go through the same
/// engine, pacer, breaker and ledger.
#[derive(Clone, Debug)]
pub enum Voice {
    V1(crate::adapters::pinpoint::PinpointVoice),
    V2(PinpointV2Voice),
}

impl VoiceSender for Voice {
    fn send(
        &self,
        message: &VoiceMessage,
    ) -> impl std::future::Future<Output = Result<SentCall, SendFailure>> + Send {
        match self {
            Voice::V1(voice) => Either::Left(voice.send(message)),
            Voice::V2(voice) => Either::Right(voice.send(message)),
        }
    }
}
