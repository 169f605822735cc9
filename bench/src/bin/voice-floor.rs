//! The floor: what the AWS SDK for Rust itself costs to send one `SendVoiceMessage`. The
//! voice client is built exactly as the function builds it (`wiring::sdk_config_loader` and
//! `wiring::voice_client` / `voice_v2_client`: the same HTTP client and TLS, no retries, the
//! same timeouts), on the same runtime flavour (current-thread) and release profile, from
//! the same environment; it sends the requests the function sends for the bench's records
//! (the same numbers, SSML text, voice; under v2 the same `TimeToLive` and `Context`), `C` in
//! flight, and nothing else: no parsing, no engine, no logs, no metrics.
//!
//! Driven by `voice-bench` over stdin and stdout: it warms up, prints `ready`, then for each
//! `run N` line sends N requests and prints `done`; the bench reads the process's CPU time
//! around each run, as it does the function's.
//!
//! With the ledger configured (`IDEMPOTENCY_TABLE_NAME`), each request is claimed and
//! finished through the function's own ledger adapter, as the engine does for a record: the
//! same `PutItem` / `TransactWriteItems` requests with the same items (key, body hash, lease,
//! expiration, request ids), grouped the same way, and nothing else of the engine.
//!
//! With delivery outcomes configured as well (`OUTCOME_EVENT_BUS_NAME`, `STATUS_QUEUE_URL`),
//! the ledger records each call as the function's does, and after each run the timers of the
//! accepted requests are armed through the function's own status-queue adapter: the same
//! `SendMessageBatch` requests (ten checks each, all at once), as the call path arms them at
//! the end of a batch.
//!
//!     voice-floor --api v1|v2 --concurrency 50

use std::io::{BufRead, Write};

use futures::StreamExt;
use voice_dispatch::adapters::dynamodb::DynamoLedger;
use voice_dispatch::adapters::sqs::SqsCheckQueue;
use voice_dispatch::config::Config;
use voice_dispatch::core::delivery::{self, Check};
use voice_dispatch::core::ledger::{self, Claim, Entry, Finish, RequestIds, Status};
use voice_dispatch::core::ports::{CheckQueue, Ledger};
use voice_dispatch::wiring;

enum Client {
    V1(aws_sdk_pinpointsmsvoice::Client),
    V2(aws_sdk_pinpointsmsvoicev2::Client),
}

/// The ledger's side of a record, as the engine writes it: its claim, then `SENT`.
struct Books {
    ledger: DynamoLedger,
    ttl_seconds: u64,
    /// The bodies the bench's records carry, made before the runs: the function has each
    /// record's body in hand and only hashes it.
    bodies: Vec<String>,
    /// With delivery outcomes on: the status queue the accepted requests' timers go to, and
    /// how long they wait.
    timers: Option<(SqsCheckQueue, std::time::Duration)>,
}

/// Record `i`'s body, as the bench's event gives it.
fn body(i: usize) -> String {
    serde_json::json!({
        "DestinationPhoneNumber": format!("+1206555{:04}", i % 10_000),
        "Content": {"SSMLMessage": {"LanguageCode": "en-US", "VoiceId": "Matthew",
            "Text": format!("<speak>Alert {i}: disk full on db-1</speak>")}}
    })
    .to_string()
}

/// Record `i` of round `round`'s ledger key: a message id no round repeats (as every bench
/// event's ids are new).
fn key(round: u64, i: usize) -> String {
    format!("00000000-0000-4000-f{round:03x}-{i:012}")
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Books {
    /// Arms the timers of the requests `accepted` names, as the call path does at the end
    /// of a batch: each waits for its call's final event under the request's own key.
    async fn arm(&self, round: u64, accepted: &[usize]) -> usize {
        let Some((timers, wait)) = &self.timers else {
            return accepted.len();
        };
        let now_ms = epoch_ms();
        let checks: Vec<Check> = accepted
            .iter()
            .map(|&i| Check {
                outcome_key: key(round, i),
                request_key: key(round, i),
                due_ms: now_ms + wait.as_millis() as u64,
                delay: (*wait).min(delivery::MAX_TIMER_DELAY),
            })
            .collect();
        timers
            .arm(&checks)
            .await
            .into_iter()
            .filter(Result::is_ok)
            .count()
    }

    /// Record `i` of round `round`'s claim: its key a message id no round repeats (as every
    /// bench event's ids are new), the hash of the body the bench gives it.
    fn claim(&self, round: u64, i: usize) -> Claim {
        let id = key(round, i);
        let made;
        let body = match self.bodies.get(i) {
            Some(body) => body,
            None => {
                made = body(i);
                &made
            }
        };
        let now_ms = epoch_ms();
        Claim {
            key: id.clone(),
            entry: Entry {
                status: Status::InProgress,
                body_hash: ledger::body_hash(body),
                claim_id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
                lease_until_ms: now_ms + 900_000,
                expiration: now_ms / 1_000 + self.ttl_seconds,
                voice_message_id: None,
            },
            now_ms,
            on_unknown: Default::default(),
            request: RequestIds {
                sqs_message_id: id.clone(),
                idempotency_key: id,
            },
            keep: None,
        }
    }
}

impl Client {
    /// Record `i`'s request, claimed first and recorded sent after when there is a ledger.
    async fn place(&self, books: Option<&Books>, round: u64, i: usize) -> bool {
        let Some(books) = books else {
            return self.send(i).await.is_some();
        };
        let claim = books.claim(round, i);
        if books.ledger.claim(&claim).await.is_err() {
            return false;
        }
        let Some(voice_message_id) = self.send(i).await else {
            return false;
        };
        let sent = Finish::Sent {
            voice_message_id,
            region: None,
        };
        books.ledger.finish(&claim, &sent).await.is_ok()
    }

    /// Record `i`'s request, as the function sends it for the bench's event; the call's
    /// message id when it was accepted.
    async fn send(&self, i: usize) -> Option<Option<String>> {
        let destination = format!("+1206555{:04}", i % 10_000);
        let text = format!("<speak>Alert {i}: disk full on db-1</speak>");
        match self {
            Client::V1(client) => {
                use aws_sdk_pinpointsmsvoice::types::{SsmlMessageType, VoiceMessageContent};
                let content = VoiceMessageContent::builder()
                    .ssml_message(
                        SsmlMessageType::builder()
                            .language_code("en-US")
                            .voice_id("Matthew")
                            .text(text)
                            .build(),
                    )
                    .build();
                client
                    .send_voice_message()
                    .destination_phone_number(destination)
                    .origination_phone_number("+12065550199")
                    .content(content)
                    .send()
                    .await
                    .ok()
                    .map(|sent| sent.message_id)
            }
            Client::V2(client) => {
                use aws_sdk_pinpointsmsvoicev2::types::{VoiceId, VoiceMessageBodyTextType};
                client
                    .send_voice_message()
                    .destination_phone_number(destination)
                    .origination_identity("+12065550199")
                    .message_body(text)
                    .message_body_text_type(VoiceMessageBodyTextType::Ssml)
                    .voice_id(VoiceId::Matthew)
                    .time_to_live(3_600)
                    .context("SqsMessageId", format!("00000000-0000-4000-0000-{i:012}"))
                    .send()
                    .await
                    .ok()
                    .map(|sent| sent.message_id)
            }
        }
    }

    /// `n` requests, `concurrency` in flight; how many were accepted (and recorded, and
    /// their timers armed).
    async fn run(&self, books: Option<&Books>, round: u64, n: usize, concurrency: usize) -> usize {
        let accepted: Vec<usize> = futures::stream::iter(0..n)
            .map(|i| async move { self.place(books, round, i).await.then_some(i) })
            .buffer_unordered(concurrency.max(1))
            .filter_map(std::future::ready)
            .collect()
            .await;
        match books {
            Some(books) => books.arm(round, &accepted).await,
            None => accepted.len(),
        }
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let api = arg("--api").unwrap_or_else(|| "v1".into());
    let concurrency: usize = arg("--concurrency")
        .and_then(|c| c.parse().ok())
        .unwrap_or(50);
    // As the function does, before anything reads the environment.
    wiring::unset_empty_endpoint_overrides();
    let config = Config::from_env().expect("the function's configuration");
    let sdk = wiring::sdk_config_loader(&config).load().await;
    let client = match api.as_str() {
        "v2" => Client::V2(wiring::voice_v2_client(&sdk)),
        _ => Client::V1(wiring::voice_client(&sdk)),
    };
    let books = config.idempotency_table.clone().map(|table| {
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        Books {
            // As the function's: with outcomes on, each call is recorded under its own item.
            ledger: match config.outcomes {
                Some(_) => DynamoLedger::recording_calls(dynamodb, table),
                None => DynamoLedger::new(dynamodb, table),
            },
            ttl_seconds: config.idempotency_ttl.as_secs(),
            bodies: (0..10_000).map(body).collect(),
            timers: config.outcomes.as_ref().map(|outcomes| {
                let sqs = aws_sdk_sqs::Client::new(&sdk);
                let queue = SqsCheckQueue::new(sqs, outcomes.status_queue_url.clone());
                (queue, config.outcome_wait)
            }),
        }
    });
    let books = books.as_ref();
    // Warm: connections open, as in the function's warm-up batch.
    assert_eq!(client.run(books, 0, 10, concurrency).await, 10, "warm-up");
    let mut round = 0;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Some(n) = line
            .strip_prefix("run ")
            .and_then(|n| n.trim().parse().ok())
        else {
            break;
        };
        round += 1;
        let accepted = client.run(books, round, n, concurrency).await;
        let _ = writeln!(out, "done {accepted}");
        let _ = out.flush();
    }
}
