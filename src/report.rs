//! What became of each record, and the answer SQS gets from it.

use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};

/// The fate of one record in this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// The service accepted the call: done, the record is deleted.
    Sent,
    /// Failed in a way that may pass: reported, so SQS redelivers it.
    Transient,
    /// Will never succeed as it is: reported for now, so redrive ends it in the DLQ.
    Permanent,
    /// Not attempted, or abandoned in flight, this time (deadline, or an earlier record of
    /// its FIFO group failed): reported, so SQS redelivers it.
    Deferred,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Fate::Sent => "sent",
            Fate::Transient => "transient",
            Fate::Permanent => "permanent",
            Fate::Deferred => "deferred",
        }
    }
}

/// Why a record was not sent: a stable code and a message safe to log (no text, no
/// unmasked phone numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct RecordOutcome {
    pub message_id: String,
    pub fate: Fate,
    pub reason: Option<Reason>,
    /// The service's id of the placed call.
    pub voice_message_id: Option<String>,
    /// The destination, masked; `None` when the body did not get that far.
    pub destination: Option<String>,
    pub receive_count: Option<u32>,
    pub latency: Duration,
}

/// Every record's outcome, in the order the event listed the records.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub outcomes: Vec<RecordOutcome>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FateCounts {
    pub sent: usize,
    pub transient: usize,
    pub permanent: usize,
    pub deferred: usize,
}

impl BatchReport {
    pub fn counts(&self) -> FateCounts {
        let mut counts = FateCounts::default();
        for outcome in &self.outcomes {
            match outcome.fate {
                Fate::Sent => counts.sent += 1,
                Fate::Transient => counts.transient += 1,
                Fate::Permanent => counts.permanent += 1,
                Fate::Deferred => counts.deferred += 1,
            }
        }
        counts
    }

    /// The records SQS must deliver again, each message id once, in event order.
    pub fn failed_message_ids(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.outcomes
            .iter()
            .filter(|outcome| outcome.fate != Fate::Sent)
            .map(|outcome| outcome.message_id.as_str())
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// The partial batch response: every record not sent is listed, so SQS keeps it.
    pub fn to_response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = self
            .failed_message_ids()
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.to_owned();
                failure
            })
            .collect();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, fate: Fate) -> RecordOutcome {
        RecordOutcome {
            message_id: id.to_owned(),
            fate,
            reason: None,
            voice_message_id: None,
            destination: None,
            receive_count: None,
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn every_fate_but_sent_is_reported_once_in_event_order() {
        let report = BatchReport {
            outcomes: vec![
                outcome("a", Fate::Sent),
                outcome("b", Fate::Transient),
                outcome("c", Fate::Permanent),
                outcome("d", Fate::Deferred),
                outcome("b", Fate::Transient),
            ],
        };
        let ids: Vec<String> = report
            .to_response()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(ids, ["b", "c", "d"]);
        assert_eq!(
            report.counts(),
            FateCounts {
                sent: 1,
                transient: 2,
                permanent: 1,
                deferred: 1
            }
        );
    }

    #[test]
    fn an_empty_batch_answers_an_empty_list() {
        let json = serde_json::to_value(BatchReport::default().to_response()).unwrap();
        assert_eq!(json, serde_json::json!({"batchItemFailures": []}));
    }
}
