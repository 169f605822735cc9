//! The status function's figures: CPU per final event that puts its request back on the
//! call queue (a redial), and per final event that fixes and publishes the request's outcome,
//! each on moto (DynamoDB, SQS, EventBridge's default bus) behind the keep-alive front.
//!
//! The ledger is filled as the call function leaves it (through the ledger adapter itself):
//! each request `SENT` with its call's item and, for the redial run, the body and the
//! policy (`BUSY;2;1`) kept with it. Then batches of 10 busy events (the status queue's batch
//! size) go to the release bootstrap under the Runtime API, from the status queue's ARN.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::process::Command;
use voice_dispatch::adapters::dynamodb::DynamoLedger;
use voice_dispatch::core::ledger::{Claim, Entry, Finish, RequestIds, Status, UnknownOutcome};
use voice_dispatch::core::ports::Ledger;
use voice_dispatch::core::redial::{Keep, RedialOn, RedialPolicy};
use voice_fake::runtime_api::RuntimeApi;

use crate::{cpu_ns, failures, keep_alive_front, median, moto_with_ledger_table, LEDGER_TABLE};

/// Events per run, in batches of [`BATCH`].
pub const EVENTS: usize = 500;
const BATCH: usize = 10;
const ACCOUNT: &str = "123456789012";

pub struct StatusFigures {
    /// CPU per final event that redials, µs.
    pub per_redial_us: f64,
    /// CPU per final event that fixes and publishes an outcome, µs.
    pub per_outcome_us: f64,
    /// Redials the call queue held after the run.
    pub redials_queued: u64,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An SDK configuration for moto at `endpoint` (plain HTTP, the bench's credentials).
pub async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "AKIDBENCH",
            "bench-secret",
            None,
            None,
            "bench",
        ))
        .load()
        .await
}

/// `n` requests placed as the call function leaves them: `SENT`, with their call's item;
/// with `keep`, the body and policy a redial needs. Their calls' ids.
async fn placed(ledger: &DynamoLedger, run: &str, n: usize, keep: Option<&Keep>) -> Vec<String> {
    let now_ms = epoch_ms();
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{run}-request-{i}");
        let call = format!("{run}-call-{i}");
        let claim = Claim {
            key: key.clone(),
            entry: Entry {
                status: Status::InProgress,
                body_hash: "h".into(),
                claim_id: format!("claim-{i}"),
                lease_until_ms: now_ms + 60_000,
                expiration: now_ms / 1_000 + 86_400,
                voice_message_id: None,
            },
            now_ms,
            on_unknown: UnknownOutcome::Retry,
            request: RequestIds {
                sqs_message_id: format!("sqs-{run}-{i}"),
                idempotency_key: key,
            },
            keep: keep.cloned(),
        };
        ledger.claim(&claim).await.expect("a claim");
        let sent = Finish::Sent {
            voice_message_id: Some(call.clone()),
            region: None,
        };
        ledger.finish(&claim, &sent).await.expect("SENT");
        calls.push(call);
    }
    calls
}

/// An SQS event from the status queue: one busy event (a bare v2 record) per call.
fn busy_events(calls: &[String]) -> String {
    let at = epoch_ms();
    let records: Vec<_> = calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let body = json!({"eventType": "VOICE_BUSY", "eventVersion": "1.0",
                "eventTimestamp": at, "isFinal": true, "messageId": call,
                "messageStatus": "BUSY", "originationPhoneNumber": "+12065550199",
                "isoCountryCode": "US"});
            json!({
                "messageId": format!("status-{call}-{i}"),
                "receiptHandle": format!("AQEB{i}"),
                "body": body.to_string(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": at.to_string(),
                    "ApproximateFirstReceiveTimestamp": (at + 1).to_string()},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:bench-status"),
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

/// The status function's CPU per event over `calls`, in batches of 10, µs: the median of
/// the batches.
async fn cpu_per_event(bootstrap: &Path, front: &str, calls: &[String]) -> f64 {
    let api = RuntimeApi::start().await.expect("a runtime API");
    let queue = |name: &str| format!("{front}/{ACCOUNT}/{name}");
    let mut child = Command::new(bootstrap)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "voice-status")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
        .env("AWS_ENDPOINT_URL_SQS", front)
        .env("AWS_ENDPOINT_URL_DYNAMODB", front)
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", front)
        .env("ORIGINATION_PHONE_NUMBER", "+12065550199")
        .env("IDEMPOTENCY_TABLE_NAME", LEDGER_TABLE)
        .env("DEAD_LETTER_QUEUE_URL", queue("bench-status-dlq"))
        .env("OUTCOME_EVENT_BUS_NAME", "default")
        .env("STATUS_QUEUE_URL", queue("bench-status"))
        .env("REDIAL_ON", "BUSY")
        .env("REDIAL_MAX_CALLS", "2")
        .env("REDIAL_INTERVAL_SECONDS", "1")
        .env("CALL_QUEUE_URL", queue("bench-calls"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the bootstrap starts");
    let pid = child.id().expect("a running function");
    api.first_request(Duration::from_secs(30))
        .await
        .expect("ready");
    // The first batch warms the clients' connections; the rest are measured.
    let mut cpu = Vec::new();
    for (index, batch) in calls.chunks(BATCH).enumerate() {
        let before = cpu_ns(pid);
        let (_, response) = api.invoke(busy_events(batch)).await;
        assert_eq!(failures(&response), 0, "status batch: {response}");
        if index > 0 {
            cpu.push((cpu_ns(pid) - before) as f64 / batch.len() as f64 / 1_000.0);
        }
    }
    let _ = child.kill().await;
    median(&mut cpu)
}

/// Both runs on one moto.
pub async fn measure_status(bootstrap: &Path, moto_program: &Path) -> StatusFigures {
    let (_moto, moto) = moto_with_ledger_table(moto_program).await;
    let config = sdk(&moto).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    for name in ["bench-calls", "bench-status", "bench-status-dlq"] {
        sqs.create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("CreateQueue on moto");
    }
    let front = keep_alive_front(Some(moto.clone()), Duration::ZERO).await;
    let ledger = DynamoLedger::recording_calls(
        aws_sdk_dynamodb::Client::new(&config),
        LEDGER_TABLE.to_owned(),
    );
    let keep = Keep {
        body: json!({"DestinationPhoneNumber": "+12065550142",
            "Content": {"PlainTextMessage": {"Text": "Disk full on db-1"}}})
        .to_string(),
        policy: RedialPolicy {
            on: vec![RedialOn::Busy],
            max_calls: 2,
            interval: Duration::from_secs(1),
        },
        first_sent_ms: epoch_ms(),
        ttl: Duration::from_secs(3_600),
    };
    let redialled = placed(&ledger, "redial", EVENTS + BATCH, Some(&keep)).await;
    let published = placed(&ledger, "outcome", EVENTS + BATCH, None).await;
    let per_redial_us = cpu_per_event(bootstrap, &front, &redialled).await;
    let per_outcome_us = cpu_per_event(bootstrap, &front, &published).await;
    // The redials wait out their 1 s delay on the call queue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(format!("{moto}/{ACCOUNT}/bench-calls"))
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("GetQueueAttributes");
    let redials_queued = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    StatusFigures {
        per_redial_us,
        per_outcome_us,
        redials_queued,
    }
}

/// The status rows of the table.
pub fn print_status(figures: &StatusFigures, call_cpu_us: Option<f64>) {
    let versus = |us: f64| {
        call_cpu_us.map_or(String::new(), |call| {
            format!(" ({:.1} × a call's CPU per record, ledger off)", us / call)
        })
    };
    println!(
        "| CPU per redial (the status function: a busy final event recorded, the request read, the next call put on the call queue), moto behind the keep-alive front, batches of {BATCH}, median of {} | {:.2} µs{}; {} redials queued | – | – | – | – |",
        EVENTS / BATCH,
        figures.per_redial_us,
        versus(figures.per_redial_us),
        figures.redials_queued,
    );
    println!(
        "| CPU per outcome published (the status function: a busy final event recorded, the outcome fixed and put on EventBridge), same setup | {:.2} µs{} | – | – | – | – |",
        figures.per_outcome_us,
        versus(figures.per_outcome_us),
    );
}
