//! What the Lambda event source mapping does, done by the test against a real SQS server:
//! receive up to 10 messages with all attributes, build the SQS event exactly as Lambda
//! delivers it, invoke the function, delete every record not reported as failed.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use base64::Engine as _;
use serde_json::{json, Value};
use voice_dispatch::core::report::BatchReport;
use voice_dispatch::wiring::Dispatch;

use crate::support::moto::{messages_left, Queue};
use voice_dispatch::adapters::lambda::ToResponse;

/// One delivery of a message to the function, as the test observed it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub receive_count: u32,
    /// The message's `SentTimestamp`, epoch milliseconds.
    pub sent_timestamp_ms: Option<u64>,
    pub at: Instant,
    /// The visibility timeout the function set for this delivery's retry, if any.
    pub retry_delay_seconds: Option<u32>,
    /// What the function did with it.
    pub fate: voice_dispatch::core::report::Fate,
    pub receipt_handle: String,
}

/// One receive at a time at moto, across every event source mapping of the test process.
static RECEIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct EventSourceMapping<'a> {
    pub sqs: &'a aws_sdk_sqs::Client,
    pub queue: &'a Queue,
    pub dispatch: &'a Dispatch,
    pub deliveries: Vec<Delivery>,
    pub reports: Vec<BatchReport>,
}

impl<'a> EventSourceMapping<'a> {
    pub fn new(sqs: &'a aws_sdk_sqs::Client, queue: &'a Queue, dispatch: &'a Dispatch) -> Self {
        Self {
            sqs,
            queue,
            dispatch,
            deliveries: Vec::new(),
            reports: Vec::new(),
        }
    }

    /// One receive and one invocation; returns how many records the event held.
    pub async fn poll_once(&mut self) -> usize {
        let messages = receive(self.sqs, self.queue).await;
        if messages.is_empty() {
            return 0;
        }
        let at = Instant::now();
        let event: SqsEvent = serde_json::from_value(lambda_event(&messages, &self.queue.arn))
            .expect("a Lambda SQS event");
        let report = self
            .dispatch
            .handle(&event, SystemTime::now() + Duration::from_secs(30))
            .await
            .expect("the function answers");

        // The response travels as JSON, as it does from Lambda to the event source mapping.
        let response_json = serde_json::to_string(&report.to_response()).unwrap();
        let response: SqsBatchResponse = serde_json::from_str(&response_json).unwrap();
        let failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|failure| failure.item_identifier)
            .collect();

        for (message, outcome) in messages.iter().zip(&report.outcomes) {
            self.deliveries.push(Delivery {
                message_id: outcome.message_id.clone(),
                receive_count: message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(0),
                sent_timestamp_ms: message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|ms| ms.parse().ok()),
                at,
                retry_delay_seconds: outcome.retry_delay_seconds,
                fate: outcome.fate,
                receipt_handle: message.receipt_handle().unwrap_or_default().to_owned(),
            });
        }
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| !failed.iter().any(|id| Some(id.as_str()) == m.message_id()))
            .collect();
        delete(self.sqs, self.queue, &done).await;
        self.reports.push(report);
        messages.len()
    }

    /// Polls until the queue holds nothing, visible, in flight or delayed ([`EmptyLooks`]).
    pub async fn drain(&mut self, limit: Duration) {
        let started = Instant::now();
        let mut looks = EmptyLooks::default();
        loop {
            assert!(
                started.elapsed() < limit,
                "the queue did not drain within {limit:?}"
            );
            if self.poll_once().await > 0 {
                looks.reset();
                continue;
            }
            if looks.drained(self.sqs, self.queue).await {
                return;
            }
        }
    }

    pub fn receives_of(&self, message_id: &str) -> Vec<&Delivery> {
        self.deliveries
            .iter()
            .filter(|delivery| delivery.message_id == message_id)
            .collect()
    }
}

/// Whether a queue is drained: it holds nothing, visible, in flight or delayed, on two looks
/// 300 ms apart with an empty receive between them. One look is not enough with moto: it
/// computes the visible count and then the in-flight count, each against the clock of its
/// own moment (`moto/sqs/models.py`: `visible` is `now > visible_at`), so a message whose
/// visibility timeout ends between the two is in neither, and the queue reads empty once.
/// The second look, 300 ms later, counts it as visible.
#[derive(Debug, Default)]
pub struct EmptyLooks(u32);

impl EmptyLooks {
    /// After an empty receive: looks at the queue. `true` on the second empty look in a
    /// row; otherwise waits before the next receive (300 ms after an empty look, 100 ms
    /// after one that found messages left).
    pub async fn drained(&mut self, sqs: &aws_sdk_sqs::Client, queue: &Queue) -> bool {
        if messages_left(sqs, queue).await == (0, 0) {
            self.0 += 1;
            if self.0 == 2 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        } else {
            self.0 = 0;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// A receive found messages: the looks start again.
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Deletes the messages the function's answer (a partial batch response, as JSON) does not
/// report, as the event source mapping does.
pub async fn delete_unreported(
    sqs: &aws_sdk_sqs::Client,
    queue: &Queue,
    messages: &[Message],
    response: &str,
) {
    let response: Value = serde_json::from_str(response).expect("a JSON answer");
    let failed = crate::support::failures(&response);
    let done: Vec<&Message> = messages
        .iter()
        .filter(|m| {
            !m.message_id()
                .is_some_and(|id| failed.iter().any(|f| f == id))
        })
        .collect();
    delete(sqs, queue, &done).await;
}

/// An SQS record in the shape Lambda gives it to a function.
fn lambda_record(message: &Message, queue_arn: &str) -> Value {
    let attributes: HashMap<&str, &str> = message
        .attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let message_attributes: serde_json::Map<String, Value> = message
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    let binary = value.binary_value().map(|blob| {
                        base64::engine::general_purpose::STANDARD.encode(blob.as_ref())
                    });
                    (
                        name.clone(),
                        json!({
                            "stringValue": value.string_value(),
                            "binaryValue": binary,
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": value.data_type(),
                        }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let region = queue_arn.split(':').nth(3).unwrap_or("us-east-1");
    json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body(),
        "md5OfMessageAttributes": message.md5_of_message_attributes(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    })
}

/// Receives up to 10 messages with every attribute, as the event source mapping does.
///
/// moto's ReceiveMessage checks a message's visibility and marks it received without a lock,
/// and moto_server answers requests on threads: two pollers receiving at once can be handed
/// the same message (seen here under load: one call placed twice). SQS hides a received
/// message atomically, so the pollers of this process take turns at moto.
pub async fn receive(sqs: &aws_sdk_sqs::Client, queue: &Queue) -> Vec<Message> {
    let _turn = RECEIVE.lock().await;
    sqs.receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default()
}

/// The SQS event Lambda would build from these messages.
pub fn lambda_event(messages: &[Message], queue_arn: &str) -> Value {
    json!({
        "Records": messages.iter().map(|m| lambda_record(m, queue_arn)).collect::<Vec<_>>()
    })
}

/// Deletes the messages the function did not report, as the event source mapping does.
pub async fn delete(sqs: &aws_sdk_sqs::Client, queue: &Queue, messages: &[&Message]) {
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, message)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .build()
                    .expect("a delete entry")
            })
            .collect();
        let output = sqs
            .delete_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("DeleteMessageBatch");
        assert!(output.failed().is_empty(), "{:?}", output.failed());
    }
}
