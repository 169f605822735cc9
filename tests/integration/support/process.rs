//! The bootstrap as a process under a Lambda Runtime API, for one invocation.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use voice_fake::runtime_api::RuntimeApi;
use voice_fake::{FakeVoice, Script};

/// What Lambda and the stack set for a function named `name` in `region`, its voice client
/// pointed at `voice` and its SQS and DynamoDB clients at `moto`, calling from the function's
/// own number and dead-lettering to `dlq`: the environment the fleets of these tests share.
pub fn function_environment(
    name: &str,
    region: &str,
    voice: &str,
    moto: &str,
    dlq: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_REGION", region.into()),
        ("AWS_ACCESS_KEY_ID", format!("AKID{}", name.to_uppercase())),
        ("AWS_SECRET_ACCESS_KEY", format!("{name}-secret")),
        ("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE", voice.into()),
        ("AWS_ENDPOINT_URL_SQS", moto.into()),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.into()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
        ("ORIGINATION_PHONE_NUMBER", "+12065550199".into()),
        ("DEAD_LETTER_QUEUE_URL", dlq.into()),
    ]
}

/// The bootstrap under `api`, with `vars` as its whole environment besides: no stdin, killed
/// with its handle. The caller chooses what becomes of its output.
pub fn bootstrap_under(api: &RuntimeApi, vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(crate::emulator::bootstrap());
    command
        .env_clear()
        .envs(vars.iter().map(|(name, value)| (*name, value.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// What one invocation of the bootstrap came to.
pub struct Invocation {
    pub answer: Value,
    /// Calls the fake took.
    pub calls: usize,
    /// The stdout lines that are JSON.
    pub lines: Vec<Value>,
    /// Everything the process wrote, stdout and stderr, line by line.
    pub raw: Vec<String>,
    /// From handing the event over to the answer.
    pub answered_in: Duration,
    /// The fake's calls, in the order they arrived.
    pub received: Vec<voice_fake::ReceivedCall>,
    /// The files the process had mapped once it answered (`/proc/PID/maps`): its own
    /// binary and the shared libraries it loaded.
    pub mapped: Vec<String>,
}

/// Runs the bootstrap (JSON logs at WARN unless `extra` says otherwise) with `extra` set, and
/// hands it one event of `records` with `timeout` to answer.
pub async fn one_invocation(
    extra: &[(&str, &str)],
    records: Vec<Value>,
    timeout: Duration,
) -> Invocation {
    one_invocation_with(Script::default(), extra, records, timeout).await
}

/// [`one_invocation`] against a fake that follows `script`.
pub async fn one_invocation_with(
    script: Script,
    extra: &[(&str, &str)],
    records: Vec<Value>,
    timeout: Duration,
) -> Invocation {
    let fake = FakeVoice::start(script).await.expect("the fake");
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
        // `{fake}` in a value stands for the fake's endpoint.
        .envs(
            extra
                .iter()
                .map(|(name, value)| (*name, value.replace("{fake}", &fake.endpoint_url()))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the bootstrap starts");
    api.first_request(Duration::from_secs(30))
        .await
        .expect("init succeeds: the function asks for an event");
    let event = serde_json::json!({ "Records": records });
    let handed = std::time::Instant::now();
    let (answered_at, answer) = api
        .invoke_within(event.to_string(), timeout)
        .await
        .unwrap_or_else(|| panic!("no answer within the invocation's {timeout:?}"));
    let mapped = child.id().map_or_else(Vec::new, mapped_files);
    let _ = child.kill().await;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out).await;
    }
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err).await;
    }
    let lines = out
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    Invocation {
        answer: serde_json::from_str(&answer).expect("a JSON answer"),
        calls: fake.calls().len(),
        answered_in: answered_at.duration_since(handed),
        received: fake.calls(),
        lines,
        raw: out.lines().chain(err.lines()).map(str::to_owned).collect(),
        mapped,
    }
}

/// The files a running process has mapped, each once.
fn mapped_files(pid: u32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut files: Vec<String> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/'))
        .map(str::to_owned)
        .collect();
    files.dedup();
    files
}

/// Whether Lambda reads a line's own level: a `level` it knows and an RFC 3339 `timestamp`.
pub fn lambda_reads_level(line: &Value) -> bool {
    const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    line["level"].as_str().is_some_and(|l| LEVELS.contains(&l))
        && line["timestamp"]
            .as_str()
            .is_some_and(|t| OffsetDateTime::parse(t, &Rfc3339).is_ok())
}

/// Lambda's log-level filter as its documentation states it: a JSON line's `level` (one of
/// TRACE..FATAL), or INFO when the level is missing or invalid or the `timestamp` is not RFC
/// 3339; kept when at or above the function's `ApplicationLogLevel`.
pub fn lambda_keeps(line: &Value, application_level: &str) -> bool {
    const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rank = |level: &str| LEVELS.iter().position(|l| *l == level);
    let timestamp_ok = line["timestamp"]
        .as_str()
        .is_some_and(|t| OffsetDateTime::parse(t, &Rfc3339).is_ok());
    let level = line["level"]
        .as_str()
        .and_then(rank)
        .filter(|_| timestamp_ok)
        .unwrap_or(2);
    level >= rank(application_level).expect("a Lambda log level")
}
