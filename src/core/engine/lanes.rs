//! Lanes: the records of a standard queue side by side, each FIFO message group in order,
//! and a message id seen twice in one batch sent once.

use super::budget::Cutoffs;
use super::outcomes::{deadline_reached, deferred, too_short};
use super::BatchEngine;
use crate::core::code::Code;
use crate::core::ports::{Ledger, VoiceSender};
use crate::core::record::Record;
use crate::core::report::{Fate, RecordOutcome};

impl<S: VoiceSender, L: Ledger> BatchEngine<S, L> {
    /// Runs one lane's records in order. A record that is not done (transient, deferred or
    /// abandoned) blocks the rest of its lane: in a FIFO group, sending a later message first
    /// would break the order SQS promised.
    pub(super) async fn run_lane(
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
                    Code::EarlierRecordInGroupFailed,
                    &format!("record {blocker} of the same message group was not sent"),
                )
            } else if cutoffs.none_can_start {
                too_short(record)
            } else if self.past_last_start(&cutoffs) {
                deadline_reached(record)
            } else {
                self.process_isolated(record, cutoffs).await
            };
            if matches!(
                outcome.fate,
                Fate::Transient | Fate::Deferred | Fate::Abandoned
            ) {
                blocked_by = Some(record.message_id);
            }
            finished.push((index, outcome));
        }
        finished
    }
}

/// Splits a batch into lanes that run concurrently. Each record of a standard queue is a
/// lane of its own; the records of one FIFO message group share a lane, in event order. A
/// message id seen before in the batch is no lane's: it is returned as `(copy, first)` and
/// shares the first one's outcome, so one message is never sent twice by one batch.
pub(super) fn lanes(records: &[Record<'_>]) -> (Vec<Vec<usize>>, Vec<(usize, usize)>) {
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of_group: std::collections::HashMap<&str, usize> = Default::default();
    let mut first_of: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(records.len());
    let mut copies = Vec::new();
    for (index, record) in records.iter().enumerate() {
        if let Some(&first) = first_of.get(record.message_id) {
            copies.push((index, first));
            continue;
        }
        first_of.insert(record.message_id, index);
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
    (lanes, copies)
}
