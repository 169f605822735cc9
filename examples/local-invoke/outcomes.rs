//! `--outcomes`: delivery outcomes run locally, in memory. The call batch runs with an
//! in-memory ledger and arms its timers in memory; the voice fake's delivery events and the
//! timers then go through the status path until every request has its outcome, which is
//! printed instead of being put on EventBridge.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;
use voice_dispatch::adapters::memory_ledger::MemoryLedger;
use voice_dispatch::adapters::pinpoint_v2::Voice;
use voice_dispatch::adapters::sqs::SqsRedelivery;
use voice_dispatch::adapters::status_event::{check_body, recognise, StatusMessage};
use voice_dispatch::app::VoiceDispatch;
use voice_dispatch::config::Config;
use voice_dispatch::core::clock::SystemClock;
use voice_dispatch::core::delivery::Check;
use voice_dispatch::core::engine::BatchEngine;
use voice_dispatch::core::outcome_timer::{CallOutcomes, OutcomeSettings};
use voice_dispatch::core::ports::{CheckQueue, DeadLetter, DeadLetterQueue, OutcomeBus, PortError};
use voice_dispatch::core::record::Record;
use voice_dispatch::core::report::{BatchReport, Fate};
use voice_dispatch::core::settle::{Redelivery, Settlement};
use voice_dispatch::status::StatusDispatch;
use voice_dispatch::{observe, wiring};

/// The status queue, in memory: each timer with when it comes due.
#[derive(Clone, Default)]
struct Timers(Arc<Mutex<Vec<(Instant, Check)>>>);

impl CheckQueue for Timers {
    async fn arm(&self, checks: &[Check]) -> Vec<Result<(), PortError>> {
        let mut timers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for check in checks {
            timers.push((Instant::now() + check.delay, check.clone()));
        }
        checks.iter().map(|_| Ok(())).collect()
    }
}

/// The outcome bus, in memory: every detail published.
#[derive(Clone, Default)]
struct Published(Arc<Mutex<Vec<String>>>);

impl OutcomeBus for Published {
    async fn publish(&self, details: &[&str]) -> Vec<Result<(), PortError>> {
        let mut published = self.0.lock().unwrap_or_else(|p| p.into_inner());
        published.extend(details.iter().map(|d| (*d).to_owned()));
        details.iter().map(|_| Ok(())).collect()
    }
}

/// A dead-letter queue that takes every letter (locally, there is none to fill).
#[derive(Clone, Default)]
struct Kept;

impl DeadLetterQueue for Kept {
    async fn send(&self, letters: &[DeadLetter<'_>]) -> Vec<Result<(), PortError>> {
        letters.iter().map(|_| Ok(())).collect()
    }
}

fn settlement() -> Settlement<Kept, SqsRedelivery> {
    Settlement::new(Some(Kept), None::<(SqsRedelivery, Redelivery)>)
}

/// Runs the batch with outcomes on, then the status path until every request has one (or
/// the wait has passed with some time to spare); its report, and the outcomes published.
pub async fn run(
    config: &Config,
    voice: Voice,
    fake: &voice_fake::FakeVoice,
    event: &SqsEvent,
    deadline: SystemTime,
) -> Result<(BatchReport, Vec<String>), String> {
    let mut events = fake.events();
    let ledger = Arc::new(MemoryLedger::default());
    let timers = Timers::default();
    let published = Published::default();
    let settings = OutcomeSettings {
        wait: config.outcome_wait,
        ledger_ttl: config.idempotency_ttl,
    };
    let engine = BatchEngine::new(voice, wiring::engine_settings(config))
        .with_ledger(Some(Arc::clone(&ledger)))
        .with_outcome_line(observe::lines::record_done);
    let calls = VoiceDispatch::new(engine, settlement()).with_timers(Some(CallOutcomes::new(
        Arc::clone(&ledger),
        timers.clone(),
        settings,
        Arc::new(SystemClock),
    )));
    let report = calls
        .handle(event, deadline)
        .await
        .map_err(|err| format!("the event was refused: {err}"))?;
    let status = StatusDispatch::new(
        Arc::clone(&ledger),
        published.clone(),
        timers.clone(),
        settlement(),
        config.idempotency_ttl,
    );
    let limit = Instant::now() + config.outcome_wait + Duration::from_secs(10);
    let mut pending: Vec<(Instant, String)> = Vec::new();
    while Instant::now() < limit {
        while let Ok(record) = events.try_recv() {
            pending.push((Instant::now(), record.to_string()));
        }
        let due: Vec<(Instant, Check)> = {
            let mut armed = timers.0.lock().unwrap_or_else(|p| p.into_inner());
            let (due, later) = armed.drain(..).partition(|(at, _)| *at <= Instant::now());
            *armed = later;
            due
        };
        pending.extend(due.iter().map(|(at, check)| (*at, check_body(check))));
        let now = Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(at, _)| *at <= now);
        pending = waiting;
        if !ready.is_empty() {
            let retry = status_batch(&status, &ready).await;
            pending.extend(
                retry
                    .into_iter()
                    .map(|body| (Instant::now() + Duration::from_millis(500), body)),
            );
        }
        let idle = pending.is_empty() && timers.0.lock().map_or(true, |t| t.is_empty());
        if idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published = published
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok((report, published))
}

/// One status batch; the bodies of the messages it left for another delivery.
async fn status_batch(
    status: &StatusDispatch<Arc<MemoryLedger>, Published, Timers, Kept, SqsRedelivery>,
    ready: &[(Instant, String)],
) -> Vec<String> {
    let ids: Vec<String> = (0..ready.len()).map(|i| format!("status-{i}")).collect();
    let mut records = Vec::new();
    let mut messages = Vec::new();
    for ((_, body), id) in ready.iter().zip(&ids) {
        let Some(message) = recognise(body) else {
            continue;
        };
        records.push(Record {
            message_id: id,
            body: Some(body),
            ..Record::default()
        });
        messages.push(message);
    }
    let deadline = SystemTime::now() + Duration::from_secs(10);
    let report = status.run(&records, &messages, deadline).await;
    report
        .outcomes
        .iter()
        .zip(&records)
        .zip(&messages)
        .filter(|((outcome, _), message)| {
            outcome.fate == Fate::Transient && !matches!(message, StatusMessage::Malformed(_))
        })
        .filter_map(|((_, record), _)| record.body.map(str::to_owned))
        .collect()
}

pub fn print_outcomes(published: &[String]) {
    println!("\nOutcomes (one per request; EventBridge's `Voice Call Outcome` detail):");
    println!(
        "{:<38} {:<11} {:<12} calls",
        "sqs message id", "outcome", "code"
    );
    for detail in published {
        let detail: Value = serde_json::from_str(detail).unwrap_or(Value::Null);
        let calls: Vec<String> = detail["calls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {}",
                            c["messageId"].as_str().unwrap_or(""),
                            c["status"].as_str().unwrap_or("-")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<38} {:<11} {:<12} {}",
            detail["sqsMessageId"].as_str().unwrap_or(""),
            detail["outcome"].as_str().unwrap_or(""),
            detail["code"].as_str().unwrap_or(""),
            calls.join(", ")
        );
    }
}
