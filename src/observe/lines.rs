//! The lines operators read: one per record when its fate is known, and one per batch.
//! Destinations are masked and reasons scrubbed before they get here; message text never
//! gets here at all.

use std::time::Duration;

use crate::core::code::Code;
use crate::core::report::{BatchReport, Fate, RecordOutcome};

/// One structured line per record, written when its fate is known (what settling then does,
/// dead-lettering or delaying it, is in the batch line and, when it fails, in a line of its
/// own).
pub fn record_done(outcome: &RecordOutcome) {
    let error_code = outcome.reason.as_ref().map(|r| r.code.word());
    let error_code = error_code.as_deref();
    let reason = outcome.reason.as_ref().map(|r| r.message.as_str());
    let redial_kept = outcome
        .reason
        .as_ref()
        .is_some_and(|r| r.code == Code::RedialScheduled);
    let latency_ms = (outcome.latency.as_secs_f64() * 10_000.0).round() / 10.0;
    // Only with failover on: without it the line is what it always was.
    let region = outcome.region.as_ref().map(|tag| &*tag.name);
    match outcome.fate {
        Fate::Sent => tracing::info!(
            message_id = outcome.message_id.as_str(),
            fate = outcome.fate.as_str(),
            receive_count = outcome.receive_count,
            attempts = outcome.attempts,
            latency_ms,
            destination = outcome.destination.as_deref(),
            voice_message_id = outcome.voice_message_id.as_deref(),
            region,
            "record sent"
        ),
        Fate::Duplicate => tracing::info!(
            message_id = outcome.message_id.as_str(),
            fate = outcome.fate.as_str(),
            error_code,
            receive_count = outcome.receive_count,
            destination = outcome.destination.as_deref(),
            voice_message_id = outcome.voice_message_id.as_deref(),
            "record already sent by an earlier delivery: not called again"
        ),
        // A redial kept until its time: as planned, not a failure.
        Fate::Deferred if redial_kept => tracing::info!(
            message_id = outcome.message_id.as_str(),
            fate = outcome.fate.as_str(),
            error_code,
            reason,
            receive_count = outcome.receive_count,
            "redial kept until its time"
        ),
        _ => tracing::warn!(
            message_id = outcome.message_id.as_str(),
            fate = outcome.fate.as_str(),
            error_code,
            reason,
            receive_count = outcome.receive_count,
            attempts = outcome.attempts,
            latency_ms,
            destination = outcome.destination.as_deref(),
            region,
            "record not sent"
        ),
    }
}

/// The batch's line: how many records met each fate, what settling did, and how long it took
/// (whole milliseconds).
pub fn batch_done(report: &BatchReport, elapsed: Duration) {
    let counts = report.counts();
    let delayed = report
        .outcomes
        .iter()
        .filter_map(|outcome| outcome.retry_delay_seconds)
        .collect::<Vec<u32>>();
    // With failover on: the records tried in the failover region.
    let failed_over = report.by_region().map(|[_, failover]| failover.tried());
    tracing::info!(
        records = report.outcomes.len(),
        sent = counts.sent,
        transient = counts.transient,
        permanent = counts.permanent,
        deferred = counts.deferred,
        expired = counts.expired,
        abandoned = counts.abandoned,
        duplicate = counts.duplicate,
        circuit_open = report.circuit.open_at_end,
        failed_over,
        dead_lettered = counts.dead_lettered,
        redelivery_delayed = delayed.len(),
        longest_delay_seconds = delayed.iter().max().copied(),
        reported = report.reported_message_ids().len(),
        elapsed_ms = elapsed.as_millis() as u64,
        "batch done"
    );
}

/// The status path's batch line: what became of its messages, and what was counted.
pub fn status_batch_done(
    report: &BatchReport,
    counts: &crate::status::StatusCounts,
    elapsed: Duration,
) {
    let fates = report.counts();
    let counted = counts
        .counts
        .iter()
        .map(|(metric, count)| format!("{metric}={count}"))
        .collect::<Vec<_>>()
        .join(" ");
    tracing::info!(
        messages = report.outcomes.len(),
        done = fates.sent,
        redelivered = report.reported_message_ids().len(),
        dead_lettered = fates.dead_lettered,
        counted = counted.as_str(),
        elapsed_ms = elapsed.as_millis() as u64,
        "status batch done"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::Reason;
    use crate::observe::logging::{self, Captured, LogSettings};

    /// The level and message of the line `record_done` writes for `outcome`.
    fn line_of(outcome: &RecordOutcome) -> (String, String) {
        let captured = Captured::default();
        let settings = LogSettings {
            level: Some("INFO".to_owned()),
            json: true,
        };
        let writer = captured.clone();
        let subscriber = logging::subscriber(&settings, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || record_done(outcome));
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        (
            line["level"].as_str().unwrap_or_default().to_owned(),
            line["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    fn deferred(code: Code) -> RecordOutcome {
        RecordOutcome {
            reason: Some(Reason {
                code,
                message: "why".to_owned(),
            }),
            ..RecordOutcome::new("m-1", Fate::Deferred)
        }
    }

    #[test]
    fn a_redial_kept_until_its_time_is_info_and_any_other_deferral_a_warning() {
        assert_eq!(
            line_of(&deferred(Code::RedialScheduled)),
            ("INFO".to_owned(), "redial kept until its time".to_owned())
        );
        let (level, _) = line_of(&deferred(Code::EarlierRecordInGroupFailed));
        assert_eq!(level, "WARN");
        let (level, message) = line_of(&RecordOutcome::new("m-2", Fate::Sent));
        assert_eq!((level.as_str(), message.as_str()), ("INFO", "record sent"));
    }
}
