//! The small traits the core needs from the outside world. Adapters implement them for AWS;
//! tests implement them with fakes.

use std::future::Future;

use crate::classify::SendFailure;
use crate::message::VoiceMessage;

/// Places one voice call.
pub trait VoiceSender: Send + Sync {
    fn send(
        &self,
        message: &VoiceMessage,
    ) -> impl Future<Output = Result<SentCall, SendFailure>> + Send;
}

/// What the service says about an accepted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCall {
    /// The service's `MessageId`, for tracing a call in its own logs and events.
    pub message_id: Option<String>,
}
