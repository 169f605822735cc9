//! `Ledger` over DynamoDB: one item per key (`id`), claimed with a conditional put that
//! returns the standing item when the condition fails, in the same call.
//!
//! Claims and `SENT` writes that meet go out together ([`group`]: one `TransactWriteItems`
//! per group), so a busy batch pays for about one request per group rather than two per
//! record. Taking over an unknown outcome is a single conditional `PutItem` whose condition is
//! [`crate::core::ledger::may_claim`] written for DynamoDB (the integration tests run the same cases
//! against both); the rare `UNKNOWN` and release are single conditional writes too.

mod group;
mod outcomes;

use group::{Grouped, Groups};

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

use crate::adapters::lazy::Lazy;

use crate::core::ledger::{Claim, Entry, Finish, Status, UnknownOutcome};
use crate::core::ports::{ClaimAnswer, Ledger, PortError};

const ID: &str = "id";
const STATUS: &str = "status";
const BODY_HASH: &str = "body_hash";
const CLAIM_ID: &str = "claim_id";
const LEASE_UNTIL: &str = "lease_until";
const EXPIRATION: &str = "expiration";
const VOICE_MESSAGE_ID: &str = "voice_message_id";
const SQS_MESSAGE_ID: &str = "sqs_message_id";
const IDEMPOTENCY_KEY: &str = "idempotency_key";
const REGION: &str = "region";
/// With redial on, what the status path needs to call again: the body (the only copy of a
/// number and text anywhere, encrypted at rest, removed with the request's outcome or by the
/// table's TTL), the policy, the first send and the time to live.
const REDIAL_BODY: &str = "redial_body";
const REDIAL_POLICY: &str = "redial_policy";
const FIRST_SENT: &str = "first_sent";
const REQUEST_TTL: &str = "request_ttl";
/// The redial the status path queued last (its call number), on the request's item.
const NEXT_CALL: &str = "next_call";
/// On a call's item: the key of the request that placed it.
const REQUEST_KEY: &str = "request_key";

/// `Unknown` and `Release` touch only the caller's own claim, still in progress.
const OWN_CLAIM_IN_PROGRESS: &str = "claim_id = :mine AND #status = :in_progress";

#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: Lazy<Client>,
    table: String,
    groups: Arc<Groups>,
}

impl DynamoLedger {
    pub fn new(client: impl Into<Lazy<Client>>, table: String) -> Self {
        let client = client.into();
        Self {
            groups: Groups::new(client.clone(), table.clone(), false),
            client,
            table,
        }
    }

    /// The ledger with delivery outcomes on: every `SENT` also writes its call's item (found
    /// by the call's message id), in the same transaction. Off, `SENT` is written alone, as
    /// it always was.
    pub fn recording_calls(client: impl Into<Lazy<Client>>, table: String) -> Self {
        let client = client.into();
        Self {
            groups: Groups::new(client.clone(), table.clone(), true),
            client,
            table,
        }
    }

    /// A claim with the whole of `may_claim` as its condition, which returns what it
    /// replaced: taking over an unknown outcome, or anything a group could not finish.
    async fn claim_alone(&self, claim: &Claim) -> Result<ClaimAnswer, PortError> {
        // `may_claim`: free, void by its stored expiration, or (retry policy) the same
        // message whose outcome is unknown: marked so, or a claim whose lease ran out.
        let mut condition = format!("attribute_not_exists({ID}) OR #expiration < :now_s");
        let mut names = HashMap::from([("#expiration".to_owned(), EXPIRATION.to_owned())]);
        let mut values = HashMap::from([(":now_s".to_owned(), n(claim.now_ms / 1_000))]);
        if claim.on_unknown == UnknownOutcome::Retry {
            condition.push_str(&format!(
                " OR ({BODY_HASH} = :hash AND (#status = :unknown OR (#status = :in_progress AND {LEASE_UNTIL} < :now_ms)))"
            ));
            names.insert("#status".to_owned(), STATUS.to_owned());
            values.extend([
                (":hash".to_owned(), s(&claim.entry.body_hash)),
                (":unknown".to_owned(), s(Status::Unknown.as_str())),
                (":in_progress".to_owned(), s(Status::InProgress.as_str())),
                (":now_ms".to_owned(), n(claim.now_ms)),
            ]);
        }
        // The SDK's future (kilobytes) on the heap: the engine's futures that await a claim
        // or a finish stay small, and are not copied kilobytes at a time for every record.
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(request_item(
                claim,
                &claim.entry,
                self.groups.recording(),
            )))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send();
        let answer = Box::pin(request).await;
        match answer {
            Ok(output) => Ok(ClaimAnswer::Claimed {
                replaced: output.attributes().map(entry).transpose()?,
            }),
            Err(SdkError::ServiceError(service)) => match service.err() {
                PutItemError::ConditionalCheckFailedException(refused) => refused
                    .item()
                    .ok_or_else(|| {
                        PortError::Invalid(
                            "a refused claim came back without the standing item".to_owned(),
                        )
                    })
                    .and_then(entry)
                    .map(ClaimAnswer::Refused),
                _ => Err(failed("PutItem", &SdkError::ServiceError(service))),
            },
            Err(err) => Err(failed("PutItem", &err)),
        }
    }

    /// Creates the ledger's table as `template.yaml` declares it (key `id`, String; on
    /// demand), for local endpoints: the tests and the benchmark.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), PortError> {
        let attribute = AttributeDefinition::builder()
            .attribute_name(ID)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|err| PortError::Invalid(err.to_string()))?;
        let key = KeySchemaElement::builder()
            .attribute_name(ID)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|err| PortError::Invalid(err.to_string()))?;
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute)
            .key_schema(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| failed("CreateTable", &err))
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn item(key: &str, entry: &Entry) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (ID.to_owned(), s(key)),
        (STATUS.to_owned(), s(entry.status.as_str())),
        (BODY_HASH.to_owned(), s(&entry.body_hash)),
        (CLAIM_ID.to_owned(), s(&entry.claim_id)),
        (LEASE_UNTIL.to_owned(), n(entry.lease_until_ms)),
        (EXPIRATION.to_owned(), n(entry.expiration)),
    ]);
    if let Some(id) = &entry.voice_message_id {
        item.insert(VOICE_MESSAGE_ID.to_owned(), s(id));
    }
    item
}

/// The longest `IdempotencyKey` kept in clear for the outcome to name: a longer one is named
/// by its ledger key (its hash).
const MAX_CLEAR_KEY_BYTES: usize = 1_024;

/// A request's item: its entry, and (delivery outcomes on) the ids its outcome names. Off,
/// it is the entry alone, as it always was.
fn request_item(claim: &Claim, entry: &Entry, recording: bool) -> HashMap<String, AttributeValue> {
    let mut item = item(&claim.key, entry);
    if !recording {
        return item;
    }
    item.insert(SQS_MESSAGE_ID.to_owned(), s(&claim.request.sqs_message_id));
    let key = &claim.request.idempotency_key;
    let named = if key.len() <= MAX_CLEAR_KEY_BYTES {
        key
    } else {
        &claim.key
    };
    item.insert(IDEMPOTENCY_KEY.to_owned(), s(named));
    if let Some(keep) = &claim.keep {
        item.insert(REDIAL_BODY.to_owned(), s(&keep.body));
        item.insert(REDIAL_POLICY.to_owned(), s(&keep.policy.encode()));
        item.insert(FIRST_SENT.to_owned(), n(keep.first_sent_ms));
        item.insert(REQUEST_TTL.to_owned(), n(keep.ttl.as_secs()));
    }
    item
}

fn entry(item: &HashMap<String, AttributeValue>) -> Result<Entry, PortError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let status = text(STATUS)
        .as_deref()
        .and_then(Status::parse)
        .ok_or_else(|| PortError::Invalid("ledger item without a valid status".to_owned()))?;
    Ok(Entry {
        status,
        body_hash: text(BODY_HASH).unwrap_or_default(),
        claim_id: text(CLAIM_ID).unwrap_or_default(),
        // Missing, the claim counts as held, as DynamoDB's `lease_until < :now_ms` fails on it.
        lease_until_ms: number(LEASE_UNTIL).unwrap_or(u64::MAX),
        expiration: number(EXPIRATION).unwrap_or(u64::MAX / 1_000),
        voice_message_id: text(VOICE_MESSAGE_ID),
    })
}

/// A write to one's own claim that finds it taken over or finished since is done: the
/// standing entry is the newer truth.
fn finished_unless_taken_over<T, E>(
    answer: Result<T, SdkError<E>>,
    what: &str,
) -> Result<(), PortError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match answer {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(service))
            if service.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(())
        }
        Err(err) => Err(failed(what, &err)),
    }
}

fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
    err: &SdkError<E>,
) -> PortError {
    PortError::Call(crate::adapters::sdk_error::sentence(
        &format!("DynamoDB {what}"),
        err,
    ))
}

impl Ledger for DynamoLedger {
    async fn claim(&self, claim: &Claim) -> Result<ClaimAnswer, PortError> {
        match self.groups.claim(claim).await {
            Grouped::Answered(answer) => Ok(answer),
            Grouped::Alone => self.claim_alone(claim).await,
        }
    }

    async fn finish(&self, claim: &Claim, last: &Finish) -> Result<(), PortError> {
        let key = HashMap::from([(ID.to_owned(), s(&claim.key))]);
        let mine = s(&claim.entry.claim_id);
        match last {
            Finish::Sent {
                voice_message_id,
                region,
            } => {
                self.groups
                    .sent(claim, voice_message_id.clone(), region.as_deref())
                    .await
            }
            Finish::Unknown => finished_unless_taken_over(
                Box::pin(
                    self.client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .update_expression("SET #status = :unknown")
                        .condition_expression(OWN_CLAIM_IN_PROGRESS)
                        .expression_attribute_names("#status", STATUS)
                        .expression_attribute_values(":unknown", s(Status::Unknown.as_str()))
                        .expression_attribute_values(":in_progress", s(Status::InProgress.as_str()))
                        .expression_attribute_values(":mine", mine)
                        .send(),
                )
                .await,
                "UpdateItem",
            ),
            Finish::Release => release(&self.client, &self.table, claim).await,
        }
    }

    async fn redial_due(
        &self,
        request_key: &str,
        call: u8,
        body_hash: &str,
    ) -> Result<bool, PortError> {
        let request = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, s(request_key))
            .consistent_read(true)
            .send();
        let item = Box::pin(request)
            .await
            .map_err(|err| failed("GetItem", &err))?
            .item;
        let Some(item) = item else {
            return Ok(false);
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
        let queued = item
            .get(NEXT_CALL)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u8>().ok());
        Ok(text(REDIAL_BODY).is_some()
            && text(BODY_HASH).map(String::as_str) == Some(body_hash)
            && queued == Some(call))
    }
}

/// Deletes `claim` if it still stands as written, in progress: a claim that certainly placed
/// nothing, or one nobody is left to use.
async fn release(client: &Client, table: &str, claim: &Claim) -> Result<(), PortError> {
    let request = client
        .delete_item()
        .table_name(table)
        .key(ID, s(&claim.key))
        .condition_expression(OWN_CLAIM_IN_PROGRESS)
        .expression_attribute_names("#status", STATUS)
        .expression_attribute_values(":in_progress", s(Status::InProgress.as_str()))
        .expression_attribute_values(":mine", s(&claim.entry.claim_id))
        .send();
    finished_unless_taken_over(Box::pin(request).await, "DeleteItem")
}
