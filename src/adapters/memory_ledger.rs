//! `Ledger` in memory: the test fake, with the same claim rule the DynamoDB adapter writes as
//! a condition expression.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::core::ledger::{may_claim, Claim, Entry, Finish, Status};
use crate::core::ports::{ClaimAnswer, Ledger, PortError};

#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: Mutex<HashMap<String, Entry>>,
    /// While set, every call fails, as an unreachable table would.
    down: AtomicBool,
}

impl MemoryLedger {
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.entries().get(key).cloned()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
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
                voice_message_id, ..
            } => {
                let entry = entries
                    .entry(claim.key.clone())
                    .or_insert_with(|| claim.entry.clone());
                entry.status = Status::Sent;
                entry.claim_id = claim.entry.claim_id.clone();
                entry.voice_message_id = voice_message_id.clone();
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
}
