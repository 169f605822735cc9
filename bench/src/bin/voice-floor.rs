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
//!     voice-floor --api v1|v2 --concurrency 50

use std::io::{BufRead, Write};

use futures::StreamExt;
use voice_dispatch::config::Config;
use voice_dispatch::wiring;

enum Client {
    V1(aws_sdk_pinpointsmsvoice::Client),
    V2(aws_sdk_pinpointsmsvoicev2::Client),
}

impl Client {
    /// Record `i`'s request, as the function sends it for the bench's event.
    async fn send(&self, i: usize) -> bool {
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
                    .is_ok()
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
                    .is_ok()
            }
        }
    }

    /// `n` requests, `concurrency` in flight; how many were accepted.
    async fn run(&self, n: usize, concurrency: usize) -> usize {
        futures::stream::iter(0..n)
            .map(|i| self.send(i))
            .buffer_unordered(concurrency.max(1))
            .filter(|accepted| std::future::ready(*accepted))
            .count()
            .await
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
    // Warm: connections open, as in the function's warm-up batch.
    assert_eq!(client.run(10, concurrency).await, 10, "warm-up");
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
        let accepted = client.run(n, concurrency).await;
        let _ = writeln!(out, "done {accepted}");
        let _ = out.flush();
    }
}
