//! The floor rows: the function's CPU per record against a bare SDK send loop
//! (`voice-floor`: the same voice client, runtime flavour, profile and requests, nothing
//! else), in the same run, round by round, for v1 and v2: ledger off, on, and with delivery
//! outcomes on as well. With the ledger on, both write to one DynamoDB stub answering at
//! once, the floor through the function's own ledger adapter: the same claims and `SENT`
//! writes, grouped the same way. With outcomes on, the same stub answers SQS too, and the
//! floor arms each accepted request's timer through the function's status-queue adapter.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use voice_fake::{FakeVoice, Script};

use crate::{cpu_ns, cpu_per_record, keep_alive_front, median, start_warm, stop, Function};

/// Records per round, sends in flight, rounds.
pub const N: usize = 1_000;
pub const ROUNDS: usize = 9;

pub struct FloorRow {
    pub api: &'static str,
    /// Whether the ledger was on (for both).
    pub ledger: bool,
    /// Whether delivery outcomes were on (for both): each accepted request's timer armed.
    pub outcomes: bool,
    pub concurrency: usize,
    /// The function's CPU per record, µs (median of the rounds).
    pub function_us: f64,
    /// The floor's CPU per request, µs (median of the rounds).
    pub floor_us: f64,
    /// The median of the rounds' own ratios.
    pub ratio: f64,
}

/// The program `name` built beside this benchmark's own binary: `voice-floor` (this
/// crate's) or `voice-cold-floor` (the root package's).
pub fn sibling_program(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The six rows: v1 and v2, ledger off, then on against a stub answering at once, then
/// with delivery outcomes on as well (the outcome timers to the same stub, as SQS).
/// Only the rows whose name (`v1-off`, `v2-ledger`, `v1-outcomes`, ...) starts with `only`.
pub async fn measure_floors(rust: &Function<'_>, only: &str) -> Vec<FloorRow> {
    let stub = keep_alive_front(None, Duration::ZERO).await;
    let off = Function {
        ledger: None,
        ..*rust
    };
    let on = Function {
        ledger: Some(&stub),
        ..*rust
    };
    let outcomes = Function {
        outcomes: true,
        ..on
    };
    let mut rows = Vec::new();
    for (name, function) in [("off", off), ("ledger", on), ("outcomes", outcomes)] {
        for api in ["v1", "v2"] {
            if format!("{api}-{name}").starts_with(only) {
                rows.push(measure_floor(&function, api).await);
            }
        }
    }
    assert!(
        !rows.is_empty(),
        "--floor-rows {only:?} names no row (v1-off, v2-off, v1-ledger, v2-ledger, v1-outcomes, v2-outcomes)"
    );
    rows
}

/// One API's row: the function and the floor warm side by side on one fake answering at
/// once, then `ROUNDS` rounds of N records each, the function's batch then the floor's.
pub async fn measure_floor(rust: &Function<'_>, api: &'static str) -> FloorRow {
    let function = Function {
        voice_api: api,
        ..*rust
    };
    let fake = FakeVoice::start(Script::default())
        .await
        .expect("the voice fake");
    let (runtime, child, pid) = start_warm(&function, &fake).await;
    let mut floor = function
        .with_env(Command::new(sibling_program("voice-floor")), &fake)
        // As Lambda's runtime sets it for the function at each invocation: the SDK adds it to
        // each request as `X-Amzn-Trace-Id`, so both send the same bytes, signed alike.
        .env("_X_AMZN_TRACE_ID", voice_fake::runtime_api::TRACE_ID)
        .args([
            "--api",
            api,
            "--concurrency",
            &function.concurrency.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect(
            "voice-floor starts (built with the bench: `cargo build --release -p voice-bench`)",
        );
    let floor_pid = floor.id().expect("a running floor");
    let mut input = floor.stdin.take().expect("the floor's stdin");
    let mut output = BufReader::new(floor.stdout.take().expect("the floor's stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), output.next_line()).await;
    assert!(
        matches!(ready, Ok(Ok(Some(ref line))) if line == "ready"),
        "the floor did not warm up: {ready:?}"
    );
    let (mut function_us, mut floor_us, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let ours = cpu_per_record(&runtime, pid, N, 1).await;
        let before = cpu_ns(floor_pid);
        input
            .write_all(format!("run {N}\n").as_bytes())
            .await
            .expect("the floor's stdin");
        let done = output.next_line().await.expect("the floor's answer");
        assert_eq!(done.as_deref(), Some(format!("done {N}").as_str()));
        let bare = (cpu_ns(floor_pid) - before) as f64 / N as f64 / 1_000.0;
        function_us.push(ours);
        floor_us.push(bare);
        ratios.push(ours / bare);
    }
    drop(input);
    let _ = floor.wait().await;
    stop(child).await;
    FloorRow {
        api,
        ledger: function.ledger.is_some(),
        outcomes: function.outcomes,
        concurrency: function.concurrency,
        function_us: median(&mut function_us),
        floor_us: median(&mut floor_us),
        ratio: median(&mut ratios),
    }
}

/// The floor rows of the table; `python_us` is the Python baseline's CPU per record (v1,
/// ledger off, the only way it runs), set beside the row it matches.
pub fn print_floor(rows: &[FloorRow], python_us: Option<f64>) {
    for row in rows {
        let python = python_us.filter(|_| row.api == "v1" && !row.ledger);
        println!(
            "| CPU per record, {}, {}, N = {N}, C = {}, fake latency 0, median of {ROUNDS} rounds, each the function's batch then the floor's | {:.2} µs | {:.2} µs | {:.2} × ({}) | {} | {} |",
            row.api,
            match (row.ledger, row.outcomes) {
                (true, true) => "ledger and delivery outcomes on (one stub answering at once for DynamoDB and SQS; the floor also records each call and arms each accepted request's timer through the function's adapters)",
                (true, false) => "ledger on (a DynamoDB stub answering at once; the floor claims and records each call through the function's ledger adapter)",
                _ => "ledger off",
            },
            row.concurrency,
            row.function_us,
            row.floor_us,
            row.ratio,
            if row.outcomes {
                "reported beside the target"
            } else {
                "target ≤ 1.2 ×"
            },
            python.map_or("–".to_owned(), |p| format!("{p:.2} µs")),
            python.map_or("–".to_owned(), |p| format!("{:.1}×", p / row.function_us)),
        );
    }
}
