//! The log lines: one per record and one per batch, numbers masked, message text never
//! written, at any level (TRACE included: the SDK logs whole requests there) and in both
//! formats.

use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;
use voice_dispatch::observe::logging::{self, LogSettings};
use voice_fake::Script;

use crate::support::capture::Captured;
use crate::support::*;

fn read_event(name: &str) -> SqsEvent {
    crate::support::events::sent_now(name)
}

/// The secrets of an event: every `Text` and every phone number its bodies hold, and the
/// bodies that are not JSON at all.
fn secrets(event: &SqsEvent) -> Vec<String> {
    let mut secrets = Vec::new();
    for record in &event.records {
        let Some(body) = record.body.as_deref() else {
            continue;
        };
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(value) => {
                if let Some(content) = value["Content"].as_object() {
                    for kind in content.values() {
                        if let Some(text) = kind["Text"].as_str() {
                            secrets.push(text.chars().take(40).collect());
                        }
                    }
                }
                for member in [
                    "DestinationPhoneNumber",
                    "OriginationPhoneNumber",
                    "CallerId",
                ] {
                    if let Some(number) = value[member].as_str() {
                        secrets.push(number.trim_start_matches('+').to_owned());
                    }
                }
            }
            Err(_) => secrets.push(body.chars().take(40).collect()),
        }
    }
    secrets.retain(|s| s.len() >= 8);
    secrets
}

async fn logs_of(event_file: &str, settings: LogSettings) -> (SqsEvent, Vec<String>) {
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(logging::subscriber(&settings, captured.clone()));
    let harness = Harness::start(crate::support::events::mixed_batch_script()).await;
    let event = read_event(event_file);
    harness.run(&event).await;
    (event, captured.lines())
}

#[tokio::test]
async fn no_log_line_at_any_level_holds_message_text_or_a_full_number() {
    for (level, json) in [
        ("TRACE", false),
        ("TRACE", true),
        ("DEBUG", true),
        ("INFO", false),
    ] {
        for file in [
            "mixed-batch.json",
            "single-message.json",
            "hostile-bodies.json",
        ] {
            let settings = LogSettings {
                level: Some(level.to_owned()),
                json,
            };
            let (event, lines) = logs_of(file, settings).await;
            assert!(!lines.is_empty(), "{file} {level}: no logs at all");
            let secrets = secrets(&event);
            assert!(!secrets.is_empty());
            for line in &lines {
                for secret in &secrets {
                    assert!(
                        !line.contains(secret.as_str()),
                        "{file} at {level} (json: {json}) leaks {secret:?} in: {line}"
                    );
                }
            }
        }
    }
}

/// Defence in depth: today the SDK logs a request at TRACE with its body boxed away, but a
/// Debug impl that changes would put message text in the logs.
#[tokio::test]
async fn the_sdk_is_quiet_below_info_even_at_trace() {
    let settings = LogSettings {
        level: Some("TRACE".to_owned()),
        json: true,
    };
    let (_, lines) = logs_of("single-message.json", settings).await;
    let sdk_lines: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("\"level\":\"TRACE\"") || line.contains("\"level\":\"DEBUG\""))
        .collect();
    assert!(sdk_lines.is_empty(), "{sdk_lines:#?}");
}

#[tokio::test]
async fn one_structured_line_per_record_and_one_per_batch() {
    let settings = LogSettings {
        level: Some("INFO".to_owned()),
        json: true,
    };
    let (event, lines) = logs_of("mixed-batch.json", settings).await;
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON log lines"))
        .collect();
    for record in &event.records {
        let id = record.message_id.as_deref().unwrap();
        let mine: Vec<&serde_json::Value> = parsed
            .iter()
            .filter(|line| line["fields"]["message_id"] == id)
            .collect();
        assert_eq!(mine.len(), 1, "{id}: one line");
        let fields = &mine[0]["fields"];
        assert!(fields["fate"].is_string());
        assert!(fields["latency_ms"].is_number());
        assert_eq!(fields["receive_count"], 1);
    }
    let sent = parsed
        .iter()
        .find(|line| {
            line["fields"]["message_id"] == event.records[0].message_id.as_deref().unwrap()
        })
        .unwrap();
    assert_eq!(sent["fields"]["destination"], "+1206*****00");
    assert_eq!(sent["fields"]["fate"], "sent");
    let throttled = parsed
        .iter()
        .find(|line| line["fields"]["error_code"] == "TooManyRequestsException")
        .unwrap();
    assert_eq!(throttled["fields"]["fate"], "transient");
    let summaries: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|line| line["fields"]["message"] == "batch done")
        .collect();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0]["fields"]["records"], 14);
    assert_eq!(summaries[0]["fields"]["sent"], 2);
}

/// What operators read: every record's reason (each row of the fates table in the mixed
/// batch, plus a timed-out attempt and a refused connection) is a sentence, never a Rust
/// `Debug` dump; the batch line's numbers are whole, and a latency has at most one decimal.
#[tokio::test]
async fn reasons_are_sentences_and_numbers_are_rounded_to_what_they_mean() {
    let settings = LogSettings {
        level: Some("INFO".to_owned()),
        json: true,
    };
    let (_, mut lines) = logs_of("mixed-batch.json", settings.clone()).await;
    {
        let captured = Captured::default();
        let _guard =
            tracing::subscriber::set_default(logging::subscriber(&settings, captured.clone()));
        let mut config = test_config();
        config.send_attempt_timeout = Duration::from_millis(150);
        let slow = Harness::with_config(
            Script::default().with_latency(Duration::from_millis(600)),
            config,
        )
        .await;
        slow.run(&event(vec![record(
            "slow",
            Some(&body("+12065550101", "hi")),
        )]))
        .await;
        let refused = crate::fates::to_a_closed_port("http").await;
        assert_eq!(
            refused.outcomes[0].reason.as_ref().unwrap().code.word(),
            "ConnectError"
        );
        lines.extend(captured.lines());
    }
    let parsed: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let reasons: Vec<&str> = parsed
        .iter()
        .filter_map(|line| line["fields"]["reason"].as_str())
        .collect();
    assert!(reasons.len() >= 14, "{reasons:?}");
    for reason in &reasons {
        let dump = ["{", "}", "Some(", "None", "Error(", "kind:", "source:"];
        assert!(
            !dump.iter().any(|debug| reason.contains(debug)),
            "a Debug dump, not a sentence: {reason}"
        );
        assert!(reason.len() <= 400, "{reason}");
    }
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("no answer within the attempt's timeout")),
        "{reasons:?}"
    );
    let batch_lines: Vec<&Value> = parsed
        .iter()
        .filter(|line| line["fields"]["message"] == "batch done")
        .collect();
    assert_eq!(
        batch_lines.len(),
        3,
        "one per batch: the mixed batch, the slow one, the refused one"
    );
    for batch in batch_lines {
        for (name, value) in batch["fields"].as_object().unwrap() {
            if value.is_number() {
                assert!(value.is_u64(), "{name} = {value}: a whole number");
            }
        }
    }
    for latency in parsed
        .iter()
        .filter_map(|line| line["fields"]["latency_ms"].as_f64())
    {
        assert_eq!((latency * 10.0).round() / 10.0, latency, "{latency}");
    }
}

/// At every level the template allows, the bootstrap's JSON lines carry a `level` and an RFC
/// 3339 `timestamp`, and Lambda's filter keeps every metrics document and, at WARN and below,
/// the warning about the record that failed.
#[tokio::test]
async fn at_every_log_level_metrics_and_warnings_pass_lambdas_filter() {
    use crate::support::process::{lambda_keeps, lambda_reads_level, one_invocation};
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
        let records = vec![
            record("good", Some(&body("+12065550101", "hello"))),
            record("bad", Some("not json")),
        ];
        let run = one_invocation(
            &[("AWS_LAMBDA_LOG_LEVEL", level)],
            records,
            Duration::from_secs(30),
        )
        .await;
        let lines = run.lines;
        assert_eq!(run.calls, 1, "{level}");
        assert!(!lines.is_empty(), "{level}: no JSON lines");
        assert_eq!(lines.len(), run.raw.len(), "{level}: every line is JSON");
        for line in &lines {
            assert!(
                lambda_reads_level(line),
                "{level}: Lambda would file this line as INFO: {line}"
            );
        }
        let metrics: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
        assert!(!metrics.is_empty(), "{level}: no metrics document");
        for document in &metrics {
            assert!(
                lambda_keeps(document, level),
                "{level}: Lambda would drop {document}"
            );
        }
        let warned = lines.iter().any(|line| {
            line["level"] == "WARN"
                && line.get("_aws").is_none()
                && line.to_string().contains("bad")
                && lambda_keeps(line, level)
        });
        let expect_warning = matches!(level, "TRACE" | "DEBUG" | "INFO" | "WARN");
        assert_eq!(
            warned, expect_warning,
            "{level}: the failed record's WARN line"
        );
    }
}

/// What an engine says once (a reserve cut to half a short invocation) it says once in its
/// own life: a second engine in the same process says it again, and neither depends on
/// which test ran first.
#[tokio::test(start_paused = true)]
async fn two_engines_in_one_process_each_say_the_reserve_cut_once() {
    use voice_dispatch::core::engine::{BatchEngine, EngineSettings};
    use voice_dispatch::core::ports::SentCall;

    struct Never;
    impl voice_dispatch::core::ports::VoiceSender for Never {
        async fn send(
            &self,
            _message: &voice_dispatch::core::contract::VoiceMessage,
        ) -> Result<SentCall, voice_dispatch::core::classify::SendFailure> {
            std::future::pending().await
        }
    }
    let captured = Captured::default();
    let settings = LogSettings {
        level: Some("WARN".into()),
        json: true,
    };
    let _guard = tracing::subscriber::set_default(logging::subscriber(&settings, captured.clone()));
    let safety = EngineSettings::default().deadline_safety;
    // The reserve is cut when it would take more than half the time left.
    let short = || tokio::time::Instant::now() + safety;
    let said = |captured: &Captured| {
        captured
            .lines()
            .iter()
            .filter(|line| line.contains("DEADLINE_SAFETY_MS leaves no time to send"))
            .count()
    };
    let first = BatchEngine::new(Never, EngineSettings::default());
    assert_eq!(first.reserve(short()), safety / 2);
    assert_eq!(first.reserve(short()), safety / 2);
    assert_eq!(said(&captured), 1, "once for the first engine");
    let second = BatchEngine::new(Never, EngineSettings::default());
    assert_eq!(second.reserve(short()), safety / 2);
    assert_eq!(said(&captured), 2, "once more for the second");
}

/// A letter whose original leaves no room for the request's identity says so, at WARN, in its
/// own line: redriven, it would be a new request.
#[tokio::test(start_paused = true)]
async fn a_dead_letter_without_room_for_its_identity_says_so() {
    use std::sync::Mutex;
    use voice_dispatch::core::code::Code;
    use voice_dispatch::core::ports::{
        DeadLetter, DeadLetterQueue, PortError, RedeliveryDelay, VisibilityDelay,
    };
    use voice_dispatch::core::record::{Attribute, Record};
    use voice_dispatch::core::report::{BatchReport, Fate, Reason, RecordOutcome};
    use voice_dispatch::core::settle::{Redelivery, Settlement};

    #[derive(Default)]
    struct Accepts(Mutex<usize>);
    impl DeadLetterQueue for Accepts {
        async fn send(&self, letters: &[DeadLetter<'_>]) -> Vec<Result<(), PortError>> {
            *self.0.lock().unwrap() += letters.len();
            letters.iter().map(|_| Ok(())).collect()
        }
    }
    struct NoDelays;
    impl RedeliveryDelay for NoDelays {
        async fn delay(
            &self,
            _queue_arn: &str,
            delays: &[VisibilityDelay<'_>],
        ) -> Vec<Result<(), PortError>> {
            delays.iter().map(|_| Ok(())).collect()
        }
    }

    let captured = Captured::default();
    let settings = LogSettings {
        level: Some("WARN".into()),
        json: true,
    };
    let _guard = tracing::subscriber::set_default(logging::subscriber(&settings, captured.clone()));
    let names: Vec<String> = (0..10).map(|n| format!("attr{n}")).collect();
    let record = Record {
        message_id: "m-full",
        body: Some("not json"),
        receive_count: Some(1),
        idempotency_key: "m-full".into(),
        attributes: names
            .iter()
            .map(|name| {
                (
                    name.as_str(),
                    Attribute {
                        data_type: Some("String"),
                        string_value: Some("v"),
                        binary_value: None,
                    },
                )
            })
            .collect(),
        ..Record::default()
    };
    let mut report = BatchReport {
        outcomes: vec![RecordOutcome {
            reason: Some(Reason {
                code: Code::MalformedJson,
                message: "the body is not valid JSON".into(),
            }),
            ..RecordOutcome::new("m-full", Fate::Permanent)
        }],
        ..BatchReport::default()
    };
    let settlement = Settlement::new(Some(Accepts::default()), None::<(NoDelays, Redelivery)>);
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    settlement.settle(&mut report, &[record], until).await;
    assert!(report.outcomes[0].dead_lettered);
    let lines = captured.lines();
    let said: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("dead letter carries not all of its request's identity"))
        .collect();
    assert_eq!(said.len(), 1, "{lines:?}");
    let line: Value = serde_json::from_str(said[0]).unwrap();
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["fields"]["message_id"], "m-full");
    assert_eq!(line["fields"]["left_out"], "IdempotencyKey");
}
