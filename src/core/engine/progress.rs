//! What a record's processing has done so far, kept outside its future so that a panic
//! leaves it readable: whether a send started (from then on the call may have been placed)
//! and the ledger claim the record holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::core::ledger::Claim;

#[derive(Debug, Default)]
pub(super) struct Progress {
    send_started: AtomicBool,
    /// The claim held, and whether an earlier delivery may have placed the call.
    claim: Mutex<Option<(Claim, bool)>>,
}

impl Progress {
    /// A send starts: the sender has built its request and the engine waits for the answer.
    pub(super) fn send_starts(&self) {
        self.send_started.store(true, Ordering::Relaxed);
    }

    pub(super) fn send_started(&self) -> bool {
        self.send_started.load(Ordering::Relaxed)
    }

    /// The record holds `claim`; `placed_before`: an earlier delivery may have placed it.
    pub(super) fn hold(&self, claim: &Claim, placed_before: bool) {
        if let Ok(mut held) = self.claim.lock() {
            *held = Some((claim.clone(), placed_before));
        }
    }

    /// The claim held, if any.
    pub(super) fn claim(self) -> Option<(Claim, bool)> {
        self.claim.into_inner().ok().flatten()
    }
}
