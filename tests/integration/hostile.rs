//! Hostile bodies: each gets a clear, structured permanent error for its own record, no call
//! is placed for it, and its neighbours are unaffected.

use voice_dispatch::report::Fate;
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
        assert_eq!(reason.code, *code, "{id}: {}", reason.message);
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
