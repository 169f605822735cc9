//! Hostile bodies: each gets a clear, structured permanent error for its own record, no call
//! is placed for it, and its neighbours are unaffected.

use voice_dispatch::core::report::Fate;
use voice_fake::Script;

use crate::support::*;

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn hostile_bodies_fail_alone_with_a_structured_reason_and_no_call() {
    let cases: Vec<(&str, String, &str)> = vec![
        ("json-null", "null".into(), "SchemaViolation"),
        ("json-array", "[]".into(), "SchemaViolation"),
        ("json-string", serde_json::to_string(&body("+12065550130", "x")).unwrap(), "SchemaViolation"),
        ("empty", String::new(), "MalformedJson"),
        ("deep-nesting", nested(10_000), "SchemaViolation"),
        (
            "deep-nesting-in-text",
            format!(r#"{{"DestinationPhoneNumber": "+12065550131", "Content": {{"SSMLMessage": {{"Text": {}}}}}}}"#, nested(10_000)),
            "SchemaViolation",
        ),
        ("deep-object-nesting", format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000)), "SchemaViolation"),
        (
            "text-200kb",
            body("+12065550132", &format!("<speak>{}</speak>", "A".repeat(200_000))),
            "InvalidField",
        ),
        (
            "wrong-types",
            r#"{"DestinationPhoneNumber": 12065550133, "Content": {"SSMLMessage": {"Text": 493817}}}"#.into(),
            "SchemaViolation",
        ),
        (
            "unknown-member",
            r#"{"DestinationPhoneNumber": "+12065550134", "Priority": "high", "Content": {"SSMLMessage": {"Text": "x"}}}"#.into(),
            "SchemaViolation",
        ),
        (
            "duplicate-key",
            r#"{"DestinationPhoneNumber": "+12065550136", "DestinationPhoneNumber": "+12065550137", "Content": {"SSMLMessage": {"Text": "x"}}}"#.into(),
            "SchemaViolation",
        ),
        (
            "lone-surrogate",
            r#"{"DestinationPhoneNumber": "+12065550138", "Content": {"SSMLMessage": {"Text": "\ud800"}}}"#.into(),
            "MalformedJson",
        ),
    ];
    let harness = Harness::start(Script::default()).await;
    let mut records: Vec<_> = cases
        .iter()
        .map(|(id, body, _)| record(id, Some(body)))
        .collect();
    records.push(record(
        "neighbour",
        Some(&body("+12065550140", "<speak>fine</speak>")),
    ));

    let report = harness.run(&event(records)).await;

    for (id, _, code) in &cases {
        let outcome = outcome(&report, id);
        assert_eq!(outcome.fate, Fate::Permanent, "{id}");
        let reason = outcome.reason.as_ref().expect("a reason");
        assert_eq!(reason.code.word(), *code, "{id}: {}", reason.message);
        assert!(!reason.message.is_empty(), "{id}");
        assert!(reason.message.len() < 500, "{id}: the reason stays short");
        assert!(
            !reason.message.contains("493817"),
            "{id}: values are never quoted"
        );
    }
    assert_eq!(fate(&report, "neighbour"), Fate::Sent);
    let calls = harness.fake.calls();
    assert_eq!(calls.len(), 1, "only the valid neighbour was called");
    assert_eq!(calls[0].destination, "+12065550140");
}

/// Keys the sender chose never reach a reason, a dead letter or a log: a phone number as a
/// key, a 200 KB key, an unknown key inside `Content`. The release bootstrap (in CI) logs at
/// TRACE in JSON, forwards the letters to moto's SQS, and each letter's `DispatchError` names
/// the member's position instead.
#[tokio::test]
async fn hostile_member_names_neither_leak_nor_bloat() {
    use crate::support::moto::{create_queue, read_all, Moto};
    use crate::support::process::one_invocation;
    use std::time::Duration;

    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let dlq = create_queue(&sqs, "hostile-names-dlq", &[]).await;
    let huge_key = "K".repeat(200_000);
    let cases = [
        (
            "phone-key",
            r#"{"DestinationPhoneNumber": "+12065550150", "+12065550177": "call me", "Content": {"SSMLMessage": {"Text": "x"}}}"#.to_owned(),
        ),
        (
            "huge-key",
            format!(r#"{{"DestinationPhoneNumber": "+12065550151", "{huge_key}": 1, "Content": {{"SSMLMessage": {{"Text": "x"}}}}}}"#),
        ),
        (
            "nested-key",
            r#"{"DestinationPhoneNumber": "+12065550152", "Content": {"SSMLMessage": {"Text": "x", "+12065550178": 1}}}"#.to_owned(),
        ),
    ];
    let records = cases
        .iter()
        .map(|(id, body)| record(id, Some(body)))
        .collect();
    let run = one_invocation(
        &[
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("AWS_ENDPOINT_URL_SQS", &moto.endpoint),
            ("DEAD_LETTER_QUEUE_URL", &dlq.url),
        ],
        records,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(run.calls, 0);
    assert_eq!(
        run.answer["batchItemFailures"],
        serde_json::json!([]),
        "dead-lettered, so not reported: {}",
        run.answer
    );
    assert!(!run.raw.is_empty());
    // Everything the process wrote, stdout and stderr: neither the keys nor the destinations
    // (only ever masked).
    for text in &run.raw {
        for secret in [
            "2065550177",
            "2065550178",
            &huge_key[..64],
            "2065550150",
            "2065550151",
            "2065550152",
        ] {
            assert!(
                !text.contains(secret),
                "a number or key in the output: {text:.300}"
            );
        }
        assert!(text.len() < 4_000, "a log line of {} bytes", text.len());
    }
    let letters = read_all(&sqs, &dlq).await;
    assert_eq!(letters.len(), cases.len());
    for letter in &letters {
        let reason = letter
            .message_attributes()
            .and_then(|attributes| attributes.get("DispatchError"))
            .and_then(|value| value.string_value())
            .expect("every letter says why");
        assert!(
            reason.len() < 1_000,
            "a DispatchError of {} bytes",
            reason.len()
        );
        for secret in ["2065550177", "2065550178", &huge_key[..64]] {
            assert!(!reason.contains(secret), "a sender's key in {reason}");
        }
        let error: serde_json::Value = serde_json::from_str(reason).unwrap();
        assert_eq!(error["code"], "SchemaViolation", "{reason}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("not in the contract") && message.contains("column"),
            "the member is named by its position: {message}"
        );
    }
}
