//! A panic while handling one record is that record's failure, never a crash of the
//! invocation: transient before its send started (nothing was placed), abandoned after (the
//! call may have been placed). Each record is followed over its next delivery too, with the
//! ledger off and on (DynamoDB in moto), to count the calls a person gets.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use voice_dispatch::adapters::dynamodb::DynamoLedger;
use voice_dispatch::adapters::pinpoint::PinpointVoice;
use voice_dispatch::adapters::sqs::{SqsDeadLetterQueue, SqsRedelivery};
use voice_dispatch::app::VoiceDispatch;
use voice_dispatch::config::Config;
use voice_dispatch::core::classify::SendFailure;
use voice_dispatch::core::contract::VoiceMessage;
use voice_dispatch::core::engine::{BatchEngine, EngineSettings};
use voice_dispatch::core::ledger::UnknownOutcome;
use voice_dispatch::core::ports::{SentCall, VoiceSender};
use voice_dispatch::core::report::{BatchReport, Fate};
use voice_dispatch::wiring;
use voice_fake::{FakeVoice, Script};

use crate::support::moto::{create_ledger_table, Moto};
use crate::support::*;

const BEFORE_SEND: &str = "+12065550666";
const AFTER_SEND: &str = "+12065550667";

/// The real sender, with a bug planted for two destinations, each hit once (a bug that
/// depends on timing, say): one panics while its request is built, before the sender hands
/// back its future (where the real adapters build theirs); the other after the service's
/// answer came back (across an await point).
struct Buggy {
    voice: PinpointVoice,
    hit: Mutex<HashSet<&'static str>>,
}

impl Buggy {
    fn new(voice: PinpointVoice) -> Self {
        Self {
            voice,
            hit: Mutex::new(HashSet::new()),
        }
    }

    /// Whether the bug planted for `destination` fires now: the first time only.
    fn fires(&self, destination: &str) -> bool {
        let planted = [BEFORE_SEND, AFTER_SEND]
            .into_iter()
            .find(|planted| *planted == destination);
        planted.is_some_and(|planted| self.hit.lock().unwrap().insert(planted))
    }
}

impl VoiceSender for Buggy {
    fn send(
        &self,
        message: &VoiceMessage,
    ) -> impl Future<Output = Result<SentCall, SendFailure>> + Send {
        let destination = message.destination.as_str();
        if destination == BEFORE_SEND && self.fires(destination) {
            panic!("bug before the call");
        }
        let after = destination == AFTER_SEND && self.fires(destination);
        let masked = message.destination.masked().to_string();
        let call = self.voice.send(message);
        async move {
            let result = call.await;
            if after {
                std::panic::panic_any(format!("bug after the call to {masked}"));
            }
            result
        }
    }
}

type Dispatch = VoiceDispatch<Buggy, SqsDeadLetterQueue, SqsRedelivery, DynamoLedger>;

/// A dispatcher whose sender is [`Buggy`], with the ledger when `ledger` names a table.
async fn buggy_dispatch(
    fake: &FakeVoice,
    config: &Config,
    ledger: Option<(&Moto, &str)>,
) -> Dispatch {
    let sdk = sdk_config(&fake.endpoint_url(), config).await;
    let sender = Buggy::new(PinpointVoice::new(aws_sdk_pinpointsmsvoice::Client::new(
        &sdk,
    )));
    let settings = EngineSettings {
        max_concurrency: 4,
        ..wiring::engine_settings(config)
    };
    let ledger = match ledger {
        Some((moto, table)) => {
            let dynamodb = moto.dynamodb().await;
            create_ledger_table(&dynamodb, table).await;
            Some(DynamoLedger::new(dynamodb, table.to_owned()))
        }
        None => None,
    };
    VoiceDispatch::new(
        BatchEngine::new(sender, settings).with_ledger(ledger),
        wiring::settlement(config, aws_sdk_sqs::Client::new(&sdk).into()),
    )
}

/// The batch's records: two that go well, and one for each planted bug.
fn batch() -> Vec<(&'static str, String)> {
    vec![
        ("ok1", body("+12065550001", "a")),
        ("boom-before", body(BEFORE_SEND, "b")),
        ("boom-after", body(AFTER_SEND, "c")),
        ("ok2", body("+12065550002", "d")),
    ]
}

/// One delivery of the records named `ids`.
async fn deliver(dispatch: &Dispatch, ids: &[&str]) -> BatchReport {
    let records = batch()
        .into_iter()
        .filter(|(id, _)| ids.contains(id))
        .map(|(id, body)| record(id, Some(&body)))
        .collect();
    dispatch
        .handle(&event(records), SystemTime::now() + Duration::from_secs(30))
        .await
        .expect("the invocation survives")
}

/// The first delivery: the good records sent, each bug its own record's failure.
async fn first_delivery(dispatch: &Dispatch, fake: &FakeVoice) {
    let report = deliver(dispatch, &["ok1", "boom-before", "boom-after", "ok2"]).await;
    assert_eq!(fate(&report, "ok1"), Fate::Sent);
    assert_eq!(fate(&report, "ok2"), Fate::Sent);
    assert_eq!(fate(&report, "boom-before"), Fate::Transient);
    assert_eq!(
        fate(&report, "boom-after"),
        Fate::Abandoned,
        "the call went out before the bug: it may have been placed"
    );
    for id in ["boom-before", "boom-after"] {
        assert_eq!(error_code(&report, id).as_deref(), Some("Panic"), "{id}");
    }
    let before = &outcome(&report, "boom-before")
        .reason
        .as_ref()
        .unwrap()
        .message;
    assert_eq!(before, "bug before the call");
    let after = &outcome(&report, "boom-after")
        .reason
        .as_ref()
        .unwrap()
        .message;
    assert!(after.contains("may have been placed"), "{after}");
    assert!(
        !after.contains(&AFTER_SEND[1..]),
        "the number is masked: {after}"
    );
    assert_eq!(reported(&report), ["boom-before", "boom-after"]);
    assert_eq!(
        fake.calls_to(BEFORE_SEND).len(),
        0,
        "nothing placed before the send"
    );
    assert_eq!(fake.calls_to(AFTER_SEND).len(), 1);
}

/// The panicked records' next delivery: what becomes of each, and the calls each person got
/// in all.
async fn next_delivery(dispatch: &Dispatch, fake: &FakeVoice) -> BatchReport {
    let report = deliver(dispatch, &["boom-before", "boom-after"]).await;
    assert_eq!(
        fate(&report, "boom-before"),
        Fate::Sent,
        "placed nothing before: called now"
    );
    assert_eq!(fake.calls_to(BEFORE_SEND).len(), 1, "once in all");
    report
}

#[tokio::test]
async fn without_the_ledger_a_panic_after_the_send_is_abandoned_and_called_again_like_any_abandoned_call(
) {
    let fake = FakeVoice::start(Script::default()).await.unwrap();
    let dispatch = buggy_dispatch(&fake, &test_config(), None).await;
    first_delivery(&dispatch, &fake).await;
    let next = next_delivery(&dispatch, &fake).await;
    assert_eq!(fate(&next, "boom-after"), Fate::Sent);
    assert_eq!(
        fake.calls_to(AFTER_SEND).len(),
        2,
        "nothing remembers the first call"
    );
}

#[tokio::test]
async fn with_the_ledger_at_most_once_a_panic_after_the_send_is_never_called_again() {
    let moto = Moto::start().await;
    let fake = FakeVoice::start(Script::default()).await.unwrap();
    let mut config = test_config();
    config.idempotency_table = Some("isolation-at-most-once".into());
    config.on_unknown_outcome = UnknownOutcome::DeadLetter;
    let dispatch = buggy_dispatch(&fake, &config, Some((&moto, "isolation-at-most-once"))).await;
    first_delivery(&dispatch, &fake).await;
    let next = next_delivery(&dispatch, &fake).await;
    assert_eq!(
        error_code(&next, "boom-after").as_deref(),
        Some("OutcomeUnknown")
    );
    assert_eq!(
        fate(&next, "boom-after"),
        Fate::Permanent,
        "its outcome is unknown: dead-lettered"
    );
    assert_eq!(fake.calls_to(AFTER_SEND).len(), 1, "rung once, never twice");
}

#[tokio::test]
async fn with_the_ledger_and_retry_a_panic_after_the_send_is_called_again_and_a_panic_before_releases_its_claim(
) {
    let moto = Moto::start().await;
    let fake = FakeVoice::start(Script::default()).await.unwrap();
    let mut config = test_config();
    config.idempotency_table = Some("isolation-retry".into());
    config.on_unknown_outcome = UnknownOutcome::Retry;
    let dispatch = buggy_dispatch(&fake, &config, Some((&moto, "isolation-retry"))).await;
    first_delivery(&dispatch, &fake).await;
    // The claim of the record that panicked before its send was released, not left to lapse
    // with its lease: called at once on the next delivery (asserted in `next_delivery`).
    let next = next_delivery(&dispatch, &fake).await;
    assert_eq!(fate(&next, "boom-after"), Fate::Sent);
    assert_eq!(fake.calls_to(AFTER_SEND).len(), 2, "retry calls again");
}
