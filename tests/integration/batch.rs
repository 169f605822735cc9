//! The batch engine through the real client: empty batches, the concurrency bound, large
//! batches, the deadline, and what the response lists.

use std::time::{Duration, Instant, SystemTime};

use voice_dispatch::adapters::lambda::EventError;
use voice_dispatch::core::report::Fate;
use voice_fake::{Behaviour, Script};

use crate::support::*;
use voice_dispatch::adapters::lambda::ToResponse;

fn destination(n: usize) -> String {
    format!("+1206555{n:04}")
}

#[tokio::test]
async fn an_empty_batch_answers_an_empty_list_and_calls_nobody() {
    let harness = Harness::start(Script::default()).await;
    let report = harness.run(&event(vec![])).await;
    assert!(report.outcomes.is_empty());
    let json = serde_json::to_value(report.to_response()).unwrap();
    assert_eq!(json, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(harness.fake.request_count(), 0);
}

#[tokio::test]
async fn sends_in_flight_never_exceed_max_concurrency_and_do_overlap() {
    let mut config = test_config();
    config.max_concurrency = 8;
    let harness = Harness::with_config(
        Script::default().with_latency(Duration::from_millis(40)),
        config,
    )
    .await;
    let records = (0..60)
        .map(|n| record(&format!("m{n}"), Some(&body(&destination(n), "hello"))))
        .collect();
    let report = harness.run(&event(records)).await;
    assert_eq!(report.counts().sent, 60);
    let max = harness.fake.max_in_flight();
    assert!(max <= 8, "{max} sends in flight, MAX_CONCURRENCY is 8");
    assert!(max > 1, "sends must overlap, saw {max} at most");
}

#[tokio::test]
async fn a_thousand_record_batch_gives_every_record_its_own_fate() {
    let mut config = test_config();
    config.max_concurrency = 50;
    // Per-record fates, not the breaker: 40 records failing 3 times each can come back five
    // in a row and open it (its own scenarios are in `outage.rs`).
    config.breaker.threshold = 1_000;
    // Every 10th destination is refused as a bad request, every 25th always fails inside
    // the service; everything else is accepted.
    let mut script = Script::default();
    for n in 0..1_000 {
        if n % 10 == 3 {
            script = script.with(&destination(n), Behaviour::fail(400, "BadRequestException"));
        } else if n % 25 == 7 {
            script = script.with(
                &destination(n),
                Behaviour::fail(500, "InternalServiceErrorException"),
            );
        }
    }
    let harness = Harness::with_config(script, config).await;
    let records = (0..1_000)
        .map(|n| record(&format!("m{n}"), Some(&body(&destination(n), "hello"))))
        .collect();
    let report = harness.run(&event(records)).await;

    assert_eq!(report.outcomes.len(), 1_000);
    let expected_failures: Vec<String> = (0..1_000)
        .filter(|n| n % 10 == 3 || n % 25 == 7)
        .map(|n| format!("m{n}"))
        .collect();
    assert_eq!(reported(&report), expected_failures);
    let counts = report.counts();
    assert_eq!(counts.permanent, 100);
    assert_eq!(counts.transient, 40);
    assert_eq!(counts.sent, 860);
    let accepted = harness.fake.calls().iter().filter(|c| c.accepted()).count();
    assert_eq!(accepted, 860, "each sent record was placed exactly once");
}

#[tokio::test]
async fn a_slow_send_times_out_once_and_the_batch_answers_well_before_its_deadline() {
    let mut config = test_config();
    config.deadline_safety = Duration::from_millis(400);
    config.send_attempt_timeout = Duration::from_millis(300);
    let attempt_timeout = config.send_attempt_timeout;
    let slow = "+12065550900";
    let harness = Harness::with_config(
        Script::default().with(slow, Behaviour::slow(Duration::from_secs(5))),
        config,
    )
    .await;
    let mut records: Vec<_> = (0..5)
        .map(|n| record(&format!("fast{n}"), Some(&body(&destination(n), "hello"))))
        .collect();
    records.push(record("slow", Some(&body(slow, "hello"))));

    let started = Instant::now();
    let deadline = SystemTime::now() + Duration::from_millis(3_000);
    let report = harness.run_until(&event(records), deadline).await;
    let elapsed = started.elapsed();

    assert!(
        elapsed >= attempt_timeout,
        "the slow send runs its whole attempt: answered after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(3_000),
        "answered after {elapsed:?}"
    );
    assert_eq!(fate(&report, "slow"), Fate::Transient);
    assert_eq!(error_code(&report, "slow").as_deref(), Some("Timeout"));
    assert_eq!(
        harness.fake.calls_to(slow).len(),
        1,
        "the timed-out call may have been placed: not sent again"
    );
    assert_eq!(reported(&report), ["slow"]);
    for n in 0..5 {
        assert_eq!(fate(&report, &format!("fast{n}")), Fate::Sent);
    }
}

#[tokio::test]
async fn no_send_starts_unless_the_start_floor_fits_before_the_cutoff() {
    let mut config = test_config();
    config.max_concurrency = 1;
    config.deadline_safety = Duration::from_millis(500);
    config.send_attempt_timeout = Duration::from_millis(300);
    let latency = Duration::from_millis(200);
    let deadline_in = Duration::from_millis(1_500);
    // In flight sends are abandoned at the deadline minus half the reserve; a send starts
    // only if the start floor fits before that: here the whole 300 ms attempt, under 1 s.
    let last_start = deadline_in - config.deadline_safety / 2 - config.send_attempt_timeout;
    let harness = Harness::with_config(Script::default().with_latency(latency), config).await;
    let records = (0..20)
        .map(|n| record(&format!("m{n}"), Some(&body(&destination(n), "hello"))))
        .collect();
    let started = Instant::now();
    let report = harness
        .run_until(&event(records), SystemTime::now() + deadline_in)
        .await;
    assert!(started.elapsed() < deadline_in);

    let counts = report.counts();
    // One at a time, one every 200 ms or more, starting no later than `last_start`.
    let most = (last_start.as_millis() / latency.as_millis()) as usize + 1;
    assert!(
        (1..=most).contains(&counts.sent),
        "{counts:?}, at most {most}"
    );
    assert_eq!(counts.sent + counts.deferred, 20, "{counts:?}");
    assert_eq!(counts.abandoned, 0, "nothing had to be abandoned");
    assert_eq!(
        harness.fake.request_count() as usize,
        counts.sent,
        "no request was started for a deferred record"
    );
    // Records are taken in order: the sent ones are a prefix of the batch.
    for n in 0..counts.sent {
        assert_eq!(fate(&report, &format!("m{n}")), Fate::Sent);
    }
}

#[tokio::test]
async fn a_send_is_not_started_when_the_deadline_leaves_no_room_for_one_attempt() {
    let mut config = test_config();
    config.deadline_safety = Duration::from_millis(400);
    config.send_attempt_timeout = Duration::from_secs(1);
    let harness = Harness::with_config(Script::default(), config).await;
    let report = harness
        .run_until(
            &event(vec![record("m", Some(&body(&destination(0), "hello")))]),
            SystemTime::now() + Duration::from_millis(1_100),
        )
        .await;
    assert_eq!(fate(&report, "m"), Fate::Deferred);
    // No send could start in the whole invocation: the configuration's fault, said as such.
    assert_eq!(
        error_code(&report, "m").as_deref(),
        Some("InvocationTooShort")
    );
    assert_eq!(harness.fake.request_count(), 0);
}

#[tokio::test]
async fn a_deadline_already_past_sends_nothing_and_fails_everything() {
    let harness = Harness::start(Script::default()).await;
    let records = (0..3)
        .map(|n| record(&format!("m{n}"), Some(&body(&destination(n), "hello"))))
        .collect();
    let report = harness
        .run_until(&event(records), SystemTime::now() - Duration::from_secs(1))
        .await;
    assert_eq!(reported(&report), ["m0", "m1", "m2"]);
    assert_eq!(harness.fake.request_count(), 0);
}

#[tokio::test]
async fn a_message_id_delivered_twice_is_called_once_and_reported_once() {
    let harness = Harness::start(
        Script::default().with("+12065550001", Behaviour::fail(400, "BadRequestException")),
    )
    .await;
    let report = harness
        .run(&event(vec![
            record("dup", Some(&body("+12065550001", "a"))),
            record("ok", Some(&body("+12065550002", "b"))),
            record("dup", Some(&body("+12065550001", "a"))),
        ]))
        .await;
    assert_eq!(reported(&report), ["dup"]);
    assert_eq!(
        harness.fake.calls_to("+12065550001").len(),
        1,
        "one call for both copies"
    );
    assert_eq!(fate(&report, "dup"), Fate::Permanent);
    assert!(report
        .outcomes
        .iter()
        .filter(|o| o.message_id == "dup")
        .all(|o| o.fate == Fate::Permanent));
}

#[tokio::test]
async fn a_record_without_a_message_id_refuses_the_event_before_any_call() {
    let harness = Harness::start(Script::default()).await;
    let mut nameless = record("x", Some(&body("+12065550001", "a")));
    nameless["messageId"] = serde_json::Value::Null;
    let result = harness
        .dispatch
        .handle(
            &event(vec![
                record("ok", Some(&body("+12065550002", "b"))),
                nameless,
            ]),
            SystemTime::now() + Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        result.unwrap_err(),
        EventError::MissingMessageId { index: 1 }
    );
    assert_eq!(harness.fake.request_count(), 0);
}
