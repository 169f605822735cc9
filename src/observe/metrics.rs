//! CloudWatch Embedded Metric Format: JSON lines on stdout that CloudWatch turns into
//! metrics, with no API call and no extra permission.
//!
//! Per invocation: one document with the counts of each fate, the requests made to the voice
//! service, the circuit breaker's openings and state, and up to 100 send latencies,
//! more latency-only documents for larger batches (EMF takes at most 100 values per metric),
//! and one document per fate and error code with the number of records left unsent with it
//! (`Unsent`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::core::classify::Signal;
use crate::core::report::{BatchReport, Fate, RecordOutcome, FATES};

/// What the status path counts besides each call's status and each outcome published.
const STATUS_PATH_OWN: [&str; 4] = [
    "LateFinal",
    "UnrecordedCallEvent",
    "OutcomeNotPublished",
    "Redialled",
];

/// The call path's count of messages that asked for a redial the function cannot make.
pub const REDIAL_UNAVAILABLE: &str = "RedialUnavailable";

/// Every metric the status path writes: each call status's (`core::delivery`), each
/// outcome's, and its own.
pub fn status_path_metrics() -> Vec<&'static str> {
    use crate::core::delivery::{Outcome, STATUS_METRICS};
    let outcomes = [
        Outcome::Reached,
        Outcome::Unreached,
        Outcome::Expired,
        Outcome::NotPlaced,
        Outcome::Unknown,
    ]
    .map(Outcome::metric);
    STATUS_METRICS
        .into_iter()
        .chain(outcomes)
        .chain(STATUS_PATH_OWN)
        .collect()
}

/// EMF's limit of values per metric in one document.
const MAX_VALUES: usize = 100;

/// The levels Lambda's log filter knows (`ApplicationLogLevel`), lowest first.
pub const LAMBDA_LOG_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

#[derive(Debug, Clone)]
pub struct MetricsContext {
    pub namespace: String,
    pub function_name: String,
    /// The `level` every document carries: the function's own log level. Lambda's filter
    /// reads `level` (a line without one counts as INFO), so a document at the threshold
    /// passes at every level, and metrics never vanish at WARN or ERROR.
    pub level: &'static str,
}

impl MetricsContext {
    /// The level for documents under `AWS_LAMBDA_LOG_LEVEL` (unset or unknown: INFO).
    pub fn level_for(log_level: Option<&str>) -> &'static str {
        log_level
            .map(str::trim)
            .and_then(|asked| {
                LAMBDA_LOG_LEVELS
                    .into_iter()
                    .find(|level| level.eq_ignore_ascii_case(asked))
            })
            .unwrap_or("INFO")
    }
}

/// The age, in whole seconds from its request's first send, of the oldest record the batch
/// leaves to SQS (reported, so delivered again): what `CallsWaitingTooLong` watches. SQS's own
/// `ApproximateAgeOfOldestMessage` leaves out a message received three times or more, which
/// in a sustained outage is every waiting call.
pub const OLDEST_UNSENT_AGE: &str = "OldestUnsentAge";

fn oldest_unsent_age(report: &BatchReport, timestamp_ms: u64) -> Option<u64> {
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(timestamp_ms);
    report
        .outcomes
        .iter()
        .filter(|outcome| outcome.is_reported())
        .filter_map(|outcome| now.duration_since(outcome.first_sent_at?).ok())
        .map(|age| age.as_secs())
        .max()
}

impl MetricsContext {
    /// The EMF documents for one invocation, `timestamp_ms` since the epoch: the summary,
    /// the latencies that did not fit in it, and one per fate and error code.
    pub fn documents(&self, report: &BatchReport, timestamp_ms: u64) -> Vec<Value> {
        let latencies: Vec<f64> = report
            .outcomes
            .iter()
            .filter(|outcome| outcome.attempts > 0)
            .map(|outcome| (outcome.latency.as_secs_f64() * 10_000.0).round() / 10.0)
            .collect();
        let mut latency_chunks = latencies.chunks(MAX_VALUES);
        let mut documents = vec![self.summary(
            report,
            latency_chunks.next().unwrap_or_default(),
            timestamp_ms,
        )];
        for chunk in latency_chunks {
            let mut more = self.document(timestamp_ms, &[], &[("SendLatency", "Milliseconds")]);
            more["SendLatency"] = json!(chunk);
            documents.push(more);
        }
        documents.extend(self.unsent_by_code(report, timestamp_ms));
        documents.extend(self.by_region(report, timestamp_ms));
        // Only when a message asked: otherwise the documents are what they always were.
        let unavailable = report
            .outcomes
            .iter()
            .filter(|outcome| outcome.redial_unavailable)
            .count();
        if unavailable > 0 {
            let mut document = self.document(timestamp_ms, &[], &[(REDIAL_UNAVAILABLE, "Count")]);
            document[REDIAL_UNAVAILABLE] = json!(unavailable);
            documents.push(document);
        }
        documents
    }

    /// With failover on, one document per region (dimension `Region`): the records sent
    /// there and those tried there and not sent; the failover region's also counts the
    /// records that moved there (`FailedOver`). With failover off, none: the documents are
    /// what they were without it.
    fn by_region(&self, report: &BatchReport, timestamp_ms: u64) -> Vec<Value> {
        let Some(regions) = report.by_region() else {
            return Vec::new();
        };
        regions
            .iter()
            .map(|counts| {
                let mut metrics = vec![("Sent", "Count"), ("Unsent", "Count")];
                if counts.region.failover {
                    metrics.push(("FailedOver", "Count"));
                }
                let mut document = self.document(timestamp_ms, &["Region"], &metrics);
                document["Region"] = json!(&*counts.region.name);
                document["Sent"] = json!(counts.sent);
                document["Unsent"] = json!(counts.unsent);
                if counts.region.failover {
                    document["FailedOver"] = json!(counts.tried());
                }
                document
            })
            .collect()
    }

    /// The counts of each fate (their metric names from the fates table), dead letters,
    /// requests, the records whose last attempt found the service failing or throttling,
    /// the breaker, the first latencies, and the age of the oldest record left unsent.
    fn summary(&self, report: &BatchReport, latencies: &[f64], timestamp_ms: u64) -> Value {
        let mut metrics = vec![("Records", "Count")];
        metrics.extend(FATES.iter().map(|info| (info.metric, "Count")));
        metrics.extend([
            ("DeadLettered", "Count"),
            ("Attempts", "Count"),
            ("ServiceFailing", "Count"),
            ("Throttled", "Count"),
            ("CircuitOpened", "Count"),
            ("CircuitOpen", "None"),
            ("ServiceOutage", "None"),
            ("SendLatency", "Milliseconds"),
        ]);
        let oldest = oldest_unsent_age(report, timestamp_ms);
        if oldest.is_some() {
            metrics.push((OLDEST_UNSENT_AGE, "Seconds"));
        }
        let mut summary = self.document(timestamp_ms, &[], &metrics);
        if let Some(age) = oldest {
            summary[OLDEST_UNSENT_AGE] = json!(age);
        }
        let signalled = |signal: Signal| {
            let said = |o: &&RecordOutcome| o.signal == Some(signal);
            report.outcomes.iter().filter(said).count()
        };
        summary["ServiceFailing"] = json!(signalled(Signal::ServiceFailing));
        summary["Throttled"] = json!(signalled(Signal::Throttled));
        summary["Records"] = json!(report.outcomes.len());
        let counts = report.counts();
        for info in &FATES {
            summary[info.metric] = json!(counts.of(info.fate));
        }
        summary["DeadLettered"] = json!(counts.dead_lettered);
        let attempts: u64 = report.outcomes.iter().map(|o| u64::from(o.attempts)).sum();
        summary["Attempts"] = json!(attempts);
        summary["CircuitOpened"] = json!(report.circuit.opened);
        summary["CircuitOpen"] = json!(u8::from(report.circuit.open_at_end));
        summary["ServiceOutage"] = json!(u8::from(report.circuit.outage_at_end));
        summary["SendLatency"] = json!(latencies);
        summary
    }

    /// One document per fate and error code: how many records went unsent with it.
    fn unsent_by_code(&self, report: &BatchReport, timestamp_ms: u64) -> Vec<Value> {
        let mut by_code: BTreeMap<(&str, Cow<str>), usize> = BTreeMap::new();
        for outcome in &report.outcomes {
            if matches!(outcome.fate, Fate::Sent | Fate::Duplicate) {
                continue;
            }
            if let Some(reason) = &outcome.reason {
                *by_code
                    .entry((outcome.fate.as_str(), reason.code.word()))
                    .or_default() += 1;
            }
        }
        by_code
            .into_iter()
            .map(|((fate, code), unsent)| {
                let dimensions = &["Fate", "ErrorCode"];
                let mut document = self.document(timestamp_ms, dimensions, &[("Unsent", "Count")]);
                document["Fate"] = json!(fate);
                document["ErrorCode"] = json!(code);
                document["Unsent"] = json!(unsent);
                document
            })
            .collect()
    }

    fn document(&self, timestamp_ms: u64, dimensions: &[&str], metrics: &[(&str, &str)]) -> Value {
        let mut dimension_set = vec!["FunctionName"];
        dimension_set.extend_from_slice(dimensions);
        let timestamp =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000)
                .ok()
                .and_then(|at| at.format(&Rfc3339).ok());
        json!({
            "level": self.level,
            "timestamp": timestamp,
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_set],
                    "Metrics": metrics
                        .iter()
                        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
                        .collect::<Vec<_>>(),
                }],
            },
            "FunctionName": self.function_name,
        })
    }

    /// Writes the documents as lines on stdout, where Lambda's log agent picks them up.
    /// The status path's document: its counts (events by status, outcomes published, late
    /// finals, dropped events), every one named even at zero so an alarm sees a quiet minute.
    pub fn status_document(
        &self,
        counts: &std::collections::BTreeMap<&'static str, u32>,
        timestamp_ms: u64,
    ) -> Value {
        let names = status_path_metrics();
        let metrics: Vec<(&str, &str)> = names.iter().map(|name| (*name, "Count")).collect();
        let mut document = self.document(timestamp_ms, &[], &metrics);
        for name in names {
            document[name] = json!(counts.get(name).copied().unwrap_or(0));
        }
        document
    }

    pub fn emit_status(&self, counts: &std::collections::BTreeMap<&'static str, u32>) {
        let timestamp_ms = crate::core::clock::epoch_ms(std::time::SystemTime::now());
        write_lines([self.status_document(counts, timestamp_ms)]);
    }

    pub fn emit(&self, report: &BatchReport) {
        let timestamp_ms = crate::core::clock::epoch_ms(std::time::SystemTime::now());
        write_lines(self.documents(report, timestamp_ms));
    }
}

/// The documents as lines on stdout, after the log lines gathered before them and in the
/// same write (`observe::stdout`), so that a batch's metrics follow its lines.
fn write_lines(documents: impl IntoIterator<Item = Value>) {
    let mut lines = String::new();
    for document in documents {
        lines.push_str(&document.to_string());
        lines.push('\n');
    }
    // A closed stdout only costs the metrics, never the batch.
    let _ = super::stdout::STDOUT.append(lines.as_bytes());
    super::stdout::flush();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::code::Code;
    use crate::core::report::{Reason, RecordOutcome};

    fn outcome(fate: Fate, code: Option<&str>, sent_ms: Option<u64>) -> RecordOutcome {
        RecordOutcome {
            reason: code.map(|code| Reason {
                code: Code::from_word(code),
                message: "m".into(),
            }),
            destination: sent_ms.map(|_| "+1206*****42".into()),
            receive_count: Some(1),
            latency: Duration::from_millis(sent_ms.unwrap_or(0)),
            attempts: u32::from(sent_ms.is_some()),
            ..RecordOutcome::new("m", fate)
        }
    }

    fn context() -> MetricsContext {
        MetricsContext {
            namespace: "VoiceDispatch".into(),
            function_name: "calls".into(),
            level: "INFO",
        }
    }

    #[test]
    fn every_document_carries_the_functions_level_and_an_rfc3339_timestamp() {
        for (asked, level) in [
            (Some("WARN"), "WARN"),
            (Some(" error "), "ERROR"),
            (Some("fatal"), "FATAL"),
            (Some("TRACE"), "TRACE"),
            (Some("verbose"), "INFO"),
            (None, "INFO"),
        ] {
            let context = MetricsContext {
                level: MetricsContext::level_for(asked),
                ..context()
            };
            let report = BatchReport {
                outcomes: vec![outcome(Fate::Transient, Some("ThrottlingException"), None)],
                ..BatchReport::default()
            };
            for document in context.documents(&report, 1_764_000_000_123) {
                assert_eq!(document["level"], level, "{asked:?}");
                assert_eq!(document["timestamp"], "2025-11-24T16:00:00.123Z");
            }
        }
    }

    /// What CloudWatch requires of a document: every metric it declares is a member that is
    /// a number or an array of at most 100 numbers, and every dimension is a string member.
    fn assert_valid_emf(document: &Value) {
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert!(document["_aws"]["Timestamp"].is_u64());
        assert!(directive["Namespace"].is_string());
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            let name = dimension.as_str().unwrap();
            assert!(document[name].is_string(), "dimension {name}");
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            let value = &document[name];
            let ok = value.is_number()
                || value.as_array().is_some_and(|values| {
                    values.len() <= 100 && values.iter().all(Value::is_number)
                });
            assert!(ok, "metric {name} = {value}");
        }
    }

    #[test]
    fn the_summary_counts_every_fate_and_the_send_latencies() {
        let mut dead = outcome(Fate::Permanent, Some("BadRequestException"), Some(3));
        dead.dead_lettered = true;
        let report = BatchReport {
            outcomes: vec![
                outcome(Fate::Sent, None, Some(50)),
                outcome(
                    Fate::Transient,
                    Some("InternalServiceErrorException"),
                    Some(70),
                ),
                dead,
                outcome(Fate::Permanent, Some("MalformedJson"), None),
                outcome(Fate::Deferred, Some("DeadlineReached"), None),
                outcome(Fate::Expired, Some("Expired"), None),
            ],
            circuit: crate::core::report::CircuitReport {
                opened: 1,
                open_at_end: true,
                outage_at_end: true,
            },
            regions: None,
        };
        let documents = context().documents(&report, 1_764_000_000_000);
        documents.iter().for_each(assert_valid_emf);
        let summary = &documents[0];
        assert_eq!(summary["Records"], 6);
        assert_eq!(summary["Sent"], 1);
        assert_eq!(summary["Transient"], 1);
        assert_eq!(summary["Permanent"], 2);
        assert_eq!(summary["DeadLettered"], 1);
        assert_eq!(summary["Deferred"], 1);
        assert_eq!(summary["Expired"], 1);
        assert_eq!(summary["Attempts"], 3, "one request per started send");
        assert_eq!(summary["CircuitOpened"], 1);
        assert_eq!(summary["CircuitOpen"], 1);
        assert_eq!(summary["ServiceOutage"], 1);
        assert_eq!(summary["SendLatency"], json!([50.0, 70.0, 3.0]));
        assert_eq!(summary["FunctionName"], "calls");
        assert_eq!(summary["_aws"]["Timestamp"], 1_764_000_000_000u64);

        let by_code: Vec<(String, String, u64)> = documents[1..]
            .iter()
            .map(|d| {
                (
                    d["Fate"].as_str().unwrap().to_owned(),
                    d["ErrorCode"].as_str().unwrap().to_owned(),
                    d["Unsent"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_code,
            [
                ("deferred".into(), "DeadlineReached".into(), 1),
                ("expired".into(), "Expired".into(), 1),
                ("permanent".into(), "BadRequestException".into(), 1),
                ("permanent".into(), "MalformedJson".into(), 1),
                (
                    "transient".into(),
                    "InternalServiceErrorException".into(),
                    1
                ),
            ]
        );
    }

    #[test]
    fn with_failover_on_each_region_has_a_document_and_the_rest_stay_as_they_were() {
        use crate::core::report::Regions;
        use crate::core::route::RegionTag;
        let tag = |name: &str, failover| RegionTag {
            name: name.into(),
            failover,
        };
        let (east, west) = (tag("us-east-1", false), tag("us-west-2", true));
        let at = |fate, code, region: &RegionTag| RecordOutcome {
            region: Some(region.clone()),
            ..outcome(fate, code, Some(40))
        };
        let outcomes = vec![
            at(
                Fate::Transient,
                Some("InternalServiceErrorException"),
                &east,
            ),
            at(Fate::Sent, None, &west),
            at(Fate::Sent, None, &west),
            outcome(Fate::Deferred, Some("CircuitOpen"), None),
        ];
        let off = BatchReport {
            outcomes: outcomes.clone(),
            ..Default::default()
        };
        let on = BatchReport {
            outcomes,
            regions: Some(Regions {
                primary: east,
                failover: west,
            }),
            ..Default::default()
        };
        let (without, with) = (context().documents(&off, 0), context().documents(&on, 0));
        assert_eq!(
            with[..without.len()],
            without[..],
            "the same documents first"
        );
        let regional = &with[without.len()..];
        regional.iter().for_each(assert_valid_emf);
        assert_eq!(regional.len(), 2);
        assert_eq!(
            regional[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName", "Region"]])
        );
        assert_eq!(
            (
                &regional[0]["Region"],
                &regional[0]["Sent"],
                &regional[0]["Unsent"]
            ),
            (&json!("us-east-1"), &json!(0), &json!(1))
        );
        assert!(regional[0].get("FailedOver").is_none());
        assert_eq!(
            (
                &regional[1]["Region"],
                &regional[1]["Sent"],
                &regional[1]["FailedOver"]
            ),
            (&json!("us-west-2"), &json!(2), &json!(2))
        );
    }

    #[test]
    fn the_summary_counts_the_service_failing_and_throttled_and_the_oldest_unsent_age() {
        let at = |ms: u64| Some(std::time::UNIX_EPOCH + Duration::from_millis(ms));
        let now_ms = 1_800_000_000_000;
        let failing = RecordOutcome {
            signal: Some(Signal::ServiceFailing),
            first_sent_at: at(now_ms - 125_400),
            ..outcome(Fate::Transient, Some("Http502"), None)
        };
        let throttled = RecordOutcome {
            signal: Some(Signal::Throttled),
            first_sent_at: at(now_ms - 10_000),
            ..outcome(Fate::Transient, Some("ThrottlingException"), None)
        };
        // Sent long ago, but sent: not waiting.
        let sent = RecordOutcome {
            first_sent_at: at(now_ms - 900_000),
            ..outcome(Fate::Sent, None, Some(3))
        };
        let report = BatchReport {
            outcomes: vec![failing, throttled, sent.clone()],
            ..BatchReport::default()
        };
        let summary = &context().documents(&report, now_ms)[0];
        assert_valid_emf(summary);
        assert_eq!(summary["ServiceFailing"], 1);
        assert_eq!(summary["Throttled"], 1);
        assert_eq!(
            summary[OLDEST_UNSENT_AGE], 125,
            "whole seconds from the first send"
        );
        let all_sent = BatchReport {
            outcomes: vec![sent],
            ..BatchReport::default()
        };
        let summary = &context().documents(&all_sent, now_ms)[0];
        assert!(
            summary.get(OLDEST_UNSENT_AGE).is_none(),
            "nothing waits: no value"
        );
        assert_valid_emf(summary);
    }

    #[test]
    fn more_than_100_latencies_spill_into_more_documents() {
        let report = BatchReport {
            outcomes: (0..250)
                .map(|_| outcome(Fate::Sent, None, Some(1)))
                .collect(),
            ..Default::default()
        };
        let documents = context().documents(&report, 0);
        documents.iter().for_each(assert_valid_emf);
        let lengths: Vec<usize> = documents
            .iter()
            .map(|d| d["SendLatency"].as_array().unwrap().len())
            .collect();
        assert_eq!(lengths, [100, 100, 50]);
    }

    #[test]
    fn an_empty_batch_still_reports_zero_records() {
        let documents = context().documents(&BatchReport::default(), 0);
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0]["Records"], 0);
        assert_valid_emf(&documents[0]);
    }

    #[test]
    fn the_status_path_names_every_count_it_can_make_even_at_zero() {
        // Seven call statuses, five outcomes and its own four, each named once.
        let names = status_path_metrics();
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!((names.len(), unique.len()), (16, 16), "{names:?}");
        let context = MetricsContext {
            namespace: "VoiceDispatch".into(),
            function_name: "f".into(),
            level: "INFO",
        };
        let mut counts = BTreeMap::new();
        counts.insert("Busy", 2);
        let document = context.status_document(&counts, 0);
        assert_eq!(document["Busy"], 2);
        assert_eq!(document["LateFinal"], 0);
        let named = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(named, names.len());
    }

    /// A count the status path makes under a name of its own is one the document names: read
    /// from its source (`metrics.push("...")`, `counts.add("...")`), so a new one cannot be
    /// dropped silently.
    #[test]
    fn every_count_the_status_path_makes_is_written() {
        let source = include_str!("../status.rs");
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        let mut named = 0;
        for marker in ["push(\"", "add(\""] {
            for (at, _) in source.match_indices(marker) {
                let rest = &source[at + marker.len()..];
                let name = &rest[..rest.find('"').unwrap_or(0)];
                assert!(
                    status_path_metrics().contains(&name),
                    "{name} is counted but never written"
                );
                named += 1;
            }
        }
        assert!(named >= 3, "{named}");
    }
}
