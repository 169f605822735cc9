//! What a record's processing has done so far, kept outside its future so that a panic
//! leaves it readable: the outcome as far as it got (its masked destination, its expiry, the
//! attempts made and their region), whether a send is out (the call may have been placed),
//! and the ledger claim the record holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::core::ledger::Claim;
use crate::core::report::RecordOutcome;
use crate::core::route::RegionTag;

#[derive(Debug, Default)]
pub(super) struct Progress {
    /// A send started and nothing since said it placed nothing.
    maybe_placed: AtomicBool,
    /// The claim held, and whether an earlier delivery may have placed the call.
    claim: Mutex<Option<(Claim, bool)>>,
    so_far: Mutex<Option<RecordOutcome>>,
}

/// What a panic left: the outcome so far, the claim held, and whether the call may have
/// been placed.
pub(super) struct Left {
    pub(super) so_far: Option<RecordOutcome>,
    pub(super) claim: Option<(Claim, bool)>,
    pub(super) maybe_placed: bool,
}

fn lock<T>(held: &Mutex<T>) -> MutexGuard<'_, T> {
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Progress {
    /// The record's body was read: its outcome so far.
    pub(super) fn prepared(&self, outcome: &RecordOutcome) {
        *lock(&self.so_far) = Some(outcome.clone());
    }

    /// An attempt goes out through `region`.
    pub(super) fn attempted(&self, attempts: u32, region: Option<&RegionTag>) {
        if let Some(outcome) = lock(&self.so_far).as_mut() {
            outcome.attempts = attempts;
            outcome.region = region.cloned();
        }
    }

    /// A send starts: the sender has built its request and handed back its future, which
    /// the engine now waits on. From here on a panic may come after the request went out.
    pub(super) fn send_starts(&self) {
        self.maybe_placed.store(true, Ordering::Relaxed);
    }

    /// The send's answer came: `maybe_placed` false when it certainly placed nothing (the
    /// next attempt starts afresh).
    pub(super) fn answered(&self, maybe_placed: bool) {
        self.maybe_placed.store(maybe_placed, Ordering::Relaxed);
    }

    /// The record holds `claim`; `placed_before`: an earlier delivery may have placed it.
    pub(super) fn hold(&self, claim: &Claim, placed_before: bool) {
        *lock(&self.claim) = Some((claim.clone(), placed_before));
    }

    /// What a panic left behind.
    pub(super) fn left(self) -> Left {
        Left {
            so_far: self.so_far.into_inner().unwrap_or_else(|p| p.into_inner()),
            claim: self.claim.into_inner().unwrap_or_else(|p| p.into_inner()),
            maybe_placed: self.maybe_placed.load(Ordering::Relaxed),
        }
    }
}
