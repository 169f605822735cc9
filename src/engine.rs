//! The batch engine: one outcome per record, a bounded number of sends in flight, FIFO order
//! per message group, a panic confined to its record, and an answer before the deadline.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use crate::classify::{classify, Disposition, SendFailure};
use crate::message::{MessageDefaults, VoiceMessage};
use crate::ports::VoiceSender;
use crate::redact::scrub_phone_numbers;
use crate::report::{BatchReport, Fate, Reason, RecordOutcome};

/// One SQS record as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub message_id: &'a str,
    pub body: Option<&'a str>,
    pub receive_count: Option<u32>,
    /// The `MessageGroupId` when the source queue is FIFO: records sharing it are sent in
    /// order, one at a time.
    pub fifo_group: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub defaults: MessageDefaults,
    pub max_concurrency: usize,
    pub deadline_safety: Duration,
}

pub struct BatchEngine<S> {
    sender: S,
    settings: EngineSettings,
}

/// The two moments that bound a batch, derived from the invocation deadline.
#[derive(Debug, Clone, Copy)]
struct Cutoffs {
    /// No send starts after this: `deadline - safety`.
    last_start: Instant,
    /// Sends still in flight are abandoned here, `deadline - safety / 2`, which leaves the
    /// other half of the reserve to report (and, later, to dead-letter) and answer.
    abandon: Instant,
}

impl Cutoffs {
    fn new(deadline: Instant, safety: Duration) -> Self {
        let now = Instant::now();
        let before = |margin: Duration| deadline.checked_sub(margin).unwrap_or(now);
        Self {
            last_start: before(safety),
            abandon: before(safety / 2),
        }
    }
}

impl<S: VoiceSender> BatchEngine<S> {
    pub fn new(sender: S, settings: EngineSettings) -> Self {
        Self { sender, settings }
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Processes every record and returns their outcomes in record order. Never fails as a
    /// whole: whatever goes wrong is some record's outcome.
    pub async fn run(&self, records: &[Record<'_>], deadline: Instant) -> BatchReport {
        let cutoffs = Cutoffs::new(deadline, self.settings.deadline_safety);
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut lanes = futures::stream::iter(lanes(records))
            .map(|lane| self.run_lane(lane, records, cutoffs))
            .buffer_unordered(self.settings.max_concurrency.max(1));
        while let Some(finished) = lanes.next().await {
            for (index, outcome) in finished {
                outcomes[index] = Some(outcome);
            }
        }
        BatchReport {
            outcomes: outcomes
                .into_iter()
                .zip(records)
                .map(|(outcome, record)| {
                    outcome.unwrap_or_else(|| {
                        deferred(record, "Unprocessed", "the engine produced no outcome")
                    })
                })
                .collect(),
        }
    }

    /// Runs one lane's records in order. A record that is not done (transient or deferred)
    /// blocks the rest of its lane: in a FIFO group, sending a later message first would
    /// break the order SQS promised.
    async fn run_lane(
        &self,
        lane: Vec<usize>,
        records: &[Record<'_>],
        cutoffs: Cutoffs,
    ) -> Vec<(usize, RecordOutcome)> {
        let mut finished = Vec::with_capacity(lane.len());
        let mut blocked_by: Option<&str> = None;
        for index in lane {
            let record = &records[index];
            let outcome = if let Some(blocker) = blocked_by {
                deferred(
                    record,
                    "EarlierRecordInGroupFailed",
                    &format!("record {blocker} of the same message group was not sent"),
                )
            } else if Instant::now() >= cutoffs.last_start {
                deferred(
                    record,
                    "DeadlineReached",
                    "not started: too close to the invocation deadline",
                )
            } else {
                self.process_isolated(record, cutoffs.abandon).await
            };
            if matches!(outcome.fate, Fate::Transient | Fate::Deferred) {
                blocked_by = Some(record.message_id);
            }
            finished.push((index, outcome));
        }
        finished
    }

    /// A panic anywhere in this record's processing becomes this record's transient
    /// failure; the rest of the batch goes on.
    async fn process_isolated(&self, record: &Record<'_>, abandon: Instant) -> RecordOutcome {
        let started = Instant::now();
        match AssertUnwindSafe(self.process(record, abandon, started))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic payload".to_owned());
                RecordOutcome {
                    latency: started.elapsed(),
                    ..failed(
                        record,
                        Fate::Transient,
                        Reason {
                            code: "Panic".to_owned(),
                            message: scrub_phone_numbers(&detail),
                        },
                    )
                }
            }
        }
    }

    async fn process(
        &self,
        record: &Record<'_>,
        abandon: Instant,
        started: Instant,
    ) -> RecordOutcome {
        let message = match VoiceMessage::from_body(record.body, &self.settings.defaults) {
            Ok(message) => message,
            Err(invalid) => {
                return failed(
                    record,
                    Fate::Permanent,
                    Reason {
                        code: invalid.code().to_owned(),
                        message: invalid.to_string(),
                    },
                )
            }
        };
        let destination = Some(message.destination.masked().to_string());
        let sent = tokio::time::timeout_at(abandon, self.sender.send(&message)).await;
        let latency = started.elapsed();
        let base = RecordOutcome {
            destination,
            latency,
            ..failed(
                record,
                Fate::Deferred,
                Reason {
                    code: "DeadlineReached".to_owned(),
                    message: "abandoned in flight at the invocation deadline; the call may have been placed".to_owned(),
                },
            )
        };
        match sent {
            Err(_elapsed) => base,
            Ok(Ok(call)) => RecordOutcome {
                fate: Fate::Sent,
                reason: None,
                voice_message_id: call.message_id,
                ..base
            },
            Ok(Err(failure)) => RecordOutcome {
                fate: match classify(&failure) {
                    Disposition::Transient => Fate::Transient,
                    Disposition::Permanent => Fate::Permanent,
                },
                reason: Some(reason_of(&failure)),
                ..base
            },
        }
    }
}

/// Splits a batch into lanes that run concurrently. Each record of a standard queue is a
/// lane of its own; the records of one FIFO message group share a lane, in event order.
fn lanes(records: &[Record<'_>]) -> Vec<Vec<usize>> {
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of_group: std::collections::HashMap<&str, usize> = Default::default();
    for (index, record) in records.iter().enumerate() {
        match record.fifo_group {
            Some(group) => {
                let lane = *lane_of_group.entry(group).or_insert_with(|| {
                    lanes.push(Vec::new());
                    lanes.len() - 1
                });
                lanes[lane].push(index);
            }
            None => lanes.push(vec![index]),
        }
    }
    lanes
}

fn reason_of(failure: &SendFailure) -> Reason {
    Reason {
        code: failure.code(),
        message: scrub_phone_numbers(failure.message()),
    }
}

fn failed(record: &Record<'_>, fate: Fate, reason: Reason) -> RecordOutcome {
    RecordOutcome {
        message_id: record.message_id.to_owned(),
        fate,
        reason: Some(reason),
        voice_message_id: None,
        destination: None,
        receive_count: record.receive_count,
        latency: Duration::ZERO,
        dead_lettered: false,
        retry_delay_seconds: None,
    }
}

fn deferred(record: &Record<'_>, code: &str, message: &str) -> RecordOutcome {
    failed(
        record,
        Fate::Deferred,
        Reason {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(id: &'a str, group: Option<&'a str>) -> Record<'a> {
        Record {
            message_id: id,
            body: None,
            receive_count: Some(1),
            fifo_group: group,
        }
    }

    #[test]
    fn standard_records_each_get_their_own_lane() {
        let records = [record("a", None), record("b", None), record("c", None)];
        assert_eq!(lanes(&records), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn fifo_records_share_a_lane_per_group_in_event_order() {
        let records = [
            record("a1", Some("a")),
            record("b1", Some("b")),
            record("a2", Some("a")),
            record("b2", Some("b")),
            record("a3", Some("a")),
        ];
        assert_eq!(lanes(&records), vec![vec![0, 2, 4], vec![1, 3]]);
    }

    #[test]
    fn cutoffs_keep_the_reserve_before_the_deadline() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let cutoffs = Cutoffs::new(deadline, Duration::from_millis(1_000));
        assert_eq!(deadline - cutoffs.last_start, Duration::from_millis(1_000));
        assert_eq!(deadline - cutoffs.abandon, Duration::from_millis(500));
    }
}
