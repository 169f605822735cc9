//! The SQS side of settling a batch: `SendMessageBatch` to the dead-letter queue and
//! `ChangeMessageVisibilityBatch` on the source queue.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::adapters::sdk_error::sentence;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

use crate::adapters::lazy::Lazy;
use futures::StreamExt;

use crate::adapters::status_event::check_body;
use crate::core::dead_letter::FIRST_SENT_ATTRIBUTE;
use crate::core::dead_letter::REASON_ATTRIBUTE;
use crate::core::delivery::Check;
use crate::core::ports::{
    CallQueue, CheckQueue, DeadLetter, DeadLetterQueue, PortError, RedeliveryDelay, Redial,
    VisibilityDelay,
};
use crate::core::redial;

use crate::core::record::Attribute;

/// SQS batch calls take at most 10 entries.
const MAX_BATCH_ENTRIES: usize = 10;
/// A `SendMessageBatch` call carries at most this many bytes of bodies and attributes in
/// all: SQS's message size limit, 1 MiB since August 2025 (it was 256 KiB).
const MAX_BATCH_BYTES: usize = crate::core::dead_letter::MAX_MESSAGE_BYTES;
/// Batch calls in flight at once while settling one invocation.
const CALLS_IN_FLIGHT: usize = 8;

/// The dead-letter queue named by `DEAD_LETTER_QUEUE_URL`.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue {
    client: Lazy<Client>,
    queue_url: String,
}

impl SqsDeadLetterQueue {
    pub fn new(client: impl Into<Lazy<Client>>, queue_url: String) -> Self {
        Self {
            client: client.into(),
            queue_url,
        }
    }

    async fn send_chunk(&self, letters: &[DeadLetter<'_>]) -> Vec<Result<(), PortError>> {
        let (mut results, entries) = build_entries(letters, entry);
        if entries.is_empty() {
            return results;
        }
        send_batch(&self.client, &self.queue_url, entries, &mut results).await;
        results
    }
}

impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn send(&self, letters: &[DeadLetter<'_>]) -> Vec<Result<(), PortError>> {
        // Futures built in a loop, not in a closure: a closure over borrowed letters trips
        // the compiler's higher-ranked `Send` check for this async trait method.
        let mut calls = Vec::new();
        for chunk in chunks(letters) {
            calls.push(self.send_chunk(chunk));
        }
        in_order(calls).await
    }
}

/// Splits letters, in order, into `SendMessageBatch` calls within both SQS limits.
fn chunks<'l, 'a>(letters: &'l [DeadLetter<'a>]) -> Vec<&'l [DeadLetter<'a>]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, letter) in letters.iter().enumerate() {
        let size = letter.size();
        let full = index - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES;
        if full && index > start {
            chunks.push(&letters[start..index]);
            start = index;
            bytes = 0;
        }
        bytes += size;
    }
    if start < letters.len() {
        chunks.push(&letters[start..]);
    }
    chunks
}

fn entry(index: usize, letter: &DeadLetter<'_>) -> Result<SendMessageBatchRequestEntry, PortError> {
    let mut attributes =
        HashMap::with_capacity(letter.attributes.len() + letter.identity.len() + 1);
    for (name, value) in &letter.attributes {
        attributes.insert((*name).to_owned(), attribute_value(value)?);
    }
    for identity in &letter.identity {
        let value = MessageAttributeValue::builder()
            .data_type(identity.data_type)
            .string_value(&identity.value)
            .build()
            .map_err(|err| PortError::Invalid(err.to_string()))?;
        attributes.insert(identity.name.to_owned(), value);
    }
    if let Some(reason) = &letter.reason {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(|err| PortError::Invalid(err.to_string()))?;
        attributes.insert(REASON_ATTRIBUTE.to_owned(), value);
    }
    SendMessageBatchRequestEntry::builder()
        .id(entry_id(index))
        .message_body(letter.body)
        .set_message_attributes((!attributes.is_empty()).then_some(attributes))
        .set_message_group_id(letter.fifo.map(|ids| ids.group_id.to_owned()))
        .set_message_deduplication_id(letter.fifo.map(|ids| ids.deduplication_id.to_owned()))
        .build()
        .map_err(|err| PortError::Invalid(err.to_string()))
}

/// The producer's attribute, back into the API's form.
fn attribute_value(value: &Attribute<'_>) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .set_data_type(value.data_type.map(str::to_owned))
        .set_string_value(value.string_value.map(str::to_owned))
        .set_binary_value(value.binary_value.map(|b| Blob::new(b.to_vec())))
        .build()
        .map_err(|err| PortError::Invalid(err.to_string()))
}

/// The records of one source queue, whose visibility this changes.
#[derive(Debug)]
pub struct SqsRedelivery {
    client: Lazy<Client>,
    /// Queue URLs by ARN: resolved once per queue, kept across invocations.
    queue_urls: Mutex<HashMap<String, String>>,
}

impl SqsRedelivery {
    pub fn new(client: impl Into<Lazy<Client>>) -> Self {
        Self {
            client: client.into(),
            queue_urls: Mutex::new(HashMap::new()),
        }
    }

    /// The queue URL for an ARN (`arn:aws:sqs:region:account:name`), from `GetQueueUrl` with
    /// the name and owner account, so it works against any endpoint.
    async fn queue_url(&self, queue_arn: &str) -> Result<String, PortError> {
        if let Some(url) = self.cached_url(queue_arn) {
            return Ok(url);
        }
        let mut parts = queue_arn.rsplitn(3, ':');
        let (Some(name), Some(account)) = (parts.next(), parts.next()) else {
            return Err(PortError::Invalid(format!(
                "not an SQS queue ARN: {queue_arn}"
            )));
        };
        let output = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|err| PortError::Call(sentence("SQS GetQueueUrl", &err)))?;
        let url = output
            .queue_url()
            .ok_or_else(|| PortError::Invalid(format!("GetQueueUrl gave no URL for {queue_arn}")))?
            .to_owned();
        if let Ok(mut cache) = self.queue_urls.lock() {
            cache.insert(queue_arn.to_owned(), url.clone());
        }
        Ok(url)
    }

    fn cached_url(&self, queue_arn: &str) -> Option<String> {
        self.queue_urls.lock().ok()?.get(queue_arn).cloned()
    }

    async fn delay_chunk(
        &self,
        queue_url: &str,
        delays: &[VisibilityDelay<'_>],
    ) -> Vec<Result<(), PortError>> {
        let (mut results, entries) = build_entries(delays, |index, delay| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(entry_id(index))
                .receipt_handle(delay.receipt_handle)
                .visibility_timeout(i32::try_from(delay.seconds).unwrap_or(i32::MAX))
                .build()
                .map_err(|err| PortError::Invalid(err.to_string()))
        });
        if entries.is_empty() {
            return results;
        }
        match self
            .client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => record_answer(
                &mut results,
                output.successful().iter().map(|ok| ok.id()),
                output.failed(),
            ),
            Err(error) => record_call_error(
                &mut results,
                &PortError::Call(sentence("SQS ChangeMessageVisibilityBatch", &error)),
            ),
        }
        results
    }
}

impl RedeliveryDelay for SqsRedelivery {
    async fn delay(
        &self,
        queue_arn: &str,
        delays: &[VisibilityDelay<'_>],
    ) -> Vec<Result<(), PortError>> {
        let queue_url = match self.queue_url(queue_arn).await {
            Ok(url) => url,
            Err(error) => return vec![Err(error); delays.len()],
        };
        let mut calls = Vec::new();
        for chunk in delays.chunks(MAX_BATCH_ENTRIES) {
            calls.push(self.delay_chunk(&queue_url, chunk));
        }
        in_order(calls).await
    }
}

/// Runs batch calls, a few at a time, and joins their per-entry answers in order.
async fn in_order<F>(calls: Vec<F>) -> Vec<Result<(), PortError>>
where
    F: std::future::Future<Output = Vec<Result<(), PortError>>>,
{
    let answers: Vec<Vec<Result<(), PortError>>> = futures::stream::iter(calls)
        .buffered(CALLS_IN_FLIGHT)
        .collect()
        .await;
    answers.into_iter().flatten().collect()
}

/// Batch entry ids are positions within the call.
fn entry_id(index: usize) -> String {
    index.to_string()
}

/// Builds the entries of one batch call. Returns a result per item, `NotSent` until the
/// call answers, or the reason its entry could not be built; and the entries that could.
/// The status queue (`STATUS_QUEUE_URL`), where outcome timers wait: each a message
/// delayed up to 900 s.
#[derive(Debug, Clone)]
pub struct SqsCheckQueue {
    client: Lazy<Client>,
    queue_url: String,
}

impl SqsCheckQueue {
    pub fn new(client: impl Into<Lazy<Client>>, queue_url: String) -> Self {
        Self {
            client: client.into(),
            queue_url,
        }
    }

    async fn arm_chunk(&self, checks: &[Check]) -> Vec<Result<(), PortError>> {
        let (mut results, entries) = build_entries(checks, |index, check| {
            SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(check_body(check))
                .delay_seconds(check.delay.as_secs().min(900) as i32)
                .build()
                .map_err(|err| PortError::Invalid(err.to_string()))
        });
        send_batch(&self.client, &self.queue_url, entries, &mut results).await;
        results
    }
}

impl CheckQueue for SqsCheckQueue {
    async fn arm(&self, checks: &[Check]) -> Vec<Result<(), PortError>> {
        let calls: Vec<_> = checks
            .chunks(MAX_BATCH_ENTRIES)
            .map(|chunk| self.arm_chunk(chunk))
            .collect();
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// The call queue, where the status path puts a redial: the request's body, and in the
/// attributes reserved for it the call's number, the request's ledger key, the request's
/// first send (so its time to live counts from it) and, past SQS's longest delay, when it is
/// due.
pub struct SqsCallQueue {
    client: Lazy<Client>,
    queue_url: String,
}

impl SqsCallQueue {
    pub fn new(client: impl Into<Lazy<Client>>, queue_url: String) -> Self {
        Self {
            client: client.into(),
            queue_url,
        }
    }
}

fn typed(data_type: &str, value: String) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|err| PortError::Invalid(err.to_string()))
}

impl CallQueue for SqsCallQueue {
    async fn redial(&self, redial: &Redial<'_>) -> Result<(), PortError> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(redial.body)
            .delay_seconds(redial.delay.as_secs_f64().ceil().min(900.0) as i32)
            .message_attributes(
                redial::CALL_ATTRIBUTE,
                typed("Number", redial.call.to_string())?,
            )
            .message_attributes(
                redial::REQUEST_ATTRIBUTE,
                typed("String", redial.request_key.to_owned())?,
            )
            .message_attributes(
                FIRST_SENT_ATTRIBUTE,
                typed("Number", redial.first_sent_ms.to_string())?,
            );
        if let Some(at_ms) = redial.kept_until_ms {
            send =
                send.message_attributes(redial::AT_ATTRIBUTE, typed("Number", at_ms.to_string())?);
        }
        send.send()
            .await
            .map(|_| ())
            .map_err(|error| PortError::Call(sentence("SQS SendMessage", &error)))
    }
}

/// One `SendMessageBatch` of `entries` to `queue_url`, its answer entry by entry into
/// `results` (the dead-letter queue's and the status queue's alike).
async fn send_batch(
    client: &Client,
    queue_url: &str,
    entries: Vec<SendMessageBatchRequestEntry>,
    results: &mut [Result<(), PortError>],
) {
    match client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(output) => record_answer(
            results,
            output.successful().iter().map(|ok| ok.id()),
            output.failed(),
        ),
        Err(error) => record_call_error(
            results,
            &PortError::Call(sentence("SQS SendMessageBatch", &error)),
        ),
    }
}

fn build_entries<I, E>(
    items: &[I],
    build: impl Fn(usize, &I) -> Result<E, PortError>,
) -> (Vec<Result<(), PortError>>, Vec<E>) {
    let mut results = vec![Err(PortError::NotSent); items.len()];
    let mut entries = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match build(index, item) {
            Ok(entry) => entries.push(entry),
            Err(error) => results[index] = Err(error),
        }
    }
    (results, entries)
}

/// Reads a batch call's answer into the per-entry results (entry ids are positions).
fn record_answer<'o>(
    results: &mut [Result<(), PortError>],
    successful: impl Iterator<Item = &'o str>,
    failed: &[BatchResultErrorEntry],
) {
    fn slot<'r>(
        results: &'r mut [Result<(), PortError>],
        id: &str,
    ) -> Option<&'r mut Result<(), PortError>> {
        id.parse::<usize>()
            .ok()
            .and_then(|index| results.get_mut(index))
    }
    for id in successful {
        if let Some(result) = slot(results, id) {
            *result = Ok(());
        }
    }
    for entry in failed {
        if let Some(result) = slot(results, entry.id()) {
            *result = Err(PortError::Entry {
                code: entry.code().to_owned(),
                message: entry.message().unwrap_or("no message").to_owned(),
            });
        }
    }
}

/// A batch call that failed as a whole fails every entry that was sent with it; entries
/// that could not even be built keep their own reason.
fn record_call_error(results: &mut [Result<(), PortError>], error: &PortError) {
    for result in results.iter_mut() {
        if matches!(result, Err(PortError::NotSent)) {
            *result = Err(error.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(body: &str) -> DeadLetter<'_> {
        DeadLetter {
            body,
            attributes: Vec::new(),
            identity: Vec::new(),
            left_out: Vec::new(),
            reason: None,
            fifo: None,
        }
    }

    #[test]
    fn chunks_hold_at_most_ten_letters_in_order() {
        let bodies: Vec<String> = (0..23).map(|n| n.to_string()).collect();
        let letters: Vec<_> = bodies.iter().map(|b| letter(b)).collect();
        let sizes: Vec<usize> = chunks(&letters).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        assert_eq!(chunks(&letters)[2][0].body, "20");
    }

    #[test]
    fn chunks_stay_within_sqs_message_size_limit() {
        let big = "x".repeat(400_000);
        let letters: Vec<_> = (0..5).map(|_| letter(&big)).collect();
        let sizes: Vec<usize> = chunks(&letters).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 2, 1], "two 400 KB letters per 1 MiB call");
    }

    #[test]
    fn an_oversized_letter_travels_alone() {
        let huge = "x".repeat(MAX_BATCH_BYTES);
        let letters = [letter("a"), letter(&huge), letter("b")];
        let sizes: Vec<usize> = chunks(&letters).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
    }

    #[test]
    fn a_batch_answer_is_read_per_entry() {
        let mut results = vec![Err(PortError::NotSent); 3];
        let failed = BatchResultErrorEntry::builder()
            .id("1")
            .code("InvalidParameterValue")
            .sender_fault(true)
            .build()
            .unwrap();
        record_answer(&mut results, ["0", "2"].into_iter(), &[failed]);
        assert_eq!(results[0], Ok(()));
        let refused = results[1].clone().unwrap_err();
        assert_eq!(refused.to_string(), "InvalidParameterValue: no message");
        assert_eq!(results[2], Ok(()));
    }

    #[test]
    fn a_failed_call_fails_what_it_sent_and_keeps_earlier_reasons() {
        let bad_attribute = PortError::Invalid("bad attribute".to_owned());
        let mut results = vec![Err(PortError::NotSent), Err(bad_attribute.clone())];
        let reset = PortError::Call("connection reset".to_owned());
        record_call_error(&mut results, &reset);
        assert_eq!(results[0], Err(reset));
        assert_eq!(results[1], Err(bad_attribute));
    }

    #[test]
    fn no_letters_no_chunks() {
        assert!(chunks(&[]).is_empty());
    }
}
