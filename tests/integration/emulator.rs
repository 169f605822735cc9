//! The bootstrap binary under cargo-lambda's runtime emulator (`cargo lambda watch
//! --only-lambda-apis`), invoked with `cargo lambda invoke --data-file` on every file in
//! `events/`, against the voice fake: the same path as a deployed function, the real Lambda
//! Runtime API client included.
//!
//! The binary is `$BOOTSTRAP` when set (CI sets it to the release build of `cargo lambda
//! build --release`), else the one Cargo built for this test run.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use voice_fake::{FakeVoice, Script};

use crate::support::to_utc_midnight;
use crate::support::{events, failures};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$CARGO_LAMBDA`, the project's `.venv` (as `make test` installs it), or the `PATH`.
fn cargo_lambda() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_LAMBDA") {
        return PathBuf::from(path);
    }
    let venv = manifest_dir().join(".venv/bin/cargo-lambda");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("cargo-lambda")
}

pub fn bootstrap() -> PathBuf {
    std::env::var_os("BOOTSTRAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bootstrap")))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn spawn(command: &mut Command, what: &str) -> Child {
    command.kill_on_drop(true).spawn().unwrap_or_else(|err| {
        panic!(
            "cannot start {what}: {err}. The emulator test needs cargo-lambda: run \
                 `make test` (it installs cargo-lambda into .venv), or `pip install cargo-lambda`, \
                 or set CARGO_LAMBDA to its path"
        )
    })
}

/// Collects a child's stdout lines as they come.
fn collect_lines(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    if let Some(stdout) = child.stdout.take() {
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
    }
    lines
}

async fn invoke(port: u16, event_file: &str) -> Value {
    let output = Command::new(cargo_lambda())
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(events::sent_now_copy(event_file))
        .output()
        .await
        .expect("cargo lambda invoke runs");
    assert!(
        output.status.success(),
        "cargo lambda invoke {event_file} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{event_file}: the response is not JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test]
async fn the_bootstrap_answers_every_sample_event_under_the_runtime_emulator() {
    every_sample_event_under_the_emulator("v1").await;
}

/// The same events through End User Messaging v2 (`VOICE_API=v2`): the same fates, but for
/// the call instructions, which v2 cannot place (permanent, reported as before without a
/// DLQ), and the same calls accepted.
#[tokio::test]
async fn under_v2_the_bootstrap_answers_every_sample_event_the_same_way() {
    every_sample_event_under_the_emulator("v2").await;
}

async fn every_sample_event_under_the_emulator(api: &str) {
    let to_midnight_before = to_utc_midnight(std::time::SystemTime::now());
    // The same destinations failing in each API's own error codes.
    let script_file = match api {
        "v1" => "voice-fake/scripts/mixed-batch.json",
        _ => "voice-fake/scripts/mixed-batch-v2.json",
    };
    let script = std::fs::read_to_string(manifest_dir().join(script_file)).unwrap();
    let fake = FakeVoice::start(Script::from_json(&script).unwrap())
        .await
        .unwrap();

    let port = free_port();
    let _emulator = spawn(
        Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(port.to_string())
            // How long an invoke waits for the answer.
            .args(["--timeout", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "cargo lambda watch",
    );
    // The function's first request is for its first event: the emulator must be listening.
    let mut listening = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        listening,
        "cargo lambda watch did not listen on port {port}"
    );
    let mut function = spawn(
        Command::new(bootstrap())
            .env_clear()
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
            .env("AWS_SECRET_ACCESS_KEY", "emulator-secret")
            .env("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE", fake.endpoint_url())
            .env(
                "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2",
                fake.endpoint_url(),
            )
            .env("VOICE_API", api)
            .env("ORIGINATION_PHONE_NUMBER", "+12065550199")
            .env("SEND_ATTEMPT_TIMEOUT_MS", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
        "the bootstrap",
    );
    let stdout = collect_lines(&mut function);

    let single = invoke(port, "single-message.json").await;
    assert_eq!(
        failures(&single),
        Vec::<String>::new(),
        "function output: {:#?}",
        stdout.lock().unwrap()
    );

    for file in [
        "mixed-batch.json",
        "fifo-two-groups.json",
        "hostile-bodies.json",
    ] {
        let response = invoke(port, file).await;
        assert_eq!(
            failures(&response),
            events::expected_failures(file),
            "{file}"
        );
    }

    // Sent exactly as often as the events ask: 1 + 2 + 6 + 1 calls accepted, all through
    // the API asked for.
    let accepted = fake.calls().iter().filter(|c| c.accepted()).count();
    assert_eq!(accepted, 10);
    assert!(fake.calls().iter().all(|c| c.api == api), "{api}");

    // Its stdout: JSON log lines, and one EMF summary per invocation.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = stdout.lock().unwrap().clone();
    let json: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let summaries: Vec<&Value> = json
        .iter()
        .filter(|doc| doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "Records")
        .collect();
    let records: Vec<u64> = summaries
        .iter()
        .map(|doc| doc["Records"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = [
        "single-message.json",
        "mixed-batch.json",
        "fifo-two-groups.json",
        "hostile-bodies.json",
    ]
    .iter()
    .map(|file| events::ids(file).len() as u64)
    .collect();
    assert_eq!(records, expected);
    assert_eq!(summaries[1]["Sent"], 2);
    assert_eq!(summaries[1]["FunctionName"], "_");
    // The codes of every invocation's failures (the mixed batch holds most of them).
    let mixed_codes: Vec<&str> = json
        .iter()
        .filter_map(|doc| doc["ErrorCode"].as_str())
        .collect();
    // Each API's codes reach the logs by name. The throttled record of the mixed batch is
    // the call instructions one, which v2 refuses before any request.
    let expected_codes: &[&str] = match api {
        "v1" => &[
            "TooManyRequestsException",
            "InternalServiceErrorException",
            "LimitExceededException",
            "BadRequestException",
            "NotFoundException",
        ],
        _ => &[
            "UnsupportedContent",
            "InternalServerException",
            "ConflictException",
            "ResourceNotFoundException",
        ],
    };
    for code in expected_codes {
        assert!(mixed_codes.contains(code), "{code}: {mixed_codes:?}");
    }
    // v2's daily limit for one destination: the record waits for the limit to reset (the
    // next 00:00 UTC) when that comes within its time to live (MESSAGE_TTL_SECONDS, 3600 s
    // by default), else it is given up at once. Within a minute of the boundary, either.
    if api == "v2" {
        // The bootstrap read the clock between these two looks: a run that crossed a
        // boundary (midnight UTC, or the time to live's edge) may have seen either side.
        let to_midnight = to_utc_midnight(std::time::SystemTime::now());
        let waits = mixed_codes.contains(&"ServiceQuotaExceededException");
        let given_up = mixed_codes.contains(&"Expired");
        let side = |seconds: u64| match seconds {
            0..=3_540 => Some(true),
            3_541..=3_660 => None,
            _ => Some(false),
        };
        match (side(to_midnight_before), side(to_midnight)) {
            (Some(true), Some(true)) => {
                assert!(waits && !given_up, "{to_midnight} s: {mixed_codes:?}")
            }
            (Some(false), Some(false)) => {
                assert!(given_up, "{to_midnight} s: {mixed_codes:?}")
            }
            _ => assert!(waits || given_up, "{mixed_codes:?}"),
        }
    }
    assert!(
        json.iter()
            .any(|line| line["fields"]["message"] == "batch done"),
        "the batch summary log line"
    );
}
