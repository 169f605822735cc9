//! The test harness: a fake, a dispatcher wired to it exactly as production wires the SDK,
//! and builders for SQS events shaped as Lambda delivers them.

pub mod capture;
pub mod esm;
pub mod events;
pub mod faults;
pub mod fleet;
pub mod moto;
pub mod process;

use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_lambda_events::sqs::SqsEvent;
use serde_json::{json, Value};
use voice_dispatch::adapters::lambda::ToResponse;
use voice_dispatch::config::Config;
use voice_dispatch::core::contract::MessageDefaults;
use voice_dispatch::core::phone::PhoneNumber;
use voice_dispatch::core::report::{BatchReport, Fate, RecordOutcome};
use voice_dispatch::wiring;
use voice_fake::{FakeVoice, Script};

pub const ORIGINATION: &str = "+12065550199";
pub const STANDARD_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:voice-calls";
pub const FIFO_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:voice-calls.fifo";

pub fn test_config() -> Config {
    Config {
        defaults: MessageDefaults {
            origination: PhoneNumber::parse(ORIGINATION).ok(),
            configuration_set: Some("alerts".to_owned()),
            backend: voice_dispatch::core::contract::Backend::V1,
            v2_voices: &[],
            v2_identity: None,
            configured_resources_only: false,
        },
        max_concurrency: 10,
        deadline_safety: Duration::from_millis(500),
        send_attempt_timeout: Duration::from_millis(1_000),
        ..Config::default()
    }
}

/// The production SDK configuration, pointed at `endpoint`, with the SDK's standard retry
/// mode (3 attempts) but short backoffs so tests stay fast. The SQS client keeps it; the
/// voice client is built with SDK retries off whatever this says (`wiring::voice_client`).
pub async fn sdk_config(endpoint: &str, config: &Config) -> SdkConfig {
    wiring::local_endpoint(wiring::sdk_config_loader(config), endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .load()
        .await
}

pub struct Harness {
    pub fake: FakeVoice,
    pub dispatch: wiring::Dispatch,
}

impl Harness {
    pub async fn start(script: Script) -> Self {
        Self::with_config(script, test_config()).await
    }

    pub async fn with_config(script: Script, config: Config) -> Self {
        let fake = FakeVoice::start(script).await.expect("the fake starts");
        let sdk = sdk_config(&fake.endpoint_url(), &config).await;
        let dispatch = wiring::voice_dispatch(&config, &sdk);
        Self { fake, dispatch }
    }

    /// Runs an event with a generous deadline, as an invocation with a 60 s timeout.
    pub async fn run(&self, event: &SqsEvent) -> BatchReport {
        self.run_until(event, SystemTime::now() + Duration::from_secs(60))
            .await
    }

    pub async fn run_until(&self, event: &SqsEvent, deadline: SystemTime) -> BatchReport {
        self.dispatch
            .handle(event, deadline)
            .await
            .expect("the event is accepted")
    }
}

/// A valid body in the README's contract, calling `destination`.
pub fn body(destination: &str, text: &str) -> String {
    json!({
        "DestinationPhoneNumber": destination,
        "Content": {"SSMLMessage": {"LanguageCode": "en-US", "VoiceId": "Matthew", "Text": text}}
    })
    .to_string()
}

/// Now in epoch milliseconds, as SQS writes `SentTimestamp`.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The event file's JSON with every record stamped as sent now, as SQS would stamp a message
/// sent today: the files' fixed timestamps are long past any time to live.
pub fn sent_now(event_json: &str) -> String {
    let mut event: Value = serde_json::from_str(event_json).expect("an event file");
    if let Some(records) = event["Records"].as_array_mut() {
        for record in records {
            record["attributes"]["SentTimestamp"] = json!(now_ms().to_string());
        }
    }
    event.to_string()
}

/// A record as Lambda delivers it from a standard queue, sent just now.
pub fn record(id: &str, body: Option<&str>) -> Value {
    let sent = now_ms();
    json!({
        "messageId": id,
        "receiptHandle": format!("AQEB{id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent.to_string(),
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": (sent + 1).to_string()
        },
        "messageAttributes": {},
        "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs",
        "eventSourceARN": STANDARD_ARN,
        "awsRegion": "us-east-1"
    })
}

/// A record as Lambda delivers it from a FIFO queue.
pub fn fifo_record(id: &str, group: &str, body: &str) -> Value {
    let mut record = record(id, Some(body));
    record["eventSourceARN"] = json!(FIFO_ARN);
    record["attributes"]["MessageGroupId"] = json!(group);
    record["attributes"]["MessageDeduplicationId"] = json!(id);
    record["attributes"]["SequenceNumber"] = json!("18849496460467696128");
    record
}

pub fn event(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("a well-formed SQS event")
}

pub fn outcome<'a>(report: &'a BatchReport, id: &str) -> &'a RecordOutcome {
    report
        .outcomes
        .iter()
        .find(|outcome| outcome.message_id == id)
        .unwrap_or_else(|| panic!("no outcome for {id}"))
}

pub fn fate(report: &BatchReport, id: &str) -> Fate {
    outcome(report, id).fate
}

pub fn error_code(report: &BatchReport, id: &str) -> Option<String> {
    outcome(report, id)
        .reason
        .as_ref()
        .map(|r| r.code.to_string())
}

/// The message ids of the partial batch response, as SQS would read them.
pub fn reported(report: &BatchReport) -> Vec<String> {
    report
        .to_response()
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier)
        .collect()
}

/// Seconds from `now` to the next 00:00 UTC, when v2's daily destination limit resets.
pub fn to_utc_midnight(now: std::time::SystemTime) -> u64 {
    let seconds = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    86_400 - seconds % 86_400
}

/// The message ids of a partial batch response (JSON), in its order.
pub fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {response}"))
        .iter()
        .map(|failure| {
            failure["itemIdentifier"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}
