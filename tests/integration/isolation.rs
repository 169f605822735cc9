//! A panic while handling one record is that record's transient failure, never a crash of
//! the invocation.

use std::time::{Duration, SystemTime};

use voice_dispatch::adapters::pinpoint::PinpointVoice;
use voice_dispatch::app::VoiceDispatch;
use voice_dispatch::core::classify::SendFailure;
use voice_dispatch::core::contract::VoiceMessage;
use voice_dispatch::core::engine::{BatchEngine, EngineSettings};
use voice_dispatch::core::ports::{SentCall, VoiceSender};
use voice_dispatch::core::report::Fate;
use voice_dispatch::wiring;
use voice_fake::{FakeVoice, Script};

use crate::support::*;

const BEFORE_SEND: &str = "+12065550666";
const AFTER_SEND: &str = "+12065550667";

/// The real sender, with a bug planted for two destinations: one panics before calling the
/// service, the other after its answer came back (across an await point).
struct Buggy(PinpointVoice);

impl VoiceSender for Buggy {
    async fn send(
        &self,
        message: &VoiceMessage,
        attempt_timeout: std::time::Duration,
    ) -> Result<SentCall, SendFailure> {
        if message.destination.as_str() == BEFORE_SEND {
            panic!("bug before the call");
        }
        let result = self.0.send(message, attempt_timeout).await;
        if message.destination.as_str() == AFTER_SEND {
            std::panic::panic_any(format!(
                "bug after the call to {}",
                message.destination.masked()
            ));
        }
        result
    }
}

#[tokio::test]
async fn a_panicking_record_fails_alone_and_the_batch_goes_on() {
    let fake = FakeVoice::start(Script::default()).await.unwrap();
    let config = test_config();
    let sdk = sdk_config(&fake.endpoint_url(), &config).await;
    let sender = Buggy(PinpointVoice::new(aws_sdk_pinpointsmsvoice::Client::new(
        &sdk,
    )));
    let settings = EngineSettings {
        max_concurrency: 4,
        ..wiring::engine_settings(&config)
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dispatch = VoiceDispatch::new(
        BatchEngine::new(sender, settings),
        wiring::settlement(&config, sqs),
    );
    let records = vec![
        record("ok1", Some(&body("+12065550001", "a"))),
        record("boom-before", Some(&body(BEFORE_SEND, "b"))),
        record("boom-after", Some(&body(AFTER_SEND, "c"))),
        record("ok2", Some(&body("+12065550002", "d"))),
    ];
    let report = dispatch
        .handle(&event(records), SystemTime::now() + Duration::from_secs(30))
        .await
        .expect("the invocation survives");

    assert_eq!(fate(&report, "ok1"), Fate::Sent);
    assert_eq!(fate(&report, "ok2"), Fate::Sent);
    for id in ["boom-before", "boom-after"] {
        assert_eq!(fate(&report, id), Fate::Transient, "{id}");
        assert_eq!(error_code(&report, id).as_deref(), Some("Panic"));
    }
    let message = &outcome(&report, "boom-before")
        .reason
        .as_ref()
        .unwrap()
        .message;
    assert_eq!(message, "bug before the call");
    assert_eq!(reported(&report), ["boom-before", "boom-after"]);
    assert_eq!(fake.calls_to(BEFORE_SEND).len(), 0);
}
