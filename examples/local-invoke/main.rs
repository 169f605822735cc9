//! Runs the function's handler on an SQS event file against the embedded voice fake: no AWS
//! account, no network. Prints the partial batch response and one row per record.
//!
//!     cargo run --example local-invoke -- events/mixed-batch.json
//!
//! Configuration comes from the same environment variables as in Lambda; the local runner
//! only fills in an origination number and a 1 s attempt timeout when they are not set.
//!
//! With `--outcomes`, delivery outcomes run too, in memory: the fake emits each accepted
//! call's delivery events (`--call-end`, or the script's `events`), the status path records
//! them, and each request's one outcome is printed (the wait for `unknown` is 2 s unless
//! `OUTCOME_WAIT_SECONDS` says otherwise).

mod outcomes;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsEvent;
use clap::Parser;
use voice_dispatch::adapters::lambda::ToResponse;
use voice_dispatch::config::{self, Backend, Config};
use voice_dispatch::core::report::BatchReport;
use voice_dispatch::observe::logging::{self, LogSettings};
use voice_dispatch::wiring;
use voice_fake::{CallEnd, EventScript, FakeVoice, Script};

#[derive(Parser)]
struct Args {
    /// The SQS event to run (as Lambda delivers it).
    event: PathBuf,
    /// The fake's script: behaviour per destination number. By default the one for the
    /// sample events in the API's own error codes: `voice-fake/scripts/mixed-batch.json`
    /// (v1) or `mixed-batch-v2.json` (v2).
    #[arg(long)]
    script: Option<PathBuf>,
    /// Base latency of every answer from the fake, overriding the script's.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// The invocation's timeout: the deadline the handler must answer before.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Keep the file's `SentTimestamp`s. By default each record is stamped as sent now, as
    /// if it had just been queued: sample events are older than any time to live.
    #[arg(long)]
    keep_sent_timestamps: bool,
    /// The voice API to place calls through (`VOICE_API`): `v1` or `v2`; the fake speaks both.
    #[arg(long, default_value = "v1")]
    api: String,
    /// Follow each request to its delivery outcome, and print it.
    #[arg(long)]
    outcomes: bool,
    /// With `--outcomes`: how every accepted call ends, unless the script says otherwise
    /// (`answered`, `busy`, `no_answer`, `failed`, `silent`).
    #[arg(long, default_value = "answered")]
    call_end: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    logging::init(&LogSettings::from_env(), std::io::stderr);
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("local-invoke: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let event_json = std::fs::read_to_string(&args.event)
        .map_err(|err| format!("cannot read {}: {err}", args.event.display()))?;
    let mut event: SqsEvent = serde_json::from_str(&event_json)
        .map_err(|err| format!("{} is not an SQS event: {err}", args.event.display()))?;
    if !args.keep_sent_timestamps {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        for record in &mut event.records {
            record
                .attributes
                .insert("SentTimestamp".to_owned(), now_ms.to_string());
        }
    }
    let config = Config::from_lookup(|name| {
        if name == config::VOICE_API {
            return Some(args.api.clone());
        }
        std::env::var(name).ok().or_else(|| match name {
            config::ORIGINATION_PHONE_NUMBER => Some("+12065550199".to_owned()),
            config::SEND_ATTEMPT_TIMEOUT_MS => Some("1000".to_owned()),
            config::outcomes::OUTCOME_WAIT_SECONDS if args.outcomes => Some("2".to_owned()),
            _ => None,
        })
    })
    .map_err(|err| err.to_string())?;
    let script_path = args.script.clone().unwrap_or_else(|| {
        PathBuf::from(match config.voice_api {
            Backend::V2 => "voice-fake/scripts/mixed-batch-v2.json",
            Backend::V1 => "voice-fake/scripts/mixed-batch.json",
        })
    });
    let mut script = std::fs::read_to_string(&script_path)
        .map_err(|err| err.to_string())
        .and_then(|json| Script::from_json(&json).map_err(|err| err.to_string()))
        .map_err(|err| format!("cannot read script {}: {err}", script_path.display()))?;
    if let Some(latency_ms) = args.latency_ms {
        script.latency_ms = latency_ms;
    }
    if args.outcomes && script.default_events.is_none() {
        let end: CallEnd = serde_json::from_value(serde_json::Value::String(args.call_end.clone()))
            .map_err(|_| {
                format!(
                    "--call-end {}: answered, busy, no_answer, failed or silent",
                    args.call_end
                )
            })?;
        script.default_events = Some(EventScript::new(end).after(Duration::from_millis(200)));
    }

    let fake = FakeVoice::start(script)
        .await
        .map_err(|err| format!("cannot start the voice fake: {err}"))?;
    let sdk = wiring::local_endpoint(wiring::sdk_config_loader(&config), &fake.endpoint_url())
        .load()
        .await;
    let deadline = SystemTime::now() + Duration::from_secs(args.timeout_secs);
    let (report, published) = if args.outcomes {
        let voice = wiring::voice(&config, &sdk);
        let (report, published) = outcomes::run(&config, voice, &fake, &event, deadline).await?;
        (report, Some(published))
    } else {
        let report = wiring::voice_dispatch(&config, &sdk)
            .handle(&event, deadline)
            .await
            .map_err(|err| format!("the event was refused: {err}"))?;
        (report, None)
    };

    let response = serde_json::to_string_pretty(&report.to_response())
        .map_err(|err| format!("cannot serialize the response: {err}"))?;
    println!("Batch response:\n{response}\n");
    print_table(&report);
    if let Some(published) = published {
        outcomes::print_outcomes(&published);
    }
    println!(
        "\n{} HTTP requests reached the voice fake at {}",
        fake.request_count(),
        fake.endpoint_url()
    );
    Ok(())
}

fn print_table(report: &BatchReport) {
    println!("{:<38} {:<10} {:>8}  reason", "message id", "fate", "ms");
    for outcome in &report.outcomes {
        let reason = outcome
            .reason
            .as_ref()
            .map(|r| format!("{}: {}", r.code, r.message))
            .unwrap_or_default();
        println!(
            "{:<38} {:<10} {:>8.1}  {}",
            outcome.message_id,
            outcome.fate.as_str(),
            outcome.latency.as_secs_f64() * 1_000.0,
            reason
        );
    }
    let counts = report.counts();
    println!(
        "\n{} sent, {} transient, {} permanent, {} deferred, {} expired",
        counts.sent, counts.transient, counts.permanent, counts.deferred, counts.expired
    );
}
