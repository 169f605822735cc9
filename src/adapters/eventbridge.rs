//! `OutcomeBus` over EventBridge: `PutEvents` to `OUTCOME_EVENT_BUS_NAME`, up to 10 entries a
//! call; an entry EventBridge refuses is answered with its own error, so the caller retries
//! just that one.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::adapters::lazy::Lazy;

use crate::core::ports::{OutcomeBus, PortError};

/// The outcome event's source and detail-type.
pub const OUTCOME_SOURCE: &str = "voice-dispatch";
pub const OUTCOME_DETAIL_TYPE: &str = "Voice Call Outcome";

/// `PutEvents` takes at most 10 entries.
const MAX_ENTRIES: usize = 10;

#[derive(Debug, Clone)]
pub struct EventBridgeOutcomes {
    client: Lazy<Client>,
    bus: String,
}

impl EventBridgeOutcomes {
    pub fn new(client: impl Into<Lazy<Client>>, bus: String) -> Self {
        Self {
            client: client.into(),
            bus,
        }
    }

    async fn put(&self, details: &[&str]) -> Vec<Result<(), PortError>> {
        let entries: Vec<PutEventsRequestEntry> = details
            .iter()
            .map(|detail| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(OUTCOME_SOURCE)
                    .detail_type(OUTCOME_DETAIL_TYPE)
                    .detail(*detail)
                    .build()
            })
            .collect();
        match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                let answers = output.entries();
                (0..details.len())
                    .map(|index| match answers.get(index) {
                        Some(entry) if entry.error_code().is_none() => Ok(()),
                        Some(entry) => Err(PortError::Entry {
                            code: entry.error_code().unwrap_or_default().to_owned(),
                            message: entry.error_message().unwrap_or_default().to_owned(),
                        }),
                        None => Err(PortError::NotSent),
                    })
                    .collect()
            }
            Err(err) => {
                let error = PortError::Call(crate::adapters::sdk_error::sentence(
                    "EventBridge PutEvents",
                    &err,
                ));
                vec![Err(error); details.len()]
            }
        }
    }
}

impl OutcomeBus for EventBridgeOutcomes {
    async fn publish(&self, details: &[&str]) -> Vec<Result<(), PortError>> {
        let calls = details.chunks(MAX_ENTRIES).map(|chunk| self.put(chunk));
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}
