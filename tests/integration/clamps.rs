//! Values the template accepts never break the function: the release bootstrap (in CI), run
//! with each of them under a Lambda Runtime API, still places a call, and says once, at WARN,
//! what it adjusted.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use voice_fake::runtime_api::RuntimeApi;
use voice_fake::{FakeVoice, Script};

use crate::support::*;

/// Runs the bootstrap with `extra` set, hands it one event with `timeout` to answer, and
/// returns the answer, the calls the fake took and the process's log lines.
async fn one_invocation(extra: &[(&str, &str)], timeout: Duration) -> (Value, usize, Vec<Value>) {
    let fake = FakeVoice::start(Script::default()).await.expect("the fake");
    let api = RuntimeApi::start().await.expect("a runtime API");
    let mut child = Command::new(crate::emulator::bootstrap())
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDCLAMPS")
        .env("AWS_SECRET_ACCESS_KEY", "clamps-secret")
        .env("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE", fake.endpoint_url())
        .env("AWS_LAMBDA_FUNCTION_NAME", "clamps")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .env("ORIGINATION_PHONE_NUMBER", "+12065550199")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the bootstrap starts");
    api.first_request(Duration::from_secs(30))
        .await
        .expect("init succeeds: the function asks for an event");
    let event = serde_json::json!({
        "Records": [record("m1", Some(&body("+12065550101", "hello")))]
    });
    let (_, answer) = api
        .invoke_within(event.to_string(), timeout)
        .await
        .expect("an answer before the deadline");
    let _ = child.kill().await;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out).await;
    }
    let lines = out
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let answer = serde_json::from_str(&answer).expect("a JSON answer");
    (answer, fake.calls().len(), lines)
}

fn warnings(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| line["level"] == "WARN")
        .map(Value::to_string)
        .collect()
}

#[tokio::test]
async fn a_backoff_base_above_its_maximum_still_sends_and_warns_once() {
    let (answer, calls, lines) = one_invocation(
        &[
            ("RETRY_BACKOFF_BASE_SECONDS", "600"),
            ("RETRY_BACKOFF_MAX_SECONDS", "60"),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    assert_eq!(calls, 1, "the call was placed");
    let warned = warnings(&lines);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("RETRY_BACKOFF_BASE_SECONDS"),
        "{warned:?}"
    );
}

#[tokio::test]
async fn a_deadline_reserve_longer_than_the_invocation_still_sends_and_warns_once() {
    // The template allows DeadlineSafetyMs up to 600,000 with its shortest timeout, 30 s.
    let (answer, calls, lines) =
        one_invocation(&[("DEADLINE_SAFETY_MS", "600000")], Duration::from_secs(30)).await;
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    assert_eq!(calls, 1, "the call was placed");
    let warned = warnings(&lines);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("DEADLINE_SAFETY_MS"), "{warned:?}");
}
