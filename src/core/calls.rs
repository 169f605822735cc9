//! A request's calls as its outcome lists them: the first under the request's own key, each
//! redial under its own key derived from it ([`crate::core::ledger::redial_key`]), each found
//! with its status through its call's item.

use crate::core::delivery::{CallRecord, RecordedCall, RequestState};
use crate::core::ledger::redial_key;
use crate::core::ports::{OutcomeLedger, PortError};

/// The request `request_key` (its first call's state, which holds its ids and what a redial
/// needs) and its calls 1 to `upto` that were placed, in order, as the ledger holds them at
/// `now_ms`. `known` is a call already read, not read again.
pub async fn calls_of<O: OutcomeLedger>(
    ledger: &O,
    request_key: &str,
    upto: u8,
    known: Option<&RecordedCall>,
    now_ms: u64,
) -> Result<(Option<RequestState>, Vec<CallRecord>), PortError> {
    let mut first = None;
    let mut calls = Vec::new();
    for call in 1..=upto.max(1) {
        // An item past its expiration is an earlier request's under a key used again.
        let state = ledger.request(&redial_key(request_key, call)).await?;
        let Some(state) = state.filter(|state| state.is_live(now_ms)) else {
            continue;
        };
        // The last call is the one whose status decides, when known: under one key a call
        // placed again (an unknown outcome retried) names the newest on the request's item.
        let recorded = match (known.filter(|_| call == upto), state.call_id.as_deref()) {
            (Some(known), _) => Some(known.clone()),
            (None, Some(call_id)) => ledger.call(call_id).await?.or_else(|| {
                Some(RecordedCall {
                    call_id: call_id.to_owned(),
                    request_key: String::new(),
                    status: None,
                    at_ms: None,
                    newly: false,
                })
            }),
            (None, None) => None,
        };
        if let Some(recorded) = recorded {
            calls.push(CallRecord {
                message_id: recorded.call_id,
                status: recorded.status.map(|s| s.as_str()),
                at: recorded.at_ms,
                region: state.region.clone(),
            });
        }
        if call == 1 {
            first = Some(state);
        }
    }
    Ok((first, calls))
}
