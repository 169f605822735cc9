//! Delivery outcomes in the ledger's table, beside the requests' items:
//!
//! - `call#<MessageId>`: written with `SENT` in the same transaction (its request's key), and
//!   then by the status path: the call's first final status (`final_status`, `final_at`) and
//!   its first answer (`answered_at`). Conditional: a final status is never overwritten.
//! - `outcome#<request key>`: the request's one outcome (`outcome`, the published `detail`,
//!   `published`), written once with `attribute_not_exists(id)`.
//!
//! Neither is touched by the request's own writes (a claim, `SENT`, a release), so a `SENT`
//! retried after an outcome was fixed erases nothing.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

use super::{
    failed, n, s, DynamoLedger, BODY_HASH, EXPIRATION, FIRST_SENT, ID, IDEMPOTENCY_KEY, NEXT_CALL,
    REDIAL_BODY, REDIAL_POLICY, REGION, REQUEST_KEY, REQUEST_TTL, SQS_MESSAGE_ID, STATUS,
    VOICE_MESSAGE_ID,
};
use crate::core::delivery::{
    CallStatus, DeliveryEvent, Fix, Fixed, Outcome, RecordedCall, RequestState, StoredOutcome,
};
use crate::core::ledger::{call_key, outcome_key, RequestIds, Status};
use crate::core::ports::{OutcomeLedger, PortError};
use crate::core::redial::{Keep, RedialPolicy};

const FINAL_STATUS: &str = "final_status";
const FINAL_AT: &str = "final_at";
const ANSWERED_AT: &str = "answered_at";
const OUTCOME: &str = "outcome";
const DETAIL: &str = "detail";
const PUBLISHED: &str = "published";
const PUBLISHING_UNTIL: &str = "publishing_until";

type Item = HashMap<String, AttributeValue>;

/// A fix's transaction: its actions, and what each one's refusal means.
type Together = (Vec<TransactWriteItem>, Vec<Option<Fixed>>);

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// A call's item read back; `None` when it names no request (no `SENT` wrote it).
fn recorded(call_id: &str, item: &Item, newly: bool) -> Option<RecordedCall> {
    let request_key = text(item, REQUEST_KEY)?;
    let final_status = text(item, FINAL_STATUS)
        .as_deref()
        .and_then(CallStatus::parse);
    let (status, at_ms) = match final_status {
        Some(status) => (Some(status), number(item, FINAL_AT)),
        None => match number(item, ANSWERED_AT) {
            Some(at) => (Some(CallStatus::Answered), Some(at)),
            None => (None, None),
        },
    };
    Some(RecordedCall {
        call_id: call_id.to_owned(),
        request_key,
        status,
        at_ms,
        newly,
    })
}

/// What a request's item keeps for a redial, when it keeps all of it.
fn kept(item: &Item) -> Option<Keep> {
    Some(Keep {
        body: text(item, REDIAL_BODY)?,
        policy: RedialPolicy::decode(&text(item, REDIAL_POLICY)?)?,
        first_sent_ms: number(item, FIRST_SENT)?,
        ttl: std::time::Duration::from_secs(number(item, REQUEST_TTL)?),
    })
}

fn stored(item: &Item) -> Result<StoredOutcome, PortError> {
    let outcome = text(item, OUTCOME)
        .as_deref()
        .and_then(Outcome::parse)
        .ok_or_else(|| PortError::Invalid("an outcome item without a valid outcome".into()))?;
    Ok(StoredOutcome {
        outcome,
        detail: text(item, DETAIL).unwrap_or_default(),
        published: item
            .get(PUBLISHED)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        // Missing (an older item): free to publish.
        publishing_until_ms: number(item, PUBLISHING_UNTIL).unwrap_or(0),
    })
}

impl DynamoLedger {
    async fn get(&self, key: String) -> Result<Option<Item>, PortError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(key))
            .consistent_read(true)
            .send()
            .await
            .map(|output| output.item)
            .map_err(|err| failed("GetItem", &err))
    }

    /// Writes an outcome in one transaction with what must hold for it: for a request
    /// ended without a call, a check that its item shows nothing that may have placed it;
    /// with redial, the kept body removed unless a later call was queued.
    async fn fix_together(&self, put: Put, fix: &Fix<'_>, now_s: u64) -> Result<Fixed, PortError> {
        let (actions, refusals) = self.together(put, fix, now_s)?;
        let answer = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(Fixed::Written),
            Err(SdkError::ServiceError(service)) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let reasons = cancelled.cancellation_reasons();
                    let failed_at = |index: usize| {
                        reasons
                            .get(index)
                            .and_then(|reason| reason.code())
                            .is_some_and(|code| code == "ConditionalCheckFailed")
                    };
                    if failed_at(0) {
                        return match reasons.first().and_then(|reason| reason.item()) {
                            Some(item) => stored(item).map(Fixed::Standing),
                            None => self.standing(fix.outcome_key).await,
                        };
                    }
                    let refused = (1..refusals.len()).find(|&index| failed_at(index));
                    match refused.and_then(|index| refusals[index].clone()) {
                        Some(fixed) => Ok(fixed),
                        None => Err(PortError::Call(format!(
                            "DynamoDB TransactWriteItems cancelled the outcome: {:?}",
                            reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                        ))),
                    }
                }
                _ => Err(failed(
                    "TransactWriteItems",
                    &SdkError::ServiceError(service),
                )),
            },
            Err(err) => Err(failed("TransactWriteItems", &err)),
        }
    }

    /// The transaction's actions, and what each one's refusal means (the outcome's own:
    /// it stands).
    fn together(&self, put: Put, fix: &Fix<'_>, now_s: u64) -> Result<Together, PortError> {
        let invalid =
            |err: aws_sdk_dynamodb::error::BuildError| PortError::Invalid(err.to_string());
        let mut actions = vec![TransactWriteItem::builder().put(put).build()];
        let mut refusals = vec![None];
        if let Some(request_key) = fix.unplaced {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key(ID, s(request_key))
                .condition_expression("attribute_not_exists(#status) OR #expiration < :now_s")
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_names("#expiration", EXPIRATION)
                .expression_attribute_values(":now_s", n(now_s))
                .build()
                .map_err(invalid)?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
            refusals.push(Some(Fixed::MaybePlaced));
        }
        if let Some(guard) = &fix.guard {
            let forget = Update::builder()
                .table_name(&self.table)
                .key(ID, s(guard.request_key))
                .update_expression("REMOVE #body")
                .expression_attribute_names("#body", REDIAL_BODY)
                .expression_attribute_names("#next", NEXT_CALL)
                .expression_attribute_values(":call", n(u64::from(guard.call)));
            // A redial ended without its call decides only as the call queued, with the
            // request's own body; any other call's end, unless a later call was queued.
            let forget = match guard.queued_body {
                Some(hash) => forget
                    .condition_expression(format!(
                        "attribute_exists({ID}) AND #next = :call AND #hash = :hash"
                    ))
                    .expression_attribute_names("#hash", BODY_HASH)
                    .expression_attribute_values(":hash", s(hash)),
                None => forget.condition_expression(format!(
                    "attribute_exists({ID}) AND (attribute_not_exists(#next) OR #next <= :call)"
                )),
            }
            .build()
            .map_err(invalid)?;
            actions.push(TransactWriteItem::builder().update(forget).build());
            refusals.push(Some(Fixed::Superseded));
        }
        Ok((actions, refusals))
    }

    async fn standing(&self, key: &str) -> Result<Fixed, PortError> {
        match self.get(outcome_key(key)).await? {
            Some(item) => stored(&item).map(Fixed::Standing),
            None => Err(PortError::Invalid(
                "an outcome refused as standing is not there".into(),
            )),
        }
    }
}

impl OutcomeLedger for DynamoLedger {
    async fn record_event(&self, event: &DeliveryEvent) -> Result<Option<RecordedCall>, PortError> {
        let key = call_key(&event.call_id);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(key))
            .expression_attribute_names("#request", REQUEST_KEY)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = if event.status.is_final() {
            update
                .update_expression("SET #final = :status, #final_at = :at")
                .condition_expression("attribute_exists(#request) AND attribute_not_exists(#final)")
                .expression_attribute_names("#final", FINAL_STATUS)
                .expression_attribute_names("#final_at", FINAL_AT)
                .expression_attribute_values(":status", s(event.status.as_str()))
                .expression_attribute_values(":at", n(event.at_ms))
        } else {
            update
                .update_expression("SET #answered = :at")
                .condition_expression(
                    "attribute_exists(#request) AND attribute_not_exists(#answered) AND attribute_not_exists(#final)",
                )
                .expression_attribute_names("#answered", ANSWERED_AT)
                .expression_attribute_names("#final", FINAL_STATUS)
                .expression_attribute_values(":at", n(event.at_ms))
        };
        match update.send().await {
            Ok(output) => Ok(output
                .attributes
                .as_ref()
                .and_then(|item| recorded(&event.call_id, item, true))),
            Err(SdkError::ServiceError(service)) => match service.err() {
                UpdateItemError::ConditionalCheckFailedException(refused) => Ok(refused
                    .item()
                    .and_then(|item| recorded(&event.call_id, item, false))),
                _ => Err(failed("UpdateItem", &SdkError::ServiceError(service))),
            },
            Err(err) => Err(failed("UpdateItem", &err)),
        }
    }

    async fn call(&self, call_id: &str) -> Result<Option<RecordedCall>, PortError> {
        Ok(self
            .get(call_key(call_id))
            .await?
            .and_then(|item| recorded(call_id, &item, false)))
    }

    async fn request(&self, key: &str) -> Result<Option<RequestState>, PortError> {
        let Some(item) = self.get(key.to_owned()).await? else {
            return Ok(None);
        };
        let Some(status) = text(&item, STATUS).as_deref().and_then(Status::parse) else {
            return Ok(None);
        };
        Ok(Some(RequestState {
            status,
            call_id: text(&item, VOICE_MESSAGE_ID),
            ids: RequestIds {
                sqs_message_id: text(&item, SQS_MESSAGE_ID).unwrap_or_default(),
                idempotency_key: text(&item, IDEMPOTENCY_KEY).unwrap_or_default(),
            },
            region: text(&item, REGION),
            keep: kept(&item),
            // Missing, it never lapses, as DynamoDB's `expiration < :now` fails on it.
            expiration: number(&item, EXPIRATION).unwrap_or(u64::MAX / 1_000),
        }))
    }

    async fn fix(&self, fix: &Fix<'_>) -> Result<Fixed, PortError> {
        let item = HashMap::from([
            (ID.to_owned(), s(&outcome_key(fix.outcome_key))),
            (OUTCOME.to_owned(), s(fix.outcome.as_str())),
            (DETAIL.to_owned(), s(&fix.detail)),
            (PUBLISHED.to_owned(), AttributeValue::Bool(false)),
            (PUBLISHING_UNTIL.to_owned(), n(fix.publishing_until_ms)),
            (EXPIRATION.to_owned(), n(fix.expiration)),
        ]);
        // Absent, or void by its stored expiration (a key used again after the ledger's TTL).
        let condition = format!("attribute_not_exists({ID}) OR #expiration < :now_s");
        let now_s = fix.now_ms / 1_000;
        if fix.unplaced.is_some() || fix.guard.is_some() {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .expression_attribute_names("#expiration", EXPIRATION)
                .expression_attribute_values(":now_s", n(now_s))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|err| PortError::Invalid(err.to_string()))?;
            return self.fix_together(put, fix, now_s).await;
        }
        let answer = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#expiration", EXPIRATION)
            .expression_attribute_values(":now_s", n(now_s))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(Fixed::Written),
            Err(SdkError::ServiceError(service)) => match service.err() {
                PutItemError::ConditionalCheckFailedException(refused) => match refused.item() {
                    Some(item) => stored(item).map(Fixed::Standing),
                    None => self.standing(fix.outcome_key).await,
                },
                _ => Err(failed("PutItem", &SdkError::ServiceError(service))),
            },
            Err(err) => Err(failed("PutItem", &err)),
        }
    }

    async fn mark_redial(&self, request_key: &str, call: u8) -> Result<bool, PortError> {
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, s(request_key))
            .update_expression("SET #next = :call")
            .condition_expression(
                "attribute_exists(#body) AND (attribute_not_exists(#next) OR #next <= :call)",
            )
            .expression_attribute_names("#body", REDIAL_BODY)
            .expression_attribute_names("#next", NEXT_CALL)
            .expression_attribute_values(":call", n(u64::from(call)))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(failed("UpdateItem", &err)),
        }
    }

    async fn published(&self, outcome_key_: &str) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ID, s(&outcome_key(outcome_key_)))
            .update_expression("SET #published = :yes")
            .condition_expression(format!("attribute_exists({ID})"))
            .expression_attribute_names("#published", PUBLISHED)
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| failed("UpdateItem", &err))
    }
}
