//! Values the template accepts never break the function: the release bootstrap (in CI), run
//! with each of them under a Lambda Runtime API, still places a call, and says once, at WARN,
//! what it adjusted.

use std::time::Duration;

use serde_json::Value;

use crate::support::process::one_invocation;
use crate::support::{body, record};

fn one_record() -> Vec<Value> {
    vec![record("m1", Some(&body("+12065550101", "hello")))]
}

/// The call was placed, nothing was reported, and exactly one WARN line was written: its text.
fn sent_with_one_warning(run: &crate::support::process::Invocation) -> Vec<String> {
    assert_eq!(
        run.answer["batchItemFailures"],
        serde_json::json!([]),
        "{}",
        run.answer
    );
    assert_eq!(run.calls, 1, "the call was placed");
    let warned = warnings(&run.lines);
    assert_eq!(warned.len(), 1, "{warned:?}");
    warned
}

fn warnings(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| line["level"] == "WARN" && line.get("_aws").is_none())
        .map(Value::to_string)
        .collect()
}

#[tokio::test]
async fn a_backoff_base_above_its_maximum_still_sends_and_warns_once() {
    let run = one_invocation(
        &[
            ("RETRY_BACKOFF_BASE_SECONDS", "600"),
            ("RETRY_BACKOFF_MAX_SECONDS", "60"),
        ],
        one_record(),
        Duration::from_secs(30),
    )
    .await;
    let warned = sent_with_one_warning(&run);
    assert!(
        warned[0].contains("RETRY_BACKOFF_BASE_SECONDS"),
        "{warned:?}"
    );
}

#[tokio::test]
async fn a_deadline_reserve_longer_than_the_invocation_still_sends_and_warns_once() {
    // The template allows DeadlineSafetyMs up to 600,000 with its shortest timeout, 30 s.
    let run = one_invocation(
        &[("DEADLINE_SAFETY_MS", "600000")],
        one_record(),
        Duration::from_secs(30),
    )
    .await;
    let warned = sent_with_one_warning(&run);
    assert!(warned[0].contains("DEADLINE_SAFETY_MS"), "{warned:?}");
}

#[tokio::test]
async fn a_deployed_stacks_empty_endpoint_override_changes_no_endpoint() {
    // The template declares the voice endpoint override empty. Were the empty value taken as
    // set, the call would go nowhere; removed, the SDK falls back to what it would use
    // anyway: here the global AWS_ENDPOINT_URL, pointed at the fake.
    let run = crate::support::process::one_invocation(
        &[
            ("AWS_ENDPOINT_URL", "{fake}"),
            ("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE", ""),
            ("AWS_ENDPOINT_URL_SQS", ""),
            ("AWS_ENDPOINT_URL_DYNAMODB", ""),
        ],
        one_record(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(run.calls, 1, "{:?}", run.raw);
    assert_eq!(run.answer["batchItemFailures"], serde_json::json!([]));
}
