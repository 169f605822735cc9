//! Benchmarks the release `bootstrap` against the Python baseline (Powertools
//! `BatchProcessor` + boto3 under `awslambdaric`), both as real processes on the same local
//! Lambda Runtime API and the same voice fake, and prints a table.
//!
//!     make bench

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

mod floor;
mod status;
use serde_json::json;
use tokio::process::{Child, Command};
use voice_fake::runtime_api::RuntimeApi;
use voice_fake::{FakeVoice, Script};

#[derive(Parser)]
struct Args {
    /// The release bootstrap (`cargo lambda build --release`).
    #[arg(long, default_value = "target/lambda/bootstrap/bootstrap")]
    bootstrap: PathBuf,
    /// A Python with awslambdaric, aws-lambda-powertools and boto3; none skips the baseline.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Cold starts to take the median of.
    #[arg(long, default_value_t = 11)]
    cold_starts: usize,
    /// Sends in flight per invocation (`MAX_CONCURRENCY`).
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// `moto_server`, the DynamoDB-compatible endpoint for the ledger-on figures; none skips them.
    #[arg(long)]
    moto_server: Option<PathBuf>,
    /// Only the ledger-on figures (for profiling them).
    #[arg(long)]
    ledger_only: bool,
    /// Only the runs at a Lambda-sized CPU share (cgroup v1 quota; needs root).
    #[arg(long)]
    cpu_share_only: bool,
    /// Only the status function's figures (CPU per redial, per outcome published).
    #[arg(long)]
    status_only: bool,
    /// Only the floor rows (the function against a bare SDK send loop: v1 and v2, ledger off,
    /// on, and with delivery outcomes on).
    #[arg(long)]
    floor_only: bool,
    /// With `--floor-only`: only the rows whose name starts so (`v1-off`, `v2-ledger`,
    /// `v1-outcomes`, `v2`; for profiling one under callgrind).
    #[arg(long, default_value = "")]
    floor_rows: String,
    /// Only the cold start (exec to the first request for an event, median) and the peak
    /// RSS after one invocation of one record.
    #[arg(long)]
    cold_only: bool,
    /// With `--cold-only`: another bootstrap (the commit a change starts from, say), measured
    /// in the same run, its cold starts taken in turn with this one's.
    #[arg(long)]
    against: Option<PathBuf>,
    /// How long the DynamoDB stub takes to answer in the run at the template's defaults.
    #[arg(long, default_value_t = 5)]
    stub_latency_ms: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rust,
    Python,
}

#[derive(Clone, Copy)]
struct Function<'a> {
    kind: Kind,
    bootstrap: &'a Path,
    python: Option<&'a Path>,
    concurrency: usize,
    /// `SEND_RATE_LIMIT`, for the paced run.
    send_rate: Option<&'a str>,
    /// The DynamoDB endpoint of the idempotency ledger (table `bench-ledger`).
    ledger: Option<&'a str>,
    /// `SEND_ATTEMPT_TIMEOUT_MS`, when not the default.
    attempt_timeout_ms: Option<&'a str>,
    /// `VOICE_API`: `v1` or `v2` (the Rust function only).
    voice_api: &'a str,
    /// Delivery outcomes on (with the ledger): the status queue and SQS at the ledger's
    /// endpoint, so the outcome timers go to the same stub.
    outcomes: bool,
}

impl Function<'_> {
    fn command(&self, api: &RuntimeApi, fake: &FakeVoice) -> Command {
        let command = match self.kind {
            Kind::Rust => Command::new(self.bootstrap),
            Kind::Python => {
                let mut command = Command::new(self.python.unwrap_or(Path::new("python3")));
                command
                    .args(["-m", "awslambdaric", "handler.lambda_handler"])
                    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/python"));
                command
            }
        };
        let mut command = self.with_env(command, fake);
        command.env("AWS_LAMBDA_RUNTIME_API", api.address());
        command
    }

    /// `command` with this function's whole environment (the floor runs with it too).
    fn with_env(&self, mut command: Command, fake: &FakeVoice) -> Command {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_FUNCTION_NAME", "voice-dispatch")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
            .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
            .env("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE", fake.endpoint_url())
            .env("ORIGINATION_PHONE_NUMBER", "+12065550199")
            .env("MAX_CONCURRENCY", self.concurrency.to_string())
            .env("SEND_RATE_LIMIT", self.send_rate.unwrap_or_default())
            .env(
                "SEND_ATTEMPT_TIMEOUT_MS",
                self.attempt_timeout_ms.unwrap_or_default(),
            )
            .env("AWS_ENDPOINT_URL_DYNAMODB", self.ledger.unwrap_or_default())
            .env(
                "AWS_ENDPOINT_URL_SQS",
                self.ledger.filter(|_| self.outcomes).unwrap_or_default(),
            )
            .env(
                "OUTCOME_EVENT_BUS_NAME",
                if self.outcomes { "default" } else { "" },
            )
            .env(
                "STATUS_QUEUE_URL",
                match self.ledger.filter(|_| self.outcomes) {
                    Some(stub) => format!("{stub}/123456789012/bench-status"),
                    None => String::new(),
                },
            )
            // Outcomes need a dead-letter queue (the batch's records all go through: unused).
            .env(
                "DEAD_LETTER_QUEUE_URL",
                match self.ledger.filter(|_| self.outcomes) {
                    Some(stub) => format!("{stub}/123456789012/bench-dlq"),
                    None => String::new(),
                },
            )
            .env(
                "IDEMPOTENCY_TABLE_NAME",
                if self.ledger.is_some() {
                    LEDGER_TABLE
                } else {
                    ""
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env("VOICE_API", self.voice_api)
            .env(
                "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2",
                fake.endpoint_url(),
            )
            .env(
                "ORIGINATION_IDENTITY",
                if self.voice_api == "v2" {
                    "+12065550199"
                } else {
                    ""
                },
            )
            .kill_on_drop(true);
        command
    }
}

const LEDGER_TABLE: &str = "bench-ledger";

/// An SQS event of `n` valid messages, compact like real ones (the whole event must stay
/// under Lambda's 6 MB). Every event's message ids are new: with the ledger on, an id seen
/// before would be a duplicate, not a send.
fn event(n: usize) -> String {
    static EVENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let batch = EVENTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    // Sent now: a fixed past timestamp would be past any time to live.
    let sent = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let records: Vec<_> = (0..n)
        .map(|i| {
            let body = json!({
                "DestinationPhoneNumber": format!("+1206555{:04}", i % 10_000),
                "Content": {"SSMLMessage": {"LanguageCode": "en-US", "VoiceId": "Matthew",
                    "Text": format!("<speak>Alert {i}: disk full on db-1</speak>")}}
            })
            .to_string();
            json!({
                "messageId": format!("00000000-0000-4000-{batch:04x}-{i:012}"),
                "receiptHandle": format!("AQEB{i}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": sent.to_string(),
                    "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": (sent + 1).to_string()},
                "messageAttributes": {},
                "md5OfBody": "00000000000000000000000000000000",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:voice-calls",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

fn failures(response: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(response)
        .ok()
        .and_then(|v| v["batchItemFailures"].as_array().map(Vec::len))
        .unwrap_or(usize::MAX)
}

/// CPU time of every thread of a process, in nanoseconds (`/proc/PID/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Peak resident set size of a process, in MB (`VmHWM`).
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

#[derive(Default)]
struct Figures {
    cold_start_ms: f64,
    first_invoke_ms: f64,
    cpu_us_per_record: f64,
    batches: Vec<(usize, f64, f64)>,
    rss_1k_mb: f64,
    rss_10k_mb: Option<f64>,
}

async fn start(function: &Function<'_>, fake: &FakeVoice) -> (RuntimeApi, Child, Instant) {
    let api = RuntimeApi::start().await.expect("a runtime API");
    let spawned = Instant::now();
    let child = function
        .command(&api, fake)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start the function: {err}"));
    (api, child, spawned)
}

async fn measure(function: &Function<'_>, cold_starts: usize) -> Figures {
    let fake = FakeVoice::start(Script::default())
        .await
        .expect("the voice fake");
    let mut figures = Figures::default();

    // Cold start: exec to the first request for an event; then the first invocation.
    let mut colds = Vec::new();
    let mut firsts = Vec::new();
    let one = event(1);
    for _ in 0..cold_starts {
        let (api, child, spawned) = start(function, &fake).await;
        let ready = api
            .first_request(Duration::from_secs(30))
            .await
            .expect("the function asks for an event");
        colds.push(ms(ready.duration_since(spawned)));
        let (took, response) = api.invoke(one.clone()).await;
        assert_eq!(failures(&response), 0, "first invocation: {response}");
        firsts.push(ms(took));
        stop(child).await;
    }
    figures.cold_start_ms = median(&mut colds);
    figures.first_invoke_ms = median(&mut firsts);

    // Warm: one process for the rest, as a warm Lambda execution environment.
    let (api, child, pid) = start_warm(function, &fake).await;

    // CPU per record, the fake answering at once. This machine's CPU time is noisy (a
    // shared VM): the median of 9 batches.
    figures.cpu_us_per_record = cpu_per_record(&api, pid, 1_000, 9).await;

    // Batch efficiency at 50 ms per call.
    fake.set_latency(Duration::from_millis(50));
    let sizes: &[usize] = match function.kind {
        Kind::Rust => &[10, 1_000, 10_000],
        // One call at a time: 10,000 records would take over 8 minutes.
        Kind::Python => &[10, 1_000],
    };
    for &n in sizes {
        let (took, response) = api.invoke(event(n)).await;
        assert_eq!(failures(&response), 0, "N = {n}");
        let ideal = n.div_ceil(function.concurrency) as f64 * 50.0;
        figures.batches.push((n, ms(took), ms(took) / ideal));
        match n {
            1_000 => figures.rss_1k_mb = peak_rss_mb(pid),
            10_000 => figures.rss_10k_mb = Some(peak_rss_mb(pid)),
            _ => {}
        }
    }
    stop(child).await;
    figures
}

/// The cold start alone, for each of `functions`: exec to the first request for an event
/// (median of `cold_starts`), the first invocation of one record (median), and the largest
/// peak RSS after it. The functions take their cold starts in turn, the order rotated by one
/// each round (so each takes each place in the turn as often), so that a machine slowing
/// down or speeding up during the run weighs on each alike.
async fn measure_cold(functions: &[Function<'_>], cold_starts: usize) -> Vec<ColdFigures> {
    let fake = FakeVoice::start(Script::default())
        .await
        .expect("the voice fake");
    let mut taken = vec![(Vec::new(), Vec::new(), 0.0f64); functions.len()];
    for round in 0..cold_starts {
        let mut order: Vec<_> = functions.iter().zip(&mut taken).collect();
        order.rotate_left(round % functions.len().max(1));
        for (function, (colds, firsts, rss)) in order {
            let (api, child, spawned) = start(function, &fake).await;
            let pid = child.id().expect("a running function");
            let ready = api
                .first_request(Duration::from_secs(30))
                .await
                .expect("the function asks for an event");
            colds.push(ms(ready.duration_since(spawned)));
            let (took, response) = api.invoke(event(1)).await;
            assert_eq!(failures(&response), 0, "first invocation: {response}");
            firsts.push(ms(took));
            *rss = rss.max(peak_rss_mb(pid));
            stop(child).await;
        }
    }
    taken
        .into_iter()
        .map(|(mut colds, mut firsts, rss_mb)| ColdFigures {
            cold_ms: median(&mut colds),
            first_invoke_ms: median(&mut firsts),
            rss_mb,
        })
        .collect()
}

struct ColdFigures {
    cold_ms: f64,
    first_invoke_ms: f64,
    rss_mb: f64,
}

/// `--cold-only`: the cold start and peak RSS, ledger and outcomes off, then on (one stub
/// answering at once for DynamoDB and SQS); beside `against`'s, taken in turn, when given;
/// then the cold start's floor (`voice-cold-floor`, a binary of the root package, when it
/// is built beside this benchmark's binary: the runtime and the SDK clients the call path
/// builds at init, nothing else), taken in the same turns, against this build and
/// `against`.
async fn print_cold(rust: &Function<'_>, against: Option<&Path>, cold_starts: usize) {
    let stub = keep_alive_front(None, Duration::ZERO).await;
    let on = Function {
        ledger: Some(&stub),
        outcomes: true,
        ..*rust
    };
    let floor = floor::sibling_program("voice-cold-floor");
    let floor = floor.exists().then_some(floor.as_path());
    if floor.is_none() {
        eprintln!(
            "no voice-cold-floor beside voice-bench (`cargo build --release --bin voice-cold-floor`): the cold start's floor is not measured"
        );
    }
    println!("| cold start, median of {cold_starts} (exec → first event request) | this build | first invocation of one record (median) | peak RSS after it | against: cold start; first invocation; peak RSS | ratio |");
    println!("|---|---|---|---|---|---|");
    let mut floor_rows = Vec::new();
    for (label, function) in [
        ("ledger and outcomes off", *rust),
        ("ledger and outcomes on", on),
    ] {
        let mut functions = vec![function];
        functions.extend(
            [against, floor]
                .into_iter()
                .flatten()
                .map(|bootstrap| Function {
                    bootstrap,
                    ..function
                }),
        );
        let figures = measure_cold(&functions, cold_starts).await;
        let ours = &figures[0];
        let theirs = against.and(figures.get(1));
        let (shown, ratio) = match theirs {
            Some(theirs) => (
                format!(
                    "{:.2} ms; first invocation {:.2} ms; {:.2} MB",
                    theirs.cold_ms, theirs.first_invoke_ms, theirs.rss_mb
                ),
                format!(
                    "{:.2} × cold start, {:.2} × first invocation, {:.2} × the two together, {:.2} × RSS",
                    ours.cold_ms / theirs.cold_ms,
                    ours.first_invoke_ms / theirs.first_invoke_ms,
                    (ours.cold_ms + ours.first_invoke_ms)
                        / (theirs.cold_ms + theirs.first_invoke_ms),
                    ours.rss_mb / theirs.rss_mb
                ),
            ),
            None => ("–".to_owned(), "–".to_owned()),
        };
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {:.2} MB | {shown} | {ratio} |",
            ours.cold_ms, ours.first_invoke_ms, ours.rss_mb
        );
        if let Some(floor) = floor.and(figures.last()) {
            let against = theirs.map_or("–".to_owned(), |theirs| {
                format!("{:.2} ×", floor.cold_ms / theirs.cold_ms)
            });
            floor_rows.push(format!(
                "| {label} | {:.2} ms | {:.2} × | {against} |",
                floor.cold_ms,
                ours.cold_ms / floor.cold_ms
            ));
        }
    }
    if !floor_rows.is_empty() {
        println!();
        println!("| the cold start's floor (`voice-cold-floor`: the runtime and the SDK clients built as at init), median of {cold_starts} | the floor | this build / the floor | the floor / against |");
        println!("|---|---|---|---|");
        for row in floor_rows {
            println!("{row}");
        }
    }
}

/// The paced run: one warm invocation of `n` records at `per_second`, 50 ms per call; the
/// ideal is `n / per_second`. Returns the batch time and its ratio to the ideal.
async fn measure_paced(function: &Function<'_>, n: usize, per_second: f64) -> (f64, f64) {
    let fake = FakeVoice::start(Script::default().with_latency(Duration::from_millis(50)))
        .await
        .expect("the voice fake");
    let (api, child, _) = start(function, &fake).await;
    api.first_request(Duration::from_secs(30))
        .await
        .expect("ready");
    let (took, response) = api.invoke(event(n)).await;
    assert_eq!(failures(&response), 0, "paced N = {n}: {response}");
    stop(child).await;
    let ideal = n as f64 / per_second * 1_000.0;
    (ms(took), ms(took) / ideal)
}

/// A cgroup v1 CPU group holding its processes to `percent` % of one CPU (period 100 ms);
/// `None` when it cannot be made (not root, or no cgroup v1 CPU controller).
fn cpu_group(percent: u32) -> Option<PathBuf> {
    let group = PathBuf::from(format!("/sys/fs/cgroup/cpu/voice-bench-{percent}pct"));
    std::fs::create_dir_all(&group).ok()?;
    std::fs::write(group.join("cpu.cfs_period_us"), "100000").ok()?;
    std::fs::write(
        group.join("cpu.cfs_quota_us"),
        (percent * 1_000).to_string(),
    )
    .ok()?;
    Some(group)
}

/// `command`, started inside `group` from its first instruction: `sh` joins the group and
/// then execs the program with the same arguments, environment, directory and stdio. (Moved
/// in after spawning, the process would run part of its init outside the quota.)
fn confined(command: &Command, group: &Path) -> Command {
    let original = command.as_std();
    let mut wrapped = Command::new("sh");
    wrapped
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            group.display()
        ))
        .arg("sh")
        .arg(original.get_program())
        .args(original.get_args())
        .env_clear();
    for (name, value) in original.get_envs() {
        if let Some(value) = value {
            wrapped.env(name, value);
        }
    }
    if let Some(dir) = original.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    wrapped
}

/// What one function costs at a Lambda memory size: the cold start (exec to the first
/// request for an event, billed as init) and the median of 5 warm invocations of a batch of
/// 10 at 100 ms per call, with the process held to that size's CPU share.
#[derive(Debug, Clone, Copy)]
struct Cost {
    memory_mb: u32,
    cold_ms: f64,
    warm_ms: f64,
}

impl Cost {
    /// GB-seconds per million calls when every invocation is warm (10 calls each): Lambda
    /// bills each invocation's duration rounded up to the millisecond.
    fn warm_gb_s_per_million(&self) -> f64 {
        self.warm_ms.ceil() / 1_000.0 * f64::from(self.memory_mb) / 1_024.0 * 100_000.0
    }
}

/// Lambda gives 1,769 MB one vCPU and CPU in proportion to memory below that.
async fn measure_cost(function: &Function<'_>, memory_mb: u32) -> Option<Cost> {
    let percent = (memory_mb * 100 / 1_769).clamp(1, 100);
    let group = cpu_group(percent)?;
    let fake = FakeVoice::start(Script::default().with_latency(Duration::from_millis(100)))
        .await
        .expect("the voice fake");
    let api = RuntimeApi::start().await.expect("a runtime API");
    let spawned = Instant::now();
    let child = confined(&function.command(&api, &fake), &group)
        .spawn()
        .expect("the function starts");
    let ready = api
        .first_request(Duration::from_secs(120))
        .await
        .expect("the function asks for an event");
    let cold_ms = ms(ready.duration_since(spawned));
    let mut warm = Vec::new();
    for _ in 0..6 {
        let (took, response) = api.invoke(event(10)).await;
        assert_eq!(failures(&response), 0, "{memory_mb} MB: {response}");
        warm.push(ms(took));
    }
    stop(child).await;
    let _ = std::fs::remove_dir(&group);
    // The first invocation after init pays for lazy set-up; the rest are the warm ones.
    let mut warm = warm.split_off(1);
    Some(Cost {
        memory_mb,
        cold_ms,
        warm_ms: median(&mut warm),
    })
}

fn print_costs(rust: &[Cost], python: &[Cost]) {
    for cost in rust {
        let baseline = python.iter().find(|p| p.memory_mb == cost.memory_mb);
        println!(
            "| billed per invocation at {} MB ({} % of a vCPU), ledger off, unpaced, batch of 10 at 100 ms per call: cold (init, with the `sh` that joins the cgroup + invoke) / warm | {:.0} + {:.0} ms / {:.0} ms; {:.2} GB-s per million calls warm | – | – | {} | {} |",
            cost.memory_mb,
            (cost.memory_mb * 100 / 1_769).clamp(1, 100),
            cost.cold_ms,
            cost.warm_ms,
            cost.warm_ms,
            cost.warm_gb_s_per_million(),
            baseline.map_or("not run".to_owned(), |p| format!(
                "{:.0} + {:.0} ms / {:.0} ms; {:.2} GB-s per million calls warm",
                p.cold_ms,
                p.warm_ms,
                p.warm_ms,
                p.warm_gb_s_per_million()
            )),
            baseline.map_or("–".to_owned(), |p| format!(
                "{:.1}×",
                p.warm_gb_s_per_million() / cost.warm_gb_s_per_million()
            )),
        );
    }
}

/// The function held to `percent` % of one CPU by a cgroup v1 quota (Lambda gives 128 MB
/// about 7 % of a vCPU), its stdout read by a pipe as Lambda's log agent reads it: one batch
/// of `n` records at 50 ms per call, with `timeout` to answer. Returns the time to the
/// answer, the records sent and those not sent; `None` when no cgroup can be made here (not
/// root, or no cgroup v1 CPU controller).
async fn measure_cpu_share(
    function: &Function<'_>,
    percent: u32,
    n: usize,
    timeout: Duration,
) -> Option<ShareFigures> {
    use tokio::io::AsyncBufReadExt;
    let group = cpu_group(percent)?;
    let fake = FakeVoice::start(Script::default().with_latency(Duration::from_millis(50)))
        .await
        .expect("the voice fake");
    let api = RuntimeApi::start().await.expect("a runtime API");
    let mut child = confined(&function.command(&api, &fake), &group)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the function starts");
    let lines = std::sync::Arc::new(AtomicU64::new(0));
    let started = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    // Where the function's lines go when BENCH_SHARE_LOG names a folder: each with the
    // milliseconds since the event was handed over, to see where the time went.
    let log = std::env::var_os("BENCH_SHARE_LOG")
        .map(|dir| Path::new(&dir).join(format!("share-{percent}pct-{}s.log", timeout.as_secs())));
    if let Some(stdout) = child.stdout.take() {
        let lines = lines.clone();
        let started = started.clone();
        let mut file = log
            .as_ref()
            .and_then(|path| std::fs::File::create(path).ok());
        tokio::spawn(async move {
            use std::io::Write;
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.fetch_add(1, Ordering::Relaxed);
                if let Some(file) = file.as_mut() {
                    let at = started
                        .lock()
                        .ok()
                        .and_then(|s| s.map(|s: Instant| s.elapsed().as_millis()));
                    let _ = writeln!(file, "{} {line}", at.unwrap_or(0));
                }
            }
        });
    }
    api.first_request(Duration::from_secs(60))
        .await
        .expect("the function asks for an event");
    let batch = event(n);
    let begun = Instant::now();
    if let Ok(mut s) = started.lock() {
        *s = Some(begun);
    }
    let answer = api.invoke_within(batch, timeout).await;
    let took = begun.elapsed();
    stop(child).await;
    let _ = std::fs::remove_dir(&group);
    let Some((_, response)) = answer else {
        eprintln!(
            "{percent} % CPU, N = {n}, timeout {} s: no answer by the deadline, {} log lines",
            timeout.as_secs(),
            lines.load(Ordering::Relaxed)
        );
        return Some(ShareFigures::Missed);
    };
    let not_sent = failures(&response);
    eprintln!(
        "{percent} % CPU, N = {n}, timeout {} s: answered in {:.2} s, {not_sent} not sent, {} log lines",
        timeout.as_secs(),
        took.as_secs_f64(),
        lines.load(Ordering::Relaxed)
    );
    Some(ShareFigures::Answered {
        took_ms: ms(took),
        sent: n - not_sent,
        not_sent,
    })
}

/// One ledger setting's figures at N records: CPU per record with the fake answering at
/// once and at 50 ms per call, the batch time at 50 ms against ideal, and DynamoDB requests
/// per record. Medians of 5.
struct LedgerFigures {
    cpu_fast_us: f64,
    cpu_slow_us: f64,
    batch_ms: f64,
    batch_ratio: f64,
    requests_per_record: f64,
}

async fn measure_ledger(function: &Function<'_>, n: usize, runs: usize) -> LedgerFigures {
    let fake = FakeVoice::start(Script::default())
        .await
        .expect("the voice fake");
    let (api, child, pid) = start_warm(function, &fake).await;
    let requests_before = FRONT_REQUESTS.load(Ordering::Relaxed);
    let cpu_fast_us = cpu_per_record(&api, pid, n, runs).await;
    let requests = FRONT_REQUESTS.load(Ordering::Relaxed) - requests_before;
    fake.set_latency(Duration::from_millis(50));
    let mut batch = Vec::new();
    let mut cpu_slow = Vec::new();
    for _ in 0..runs {
        let before = cpu_ns(pid);
        let (took, response) = api.invoke(event(n)).await;
        assert_eq!(failures(&response), 0);
        cpu_slow.push((cpu_ns(pid) - before) as f64 / n as f64 / 1_000.0);
        batch.push(ms(took));
    }
    stop(child).await;
    let ideal = n.div_ceil(function.concurrency) as f64 * 50.0;
    let batch_ms = median(&mut batch);
    LedgerFigures {
        cpu_fast_us,
        cpu_slow_us: median(&mut cpu_slow),
        batch_ms,
        batch_ratio: batch_ms / ideal,
        requests_per_record: requests as f64 / (runs * n) as f64,
    }
}

/// The ledger-on figures against two DynamoDB endpoints, and the same runs with it off.
struct LedgerComparison {
    moto: LedgerFigures,
    stub: LedgerFigures,
    off: LedgerFigures,
    /// The template's defaults: batches of 10, 10 in flight, a stub answering in 5 ms.
    small: LedgerFigures,
    small_off: LedgerFigures,
}

async fn compare_ledger(
    rust: &Function<'_>,
    moto_program: &Path,
    n: usize,
    stub_latency: Duration,
) -> LedgerComparison {
    let (_moto, moto_endpoint) = moto_with_ledger_table(moto_program).await;
    let on_moto = keep_alive_front(Some(moto_endpoint), Duration::ZERO).await;
    let moto = measure_ledger(
        &Function {
            ledger: Some(&on_moto),
            ..*rust
        },
        n,
        5,
    )
    .await;
    let on_stub = keep_alive_front(None, Duration::ZERO).await;
    let stub = measure_ledger(
        &Function {
            ledger: Some(&on_stub),
            ..*rust
        },
        n,
        5,
    )
    .await;
    let off = measure_ledger(
        &Function {
            ledger: None,
            ..*rust
        },
        n,
        5,
    )
    .await;
    let on_slow_stub = keep_alive_front(None, stub_latency).await;
    let defaults = Function {
        concurrency: 10,
        ..*rust
    };
    let small = measure_ledger(
        &Function {
            ledger: Some(&on_slow_stub),
            ..defaults
        },
        10,
        40,
    )
    .await;
    let small_off = measure_ledger(&defaults, 10, 40).await;
    LedgerComparison {
        moto,
        stub,
        off,
        small,
        small_off,
    }
}

/// A warm function process: started, asked for its first event, and given a warm-up batch.
async fn start_warm(function: &Function<'_>, fake: &FakeVoice) -> (RuntimeApi, Child, u32) {
    let (api, child, _) = start(function, fake).await;
    let pid = child.id().expect("a running function");
    api.first_request(Duration::from_secs(30))
        .await
        .expect("ready");
    let (_, warmup) = api.invoke(event(10)).await;
    assert_eq!(failures(&warmup), 0, "warm-up: {warmup}");
    (api, child, pid)
}

/// The function's CPU time per record, in µs: the median over `runs` invocations of `n`
/// records each (new message ids every time, so a ledger sees no duplicates).
async fn cpu_per_record(api: &RuntimeApi, pid: u32, n: usize, runs: usize) -> f64 {
    let mut cpu = Vec::new();
    for _ in 0..runs {
        let before = cpu_ns(pid);
        let (_, response) = api.invoke(event(n)).await;
        assert_eq!(failures(&response), 0, "N = {n}: {response}");
        cpu.push((cpu_ns(pid) - before) as f64 / n as f64 / 1_000.0);
    }
    median(&mut cpu)
}

/// DynamoDB requests the fronts have seen.
static FRONT_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A keep-alive DynamoDB endpoint. With an upstream (moto), it forwards: moto answers every
/// request with `Connection: close`, so without the front each ledger write would pay for a
/// new TCP connection in the function's CPU, which DynamoDB (keep-alive) never charges.
/// Without one, it answers every request at once with `{}`, DynamoDB's answer to a claim on
/// a free key and to a group of puts: the function's own cost per ledger request, without
/// the wake-up per answer that a single-threaded server's trickle of answers costs.
async fn keep_alive_front(upstream: Option<String>, stub_latency: Duration) -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let forward = move |request: Request| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            FRONT_REQUESTS.fetch_add(1, Ordering::Relaxed);
            let Some(upstream) = upstream else {
                tokio::time::sleep(stub_latency).await;
                return axum::response::Response::builder()
                    .header("content-type", "application/x-amz-json-1.0")
                    .body(Body::from(stub_answer(request).await))
                    .expect("a response");
            };
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = format!("{upstream}{path}")
                .parse()
                .expect("an upstream URI");
            match client.request(Request::from_parts(parts, body)).await {
                Ok(response) => {
                    let (mut parts, body) = response.into_parts();
                    parts.headers.remove("connection");
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    axum::response::Response::from_parts(parts, Body::from(bytes))
                }
                Err(err) => axum::response::Response::builder()
                    .status(502)
                    .body(Body::from(err.to_string()))
                    .expect("a response"),
            }
        }
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().fallback(forward)).await;
    });
    endpoint
}

/// The stub's answer: `{}` (what DynamoDB's `PutItem` and `TransactWriteItems` answer when
/// nothing is asked back), except for SQS's `SendMessageBatch` (the outcome timers), which
/// is answered with every entry sent.
async fn stub_answer(request: axum::extract::Request) -> String {
    use http_body_util::BodyExt;
    let batch = request
        .headers()
        .get("x-amz-target")
        .is_some_and(|target| target.as_bytes() == b"AmazonSQS.SendMessageBatch");
    if !batch {
        return "{}".to_owned();
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let sent: Vec<serde_json::Value> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|request| request.get("Entries").and_then(|e| e.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| entry.get("Id"))
        .map(|id| json!({"Id": id, "MessageId": format!("stub-{id}"), "MD5OfMessageBody": "0"}))
        .collect();
    json!({"Successful": sent, "Failed": []}).to_string()
}

/// 10,000 records at 7 % of a CPU (what Lambda gives 128 MB), with the template's default
/// timeout (60 s) and with a 10 s one that cuts the batch short: each must answer in time.
/// One run at a small CPU share: its timeout in seconds, and what `measure_cpu_share` saw.
type ShareRun = (u64, Option<ShareFigures>);

/// What one run at a small CPU share saw: an answer in time, or none by the deadline (what
/// Lambda reports as a timeout, and the whole batch comes back).
enum ShareFigures {
    Answered {
        took_ms: f64,
        sent: usize,
        not_sent: usize,
    },
    Missed,
}

async fn measure_cpu_shares(rust: &Function<'_>) -> Vec<ShareRun> {
    let mut runs = Vec::new();
    // With a 1 s attempt timeout the 10 s run sends until its reserve (1 s) and settles
    // until 250 ms before the deadline: the answer has that last quarter of the reserve.
    let short = Function {
        attempt_timeout_ms: Some("1000"),
        ..*rust
    };
    // BENCH_SHARE_PERCENT and BENCH_SHARE_TIMEOUTS (seconds, comma-separated) look closer.
    let percent = std::env::var("BENCH_SHARE_PERCENT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7);
    let timeouts: Vec<u64> = std::env::var("BENCH_SHARE_TIMEOUTS")
        .ok()
        .map(|t| t.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![60, 10]);
    for timeout in timeouts {
        let function = if timeout < 60 { &short } else { rust };
        let figures =
            measure_cpu_share(function, percent, 10_000, Duration::from_secs(timeout)).await;
        runs.push((timeout, figures));
    }
    runs
}

fn print_cpu_share(runs: &[ShareRun]) {
    for (timeout, figures) in runs {
        match figures {
            Some(ShareFigures::Answered {
                took_ms,
                sent,
                not_sent,
            }) => println!(
                "| batch N = 10,000 at 7 % of one CPU (cgroup quota; Lambda's 128 MB share), ledger off, unpaced, C = 50, 50 ms per call, timeout {timeout} s | answered in {:.2} s ({:.2} s before the deadline); {sent} sent, {not_sent} reported for redelivery | – | – | – | – |",
                took_ms / 1_000.0,
                *timeout as f64 - took_ms / 1_000.0,
            ),
            Some(ShareFigures::Missed) => println!(
                "| batch N = 10,000 at 7 % of one CPU (cgroup quota; Lambda's 128 MB share), ledger off, unpaced, C = 50, 50 ms per call, timeout {timeout} s | **no answer by the deadline** (a Lambda timeout: the whole batch comes back) | – | – | – | – |"
            ),
            None => println!(
                "| batch N = 10,000 at 7 % of one CPU, timeout {timeout} s | not run: no cgroup v1 CPU controller writable here | – | – | – | – |"
            ),
        }
    }
}

/// The ledger rows of the table.
fn print_ledger(figures: &LedgerComparison, n: usize, concurrency: usize, stub_ms: u64) {
    let (small, small_off) = (&figures.small, &figures.small_off);
    println!(
        "| CPU per record, ledger on (a DynamoDB stub answering in {stub_ms} ms), the template's defaults: N = 10, C = 10, fake latency 0 | {:.2} µs ({:.2} × ledger off: {:.2} µs); {:.2} DynamoDB requests per record | – | – | – | – |",
        small.cpu_fast_us,
        small.cpu_fast_us / small_off.cpu_fast_us,
        small_off.cpu_fast_us,
        small.requests_per_record,
    );
    println!(
        "| CPU per record, ledger on (stub, {stub_ms} ms), N = 10, C = 10, 50 ms per call | {:.2} µs ({:.2} × ledger off: {:.2} µs); batch {:.0} ms ({:.3} × ideal; off {:.3} ×) | – | – | – | – |",
        small.cpu_slow_us,
        small.cpu_slow_us / small_off.cpu_slow_us,
        small_off.cpu_slow_us,
        small.batch_ms,
        small.batch_ratio,
        small_off.batch_ratio,
    );
    let off = &figures.off;
    for (name, on) in [
        ("moto's DynamoDB behind a keep-alive front", &figures.moto),
        ("a DynamoDB stub that answers at once", &figures.stub),
    ] {
        println!(
            "| CPU per record, ledger on ({name}), N = {n}, fake latency 0 | {:.2} µs ({:.2} × ledger off: {:.2} µs; target ≤ 2.5 ×); {:.2} DynamoDB requests per record | – | – | – | – |",
            on.cpu_fast_us,
            on.cpu_fast_us / off.cpu_fast_us,
            off.cpu_fast_us,
            on.requests_per_record,
        );
        println!(
            "| CPU per record, ledger on ({name}), N = {n}, 50 ms per call | {:.2} µs ({:.2} × ledger off: {:.2} µs) | – | – | – | – |",
            on.cpu_slow_us,
            on.cpu_slow_us / off.cpu_slow_us,
            off.cpu_slow_us,
        );
        println!(
            "| batch N = {n}, ledger on ({name}), 50 ms per call, C = {concurrency} | {:.0} ms ({:.3} × ideal; ledger off {:.3} ×) | – | – | – | – |",
            on.batch_ms, on.batch_ratio, off.batch_ratio,
        );
    }
}

/// `moto_server` on a free loopback port with the ledger's table; killed on drop.
async fn moto_with_ledger_table(program: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", program.display()));
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = status::sdk(&endpoint).await;
    voice_dispatch::adapters::dynamodb::DynamoLedger::create_table(
        &aws_sdk_dynamodb::Client::new(&config),
        LEDGER_TABLE,
    )
    .await
    .expect("CreateTable on moto");
    (child, endpoint)
}

/// Ends a function with SIGTERM, as Lambda does, so a profiler wrapped around it can write
/// its data; kills it if it lingers.
async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    }
}

fn stripped_size_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(f64::NAN, |m| m.len() as f64 / 1_000_000.0)
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    // The baseline runs from bench/python: keep the interpreter's path valid there (and
    // unresolved: a virtualenv's python is a symlink that must stay one).
    args.python = args
        .python
        .map(|python| std::path::absolute(&python).unwrap_or(python));
    assert!(
        args.bootstrap.exists(),
        "{} is missing: run `cargo lambda build --release` (or `make bench`)",
        args.bootstrap.display()
    );
    let rust = Function {
        kind: Kind::Rust,
        bootstrap: &args.bootstrap,
        python: None,
        concurrency: args.concurrency,
        send_rate: None,
        ledger: None,
        attempt_timeout_ms: None,
        voice_api: "v1",
        outcomes: false,
    };
    const LEDGER_N: usize = 200;
    if args.cold_only {
        print_cold(&rust, args.against.as_deref(), args.cold_starts).await;
        return;
    }
    if args.floor_only {
        floor::print_floor(&floor::measure_floors(&rust, &args.floor_rows).await, None);
        return;
    }
    if args.cpu_share_only {
        print_cpu_share(&measure_cpu_shares(&rust).await);
        let mut rust_costs = Vec::new();
        let mut python_costs = Vec::new();
        for memory_mb in [128, 1_769] {
            rust_costs.extend(measure_cost(&rust, memory_mb).await);
            if let Some(python) = &args.python {
                let baseline = Function {
                    kind: Kind::Python,
                    python: Some(python),
                    concurrency: 1,
                    ..rust
                };
                python_costs.extend(measure_cost(&baseline, memory_mb).await);
            }
        }
        print_costs(&rust_costs, &python_costs);
        return;
    }
    if args.status_only {
        let program = args
            .moto_server
            .as_deref()
            .expect("--status-only needs --moto-server");
        status::print_status(
            &status::measure_status(&args.bootstrap, program).await,
            None,
        );
        return;
    }
    if args.ledger_only {
        let program = args
            .moto_server
            .as_deref()
            .expect("--ledger-only needs --moto-server");
        let figures = compare_ledger(
            &rust,
            program,
            LEDGER_N,
            Duration::from_millis(args.stub_latency_ms),
        )
        .await;
        print_ledger(&figures, LEDGER_N, args.concurrency, args.stub_latency_ms);
        return;
    }
    eprintln!("measuring the Rust bootstrap ...");
    let r = measure(&rust, args.cold_starts).await;
    eprintln!("measuring against the floor (a bare SDK send loop) ...");
    let floor_rows = floor::measure_floors(&rust, "").await;
    eprintln!("measuring a paced run ...");
    let paced = Function {
        send_rate: Some("100/s"),
        ..rust
    };
    let (paced_ms, paced_ratio) = measure_paced(&paced, 200, 100.0).await;
    let ledger_figures = match &args.moto_server {
        Some(program) => {
            eprintln!("measuring with the ledger on and off ...");
            Some(
                compare_ledger(
                    &rust,
                    program,
                    LEDGER_N,
                    Duration::from_millis(args.stub_latency_ms),
                )
                .await,
            )
        }
        None => None,
    };
    let status_figures = match &args.moto_server {
        Some(program) => {
            eprintln!("measuring the status function (redial, outcomes) ...");
            Some(status::measure_status(&args.bootstrap, program).await)
        }
        None => None,
    };
    eprintln!("measuring at a Lambda-sized CPU share ...");
    let shares = measure_cpu_shares(&rust).await;
    let mut rust_costs = Vec::new();
    for memory_mb in [128, 1_769] {
        rust_costs.extend(measure_cost(&rust, memory_mb).await);
    }
    let mut python_costs = Vec::new();
    let p = match &args.python {
        Some(python) => {
            eprintln!("measuring the Python baseline ...");
            let baseline = Function {
                kind: Kind::Python,
                bootstrap: &args.bootstrap,
                python: Some(python),
                concurrency: 1,
                send_rate: None,
                ledger: None,
                attempt_timeout_ms: None,
                voice_api: "v1",
                outcomes: false,
            };
            let figures = measure(&baseline, args.cold_starts).await;
            for memory_mb in [128, 1_769] {
                python_costs.extend(measure_cost(&baseline, memory_mb).await);
            }
            Some(figures)
        }
        None => None,
    };

    println!("| measure | this function | the floor (a bare SDK send loop) | function / floor | Python baseline | Python / function |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, rust: f64, python: Option<f64>, unit: &str| {
        let (python, ratio) = match python {
            Some(p) => (format!("{p:.2} {unit}"), format!("{:.1}×", p / rust)),
            None => ("–".to_owned(), "–".to_owned()),
        };
        println!("| {name} | {rust:.2} {unit} | – | – | {python} | {ratio} |");
    };
    row(
        "cold start (exec → first event request), median",
        r.cold_start_ms,
        p.as_ref().map(|p| p.cold_start_ms),
        "ms",
    );
    row(
        "first invocation, 1 record, fake latency 0",
        r.first_invoke_ms,
        p.as_ref().map(|p| p.first_invoke_ms),
        "ms",
    );
    row(
        "CPU per record, fake latency 0, N = 1,000",
        r.cpu_us_per_record,
        p.as_ref().map(|p| p.cpu_us_per_record),
        "µs",
    );
    for (index, (n, took, ratio)) in r.batches.iter().enumerate() {
        let python = p.as_ref().and_then(|p| p.batches.get(index));
        println!(
            "| batch N = {n}, 50 ms per call, C = {} | {:.0} ms ({ratio:.3} × ideal) | – | – | {} | {} |",
            args.concurrency,
            took,
            python.map_or("not run".to_owned(), |(n, t, _)| {
                let ideal = n.div_ceil(args.concurrency) as f64 * 50.0;
                format!("{t:.0} ms ({:.1} × ideal; one call at a time)", t / ideal)
            }),
            python.map_or("–".to_owned(), |(_, t, _)| format!("{:.1}×", t / took)),
        );
    }
    floor::print_floor(&floor_rows, p.as_ref().map(|p| p.cpu_us_per_record));
    println!(
        "| paced batch N = 200 at `SEND_RATE_LIMIT=100/s`, 50 ms per call | {paced_ms:.0} ms ({paced_ratio:.3} × ideal of N / rate) | – | – | – | – |"
    );
    if let Some(figures) = &ledger_figures {
        print_ledger(figures, LEDGER_N, args.concurrency, args.stub_latency_ms);
    }
    if let Some(figures) = &status_figures {
        status::print_status(figures, Some(r.cpu_us_per_record));
    }
    print_cpu_share(&shares);
    print_costs(&rust_costs, &python_costs);
    row(
        "peak RSS after N = 1,000",
        r.rss_1k_mb,
        p.as_ref().map(|p| p.rss_1k_mb),
        "MB",
    );
    if let Some(rss) = r.rss_10k_mb {
        row("peak RSS after N = 10,000", rss, None, "MB");
    }
    println!(
        "| bootstrap size (stripped, `cargo lambda build --release`) | {:.2} MB | – | – | – | – |",
        stripped_size_mb(&args.bootstrap)
    );
}
