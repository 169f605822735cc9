//! The sample events in `events/` are real-shaped SQS events, and the handler gives each of
//! them the fates the README promises, against the fake scripted by
//! `voice-fake/scripts/mixed-batch.json` (the local runner's default). `events/` holds SQS
//! events only, so that `for f in events/*.json` works with `sam local invoke -e`.

use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;
use voice_dispatch::core::report::Fate;
use voice_fake::Script;

use crate::support::events::{self, events_dir, read};
use crate::support::*;

async fn run_file(name: &str) -> (Harness, SqsEvent, voice_dispatch::core::report::BatchReport) {
    let harness = Harness::start(events::mixed_batch_script()).await;
    let event = events::sent_now(name);
    let report = harness.run(&event).await;
    (harness, event, report)
}

#[tokio::test]
async fn a_sample_event_as_stored_is_long_past_its_time_to_live_and_never_sent() {
    let harness = Harness::start(Script::default()).await;
    let event: SqsEvent = serde_json::from_str(&read("single-message.json")).expect("an SQS event");
    let report = harness.run(&event).await;
    assert_eq!(fates(&report), words(&[(Fate::Expired, Some("Expired"))]));
    assert_eq!(harness.fake.request_count(), 0);
}

fn fates(report: &voice_dispatch::core::report::BatchReport) -> Vec<(Fate, Option<String>)> {
    report
        .outcomes
        .iter()
        .map(|o| (o.fate, o.reason.as_ref().map(|r| r.code.to_string())))
        .collect()
}

/// Fates and the words of their codes, as [`fates`] reads them.
fn words(expected: &[(Fate, Option<&str>)]) -> Vec<(Fate, Option<String>)> {
    expected
        .iter()
        .map(|(fate, code)| (*fate, code.map(str::to_owned)))
        .collect()
}

#[test]
fn every_event_file_is_shaped_as_lambda_delivers_sqs_records() {
    let mut files = 0;
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        files += 1;
        let event: Value = serde_json::from_str(&read(&name)).unwrap();
        let records = event["Records"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: Records"));
        assert!(!records.is_empty(), "{name}");
        for record in records {
            for key in [
                "messageId",
                "receiptHandle",
                "attributes",
                "messageAttributes",
                "eventSource",
                "eventSourceARN",
                "awsRegion",
            ] {
                assert!(record.get(key).is_some(), "{name}: a record lacks {key}");
            }
            assert_eq!(record["eventSource"], "aws:sqs", "{name}");
            assert!(
                record["attributes"]["ApproximateReceiveCount"].is_string(),
                "{name}"
            );
            if let Some(body) = record["body"].as_str() {
                let md5 = format!("{:x}", md5::compute(body.as_bytes()));
                assert_eq!(
                    record["md5OfBody"],
                    md5.as_str(),
                    "{name}: md5OfBody matches the body"
                );
            }
            let arn = record["eventSourceARN"].as_str().unwrap();
            if arn.ends_with(".fifo") {
                assert!(record["attributes"]["MessageGroupId"].is_string(), "{name}");
            }
        }
    }
    assert!(files >= 4, "expected the four sample events, found {files}");
}

#[tokio::test]
async fn single_message_is_sent_with_every_member() {
    let (harness, _, report) = run_file("single-message.json").await;
    assert_eq!(fates(&report), words(&[(Fate::Sent, None)]));
    let calls = harness.fake.calls();
    assert_eq!(calls[0].caller_id.as_deref(), Some("+12065550199"));
    assert_eq!(calls[0].configuration_set.as_deref(), Some("alerts"));
}

#[tokio::test]
async fn mixed_batch_gives_one_record_per_row_of_the_fates_table() {
    let (_, event, report) = run_file("mixed-batch.json").await;
    use Fate::*;
    assert_eq!(
        fates(&report),
        words(&[
            (Sent, None),
            (Sent, None),
            (Transient, Some("InternalServiceErrorException")),
            (Transient, Some("TooManyRequestsException")),
            (Transient, Some("LimitExceededException")),
            (Transient, Some("Http502")),
            (Transient, Some("UnexpectedFutureException")),
            (Transient, Some("Timeout")),
            (Permanent, Some("BadRequestException")),
            (Permanent, Some("NotFoundException")),
            (Permanent, Some("MissingBody")),
            (Permanent, Some("MalformedJson")),
            (Permanent, Some("SchemaViolation")),
            (Permanent, Some("InvalidField")),
        ])
    );
    let expected: Vec<String> = event.records[2..]
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(reported(&report), expected);
}

#[tokio::test]
async fn fifo_two_groups_are_all_sent_in_group_order() {
    let (harness, _, report) = run_file("fifo-two-groups.json").await;
    assert!(reported(&report).is_empty());
    for (destination, group) in [("+12065550120", "db-cluster"), ("+12065550121", "payments")] {
        let texts: Vec<String> = harness
            .fake
            .calls_to(destination)
            .into_iter()
            .map(|c| c.text)
            .collect();
        let expected: Vec<String> = (1..=3)
            .map(|n| format!("<speak>{group} update {n}</speak>"))
            .collect();
        assert_eq!(texts, expected);
    }
}

#[tokio::test]
async fn hostile_bodies_fail_permanently_except_the_valid_neighbour() {
    let (harness, event, report) = run_file("hostile-bodies.json").await;
    let last = event.records.len() - 1;
    for (index, outcome) in report.outcomes.iter().enumerate() {
        let expected = if index == last {
            Fate::Sent
        } else {
            Fate::Permanent
        };
        assert_eq!(
            outcome.fate, expected,
            "record {index}: {:?}",
            outcome.reason
        );
    }
    assert_eq!(harness.fake.request_count(), 1);
}
