//! One SQS record as the core sees it: what the engine needs to send it, and what the
//! settlement needs to dead-letter it or delay its next delivery. The Lambda adapter reads
//! it from the event; nothing here knows the event's shape.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Default)]
pub struct Record<'a> {
    pub message_id: &'a str,
    pub body: Option<&'a str>,
    /// How many times SQS has delivered it, this delivery included.
    pub receive_count: Option<u32>,
    /// The `MessageGroupId` when the source queue is FIFO: records sharing it are sent in
    /// order, one at a time. `None` on a standard queue, where there is no order to keep.
    pub fifo_group: Option<&'a str>,
    /// When the producer sent it (`SentTimestamp`): the start of its time to live.
    pub sent_at: Option<SystemTime>,
    /// The key the idempotency ledger knows it by.
    pub idempotency_key: Cow<'a, str>,
    /// The source queue's ARN.
    pub queue_arn: Option<&'a str>,
    /// The handle that changes this delivery's visibility.
    pub receipt_handle: Option<&'a str>,
    /// When SQS first delivered it (`ApproximateFirstReceiveTimestamp`).
    pub first_received_at: Option<SystemTime>,
    /// The producer's message attributes, kept for a dead letter.
    pub attributes: Vec<(&'a str, Attribute<'a>)>,
    /// When the request was first sent, from a dead letter's `DispatchFirstSent` carried
    /// back by a redrive (or set by the producer).
    pub first_sent_at: Option<SystemTime>,
    /// Which call of which request this is, when it is a redial (its reserved attributes).
    pub redial: Option<crate::core::redial::CallOf<'a>>,
}

impl Record<'_> {
    /// The key the ledger claims for this record: its idempotency key as the ledger stores
    /// it, or for a redial its call's own key, derived from the request's.
    pub fn ledger_key(&self) -> String {
        match &self.redial {
            Some(call) => crate::core::ledger::redial_key(call.request_key, call.call),
            None => crate::core::ledger::stored_key(&self.idempotency_key),
        }
    }

    /// Which call of its request this record is: 1 unless it is a redial.
    pub fn call_number(&self) -> u8 {
        self.redial.map_or(1, |call| call.call)
    }

    /// When the request was first sent: the earliest of its `SentTimestamp` and its
    /// `DispatchFirstSent`, so a producer can shorten a message's life, never extend it,
    /// and a redriven letter counts from the request's first send.
    pub fn first_sent(&self) -> Option<SystemTime> {
        match (self.sent_at, self.first_sent_at) {
            (Some(sent), Some(first)) => Some(sent.min(first)),
            (sent, first) => sent.or(first),
        }
    }
}

/// One message attribute, as the producer set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub data_type: Option<&'a str>,
    pub string_value: Option<&'a str>,
    pub binary_value: Option<&'a [u8]>,
}

impl Attribute<'_> {
    /// What SQS counts toward a message's size for this attribute (its name aside).
    pub fn size(&self) -> usize {
        self.data_type.map_or(0, str::len)
            + self.string_value.map_or(0, str::len)
            + self.binary_value.map_or(0, <[u8]>::len)
    }
}

/// The longest a receive can be before its invocation ends: Lambda's 15-minute timeout plus
/// the event source's longest batching window (5 minutes).
pub const RECEIVE_AGE_BOUND: Duration = Duration::from_secs(1_200);

impl Record<'_> {
    /// SQS keeps a received message invisible at most 12 hours in all, counted from that
    /// receive, and refuses a `ChangeMessageVisibility` past it ("you can continue to extend
    /// the visibility timeout to a maximum of 12 hours"): the longest visibility timeout that
    /// can still be set at `now`, in whole seconds. The receive's own time is not in the
    /// record; on the first receive it is `ApproximateFirstReceiveTimestamp`, and no receive
    /// is older than [`RECEIVE_AGE_BOUND`] while its invocation runs, so that bounds it
    /// otherwise.
    pub fn visibility_left(&self, now: SystemTime, ceiling_seconds: u32) -> u32 {
        let since_first = self
            .first_received_at
            .map(|first| now.duration_since(first).unwrap_or_default());
        let age = since_first.map_or(RECEIVE_AGE_BOUND, |since| since.min(RECEIVE_AGE_BOUND));
        u64::from(ceiling_seconds).saturating_sub(age.as_secs()) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_can_be_set_up_to_twelve_hours_from_this_receive() {
        let first_ms = 1_764_000_000_000u64;
        let m = Record {
            first_received_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(first_ms)),
            ..Record::default()
        };
        let at = |seconds: u64| {
            SystemTime::UNIX_EPOCH + Duration::from_millis(first_ms + seconds * 1_000)
        };
        // The first receive, 60 s into its invocation: 12 h from then.
        assert_eq!(m.visibility_left(at(60), 43_200), 43_140);
        // A later receive (the first was hours ago): it is at most 20 minutes old.
        assert_eq!(m.visibility_left(at(50_000), 43_200), 42_000);
        let unknown = Record::default();
        assert_eq!(unknown.visibility_left(at(50_000), 43_200), 42_000);
        // Never zero: a backoff always holds.
        assert!(m.visibility_left(at(1_000_000), 43_200) > 0);
    }
}
