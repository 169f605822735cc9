//! Writes that meet go out together: one `TransactWriteItems` carries every claim and `SENT`
//! waiting when the previous one returns (up to 100, one per key), and none waits for a group
//! to fill. A busy batch pays for one DynamoDB request per group instead of two per record.
//!
//! A transaction stands or falls whole. When DynamoDB cancels one, its reasons say, item by
//! item, what happened: an item that was not the cause goes in the next group; a claim whose
//! condition failed gets the standing item it came back with (or, when the rules may let it
//! take that item over, tries alone with the full condition); a `SENT` refused for any other
//! reason learns the error and the engine retries it within its deadline. A grouped claim
//! only takes a free key; taking over an item (an unknown outcome, or one past its stored
//! expiration) is always a single write, which returns what it replaced.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use crate::adapters::lazy::Lazy;
use tokio::sync::oneshot;

use crate::core::ledger::{call_key, may_claim, Claim, Entry, Status};
use crate::core::ports::{ClaimAnswer, PortError};

use super::{entry, failed, release, request_item, EXPIRATION, ID, REGION, REQUEST_KEY};

/// `TransactWriteItems` takes at most 100 actions.
const GROUP_MAX: usize = 100;

/// The pause before the writes of a cancelled group that were not its cause go out again.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// What a grouped claim comes to.
#[derive(Debug)]
pub(super) enum Grouped {
    Answered(ClaimAnswer),
    /// The group could not finish it: the caller writes it alone, with the full condition.
    Alone,
}

#[derive(Debug)]
enum Write {
    Claim {
        claim: Claim,
        answer: oneshot::Sender<Grouped>,
    },
    Sent {
        item: HashMap<String, AttributeValue>,
        /// The call's own item (found by its message id), written with `SENT` in the same
        /// transaction: its key and its attributes.
        call: Option<(String, HashMap<String, AttributeValue>)>,
        written: oneshot::Sender<Result<(), PortError>>,
    },
}

#[derive(Debug)]
struct Queued {
    key: String,
    write: Write,
}

impl Queued {
    /// Nobody waits for it any more (the engine's cutoff passed): a claim is not written; a
    /// `SENT` still is, since the call went out.
    fn abandoned(&self) -> bool {
        match &self.write {
            Write::Claim { answer, .. } => answer.is_closed(),
            Write::Sent { .. } => false,
        }
    }

    /// Its actions in a transaction: one, or two for a `SENT` with its call's item.
    fn actions(&self, table: &str, recording: bool) -> Result<Vec<TransactWriteItem>, PortError> {
        let mut actions = vec![self.action(table, recording)?];
        if let Write::Sent {
            call: Some((key, attributes)),
            ..
        } = &self.write
        {
            actions.push(call_update(table, key, attributes)?);
        }
        Ok(actions)
    }

    fn action_count(&self) -> usize {
        match &self.write {
            Write::Sent { call: Some(_), .. } => 2,
            _ => 1,
        }
    }

    fn action(&self, table: &str, recording: bool) -> Result<TransactWriteItem, PortError> {
        let put = match &self.write {
            // A free key only: whatever else `may_claim` allows replaces an item, and only a
            // single write says what it replaced.
            Write::Claim { claim, .. } => Put::builder()
                .table_name(table)
                .set_item(Some(request_item(claim, &claim.entry, recording)))
                .condition_expression(format!("attribute_not_exists({ID})"))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                ),
            Write::Sent { item, .. } => Put::builder()
                .table_name(table)
                .set_item(Some(item.clone())),
        };
        put.build()
            .map(|put| TransactWriteItem::builder().put(put).build())
            .map_err(|err| PortError::Invalid(err.to_string()))
    }
}

/// The call's item: its request's key and expiration set, whatever events it already holds
/// kept (an update, never a whole put), so a `SENT` written again never erases an event.
fn call_update(
    table: &str,
    key: &str,
    attributes: &HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, PortError> {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut sets = Vec::new();
    for (index, (name, value)) in attributes.iter().enumerate() {
        names.insert(format!("#a{index}"), name.clone());
        values.insert(format!(":a{index}"), value.clone());
        sets.push(format!("#a{index} = :a{index}"));
    }
    Update::builder()
        .table_name(table)
        .key(ID, AttributeValue::S(key.to_owned()))
        .update_expression(format!("SET {}", sets.join(", ")))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .map(|update| TransactWriteItem::builder().update(update).build())
        .map_err(|err| PortError::Invalid(err.to_string()))
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    writing: bool,
}

/// The writes waiting for the next group, and whether a task is writing them.
#[derive(Debug)]
pub(super) struct Groups {
    client: Lazy<Client>,
    table: String,
    queue: Mutex<Queue>,
    /// Delivery outcomes on: a `SENT` writes its call's item too.
    record_calls: bool,
}

impl Groups {
    pub(super) fn new(client: Lazy<Client>, table: String, record_calls: bool) -> Arc<Self> {
        Arc::new(Self {
            client,
            table,
            queue: Mutex::default(),
            record_calls,
        })
    }

    /// Whether delivery outcomes are on: requests carry their ids, `SENT` its call's item.
    pub(super) fn recording(&self) -> bool {
        self.record_calls
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `claim.key` in the next group.
    pub(super) async fn claim(self: &Arc<Self>, claim: &Claim) -> Grouped {
        let (answer, answered) = oneshot::channel();
        self.enqueue(Queued {
            key: claim.key.clone(),
            write: Write::Claim {
                claim: claim.clone(),
                answer,
            },
        });
        answered.await.unwrap_or(Grouped::Alone)
    }

    /// Writes `SENT` for `claim.key` in the next group.
    pub(super) async fn sent(
        self: &Arc<Self>,
        claim: &Claim,
        voice_message_id: Option<String>,
        region: Option<&str>,
    ) -> Result<(), PortError> {
        // The truth whoever holds the key now: the call went out. Written whole and as this
        // claim's, so no other holder's later release or "unknown" can undo it, and an item
        // deleted meanwhile comes back. (A request's outcome is an item of its own, which
        // this never touches.)
        let call = voice_message_id
            .as_deref()
            .filter(|_| self.record_calls)
            .map(|id| {
                (
                    call_key(id),
                    HashMap::from([
                        (REQUEST_KEY.to_owned(), AttributeValue::S(claim.key.clone())),
                        (
                            EXPIRATION.to_owned(),
                            AttributeValue::N(claim.entry.expiration.to_string()),
                        ),
                    ]),
                )
            });
        let sent = Entry {
            status: Status::Sent,
            voice_message_id,
            ..claim.entry.clone()
        };
        let mut item = request_item(claim, &sent, self.record_calls);
        if let Some(region) = region.filter(|_| self.record_calls) {
            item.insert(REGION.to_owned(), AttributeValue::S(region.to_owned()));
        }
        let (written, answered) = oneshot::channel();
        self.enqueue(Queued {
            key: claim.key.clone(),
            write: Write::Sent {
                item,
                call,
                written,
            },
        });
        answered.await.unwrap_or_else(|_| {
            Err(PortError::Call(
                "the ledger's group writer stopped".to_owned(),
            ))
        })
    }

    fn enqueue(self: &Arc<Self>, queued: Queued) {
        let start_writer = {
            let mut queue = self.lock();
            queue.waiting.push_back(queued);
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            tokio::spawn(Arc::clone(self).write());
        }
    }

    /// The next group: up to 100 writes, one per key (a transaction refuses a key twice; a
    /// second write to a key waits for the next group, so a key's writes keep their order).
    /// Empty, the writer's turn ends.
    fn next_group(&self) -> Vec<Queued> {
        let mut queue = self.lock();
        let mut group: Vec<Queued> = Vec::new();
        let mut later = VecDeque::new();
        let mut actions = 0;
        while actions < GROUP_MAX {
            let Some(queued) = queue.waiting.pop_front() else {
                break;
            };
            if queued.abandoned() {
                continue;
            }
            if group.iter().any(|q| q.key == queued.key) {
                later.push_back(queued);
            } else if actions + queued.action_count() > GROUP_MAX {
                // A `SENT` with its call's item takes two actions: it waits for the next.
                later.push_back(queued);
                break;
            } else {
                actions += queued.action_count();
                group.push(queued);
            }
        }
        while let Some(queued) = later.pop_back() {
            queue.waiting.push_front(queued);
        }
        if group.is_empty() {
            queue.writing = false;
        }
        group
    }

    /// Puts writes back at the head of the queue, in their order.
    fn retry_first(&self, writes: Vec<Queued>) {
        let mut queue = self.lock();
        for queued in writes.into_iter().rev() {
            queue.waiting.push_front(queued);
        }
    }

    /// The writer: a group per `TransactWriteItems` until none waits.
    async fn write(self: Arc<Self>) {
        let mut turn = WriterTurn {
            groups: Arc::clone(&self),
            ended: false,
        };
        loop {
            let group = self.next_group();
            if group.is_empty() {
                turn.ended = true;
                return;
            }
            let actions: Result<Vec<TransactWriteItem>, PortError> = group
                .iter()
                .map(|queued| queued.actions(&self.table, self.record_calls))
                .collect::<Result<Vec<_>, _>>()
                .map(|actions| actions.into_iter().flatten().collect());
            let answer = match actions {
                Ok(actions) => self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(actions))
                    .send()
                    .await
                    .map(|_| ()),
                Err(err) => {
                    let _ = answer_all(group, &Err(err));
                    continue;
                }
            };
            self.answer(group, answer).await;
        }
    }

    /// Answers a group's writes by what `TransactWriteItems` said: all written (a claim
    /// whose record gave up meanwhile is released), cancelled (each by its reason; the
    /// innocent go again, after a pause), or failed.
    async fn answer(
        &self,
        group: Vec<Queued>,
        answer: Result<(), SdkError<TransactWriteItemsError>>,
    ) {
        match answer {
            Ok(()) => {
                for orphan in answer_all(group, &Ok(())) {
                    if let Err(error) = release(&self.client, &self.table, &orphan).await {
                        tracing::warn!(
                            %error,
                            "a claim written after its record gave up could not be released; it lapses with its lease"
                        );
                    }
                }
            }
            Err(SdkError::ServiceError(service)) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let reasons = cancelled.cancellation_reasons().to_vec();
                    let retry = self.cancelled(group, &reasons);
                    if !retry.is_empty() {
                        // Not straight back into the same conflict or throttle.
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    self.retry_first(retry);
                }
                _ => {
                    let error = failed("TransactWriteItems", &SdkError::ServiceError(service));
                    let _ = answer_all(group, &Err(error));
                }
            },
            Err(err) => {
                let _ = answer_all(group, &Err(failed("TransactWriteItems", &err)));
            }
        }
    }

    /// Answers the writes of a cancelled group by their reasons; returns those that were not
    /// the cause, for the next group.
    fn cancelled(&self, group: Vec<Queued>, reasons: &[CancellationReason]) -> Vec<Queued> {
        let mut retry = Vec::new();
        let mut index = 0;
        for queued in group {
            // A write's reasons are those of its actions; the first that is a cause speaks.
            let count = queued.action_count();
            let own = reasons.get(index..index + count).unwrap_or_default();
            index += count;
            let reason = own
                .iter()
                .find(|reason| reason.code() != Some("None"))
                .or_else(|| own.first());
            let code = reason
                .and_then(CancellationReason::code)
                .unwrap_or("Unknown");
            if code == "None" {
                retry.push(queued);
                continue;
            }
            match queued.write {
                Write::Claim { claim, answer } => {
                    let standing = reason
                        .and_then(CancellationReason::item)
                        .filter(|_| code == "ConditionalCheckFailed")
                        .and_then(|item| entry(item).ok());
                    let grouped = match standing {
                        // Our own claim stands (a lost answer, retried): the engine knows it.
                        // Anything the full rules would refuse is refused as it stands.
                        Some(standing)
                            if standing.claim_id == claim.entry.claim_id
                                || !may_claim(Some(&standing), &claim) =>
                        {
                            Grouped::Answered(ClaimAnswer::Refused(standing))
                        }
                        _ => Grouped::Alone,
                    };
                    let _ = answer.send(grouped);
                }
                Write::Sent { written, .. } => {
                    let _ = written.send(Err(PortError::Call(format!(
                        "DynamoDB TransactWriteItems cancelled the SENT write: {code}"
                    ))));
                }
            }
        }
        retry
    }
}

/// Answers every write of a group by its result: a claim written is claimed, one that failed
/// is tried alone; a `SENT` learns the result. Returns the claims written for a waiter that
/// is gone (its cutoff passed while the group was in flight): nobody will send or finish
/// them, so they must be released, or the next delivery would find an unknown outcome.
fn answer_all(group: Vec<Queued>, result: &Result<(), PortError>) -> Vec<Claim> {
    let mut orphans = Vec::new();
    for queued in group {
        let result = result.clone();
        match queued.write {
            Write::Claim { claim, answer } => {
                let written = result.is_ok();
                let delivered = answer.send(match result {
                    Ok(()) => Grouped::Answered(ClaimAnswer::Claimed { replaced: None }),
                    Err(_) => Grouped::Alone,
                });
                if written && delivered.is_err() {
                    orphans.push(claim);
                }
            }
            // The waiter may be gone (its deadline passed): a write that landed stands.
            Write::Sent { written, .. } => {
                let _ = written.send(result);
            }
        }
    }
    orphans
}

/// Ends the writer's turn if its task is dropped or panics, so the next write starts one.
/// (A turn that ran out of writes was ended by [`Groups::next_group`], under the lock.)
struct WriterTurn {
    groups: Arc<Groups>,
    ended: bool,
}

impl Drop for WriterTurn {
    fn drop(&mut self) {
        if !self.ended {
            self.groups.lock().writing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::item;
    use super::*;
    use crate::core::ledger::UnknownOutcome;

    fn client() -> Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        Client::from_conf(config)
    }

    fn claim(key: &str, claim_id: &str) -> Claim {
        Claim {
            keep: None,
            key: key.to_owned(),
            entry: Entry {
                status: Status::InProgress,
                body_hash: "hash".to_owned(),
                claim_id: claim_id.to_owned(),
                lease_until_ms: 2_000_000_000_000,
                expiration: 2_000_000_000,
                voice_message_id: None,
            },
            now_ms: 1_764_000_000_000,
            on_unknown: UnknownOutcome::Retry,
            request: Default::default(),
        }
    }

    /// The engine holds each record's ledger request in that record's future, which the
    /// batch moves into place whole; a future holding the SDK's request inline (6.4 KB in a
    /// debug build today) made every record's future, ledger on or off, that much larger to
    /// copy. The SDK's request is on the heap: the ledger's futures stay a few hundred bytes.
    /// (The grouped `TransactWriteItems` runs in a task of its own: a record's finish only
    /// waits for its answer.)
    #[test]
    fn the_ledgers_futures_hold_no_sdk_request_inline() {
        use crate::adapters::dynamodb::DynamoLedger;
        use crate::core::ledger::Finish;
        use crate::core::ports::Ledger;
        const SMALL: usize = 1024;
        let sdk_request = std::mem::size_of_val(&client().put_item().send());
        let ledger = DynamoLedger::new(client(), "calls".to_owned());
        let claim = claim("key", "mine");
        let sizes = [
            ("claim", std::mem::size_of_val(&ledger.claim(&claim))),
            (
                "finish unknown",
                std::mem::size_of_val(&ledger.finish(&claim, &Finish::Unknown)),
            ),
            (
                "finish release",
                std::mem::size_of_val(&ledger.finish(&claim, &Finish::Release)),
            ),
            (
                "redial due",
                std::mem::size_of_val(&ledger.redial_due("key", 1, "hash")),
            ),
        ];
        for (what, size) in sizes {
            assert!(
                size < SMALL,
                "the ledger's {what} future is {size} bytes (the SDK's request future: \
                 {sdk_request})"
            );
        }
    }

    fn queued_claim(key: &str, claim_id: &str) -> (Queued, oneshot::Receiver<Grouped>) {
        let (answer, answered) = oneshot::channel();
        let write = Write::Claim {
            claim: claim(key, claim_id),
            answer,
        };
        (
            Queued {
                key: key.to_owned(),
                write,
            },
            answered,
        )
    }

    fn reason(code: &str, standing: Option<&Entry>, key: &str) -> CancellationReason {
        CancellationReason::builder()
            .code(code)
            .set_item(standing.map(|entry| item(key, entry)))
            .build()
    }

    #[tokio::test]
    async fn a_cancelled_group_answers_each_write_by_its_reason() {
        let groups = Groups::new(client().into(), "ledger".into(), true);
        let sent = Entry {
            status: Status::Sent,
            voice_message_id: Some("voice-1".into()),
            ..claim("a", "earlier").entry
        };
        let own = claim("e", "mine").entry;
        let (a, a_answer) = queued_claim("a", "c-a");
        let (b, b_answer) = queued_claim("b", "c-b");
        let (c, c_answer) = queued_claim("c", "c-c");
        let (e, e_answer) = queued_claim("e", "mine");
        let (written, d_answer) = oneshot::channel();
        let d = Queued {
            key: "d".into(),
            write: Write::Sent {
                item: item("d", &sent),
                call: None,
                written,
            },
        };
        let reasons = [
            reason("ConditionalCheckFailed", Some(&sent), "a"),
            reason("None", None, "b"),
            reason("TransactionConflict", None, "c"),
            reason("ThrottlingError", None, "d"),
            reason("ConditionalCheckFailed", Some(&own), "e"),
        ];
        let retry = groups.cancelled(vec![a, b, c, d, e], &reasons);
        let retried: Vec<&str> = retry.iter().map(|q| q.key.as_str()).collect();
        assert_eq!(
            retried,
            ["b"],
            "only the write that was not the cause goes again"
        );
        drop(retry);
        assert!(matches!(
            a_answer.await.unwrap(),
            Grouped::Answered(ClaimAnswer::Refused(Entry {
                status: Status::Sent,
                ..
            }))
        ));
        assert!(
            b_answer.await.is_err(),
            "still queued (dropped here), not answered"
        );
        assert!(
            matches!(c_answer.await.unwrap(), Grouped::Alone),
            "a conflict: alone"
        );
        let throttled = d_answer.await.unwrap().unwrap_err();
        assert!(
            throttled.to_string().contains("ThrottlingError"),
            "{throttled}"
        );
        assert!(matches!(
            e_answer.await.unwrap(),
            Grouped::Answered(ClaimAnswer::Refused(Entry { ref claim_id, .. })) if claim_id == "mine"
        ));
    }

    #[tokio::test]
    async fn a_reason_missing_or_without_its_item_sends_the_claim_alone() {
        let groups = Groups::new(client().into(), "ledger".into(), true);
        let (a, a_answer) = queued_claim("a", "c-a");
        let (b, b_answer) = queued_claim("b", "c-b");
        let retry = groups.cancelled(vec![a, b], &[reason("ConditionalCheckFailed", None, "a")]);
        assert!(retry.is_empty());
        assert!(matches!(a_answer.await.unwrap(), Grouped::Alone));
        assert!(matches!(b_answer.await.unwrap(), Grouped::Alone));
    }

    #[tokio::test]
    async fn a_claim_written_after_its_waiter_gave_up_is_handed_back_for_release() {
        let (a, a_answer) = queued_claim("a", "c-a");
        let (b, b_answer) = queued_claim("b", "c-b");
        drop(b_answer);
        let orphans = answer_all(vec![a, b], &Ok(()));
        assert!(matches!(
            a_answer.await.unwrap(),
            Grouped::Answered(ClaimAnswer::Claimed { replaced: None })
        ));
        let keys: Vec<&str> = orphans.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["b"]);
        let (c, c_answer) = queued_claim("c", "c-c");
        drop(c_answer);
        assert!(
            answer_all(vec![c], &Err(PortError::Call("refused".into()))).is_empty(),
            "nothing written, nothing to release"
        );
    }
}
