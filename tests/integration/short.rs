//! Every invocation length makes progress: the release bootstrap (in CI) under a Lambda
//! Runtime API, one fresh process per case, at Lambda's default 3 s and at 5, 10 and 60 s,
//! without the ledger and with it both ways, against a voice service answering in 50 ms and
//! in 1 s. An invocation too short for any send says so at ERROR, and a record deferred by it
//! on its last receive reaches the dead-letter queue with its reason.
//!
//! The deadline arithmetic these tests rely on (defaults: `DEADLINE_SAFETY_MS` 1,000,
//! `SEND_ATTEMPT_TIMEOUT_MS` 5,000): for an invocation of `L`, the reserve is
//! `r = min(1,000 ms, L / 2)`, sends are abandoned at `A = L − r / 2`, and a send starts only
//! before `S = min(L − r, A − min(SEND_ATTEMPT_TIMEOUT_MS, 1 s))`.

use std::time::Duration;

use serde_json::Value;
use voice_fake::Script;

use crate::support::moto::{create_ledger_table, create_queue, read_all, reason_of, Moto, Queue};
use crate::support::process::{one_invocation_with, Invocation};
use crate::support::{body, failures, record};

const LENGTHS: [u64; 4] = [3, 5, 10, 60];
const LATENCIES: [Duration; 2] = [Duration::from_millis(50), Duration::from_secs(1)];
const RECORDS: usize = 10;
const TABLE: &str = "short-ledger";

#[derive(Debug, Clone, Copy)]
enum Ledger {
    Off,
    Retry,
    DeadLetter,
}

fn records(prefix: &str, count: usize, receive_count: u32, queue: &Queue) -> Vec<Value> {
    (0..count)
        .map(|n| {
            let mut record = record(
                &format!("{prefix}-{n}"),
                Some(&body(&format!("+1206555{n:04}"), "short")),
            );
            record["attributes"]["ApproximateReceiveCount"] = receive_count.to_string().into();
            record["eventSourceARN"] = queue.arn.clone().into();
            record
        })
        .collect()
}

/// The per-record lines, by message id: (fate, error code).
fn fates(run: &Invocation) -> Vec<(String, String, Option<String>)> {
    run.lines
        .iter()
        .filter(|line| line["fields"]["fate"].is_string())
        .map(|line| {
            let fields = &line["fields"];
            (
                fields["message_id"].as_str().unwrap_or_default().to_owned(),
                fields["fate"].as_str().unwrap_or_default().to_owned(),
                fields["error_code"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn level_lines<'a>(run: &'a Invocation, level: &str, needle: &str) -> Vec<&'a Value> {
    run.lines
        .iter()
        .filter(|line| line["level"] == level && line.to_string().contains(needle))
        .collect()
}

fn environment(moto: &Moto, ledger: Ledger) -> Vec<(&str, &str)> {
    let mut vars = vec![
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        // Visibility changes and ledger writes go to moto, never to AWS.
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint.as_str()),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint.as_str()),
    ];
    match ledger {
        Ledger::Off => {}
        Ledger::Retry => vars.push(("IDEMPOTENCY_TABLE_NAME", TABLE)),
        Ledger::DeadLetter => {
            vars.push(("IDEMPOTENCY_TABLE_NAME", TABLE));
            vars.push(("ON_UNKNOWN_OUTCOME", "dead-letter"));
        }
    }
    vars
}

/// One case: every record sent, each called once, nothing reported, the answer before the
/// deadline; one WARN about the short budget exactly when the invocation leaves less than
/// the 5 s attempt timeout after the 1 s reserve.
async fn case(moto: &Moto, queue: &Queue, seconds: u64, ledger: Ledger, latency: Duration) {
    let name = format!("{seconds}s-{ledger:?}-{}ms", latency.as_millis());
    let timeout = Duration::from_secs(seconds);
    let run = one_invocation_with(
        Script::default().with_latency(latency),
        &environment(moto, ledger),
        records(&name, RECORDS, 1, queue),
        timeout,
    )
    .await;
    assert!(run.answered_in < timeout, "{name}: {:?}", run.answered_in);
    let fates = fates(&run);
    assert_eq!(
        fates.len(),
        RECORDS,
        "{name}: one line per record: {fates:?}"
    );
    assert!(
        fates.iter().all(|(_, fate, _)| fate == "sent"),
        "{name}: every record is sent: {fates:?}"
    );
    assert_eq!(failures(&run.answer), Vec::<String>::new(), "{name}");
    let mut destinations: Vec<&str> = run
        .received
        .iter()
        .map(|c| c.destination.as_str())
        .collect();
    destinations.sort_unstable();
    destinations.dedup();
    assert_eq!(
        (run.calls, destinations.len()),
        (RECORDS, RECORDS),
        "{name}: each called once"
    );
    let short = level_lines(&run, "WARN", "SEND_ATTEMPT_TIMEOUT_MS");
    let budget_ms = seconds * 1_000 - 1_000;
    assert_eq!(
        short.len(),
        usize::from(budget_ms < 5_000),
        "{name}: the short-budget WARN: {short:?}"
    );
    assert!(level_lines(&run, "ERROR", "").is_empty(), "{name}");
}

#[tokio::test]
async fn every_invocation_length_sends_every_record_with_and_without_the_ledger() {
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    create_ledger_table(&moto.dynamodb().await, TABLE).await;
    let queue = create_queue(&sqs, "short", &[]).await;
    for seconds in LENGTHS {
        for ledger in [Ledger::Off, Ledger::Retry, Ledger::DeadLetter] {
            for latency in LATENCIES {
                case(&moto, &queue, seconds, ledger, latency).await;
            }
        }
    }
}

#[tokio::test]
async fn at_three_seconds_with_two_in_flight_one_second_calls_send_as_many_as_fit() {
    // L = 3 s: r = min(1 s, L / 2) = 1 s, A = L − r / 2 = 2.5 s, S = min(L − r, A − 1 s) =
    // 1.5 s. Each of the two lanes starts a call at 0 s, answered at 1 s; its next call
    // starts then, before S, and is answered at 2 s, before A; its third would start at
    // 2 s, after S. So 2 × 2 = 4 calls start (docs/operations.md: "4 sent (rounds at 0 and
    // 1 s), 6 deferred"). The room for a busy machine is S − 1 s = 0.5 s for the first round
    // to come back, and A − 2 s for the second: a second-round call answered after A is
    // abandoned, not sent, and still counts as started.
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let queue = create_queue(&sqs, "fit", &[]).await;
    let mut vars = environment(&moto, Ledger::Off);
    vars.push(("MAX_CONCURRENCY", "2"));
    let timeout = Duration::from_secs(3);
    let run = one_invocation_with(
        Script::default().with_latency(Duration::from_secs(1)),
        &vars,
        records("fit", RECORDS, 1, &queue),
        timeout,
    )
    .await;
    assert!(run.answered_in < timeout, "{:?}", run.answered_in);
    let fates = fates(&run);
    let count = |wanted: &str| fates.iter().filter(|(_, fate, _)| fate == wanted).count();
    let (sent, abandoned) = (count("sent"), count("abandoned"));
    // The first round is answered long before A: only the second can be abandoned.
    assert!((2..=4).contains(&sent), "{fates:?}");
    assert_eq!(
        run.calls,
        sent + abandoned,
        "every call placed is sent or abandoned"
    );
    let started_at: Vec<Duration> = run
        .received
        .iter()
        .map(|call| {
            let first = run.received[0].received_at;
            call.received_at.duration_since(first).unwrap_or_default()
        })
        .collect();
    assert_eq!(
        sent + abandoned,
        4,
        "two rounds of two start before S = 1.5 s (calls received at {started_at:?} after \
         the first): {fates:?}"
    );
    let unsent: Vec<&(String, String, Option<String>)> = fates
        .iter()
        .filter(|(_, fate, _)| fate != "sent" && fate != "abandoned")
        .collect();
    assert!(
        unsent
            .iter()
            .all(|(_, fate, code)| fate == "deferred"
                && code.as_deref() == Some("DeadlineReached")),
        "the rest were never started: {unsent:?}"
    );
    let unsent: Vec<&(String, String, Option<String>)> =
        fates.iter().filter(|(_, fate, _)| fate != "sent").collect();
    let mut ids: Vec<String> = unsent.iter().map(|(id, _, _)| id.clone()).collect();
    ids.sort();
    let mut answered = failures(&run.answer);
    answered.sort();
    assert_eq!(answered, ids, "what was not sent is reported, nothing lost");
}

#[tokio::test]
async fn an_invocation_too_short_to_start_says_so_at_error_and_its_last_receive_is_dead_lettered() {
    // Lambda's shortest timeout, 1 s: the reserve is 0.5 s, the abandon point 0.75 s, and
    // a send needs 1 s before it: none can start.
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let queue = create_queue(&sqs, "too-short", &[]).await;
    let dlq = create_queue(&sqs, "too-short-dlq", &[]).await;
    let mut vars = environment(&moto, Ledger::Off);
    vars.push(("DEAD_LETTER_QUEUE_URL", dlq.url.as_str()));
    vars.push(("MAX_RECEIVE_COUNT", "5"));
    let mut batch = records("early", 2, 1, &queue);
    batch.extend(records("last", 1, 5, &queue));
    let run = one_invocation_with(Script::default(), &vars, batch, Duration::from_secs(1)).await;
    assert_eq!(run.calls, 0);
    let errors = level_lines(&run, "ERROR", "no call can start");
    assert_eq!(errors.len(), 1, "{:?}", run.raw);
    let error = errors[0].to_string();
    for named in [
        "DEADLINE_SAFETY_MS",
        "SEND_ATTEMPT_TIMEOUT_MS",
        "raise the function's timeout",
        "\"send_attempt_timeout_ms\":5000",
        "\"deadline_safety_ms\":1000",
    ] {
        assert!(error.contains(named), "{named}: {error}");
    }
    // The two early receives come back; the last one goes to the DLQ with why.
    assert_eq!(failures(&run.answer), ["early-0", "early-1"]);
    let letters = read_all(&sqs, &dlq).await;
    assert_eq!(letters.len(), 1);
    let reason = reason_of(&letters[0]).expect("a DispatchError");
    assert_eq!(reason["code"], "InvocationTooShort");
    assert_eq!(reason["sourceMessageId"], "last-0");
    let message = reason["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("receive 5 of the queue's MAX_RECEIVE_COUNT=5"),
        "{message}"
    );
}

#[tokio::test]
async fn the_fix_the_error_names_works_a_shorter_attempt_timeout_sends_in_one_second() {
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let queue = create_queue(&sqs, "lowered", &[]).await;
    let mut vars = environment(&moto, Ledger::Off);
    // S = min(1 − 0.5, 0.75 − 0.3) = 0.45 s; 50 ms calls fit many times over.
    vars.push(("SEND_ATTEMPT_TIMEOUT_MS", "300"));
    let run = one_invocation_with(
        Script::default().with_latency(Duration::from_millis(50)),
        &vars,
        records("lowered", 3, 1, &queue),
        Duration::from_secs(1),
    )
    .await;
    // Sends start until 0.45 s: a machine busy enough to delay the first past it is a
    // deferral, never an error.
    assert!(run.calls >= 1, "{:?}", run.raw);
    let fates = fates(&run);
    assert!(
        fates.iter().all(|(_, fate, code)| fate == "sent"
            || (fate == "deferred" && code.as_deref() == Some("DeadlineReached"))),
        "{fates:?}"
    );
    assert!(level_lines(&run, "ERROR", "").is_empty());
}

#[tokio::test]
async fn through_the_real_sdk_an_attempt_is_cut_at_the_abandon_point_and_otherwise_at_its_own_timeout(
) {
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let queue = create_queue(&sqs, "cut", &[]).await;
    // 3 s, calls of 4 s: each attempt is given the 2.5 s to the abandon point, not 5 s, and is
    // abandoned there (it may have been placed); the answer still comes in time.
    let timeout = Duration::from_secs(3);
    let run = one_invocation_with(
        Script::default().with_latency(Duration::from_secs(4)),
        &environment(&moto, Ledger::Off),
        records("cut", 2, 1, &queue),
        timeout,
    )
    .await;
    assert!(run.answered_in < timeout, "{:?}", run.answered_in);
    let lines = fates(&run);
    assert!(
        lines.len() == 2
            && lines
                .iter()
                .all(|(_, fate, code)| fate == "abandoned" && code.as_deref() == Some("Abandoned")),
        "{lines:?}"
    );
    // 60 s, SEND_ATTEMPT_TIMEOUT_MS 500, calls of 2 s: the voice call's own timeout ends
    // the attempt at 0.5 s (a transient Timeout, not retried in place), far from the abandon
    // point; the ledger's DynamoDB calls, on the shared configuration, are not held to it.
    let mut vars = environment(&moto, Ledger::Retry);
    vars.push(("SEND_ATTEMPT_TIMEOUT_MS", "500"));
    create_ledger_table(&moto.dynamodb().await, TABLE).await;
    let run = one_invocation_with(
        Script::default().with_latency(Duration::from_secs(2)),
        &vars,
        records("own", 2, 1, &queue),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        run.answered_in < Duration::from_millis(1_500),
        "{:?}",
        run.answered_in
    );
    let lines = fates(&run);
    assert!(
        lines.len() == 2
            && lines
                .iter()
                .all(|(_, fate, code)| fate == "transient" && code.as_deref() == Some("Timeout")),
        "{lines:?}"
    );
    assert_eq!(run.calls, 2, "one attempt each");
}
