//! The bootstrap binary under cargo-lambda's runtime emulator (`cargo lambda watch
//! --only-lambda-apis`), invoked with `cargo lambda invoke --data-file` on every file in
//! `events/`, against the voice fake: the same path as a deployed function, the real Lambda
//! Runtime API client included.
//!
//! The binary is `$BOOTSTRAP` when set (CI sets it to the release build of `cargo lambda
//! build --release`), else the one Cargo built for this test run.
//!
//! Under v2 one destination is at its daily call limit, which resets at the next 00:00 UTC:
//! its record waits for the reset when that comes within its time to live, and is given up
//! at once otherwise. Beside the sample events, the test places one record on each side
//! whatever the time of day, by its `SentTimestamp` and time to live.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use voice_dispatch::core::expiry::DEFAULT_TTL_SECONDS;
use voice_fake::{FakeVoice, Script};

use crate::support::{events, failures, now_ms};

/// How long the emulator gives an invocation to answer (`cargo lambda watch --timeout`).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The sample events, in the order they are invoked.
const SAMPLES: [&str; 4] = [
    "single-message.json",
    "mixed-batch.json",
    "fifo-two-groups.json",
    "hostile-bodies.json",
];

/// The mixed batch's destination that v2's script refuses at its daily call limit.
const DAILY_LIMITED: &str = "+12065550104";

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

/// A child's stdout, line by line as it comes.
struct Output(watch::Receiver<Vec<String>>);

impl Output {
    fn collect(child: &mut Child) -> Self {
        let (sink, lines) = watch::channel(Vec::new());
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    sink.send_modify(|lines| lines.push(line));
                }
            });
        }
        Self(lines)
    }

    fn lines(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// Every line, as JSON, once the function has told `invocations` invocations: each one's
    /// batch line and EMF summary. It writes both before it answers, so they are in the pipe
    /// by the time an invoke returns; the wait is for this reader, and an invocation's own
    /// bound is more than it can need.
    async fn told(&mut self, invocations: usize) -> Vec<Value> {
        let all_told = |lines: &Vec<String>| {
            let json: Vec<Value> = lines
                .iter()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
            json.iter().filter(|doc| is_summary(doc)).count() >= invocations
                && json.iter().filter(|doc| is_batch_line(doc)).count() >= invocations
        };
        let waited = tokio::time::timeout(INVOKE_TIMEOUT, self.0.wait_for(all_told)).await;
        let in_time = waited.is_ok_and(|told| told.is_ok());
        let lines = self.lines();
        assert!(
            in_time,
            "the function did not tell {invocations} invocations within {INVOKE_TIMEOUT:?}: \
             {lines:#?}"
        );
        lines
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect()
    }
}

fn is_summary(doc: &Value) -> bool {
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "Records"
}

fn is_batch_line(doc: &Value) -> bool {
    doc["fields"]["message"] == "batch done"
}

/// Invokes the function through the emulator with the event in `file`.
async fn invoke(port: u16, file: &Path) -> Value {
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
        .arg(file)
        .output()
        .await
        .expect("cargo lambda invoke runs");
    let name = file.display();
    assert!(
        output.status.success(),
        "cargo lambda invoke {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{name}: the response is not JSON ({err}): {}",
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
/// DLQ), and the same calls accepted. And v2's daily limit for one destination, both ways.
#[tokio::test]
async fn under_v2_the_bootstrap_answers_every_sample_event_the_same_way() {
    every_sample_event_under_the_emulator("v2").await;
}

async fn every_sample_event_under_the_emulator(api: &str) {
    let fake = the_fake_for(api).await;
    let port = free_port();
    let _emulator = the_emulator_listening_on(port).await;
    let mut function = the_function_under_the_emulator(port, &fake, api);
    let mut stdout = Output::collect(&mut function);
    let mixed_batch = every_sample_event_is_answered(port, &stdout).await;
    each_call_is_placed_as_often_as_the_events_ask(&fake, api);
    let lines = stdout.told(SAMPLES.len()).await;
    stdout_is_json_lines_and_one_summary_per_invocation(&lines);
    each_apis_error_codes_reach_the_logs(&lines, api);
    if api == "v2" {
        the_mixed_batchs_daily_limit_takes_the_path_its_age_gives(&lines, &mixed_batch);
        let mut told = SAMPLES.len();
        for case in [DailyLimit::Waits, DailyLimit::GivenUp] {
            told += 1;
            a_daily_limit_takes_the_path_the_time_to_live_gives(
                case,
                port,
                &fake,
                &mut stdout,
                told,
            )
            .await;
        }
    }
}

/// The fake, failing the same destinations in each API's own error codes.
async fn the_fake_for(api: &str) -> FakeVoice {
    let script_file = match api {
        "v1" => "voice-fake/scripts/mixed-batch.json",
        _ => "voice-fake/scripts/mixed-batch-v2.json",
    };
    let script = std::fs::read_to_string(manifest_dir().join(script_file)).unwrap();
    FakeVoice::start(Script::from_json(&script).unwrap())
        .await
        .unwrap()
}

/// `cargo lambda watch`, once it listens: the function's first request is for its first
/// event.
async fn the_emulator_listening_on(port: u16) -> Child {
    let emulator = spawn(
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
            .args(["--timeout", &INVOKE_TIMEOUT.as_secs().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "cargo lambda watch",
    );
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
    emulator
}

fn the_function_under_the_emulator(port: u16, fake: &FakeVoice, api: &str) -> Child {
    spawn(
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
            // The one SQS call these events lead to, the visibility change that holds back
            // the record waiting for v2's daily limit to reset, stays on loopback: the fake
            // refuses it, and a failed change leaves the record's fate alone.
            .env("AWS_ENDPOINT_URL_SQS", fake.endpoint_url())
            .env("VOICE_API", api)
            .env("ORIGINATION_PHONE_NUMBER", "+12065550199")
            .env("SEND_ATTEMPT_TIMEOUT_MS", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
        "the bootstrap",
    )
}

/// When the mixed batch's record for the daily-limited destination was sent (as stamped) and
/// when its invocation had answered, epoch milliseconds.
struct Stamped {
    id: String,
    sent_ms: u64,
    answered_ms: u64,
}

/// Each sample event, stamped as sent now, gets the answer its fates give.
async fn every_sample_event_is_answered(port: u16, stdout: &Output) -> Stamped {
    let mut mixed_batch = None;
    for file in SAMPLES {
        let copy = events::sent_now_copy(file);
        let response = invoke(port, &copy).await;
        assert_eq!(
            failures(&response),
            events::expected_failures(file),
            "{file}; function output: {:#?}",
            stdout.lines()
        );
        if file == "mixed-batch.json" {
            let event: Value = serde_json::from_str(&std::fs::read_to_string(&copy).unwrap())
                .expect("the stamped copy");
            let record = daily_limited_record(&event);
            mixed_batch = Some(Stamped {
                id: record["messageId"].as_str().unwrap_or_default().to_owned(),
                sent_ms: record["attributes"]["SentTimestamp"]
                    .as_str()
                    .and_then(|ms| ms.parse().ok())
                    .expect("a SentTimestamp"),
                answered_ms: now_ms(),
            });
        }
    }
    mixed_batch.expect("the mixed batch is a sample")
}

/// Sent exactly as often as the events ask: 1 + 2 + 6 + 1 calls accepted, all through the
/// API asked for.
fn each_call_is_placed_as_often_as_the_events_ask(fake: &FakeVoice, api: &str) {
    let accepted = fake.calls().iter().filter(|c| c.accepted()).count();
    assert_eq!(accepted, 10);
    assert!(fake.calls().iter().all(|c| c.api == api), "{api}");
}

/// Its stdout: JSON log lines, and one EMF summary per invocation.
fn stdout_is_json_lines_and_one_summary_per_invocation(lines: &[Value]) {
    let summaries: Vec<&Value> = lines.iter().filter(|doc| is_summary(doc)).collect();
    let records: Vec<u64> = summaries
        .iter()
        .map(|doc| doc["Records"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = SAMPLES
        .iter()
        .map(|file| events::ids(file).len() as u64)
        .collect();
    assert_eq!(records, expected);
    assert_eq!(summaries[1]["Sent"], 2);
    assert_eq!(summaries[1]["FunctionName"], "_");
    assert!(
        lines.iter().any(is_batch_line),
        "the batch summary log line"
    );
}

/// Each API's codes reach the logs by name (the mixed batch holds most of them). The
/// throttled record of the mixed batch is the call instructions one, which v2 refuses
/// before any request.
fn each_apis_error_codes_reach_the_logs(lines: &[Value], api: &str) {
    let codes: Vec<&str> = lines
        .iter()
        .filter_map(|doc| doc["ErrorCode"].as_str())
        .collect();
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
        assert!(codes.contains(code), "{code}: {codes:?}");
    }
}

/// What v2's daily limit for one destination does with a record: the limit resets at the
/// next 00:00 UTC, and the record waits for it when that comes within its time to live;
/// otherwise it is given up at once, refused until after its time to live ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DailyLimit {
    Waits,
    GivenUp,
}

const DAY_MS: u64 = 86_400_000;
/// The function's readings of the wall clock and the test's differ by milliseconds.
const CLOCK_SLACK: Duration = Duration::from_secs(1);

fn next_utc_midnight_ms(at_ms: u64) -> u64 {
    (at_ms / DAY_MS + 1) * DAY_MS
}

impl DailyLimit {
    /// The path for a record whose time to live ends at `expires_ms`, refused between
    /// `sent_ms` and `answered_ms`; `None` when the day turned in between, or the time to
    /// live ends within [`CLOCK_SLACK`] of midnight: then the function's own reading of the
    /// clock decides.
    fn for_record(expires_ms: u64, sent_ms: u64, answered_ms: u64) -> Option<Self> {
        let midnight = next_utc_midnight_ms(sent_ms);
        let slack = CLOCK_SLACK.as_millis() as u64;
        if next_utc_midnight_ms(answered_ms) != midnight {
            None
        } else if expires_ms >= midnight + slack {
            Some(Self::Waits)
        } else if expires_ms + slack <= midnight {
            Some(Self::GivenUp)
        } else {
            None
        }
    }

    /// The path the record's line says it took; panics on any other outcome.
    fn taken(lines: &[Value], id: &str) -> Self {
        let line = lines
            .iter()
            .find(|line| line["fields"]["message_id"] == id && line["fields"]["fate"].is_string())
            .unwrap_or_else(|| panic!("no line for {id}"));
        let fields = &line["fields"];
        let reason = fields["reason"].as_str().unwrap_or_default();
        match (fields["fate"].as_str(), fields["error_code"].as_str()) {
            (Some("transient"), Some("ServiceQuotaExceededException"))
                if reason.contains("DAILY_DESTINATION_CALL_LIMIT") =>
            {
                Self::Waits
            }
            (Some("expired"), Some("Expired"))
                if reason.contains(
                    "refused with ServiceQuotaExceededException (DAILY_DESTINATION_CALL_LIMIT) until",
                ) && reason.contains("after its time to live") =>
            {
                Self::GivenUp
            }
            _ => panic!("{id} neither waits for the daily limit nor is given up for it: {line}"),
        }
    }
}

/// The mixed batch's record for the destination at its daily limit, as Lambda delivers it.
fn daily_limited_record(event: &Value) -> Value {
    event["Records"]
        .as_array()
        .and_then(|records| {
            records
                .iter()
                .find(|record| {
                    record["body"]
                        .as_str()
                        .is_some_and(|body| body.contains(DAILY_LIMITED))
                })
                .cloned()
        })
        .expect("the mixed batch calls the daily-limited destination")
}

/// The mixed batch's daily-limited record, stamped as sent now, lives `MESSAGE_TTL_SECONDS`
/// (3600 s by default): its path is the one that time to live gives at this time of day.
fn the_mixed_batchs_daily_limit_takes_the_path_its_age_gives(lines: &[Value], stamped: &Stamped) {
    let expires_ms = stamped.sent_ms + u64::from(DEFAULT_TTL_SECONDS) * 1_000;
    let taken = DailyLimit::taken(lines, &stamped.id);
    if let Some(path) = DailyLimit::for_record(expires_ms, stamped.sent_ms, stamped.answered_ms) {
        assert_eq!(
            taken,
            path,
            "sent at {} ms: its time to live ends at {expires_ms} ms, the day at {} ms",
            stamped.sent_ms,
            next_utc_midnight_ms(stamped.sent_ms)
        );
    }
}

/// How long the record given up on has left to live when it is invoked: longer than any
/// invocation the emulator lets run, with `cargo lambda invoke` around it, so it is attempted
/// before it expires; and less than the time to the next 00:00 UTC, so the limit resets
/// after its time to live.
const LIFE_LEFT: Duration = Duration::from_secs(2 * INVOKE_TIMEOUT.as_secs());

/// One record for the daily-limited destination, placed so that its path is `case` whatever
/// the time of day: it is called once, reported (there is no DLQ), and takes that path.
async fn a_daily_limit_takes_the_path_the_time_to_live_gives(
    case: DailyLimit,
    port: u16,
    fake: &FakeVoice,
    stdout: &mut Output,
    told: usize,
) {
    let id = format!("daily-limit-{case:?}");
    let event = match case {
        // A time to live of two days, in the body: the next 00:00 UTC always comes within it.
        DailyLimit::Waits => daily_limited_event(&id, Duration::ZERO, Some(2 * 86_400)),
        // Sent long enough ago that `MESSAGE_TTL_SECONDS` leaves it LIFE_LEFT. In the day's
        // last LIFE_LEFT the reset would come first: then the test waits for the new day.
        DailyLimit::GivenUp => {
            let now = now_ms();
            let to_midnight = Duration::from_millis(next_utc_midnight_ms(now) - now);
            if to_midnight < LIFE_LEFT + CLOCK_SLACK {
                tokio::time::sleep(to_midnight + CLOCK_SLACK).await;
            }
            let ttl = Duration::from_secs(u64::from(DEFAULT_TTL_SECONDS));
            daily_limited_event(&id, ttl - LIFE_LEFT, None)
        }
    };
    let calls_before = fake.calls_to(DAILY_LIMITED).len();
    let response = invoke(port, &event).await;
    assert_eq!(failures(&response), [id.as_str()], "{case:?}: reported");
    assert_eq!(
        fake.calls_to(DAILY_LIMITED).len(),
        calls_before + 1,
        "{case:?}: called once, not again in place"
    );
    let lines = stdout.told(told).await;
    assert_eq!(DailyLimit::taken(&lines, &id), case, "{id}");
}

/// A one-record event of the mixed batch's daily-limited record: `id`, sent `age` ago, with
/// `body_ttl` seconds as its body's `TimeToLive` when given.
fn daily_limited_event(id: &str, age: Duration, body_ttl: Option<u32>) -> PathBuf {
    let mixed: Value = serde_json::from_str(&events::read("mixed-batch.json")).unwrap();
    let mut record = daily_limited_record(&mixed);
    let now = now_ms();
    record["messageId"] = json!(id);
    record["attributes"]["SentTimestamp"] = json!((now - age.as_millis() as u64).to_string());
    record["attributes"]["ApproximateFirstReceiveTimestamp"] = json!(now.to_string());
    if let Some(ttl) = body_ttl {
        let mut body: Value =
            serde_json::from_str(record["body"].as_str().unwrap_or_default()).unwrap();
        body["TimeToLive"] = json!(ttl);
        record["body"] = json!(body.to_string());
    }
    let file =
        std::env::temp_dir().join(format!("voice-dispatch-{}-{id}.json", std::process::id()));
    std::fs::write(&file, json!({ "Records": [record] }).to_string()).expect("a temporary event");
    file
}
