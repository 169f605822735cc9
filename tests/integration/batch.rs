//! The batch engine through the real client: empty batches, the concurrency bound, large
//! batches, the deadline, and what the response lists.

use std::time::{Duration, Instant, SystemTime};

use voice_dispatch::adapters::lambda::EventError;
use voice_dispatch::report::Fate;
use voice_fake::{Behaviour, Script};

use crate::support::*;

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
async fn a_short_deadline_is_met_and_only_unfinished_records_are_failed() {
    let mut config = test_config();
    config.deadline_safety = Duration::from_millis(400);
    config.send_attempt_timeout = Duration::from_secs(10);
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
    let deadline = SystemTime::now() + Duration::from_millis(1_500);
    let report = harness.run_until(&event(records), deadline).await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_millis(1_500),
        "answered after {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(1_100),
        "the slow send may run until half the reserve is left, answered after {elapsed:?}"
    );
    assert_eq!(fate(&report, "slow"), Fate::Deferred);
    assert_eq!(
        error_code(&report, "slow").as_deref(),
        Some("DeadlineReached")
    );
    assert_eq!(reported(&report), ["slow"]);
    for n in 0..5 {
        assert_eq!(fate(&report, &format!("fast{n}")), Fate::Sent);
    }
}

#[tokio::test]
async fn no_send_starts_inside_the_deadline_reserve() {
    let mut config = test_config();
    config.max_concurrency = 1;
    config.deadline_safety = Duration::from_millis(500);
    let harness = Harness::with_config(
        Script::default().with_latency(Duration::from_millis(200)),
        config,
    )
    .await;
    let records = (0..20)
        .map(|n| record(&format!("m{n}"), Some(&body(&destination(n), "hello"))))
        .collect();
    let started = Instant::now();
    let report = harness
        .run_until(
            &event(records),
            SystemTime::now() + Duration::from_millis(1_500),
        )
        .await;
    assert!(started.elapsed() < Duration::from_millis(1_500));

    let counts = report.counts();
    // One at a time, 200 ms each, starting only in the first 1 000 ms: about 5 are sent.
    assert!((3..=6).contains(&counts.sent), "{counts:?}");
    assert_eq!(counts.sent + counts.deferred, 20, "{counts:?}");
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
async fn a_message_id_delivered_twice_is_reported_once() {
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
