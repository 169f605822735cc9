//! `Ledger` in memory: the test fake, with the same claim rule the DynamoDB adapter writes as
//! a condition expression; and `OutcomeLedger` in memory, for local runs of delivery
//! outcomes, with the same rules (the first final status stands, an outcome is fixed once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::core::delivery::{DeliveryEvent, Fix, Fixed, RecordedCall, RequestState, StoredOutcome};
use crate::core::ledger::{may_claim, Claim, Entry, Finish, RequestIds, Status};
use crate::core::ports::{ClaimAnswer, Ledger, OutcomeLedger, PortError};
use crate::core::redial::Keep;

#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: Mutex<HashMap<String, Entry>>,
    /// While set, every call fails, as an unreachable table would.
    down: AtomicBool,
    /// Delivery outcomes: each request's ids and region, each call, each outcome.
    outcomes: Mutex<Outcomes>,
}

/// A request's ids, region and what it keeps for a redial, with the call queued last.
#[derive(Debug, Default, Clone)]
struct Request {
    ids: RequestIds,
    region: Option<String>,
    keep: Option<Keep>,
    next_call: Option<u8>,
}

#[derive(Debug, Default)]
struct Outcomes {
    requests: HashMap<String, Request>,
    calls: HashMap<String, RecordedCall>,
    fixed: HashMap<String, StoredOutcome>,
}

impl MemoryLedger {
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.entries().get(key).cloned()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn outcomes(&self) -> MutexGuard<'_, Outcomes> {
        self.outcomes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_up(&self) -> Result<(), PortError> {
        if self.down.load(Ordering::SeqCst) {
            Err(PortError::Call("ledger unavailable".to_owned()))
        } else {
            Ok(())
        }
    }
}

impl Ledger for MemoryLedger {
    async fn claim(&self, claim: &Claim) -> Result<ClaimAnswer, PortError> {
        self.check_up()?;
        let mut entries = self.entries();
        if let Some(standing) = entries
            .get(&claim.key)
            .filter(|existing| !may_claim(Some(existing), claim))
        {
            return Ok(ClaimAnswer::Refused(standing.clone()));
        }
        let replaced = entries.insert(claim.key.clone(), claim.entry.clone());
        self.outcomes().requests.insert(
            claim.key.clone(),
            Request {
                ids: claim.request.clone(),
                keep: claim.keep.clone(),
                ..Request::default()
            },
        );
        Ok(ClaimAnswer::Claimed { replaced })
    }

    async fn finish(&self, claim: &Claim, last: &Finish) -> Result<(), PortError> {
        self.check_up()?;
        let mut entries = self.entries();
        let own = entries.get(&claim.key).is_some_and(|entry| {
            entry.claim_id == claim.entry.claim_id && entry.status == Status::InProgress
        });
        match last {
            // The truth whoever holds the key now: the call went out. Missing, it is written
            // whole.
            Finish::Sent {
                voice_message_id,
                region,
            } => {
                let entry = entries
                    .entry(claim.key.clone())
                    .or_insert_with(|| claim.entry.clone());
                entry.status = Status::Sent;
                entry.claim_id = claim.entry.claim_id.clone();
                entry.voice_message_id = voice_message_id.clone();
                let mut outcomes = self.outcomes();
                let request = outcomes.requests.entry(claim.key.clone()).or_default();
                request.ids = claim.request.clone();
                request.region = region.clone();
                if let Some(id) = voice_message_id {
                    outcomes
                        .calls
                        .entry(id.clone())
                        .or_insert_with(|| RecordedCall {
                            call_id: id.clone(),
                            request_key: claim.key.clone(),
                            status: None,
                            at_ms: None,
                            newly: false,
                        });
                }
            }
            Finish::Unknown if own => {
                if let Some(entry) = entries.get_mut(&claim.key) {
                    entry.status = Status::Unknown;
                }
            }
            Finish::Release if own => {
                entries.remove(&claim.key);
            }
            // Taken over or finished since: the standing entry stays.
            Finish::Unknown | Finish::Release => {}
        }
        Ok(())
    }

    async fn redial_due(
        &self,
        request_key: &str,
        call: u8,
        body_hash: &str,
    ) -> Result<bool, PortError> {
        self.check_up()?;
        let hash_matches = self
            .entry(request_key)
            .is_some_and(|entry| entry.body_hash == body_hash);
        let outcomes = self.outcomes();
        Ok(hash_matches
            && outcomes
                .requests
                .get(request_key)
                .is_some_and(|r| r.keep.is_some() && r.next_call == Some(call)))
    }
}

impl OutcomeLedger for MemoryLedger {
    async fn record_event(&self, event: &DeliveryEvent) -> Result<Option<RecordedCall>, PortError> {
        self.check_up()?;
        let mut outcomes = self.outcomes();
        let Some(call) = outcomes.calls.get_mut(&event.call_id) else {
            return Ok(None);
        };
        let decided = call.status.is_some_and(|status| status.is_final());
        let newly = if event.status.is_final() {
            !decided
        } else {
            !decided && call.status.is_none()
        };
        if newly {
            call.status = Some(event.status);
            call.at_ms = Some(event.at_ms);
        }
        Ok(Some(RecordedCall {
            newly,
            ..call.clone()
        }))
    }

    async fn call(&self, call_id: &str) -> Result<Option<RecordedCall>, PortError> {
        self.check_up()?;
        Ok(self.outcomes().calls.get(call_id).cloned())
    }

    async fn request(&self, key: &str) -> Result<Option<RequestState>, PortError> {
        self.check_up()?;
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        let request = self
            .outcomes()
            .requests
            .get(key)
            .cloned()
            .unwrap_or_default();
        Ok(Some(RequestState {
            status: entry.status,
            call_id: entry.voice_message_id,
            ids: request.ids,
            region: request.region,
            keep: request.keep,
            expiration: entry.expiration,
        }))
    }

    async fn fix(&self, fix: &Fix<'_>) -> Result<Fixed, PortError> {
        self.check_up()?;
        let placed = fix.unplaced.is_some_and(|key| self.entry(key).is_some());
        // Read before the outcomes' lock: `finish` takes the entries' lock first.
        let hash = fix
            .guard
            .and_then(|guard| self.entry(guard.request_key))
            .map(|entry| entry.body_hash);
        let mut outcomes = self.outcomes();
        if let Some(stood) = outcomes.fixed.get(fix.outcome_key) {
            return Ok(Fixed::Standing(stood.clone()));
        }
        if placed {
            return Ok(Fixed::MaybePlaced);
        }
        if let Some(guard) = &fix.guard {
            let Some(request) = outcomes.requests.get_mut(guard.request_key) else {
                return Ok(Fixed::Superseded);
            };
            let refused = match guard.queued_body {
                Some(queued) => {
                    request.next_call != Some(guard.call) || hash.as_deref() != Some(queued)
                }
                None => request.next_call.is_some_and(|next| next > guard.call),
            };
            if refused {
                return Ok(Fixed::Superseded);
            }
            request.keep = None;
        }
        outcomes.fixed.insert(
            fix.outcome_key.to_owned(),
            StoredOutcome {
                outcome: fix.outcome,
                detail: fix.detail.clone(),
                published: false,
                publishing_until_ms: fix.publishing_until_ms,
            },
        );
        Ok(Fixed::Written)
    }

    async fn mark_redial(&self, request_key: &str, call: u8) -> Result<bool, PortError> {
        self.check_up()?;
        if self.entry(request_key).is_none() {
            return Ok(false);
        }
        let mut outcomes = self.outcomes();
        let Some(request) = outcomes.requests.get_mut(request_key) else {
            return Ok(false);
        };
        if request.keep.is_none() || request.next_call.is_some_and(|next| next > call) {
            return Ok(false);
        }
        request.next_call = Some(call);
        Ok(true)
    }

    async fn published(&self, outcome_key: &str) -> Result<(), PortError> {
        self.check_up()?;
        if let Some(stood) = self.outcomes().fixed.get_mut(outcome_key) {
            stood.published = true;
        }
        Ok(())
    }
}
