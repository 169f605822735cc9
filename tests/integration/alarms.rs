//! The alarms an operator relies on, read from `template.yaml`: each has a runbook entry and
//! each runbook entry an alarm or rule, and every metric and dimension set an alarm on the
//! function's namespace names is one the function emits.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use voice_dispatch::core::classify::Signal;
use voice_dispatch::core::code::Code;
use voice_dispatch::core::report::{BatchReport, Fate, Reason, RecordOutcome, Regions, FATES};
use voice_dispatch::core::route::RegionTag;
use voice_dispatch::observe::metrics::MetricsContext;

/// One alarm or rule of the template, as far as these checks read it: its kind and the
/// metrics it watches (one, or several in a metric-math alarm).
#[derive(Debug, Default)]
struct Watch {
    kind: String,
    metrics: Vec<Watched>,
}

/// One metric an alarm watches: its namespace, name and dimension names.
#[derive(Debug, Default, Clone)]
struct Watched {
    namespace: String,
    metric: String,
    dimensions: BTreeSet<String>,
}

/// The template's resources of a kind these checks read, by logical id: each resource is
/// the lines indented under its name in `Resources:`.
fn watches() -> HashMap<String, Watch> {
    let template = include_str!("../../template.yaml");
    let resources = template
        .split("\nResources:\n")
        .nth(1)
        .and_then(|rest| rest.split("\nOutputs:\n").next())
        .expect("a Resources section");
    let mut watches = HashMap::new();
    let mut current: Option<(String, Watch)> = None;
    for line in resources.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if indent == 2 && text.ends_with(':') && !text.starts_with('#') {
            if let Some((name, watch)) = current.take() {
                watches.insert(name, watch);
            }
            current = Some((text.trim_end_matches(':').to_owned(), Watch::default()));
            continue;
        }
        let Some((_, watch)) = current.as_mut() else {
            continue;
        };
        let value = |key: &str| text.strip_prefix(key).map(|v| v.trim().to_owned());
        // Each metric is written namespace first, then its name, then its dimensions.
        if let Some(kind) = value("Type:").filter(|_| indent == 4) {
            watch.kind = kind;
        } else if let Some(namespace) = value("Namespace:") {
            watch.metrics.push(Watched {
                namespace,
                ..Watched::default()
            });
        } else if let (Some(metric), Some(last)) = (value("MetricName:"), watch.metrics.last_mut())
        {
            last.metric = metric;
        } else if let (Some(dimension), Some(last)) = (value("- Name:"), watch.metrics.last_mut()) {
            last.dimensions.insert(dimension);
        }
    }
    if let Some((name, watch)) = current {
        watches.insert(name, watch);
    }
    watches.retain(|_, watch| {
        ["AWS::CloudWatch::Alarm", "AWS::Events::Rule"].contains(&watch.kind.as_str())
    });
    watches
}

/// The names the runbook gives an entry each: `- **`Name`**`.
fn runbook_entries() -> BTreeSet<String> {
    include_str!("../../docs/runbook.md")
        .lines()
        .filter_map(|line| line.strip_prefix("- **`"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_alarm_and_rule_has_a_runbook_entry_and_every_entry_one_of_them() {
    let watched: BTreeSet<String> = watches().into_keys().collect();
    assert!(watched.len() >= 12, "{watched:?}");
    assert_eq!(runbook_entries(), watched);
}

/// A batch that gives every metric a value: every fate, a code of each kind, signals, a
/// record left waiting, both regions.
fn everything() -> BatchReport {
    let primary = RegionTag {
        name: "us-east-1".into(),
        failover: false,
    };
    let failover = RegionTag {
        name: "us-west-2".into(),
        failover: true,
    };
    let outcomes = FATES
        .iter()
        .map(|info| RecordOutcome {
            reason: (info.fate != Fate::Sent).then(|| Reason {
                code: Code::LedgerUnavailable,
                message: "m".into(),
            }),
            signal: Some(Signal::ServiceFailing),
            first_sent_at: Some(SystemTime::now() - Duration::from_secs(60)),
            region: Some(if info.fate == Fate::Sent {
                failover.clone()
            } else {
                primary.clone()
            }),
            attempts: 1,
            ..RecordOutcome::new("m", info.fate)
        })
        .collect();
    BatchReport {
        outcomes,
        regions: Some(Regions { primary, failover }),
        ..BatchReport::default()
    }
}

/// Every metric the function emits, with the dimension set it is emitted under.
fn emitted() -> BTreeSet<(String, BTreeSet<String>)> {
    let context = MetricsContext {
        namespace: "VoiceDispatch".into(),
        function_name: "f".into(),
        level: "INFO",
    };
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut emitted = BTreeSet::new();
    let mut documents = context.documents(&everything(), now_ms);
    // And the status path's (delivery outcomes on).
    documents.push(context.status_document(&std::collections::BTreeMap::new(), now_ms));
    for document in documents {
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        let dimensions: BTreeSet<String> = directive["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap().to_owned();
            emitted.insert((name, dimensions.clone()));
        }
    }
    emitted
}

#[test]
fn every_alarm_on_the_functions_metrics_names_a_metric_and_dimensions_it_emits() {
    let emitted = emitted();
    let mut checked = 0;
    for (name, watch) in watches() {
        if watch.kind == "AWS::Events::Rule" {
            assert!(watch.metrics.is_empty(), "{name}");
            continue;
        }
        assert!(!watch.metrics.is_empty(), "{name} watches no metric");
        for watched in &watch.metrics {
            let Watched {
                namespace,
                metric,
                dimensions,
            } = watched;
            match namespace.as_str() {
                "VoiceDispatch" => {
                    assert!(
                        emitted.contains(&(metric.clone(), dimensions.clone())),
                        "{name}: {metric} by {dimensions:?} is not emitted; emitted: {emitted:?}"
                    );
                    checked += 1;
                }
                // AWS's own metrics, by the dimension AWS gives them.
                "AWS/Lambda" => assert!(
                    ["Errors", "Throttles"].contains(&metric.as_str())
                        && *dimensions == BTreeSet::from(["FunctionName".to_owned()]),
                    "{name}: {watched:?}"
                ),
                "AWS/SQS" => assert!(
                    *dimensions == BTreeSet::from(["QueueName".to_owned()]),
                    "{name}: {watched:?}"
                ),
                other => panic!("{name}: an alarm on {other}"),
            }
        }
    }
    assert!(
        checked >= 8,
        "the function's own metrics are watched: {checked}"
    );
}

#[test]
fn the_alarms_that_see_an_outage_watch_the_functions_own_counts() {
    let watches = watches();
    let metrics = |name: &str| -> Vec<String> {
        watches[name]
            .metrics
            .iter()
            .map(|watched| watched.metric.clone())
            .collect()
    };
    assert_eq!(metrics("CallsWaitingTooLong"), ["OldestUnsentAge"]);
    assert_eq!(
        metrics("VoiceServiceFailing"),
        ["ServiceFailing", "ServiceOutage"],
        "every service-side failure, or the breaker open for an outage"
    );
    assert_eq!(metrics("VoiceServiceThrottling"), ["Throttled"]);
    assert_eq!(metrics("FunctionErrors"), ["Errors"]);
    assert_eq!(metrics("FunctionThrottled"), ["Throttles"]);
}

/// The dashboard's metrics, read from its body in `template.yaml`: namespace, name, and the
/// dimension names, as each widget line lists them (`["NS", "Name", "Dim", "value", ...]`).
fn dashboard_metrics() -> Vec<(String, String, BTreeSet<String>)> {
    let template = include_str!("../../template.yaml");
    let body = template
        .split("\n  Dashboard:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("a Dashboard resource");
    body.lines()
        .filter_map(|line| {
            let line = line.trim().trim_end_matches(',').trim_end_matches("]]}}");
            let inner = line.strip_prefix('[')?.trim_end_matches(']');
            let parts: Vec<String> = inner
                .split(", ")
                .take_while(|part| part.starts_with('"'))
                .map(|part| part.trim_matches('"').to_owned())
                .collect();
            let (namespace, metric) = (parts.first()?.clone(), parts.get(1)?.clone());
            let dimensions = parts[2..].iter().step_by(2).cloned().collect();
            Some((namespace, metric, dimensions))
        })
        .collect()
}

#[test]
fn the_dashboard_shows_what_operators_need_in_metrics_the_functions_emit() {
    let emitted = emitted();
    let shown = dashboard_metrics();
    assert!(shown.len() >= 20, "{shown:?}");
    for (namespace, metric, dimensions) in &shown {
        match namespace.as_str() {
            "VoiceDispatch" => assert!(
                emitted.contains(&(metric.clone(), dimensions.clone())),
                "the dashboard shows {metric} by {dimensions:?}, which is not emitted"
            ),
            "AWS/Lambda" | "AWS/SQS" => {}
            other => panic!("the dashboard shows {other}"),
        }
    }
    let names: BTreeSet<&str> = shown.iter().map(|(_, metric, _)| metric.as_str()).collect();
    // Calls, outcomes by status, unreached, the breaker, throttles, the DLQs, failover.
    for needed in voice_dispatch::core::delivery::STATUS_METRICS
        .iter()
        .chain(&[
            "Sent",
            "OutcomeUnreached",
            "CircuitOpen",
            "Throttled",
            "ApproximateNumberOfMessagesVisible",
            "FailedOver",
        ])
    {
        assert!(names.contains(needed), "the dashboard lacks {needed}");
    }
}
