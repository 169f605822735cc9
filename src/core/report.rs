//! What became of each record, and the answer SQS gets from it.

use std::time::{Duration, SystemTime};

use crate::core::classify::Signal;
use crate::core::code::Code;
use crate::core::route::RegionTag;

use tokio::time::Instant;

/// The fate of one record in this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// The service accepted the call: done, the record is deleted.
    Sent,
    /// Failed in a way that may pass: reported, so SQS redelivers it.
    Transient,
    /// Will never succeed as it is: forwarded to the dead-letter queue when one is
    /// configured (and then not reported), otherwise reported so redrive ends it there.
    Permanent,
    /// Not attempted this time (deadline, pacer, breaker, or an earlier record of its FIFO
    /// group failed): reported, so SQS redelivers it.
    Deferred,
    /// Past its time to live: never sent. Dead-lettered like a permanent failure.
    Expired,
    /// In flight when the invocation's time ran out and given up on: the call may have been
    /// placed. Reported, and redelivered after a real backoff.
    Abandoned,
    /// Already placed by an earlier delivery (the idempotency ledger says so): not called
    /// again, and not reported, so SQS deletes it.
    Duplicate,
}

/// One fate in every word it is known by: the word in log lines and the `Fate` dimension;
/// its EMF count metric; what SQS is told; what it means. Defined once: the
/// logs, the metrics and the README's fates table all read it.
#[derive(Debug, Clone, Copy)]
pub struct FateInfo {
    pub fate: Fate,
    pub word: &'static str,
    pub metric: &'static str,
    /// Whether it is in `batchItemFailures` (SQS keeps it), in words.
    pub reported: &'static str,
    pub meaning: &'static str,
}

pub const FATES: [FateInfo; 7] = [
    FateInfo {
        fate: Fate::Sent,
        word: "sent",
        metric: "Sent",
        reported: "no: SQS deletes it",
        meaning: "the service accepted the call",
    },
    FateInfo {
        fate: Fate::Duplicate,
        word: "duplicate",
        metric: "Duplicate",
        reported: "no: SQS deletes it",
        meaning: "the ledger says an earlier delivery placed it: not called again",
    },
    FateInfo {
        fate: Fate::Transient,
        word: "transient",
        metric: "Transient",
        reported: "yes, after its backoff, until its time to live",
        meaning: "a failure that may pass (the service failing, throttling, a timeout)",
    },
    FateInfo {
        fate: Fate::Permanent,
        word: "permanent",
        metric: "Permanent",
        reported: "no once the dead-letter queue holds it (with its reason)",
        meaning: "it can never be sent as it is (a bad request, a malformed body)",
    },
    FateInfo {
        fate: Fate::Expired,
        word: "expired",
        metric: "Expired",
        reported: "no once the dead-letter queue holds it",
        meaning: "past its time to live: never called",
    },
    FateInfo {
        fate: Fate::Deferred,
        word: "deferred",
        metric: "Deferred",
        reported: "yes, back when it is worth trying (at once, or when the pacer or breaker says)",
        meaning: "never attempted this time (deadline, pacer, breaker, its FIFO group held)",
    },
    FateInfo {
        fate: Fate::Abandoned,
        word: "abandoned",
        metric: "Abandoned",
        reported: "yes, after a real backoff (the ledger records it unknown)",
        meaning: "in flight when the invocation's time ran out: the call may have been placed",
    },
];

impl Fate {
    /// Everything this fate is called.
    pub fn info(self) -> &'static FateInfo {
        let index = match self {
            Fate::Sent => 0,
            Fate::Duplicate => 1,
            Fate::Transient => 2,
            Fate::Permanent => 3,
            Fate::Expired => 4,
            Fate::Deferred => 5,
            Fate::Abandoned => 6,
        };
        &FATES[index]
    }

    /// Its word in log lines and the `Fate` dimension (a dead letter's `DispatchError`
    /// carries the record's code instead).
    pub fn as_str(self) -> &'static str {
        self.info().word
    }

    /// Fates that end a record's life short of a call: sending it again cannot help, so it
    /// goes to the dead-letter queue with its reason.
    pub fn is_final_failure(self) -> bool {
        matches!(self, Fate::Permanent | Fate::Expired)
    }
}

/// The README's fates table.
pub fn fates_table() -> String {
    let mut table =
        String::from("| fate | what it means | in `batchItemFailures` |\n|---|---|---|\n");
    for info in FATES {
        table.push_str(&format!(
            "| **{}** | {} | {} |\n",
            info.word, info.meaning, info.reported
        ));
    }
    table
}

/// Why a record was not sent: a stable code and a message safe to log (no text, no
/// unmasked phone numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: Code,
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
    /// A permanent failure the dead-letter queue has accepted: SQS may delete the original.
    pub dead_lettered: bool,
    /// The visibility timeout given to a transient failure, delaying its redelivery.
    pub retry_delay_seconds: Option<u32>,
    /// For a record not tried (again) now: when it is worth trying again (the pacer's slot,
    /// the breaker's remaining open time). `None`: at once.
    pub retry_at: Option<Instant>,
    /// When the record stops being worth sending, if known.
    pub expires_at: Option<Instant>,
    /// Requests sent to the voice service for this record in this invocation.
    pub attempts: u32,
    /// The region of its last attempt, with failover on; `None` with it off or never tried.
    pub region: Option<RegionTag>,
    /// When its request was first sent (the earliest of `SentTimestamp` and a redriven
    /// letter's `DispatchFirstSent`), if known: how long a call waits is counted from it.
    pub first_sent_at: Option<SystemTime>,
    /// What its last failed attempt said about the voice service (the service failing,
    /// throttling, ...); `None` when it was sent or never failed an attempt.
    pub signal: Option<Signal>,
    /// Kept by SQS whatever its fate: its request's outcome timer could not be armed, and
    /// its next delivery arms it (delivery outcomes on).
    pub held: bool,
    /// The message asked for a redial the function cannot make: called once
    /// (`RedialUnavailable`).
    pub redial_unavailable: bool,
}

impl RecordOutcome {
    /// An outcome with nothing known yet beyond its fate.
    pub fn new(message_id: &str, fate: Fate) -> Self {
        Self {
            message_id: message_id.to_owned(),
            fate,
            reason: None,
            voice_message_id: None,
            destination: None,
            receive_count: None,
            latency: Duration::ZERO,
            dead_lettered: false,
            retry_delay_seconds: None,
            retry_at: None,
            expires_at: None,
            attempts: 0,
            region: None,
            first_sent_at: None,
            signal: None,
            held: false,
            redial_unavailable: false,
        }
    }

    /// Whether SQS must keep the record: everything not sent, unless the dead-letter queue
    /// already holds it.
    pub fn is_reported(&self) -> bool {
        self.held || (!matches!(self.fate, Fate::Sent | Fate::Duplicate) && !self.dead_lettered)
    }
}

/// Every record's outcome, in the order the event listed the records.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub outcomes: Vec<RecordOutcome>,
    /// The primary region's breaker.
    pub circuit: CircuitReport,
    /// With failover on, the two regions; `None` with it off.
    pub regions: Option<Regions>,
}

/// The primary and the failover region, as outcomes name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    pub primary: RegionTag,
    pub failover: RegionTag,
}

/// One region's share of a batch: the records whose last attempt went there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionCounts<'a> {
    pub region: &'a RegionTag,
    pub sent: usize,
    /// Tried there, not sent.
    pub unsent: usize,
}

impl RegionCounts<'_> {
    /// The records tried in this region.
    pub fn tried(&self) -> usize {
        self.sent + self.unsent
    }
}

/// The instance's circuit breaker, as this invocation saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CircuitReport {
    /// Times it opened during the invocation.
    pub opened: u64,
    /// Whether it was open (or half-open) when the invocation ended.
    pub open_at_end: bool,
    /// Whether it was open then for the service failing on its side (a regional outage).
    pub outage_at_end: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FateCounts {
    pub sent: usize,
    pub transient: usize,
    pub permanent: usize,
    pub deferred: usize,
    pub expired: usize,
    pub abandoned: usize,
    pub duplicate: usize,
    /// Permanent failures and expired records the dead-letter queue accepted (also counted
    /// in `permanent` and `expired`).
    pub dead_lettered: usize,
}

impl FateCounts {
    /// How many records met `fate`.
    pub fn of(&self, fate: Fate) -> usize {
        match fate {
            Fate::Sent => self.sent,
            Fate::Transient => self.transient,
            Fate::Permanent => self.permanent,
            Fate::Deferred => self.deferred,
            Fate::Expired => self.expired,
            Fate::Abandoned => self.abandoned,
            Fate::Duplicate => self.duplicate,
        }
    }
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
                Fate::Expired => counts.expired += 1,
                Fate::Abandoned => counts.abandoned += 1,
                Fate::Duplicate => counts.duplicate += 1,
            }
            counts.dead_lettered += usize::from(outcome.dead_lettered);
        }
        counts
    }

    /// With failover on, each region's records, the primary's first.
    pub fn by_region<'a>(&'a self) -> Option<[RegionCounts<'a>; 2]> {
        let regions = self.regions.as_ref()?;
        let count = |region: &'a RegionTag| {
            let mut counts = RegionCounts {
                region,
                sent: 0,
                unsent: 0,
            };
            for outcome in &self.outcomes {
                if outcome.region.as_ref() != Some(region) || outcome.fate == Fate::Duplicate {
                    continue;
                }
                if outcome.fate == Fate::Sent {
                    counts.sent += 1;
                } else {
                    counts.unsent += 1;
                }
            }
            counts
        };
        Some([count(&regions.primary), count(&regions.failover)])
    }

    /// The records SQS must deliver again, each message id once, in event order.
    pub fn reported_message_ids(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.outcomes
            .iter()
            .filter(|outcome| outcome.is_reported())
            .map(|outcome| outcome.message_id.as_str())
            .filter(|id| seen.insert(*id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_region_counts_the_records_last_tried_there() {
        let tag = |name: &str, failover| RegionTag {
            name: name.into(),
            failover,
        };
        let (east, west) = (tag("us-east-1", false), tag("us-west-2", true));
        let at = |fate, region: &RegionTag| RecordOutcome {
            region: Some(region.clone()),
            ..RecordOutcome::new("m", fate)
        };
        let report = BatchReport {
            outcomes: vec![
                at(Fate::Sent, &east),
                at(Fate::Transient, &east),
                at(Fate::Sent, &west),
                at(Fate::Sent, &west),
                at(Fate::Abandoned, &west),
                RecordOutcome::new("never tried", Fate::Deferred),
            ],
            circuit: CircuitReport::default(),
            regions: Some(Regions {
                primary: east.clone(),
                failover: west.clone(),
            }),
        };
        let [primary, failover] = report.by_region().expect("failover on");
        assert_eq!((primary.sent, primary.unsent), (1, 1));
        assert_eq!(
            (failover.sent, failover.unsent, failover.tried()),
            (2, 1, 3)
        );
        let off = BatchReport {
            regions: None,
            ..report
        };
        assert_eq!(off.by_region(), None);
    }

    fn outcome(id: &str, fate: Fate) -> RecordOutcome {
        RecordOutcome::new(id, fate)
    }

    #[test]
    fn every_fate_is_in_the_table_once_with_words_of_its_own() {
        let all = [
            Fate::Sent,
            Fate::Transient,
            Fate::Permanent,
            Fate::Deferred,
            Fate::Expired,
            Fate::Abandoned,
            Fate::Duplicate,
        ];
        for fate in all {
            assert_eq!(FATES.iter().filter(|info| info.fate == fate).count(), 1);
            assert_eq!(fate.info().fate, fate);
        }
        let mut words: Vec<&str> = FATES.iter().map(|info| info.word).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), FATES.len());
    }

    #[test]
    fn the_readme_fates_table_is_this_table() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&fates_table()),
            "README.md's fates table should read:\n{}",
            fates_table()
        );
    }

    #[test]
    fn a_dead_lettered_record_is_not_reported() {
        let mut dead = outcome("dead", Fate::Permanent);
        dead.dead_lettered = true;
        let report = BatchReport {
            outcomes: vec![dead, outcome("kept", Fate::Permanent)],
            ..Default::default()
        };
        assert_eq!(report.reported_message_ids(), ["kept"]);
        assert_eq!(report.counts().dead_lettered, 1);
        assert_eq!(report.counts().permanent, 2);
    }
}
