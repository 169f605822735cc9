//! `VoiceSender` over Amazon Pinpoint SMS Voice v1 (`SendVoiceMessage`, restJson1).

use aws_sdk_pinpointsmsvoice::error::{ConnectorError, ProvideErrorMetadata, SdkError};
use aws_sdk_pinpointsmsvoice::operation::send_voice_message::SendVoiceMessageError;
use aws_sdk_pinpointsmsvoice::types::{
    CallInstructionsMessageType, PlainTextMessageType, SsmlMessageType, VoiceMessageContent,
};
use aws_sdk_pinpointsmsvoice::Client;

use crate::adapters::sdk_error::root_cause;
use crate::core::classify::{
    ResourceType, SendFailure, ServiceCode, ServiceReason, NO_ANSWER_IN_TIME,
};
use crate::core::contract::{VoiceContent, VoiceMessage};
use crate::core::ports::{SentCall, VoiceSender};

/// The SDK client is built once at init; it owns the connection pool every send reuses.
#[derive(Clone, Debug)]
pub struct PinpointVoice {
    client: Client,
}

impl PinpointVoice {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl VoiceSender for PinpointVoice {
    /// The request is built before the future is handed back: a panic while building it
    /// placed nothing (the engine counts the send as started once it holds the future).
    fn send(
        &self,
        message: &VoiceMessage,
    ) -> impl std::future::Future<Output = Result<SentCall, SendFailure>> + Send {
        let request = self
            .client
            .send_voice_message()
            .destination_phone_number(message.destination.as_str())
            .set_origination_phone_number(
                message.origination.as_ref().map(|n| n.as_str().to_owned()),
            )
            .set_caller_id(message.caller_id.as_ref().map(|id| id.as_str().to_owned()))
            .set_configuration_set_name(message.configuration_set.clone())
            .content(content(&message.content));
        // The SDK's future (kilobytes) on the heap once: the engine's futures around this one
        // stay small, and are not copied kilobytes at a time as each is polled into place.
        let call = Box::pin(request.send());
        async move {
            call.await
                .map(|output| SentCall {
                    message_id: output.message_id,
                })
                .map_err(describe)
        }
    }
}

fn content(content: &VoiceContent) -> VoiceMessageContent {
    let builder = VoiceMessageContent::builder();
    match content {
        VoiceContent::Ssml(speech) => builder.ssml_message(
            SsmlMessageType::builder()
                .set_language_code(speech.language_code.clone())
                .set_voice_id(speech.voice_id.clone())
                .text(speech.text.as_str())
                .build(),
        ),
        VoiceContent::PlainText(speech) => builder.plain_text_message(
            PlainTextMessageType::builder()
                .set_language_code(speech.language_code.clone())
                .set_voice_id(speech.voice_id.clone())
                .text(speech.text.as_str())
                .build(),
        ),
        VoiceContent::CallInstructions { text } => builder.call_instructions_message(
            CallInstructionsMessageType::builder()
                .text(text.as_str())
                .build(),
        ),
    }
    .build()
}

/// Whether the connection itself failed (refused, DNS, TLS handshake): hyper-util's connect
/// error is in the chain, so no byte of the request was written.
fn never_connected(error: Option<&ConnectorError>) -> bool {
    let error = error.map(|error| error as &(dyn std::error::Error + 'static));
    std::iter::successors(error, |error| error.source()).any(|error| {
        error
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
    })
}

/// Describes a v1 SDK error in the core's terms (v1 errors have no `Reason`).
fn describe(err: SdkError<SendVoiceMessageError>) -> SendFailure {
    describe_sdk_error(err, |_| ErrorDetails::default())
}

/// What a modelled error says beyond its code and message (v2's; v1's errors say nothing).
#[derive(Debug, Default)]
pub(crate) struct ErrorDetails {
    /// Its `Reason`.
    pub reason: Option<ServiceReason>,
    /// Which kind of resource does not exist (`ResourceNotFoundException`).
    pub resource_type: Option<ResourceType>,
}

/// Describes an SDK error of either API in the core's terms, with `details` reading what
/// the modelled error says beyond its code. This translates; it does not decide:
/// [`crate::core::classify::classify`] does.
pub(crate) fn describe_sdk_error<E>(
    err: SdkError<E>,
    details: impl Fn(&E) -> ErrorDetails,
) -> SendFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let cause = root_cause(&err);
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let error = service.err();
            let ErrorDetails {
                reason,
                resource_type,
            } = details(error);
            SendFailure::Service {
                code: error.code().map(ServiceCode::from),
                status: Some(status),
                message: error.message().map_or_else(
                    || format!("HTTP {status} with no error message"),
                    str::to_owned,
                ),
                reason,
                resource_type,
            }
        }
        SdkError::TimeoutError(_) => SendFailure::Timeout(NO_ANSWER_IN_TIME.to_owned()),
        SdkError::DispatchFailure(dispatch) if dispatch.is_timeout() => SendFailure::Timeout(
            format!("the connection timed out ({cause}); the call may have been placed"),
        ),
        SdkError::DispatchFailure(dispatch) if never_connected(dispatch.as_connector_error()) => {
            SendFailure::NotConnected(format!(
                "could not connect to the voice service ({cause}); nothing was sent"
            ))
        }
        SdkError::DispatchFailure(_) => SendFailure::Connection(format!(
            "the connection broke after the request may have gone out ({cause})"
        )),
        SdkError::ConstructionFailure(_) => {
            SendFailure::InvalidRequest(format!("the request could not be built ({cause})"))
        }
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            SendFailure::UnreadableResponse {
                status: Some(status),
                message: format!(
                    "the answer (HTTP {status}) could not be read as the protocol says ({cause})"
                ),
            }
        }
        // `SdkError` is non-exhaustive: a variant added later is not known to be final.
        _ => SendFailure::Connection(format!("the request failed ({cause})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each send's SDK future (kilobytes) is on the heap: what a send hands back, which the
    /// engine's futures around it hold and its timer wraps, is a pointer and little more.
    /// (DHAT over the release bootstrap, v2: the box was 11,624 bytes a send while it held
    /// an `async fn`'s timer and the SDK's future twice, 5,856 with a timer in it; the timer
    /// is the engine's since.)
    #[tokio::test]
    async fn a_send_hands_back_the_sdk_request_on_the_heap() {
        let config = aws_sdk_pinpointsmsvoice::Config::builder()
            .behavior_version(aws_sdk_pinpointsmsvoice::config::BehaviorVersion::latest())
            .region(aws_sdk_pinpointsmsvoice::config::Region::new("us-east-1"))
            .build();
        let voice = PinpointVoice::new(Client::from_conf(config));
        let request = voice
            .client
            .send_voice_message()
            .destination_phone_number("+12065550142");
        let sdk_request = std::mem::size_of_val(&request.send());
        let defaults = crate::core::contract::MessageDefaults::default();
        let body = r#"{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "+12065550199",
            "Content": {"SSMLMessage": {"LanguageCode": "en-US", "VoiceId": "Matthew", "Text": "<speak>Hi</speak>"}}}"#;
        let message = VoiceMessage::from_body(Some(body), &defaults).expect("a valid body");
        let send = voice.send(&message);
        let handed_back = std::mem::size_of_val(&send);
        assert!(
            sdk_request > 1024,
            "the SDK's request future is {sdk_request} bytes: no longer kilobytes held inline"
        );
        assert!(
            handed_back <= 256,
            "the send hands back {handed_back} bytes: the SDK's future ({sdk_request}) is inline"
        );
    }
}
