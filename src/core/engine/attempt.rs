//! One record's attempts: the gate (its expiry, the send cutoff, the circuit breaker, a
//! pacer permit), one send with the time the invocation can give it, and what a failure
//! means (the breaker and the pacer told, the failure classified, tried again in place only
//! when it certainly placed nothing).

use std::time::Duration;

use tokio::time::Instant;

use super::budget::{start_floor, Cutoffs};
use super::outcomes::{circuit_open, deadline_reached, rate_limited, AttemptLoop};
use super::progress::Progress;
use super::BatchEngine;
use crate::core::breaker;
use crate::core::classify::{
    self, classify, placed_nothing, signal, Disposition, SendFailure, Signal,
};
use crate::core::contract::VoiceMessage;
use crate::core::expiry::Expiry;
use crate::core::pacing::Permit;
use crate::core::ports::{Ledger, SentCall, VoiceSender};
use crate::core::record::Record;
use crate::core::report::{Fate, RecordOutcome};
use crate::core::route::{self, Route};

/// The longest wait between two attempts in place, whatever the attempt count.
const RETRY_CAP_FACTOR: u32 = 16;

/// What the gate says about the next attempt.
enum Gate {
    /// Go through this route: its breaker admitted it, with its pacer's permit when sends
    /// are paced.
    Go(Route, breaker::Attempt, Option<Permit>, AttemptLoop),
    /// Not now: the record's outcome says why.
    Stop(RecordOutcome),
    /// Look again: no permit before the record's expiry (the expiry check ends it), or the
    /// primary's probe went to another record while this one waited (it may move now).
    Again(AttemptLoop),
}

/// What one send came to.
enum Send {
    Answered(Result<SentCall, SendFailure>, breaker::Attempt),
    /// Cut at the abandon point: the call may have been placed. With what the wait said about
    /// the service: failing, when no answer came in at least the start floor's time.
    Abandoned(Option<Signal>),
}

/// After a failed attempt: done with this outcome, or wait and try again in place.
enum Next {
    Done(RecordOutcome),
    RetryAfter(Duration, AttemptLoop),
}

/// What the record's attempts carry from one to the next.
struct Tries<'a> {
    record: &'a Record<'a>,
    message: &'a VoiceMessage,
    /// Whether the failover region may place this message: failover is on and nothing
    /// pins it to the primary region. Its rerouted copy is made only for a send that goes
    /// there, never for every record while the primary is healthy.
    movable: bool,
    expiry: Option<Expiry>,
    cutoffs: Cutoffs,
    /// When this record was last throttled, to tell the account's quota from the
    /// recipient's.
    throttled_at: Option<Instant>,
    /// What the last failed attempt said about the service.
    last_signal: Option<Signal>,
    /// Where a send's start is marked, for a panic to read.
    progress: &'a Progress,
}

impl<S: VoiceSender, L: Ledger> BatchEngine<S, L> {
    /// The attempts at one record, through the breaker and the pacer, never after its expiry
    /// or the cutoff. Returns the outcome and whether the call may have been placed without
    /// an answer saying so (the ledger records that as unknown).
    pub(super) async fn attempts(
        &self,
        record: &Record<'_>,
        message: &VoiceMessage,
        expiry: Option<Expiry>,
        cutoffs: Cutoffs,
        mut attempt: AttemptLoop,
        progress: &Progress,
    ) -> (RecordOutcome, bool) {
        let movable = self.failover.is_some()
            && !attempt.maybe_placed_before
            && route::pinned(message).is_none();
        let mut tries = Tries {
            record,
            message,
            movable,
            expiry,
            cutoffs,
            throttled_at: None,
            last_signal: None,
            progress,
        };
        loop {
            let (route, admitted, permit) = match self.gate(&tries, attempt).await {
                Gate::Go(route, admitted, permit, going) => {
                    attempt = going;
                    (route, admitted, permit)
                }
                Gate::Stop(outcome) => return (outcome, false),
                Gate::Again(waiting) => {
                    attempt = waiting;
                    continue;
                }
            };
            attempt.counted(self.region(route).tag.as_ref(), tries.progress);
            let (failure, admitted) = match self.send(&tries, route, admitted).await {
                Send::Abandoned(signal) => {
                    attempt.outcome.signal = signal;
                    return (attempt.abandoned(), true);
                }
                Send::Answered(Err(failure), admitted) => (failure, admitted),
                Send::Answered(Ok(call), admitted) => {
                    return (self.placed(route, admitted, call, attempt.outcome), false)
                }
            };
            let recipient_limited =
                self.observe_failure(&mut tries, route, &failure, admitted, permit);
            let maybe_placed = !placed_nothing(&failure);
            tries.progress.answered(maybe_placed);
            match self.after_failure(&tries, &failure, recipient_limited, attempt) {
                Next::RetryAfter(wait, waiting) => {
                    attempt = waiting;
                    tokio::time::sleep(wait).await;
                }
                Next::Done(outcome) => return (outcome, maybe_placed),
            }
        }
    }

    /// The call went out through `route`: that region's breaker and pacer are told, and the
    /// record is sent.
    fn placed(
        &self,
        route: Route,
        admitted: breaker::Attempt,
        call: SentCall,
        mut outcome: RecordOutcome,
    ) -> RecordOutcome {
        let region = self.region(route);
        region.breaker.observe(admitted, None, Instant::now());
        if let Some(pacer) = &region.pacer {
            pacer.succeeded();
        }
        if let Some(failover) = &self.failover {
            let primary_open = self.primary.breaker.is_open(Instant::now());
            let _moved = failover.placed_through(route, primary_open);
        }
        outcome.fate = Fate::Sent;
        outcome.reason = None;
        outcome.signal = None;
        outcome.voice_message_id = call.message_id;
        outcome
    }

    /// Which region may take a call now: the primary while its breaker lets calls through;
    /// the failover region while the primary's is open for a regional outage, if the call
    /// `may_move` and the failover's breaker lets it through. `Err`: neither, with the
    /// sooner of the two regions' open times.
    pub(super) fn route_now(&self, may_move: bool, now: Instant) -> Result<Route, breaker::Open> {
        let open = match self.primary.breaker.check(now) {
            Ok(()) => return Ok(Route::Primary),
            Err(open) => open,
        };
        let Some(failover) = self.failover.as_ref().filter(|_| may_move && open.regional) else {
            return Err(open);
        };
        match failover.region.breaker.check(now) {
            Ok(()) => Ok(Route::Failover),
            Err(also) if also.remaining < open.remaining => Err(also),
            Err(_) => Err(open),
        }
    }

    /// Whether the next attempt may go now: the record within its time to live, the send
    /// cutoff not passed, a region's breaker closed (or this its probe), a permit from that
    /// region's pacer in time.
    async fn gate(&self, tries: &Tries<'_>, attempt: AttemptLoop) -> Gate {
        let (record, expiry, cutoffs) = (tries.record, tries.expiry, tries.cutoffs);
        let now = Instant::now();
        if let Some(expiry) = expiry.filter(|e| e.is_past(now)) {
            return Gate::Stop(attempt.expired(&expiry));
        }
        if self.past_last_start(&cutoffs) {
            return Gate::Stop(attempt.not_now(deadline_reached(record), None));
        }
        let (route, probe) = match self.choose(tries.movable, now) {
            Ok(chosen) => chosen,
            Err(open) => {
                let retry_at = open.retry_at(now, self.draws.unit());
                return Gate::Stop(attempt.not_now(circuit_open(record, open), Some(retry_at)));
            }
        };
        let region = self.region(route);
        // A send waits for its permit at most until the cutoff, and never past expiry.
        let expires = expiry.map(|e| e.at());
        let bound = expires.map_or(cutoffs.last_start, |at| at.min(cutoffs.last_start));
        let permit = match &region.pacer {
            Some(pacer) => match pacer.acquire(bound).await {
                Ok(permit) => Some(permit),
                Err(_) if expires.is_some_and(|at| Instant::now() >= at) => {
                    return Gate::Again(attempt)
                }
                Err(no_permit) => {
                    let limited = rate_limited(record, pacer, no_permit.retry_at);
                    return Gate::Stop(attempt.not_now(limited, Some(no_permit.retry_at)));
                }
            },
            None => None,
        };
        // A permit handed out late (its timer woke after the bound) is never a send after
        // expiry, nor one started past the cutoff with next to no time.
        if let Some(expiry) = expiry.filter(|e| e.is_past(Instant::now())) {
            return Gate::Stop(attempt.expired(&expiry));
        }
        if self.past_last_start(&cutoffs) {
            return Gate::Stop(attempt.not_now(deadline_reached(record), None));
        }
        let admitted = match probe {
            Some(probe) => Ok(probe),
            None => region.breaker.admit(Instant::now()),
        };
        match admitted {
            Ok(admitted) => Gate::Go(route, admitted, permit, attempt),
            // The primary's probe went to another record meanwhile: this one may still
            // move (its primary permit is spent; the primary is failing anyway).
            Err(_) if route == Route::Primary && self.may_move(tries) => Gate::Again(attempt),
            Err(open) => {
                let retry_at = open.retry_at(Instant::now(), self.draws.unit());
                Gate::Stop(attempt.not_now(circuit_open(record, open), Some(retry_at)))
            }
        }
    }

    /// Whether this record may move to the failover region now: failover is on, the record
    /// may move, and the primary's breaker is open for a regional outage.
    fn may_move(&self, tries: &Tries<'_>) -> bool {
        tries.movable
            && self
                .primary
                .breaker
                .check(Instant::now())
                .is_err_and(|open| open.regional)
    }

    /// The route for the next attempt ([`Self::route_now`]); with failover on and the
    /// primary awaiting its probe, the probe is taken here, before any pacer wait, so that
    /// one record waits for the primary and the others go on to the failover region (or,
    /// those that must stay, are turned away at once).
    fn choose(
        &self,
        may_move: bool,
        now: Instant,
    ) -> Result<(Route, Option<breaker::Attempt>), breaker::Open> {
        let route = self.route_now(may_move, now)?;
        let probing = route == Route::Primary
            && self.failover.is_some()
            && self.primary.breaker.awaits_probe(now);
        if !probing {
            return Ok((route, None));
        }
        match self.primary.breaker.admit(now) {
            Ok(probe) => Ok((Route::Primary, Some(probe))),
            // Taken by another record a moment ago: the primary is out of reach now.
            Err(_) => self.route_now(may_move, now).map(|route| (route, None)),
        }
    }

    /// One request through `route`, given the attempt timeout or the time to the abandon
    /// point if less: past it the answer is a timeout (the call may have been placed), or,
    /// cut to the abandon point, the attempt is abandoned. One timer per attempt, the
    /// engine's: the voice clients have no attempt timeout of their own (a per-operation SDK
    /// configuration costs more CPU per call than the call itself at a small Lambda's CPU
    /// share; `wiring::voice_client`), and a sender sets none.
    async fn send(&self, tries: &Tries<'_>, route: Route, admitted: breaker::Attempt) -> Send {
        let cutoffs = tries.cutoffs;
        let started = Instant::now();
        let (limit, cut_to_abandon) = cutoffs.attempt_limit(self.settings.attempt_timeout, started);
        let region = self.region(route);
        let rerouted = match (route, &self.failover) {
            (Route::Failover, Some(failover)) => route::rerouted(tries.message, &failover.settings),
            _ => None,
        };
        let call = region
            .sender
            .send(rerouted.as_ref().unwrap_or(tries.message));
        // From here on a panic may come after the request went out.
        tries.progress.send_starts();
        let sent = tokio::time::timeout_at(started + limit, call).await;
        // An attempt whose limit was the abandon point and ran out is abandoned there, and
        // so is one the sender answered with a timeout of its own (the SDK's connect
        // timeout) in that time. Dropping `admitted` frees the breaker's probe slot, if this
        // was the probe.
        match sent {
            Ok(Err(SendFailure::Timeout(_))) if cut_to_abandon => {}
            Ok(answer) => return Send::Answered(answer, admitted),
            Err(_elapsed) if !cut_to_abandon => {
                let timeout = SendFailure::Timeout(classify::NO_ANSWER_IN_TIME.to_owned());
                return Send::Answered(Err(timeout), admitted);
            }
            Err(_elapsed) => {}
        }
        // No answer in at least the floor's time counts as the service failing, as a
        // timed-out attempt does; a shorter cut says nothing about it.
        let now = Instant::now();
        if now - started < start_floor(self.settings.attempt_timeout) {
            return Send::Abandoned(None);
        }
        region
            .breaker
            .observe(admitted, Some(Signal::ServiceFailing), now);
        Send::Abandoned(Some(Signal::ServiceFailing))
    }

    /// Tells the breaker and the pacer what a failed attempt says about the service.
    /// Returns whether the limit that throttled it is the recipient's: throttled again
    /// although other sends went through since this record's last throttle (v1 says
    /// TooManyRequestsException for a recipient's 5 calls a day too). The pace then stays,
    /// and retrying is futile.
    fn observe_failure(
        &self,
        tries: &mut Tries<'_>,
        route: Route,
        failure: &SendFailure,
        admitted: breaker::Attempt,
        permit: Option<Permit>,
    ) -> bool {
        let health = signal(failure, tries.message.origins());
        tries.last_signal = Some(health);
        let now = Instant::now();
        let region = self.region(route);
        region.breaker.observe(admitted, Some(health), now);
        if health != Signal::Throttled {
            return false;
        }
        let recipient_limited = tries
            .throttled_at
            .is_some_and(|at| region.pacer.as_ref().is_some_and(|p| p.succeeded_since(at)));
        tries.throttled_at = Some(now);
        if let (false, Some(pacer), Some(permit)) = (recipient_limited, &region.pacer, permit) {
            pacer.throttled(permit);
        }
        recipient_limited
    }

    /// What a failed attempt means for the record: its fate and reason, and whether to try
    /// again in place (only what certainly placed nothing, within the attempts allowed,
    /// before the cutoff and the record's expiry).
    fn after_failure(
        &self,
        tries: &Tries<'_>,
        failure: &SendFailure,
        recipient_limited: bool,
        mut attempt: AttemptLoop,
    ) -> Next {
        let disposition = classify(failure, tries.message.origins());
        // A named moment to try again (v2's daily limit for one destination): not before.
        let wall = self.clock.wall();
        let named = classify::retry_at(failure, wall)
            .map(|at| Instant::now() + at.duration_since(wall).unwrap_or_default());
        let retry_in_place = disposition == Disposition::Redeliver
            && placed_nothing(failure)
            && !recipient_limited
            && named.is_none()
            && attempt.outcome.attempts < self.settings.max_attempts;
        attempt.failed(failure, disposition, tries.last_signal);
        if tries.record.redial.is_some() && (named.is_some() || recipient_limited) {
            // A redial refused for the recipient's daily limit ends the request unreached:
            // no call waits a day for it.
            return Next::Done(attempt.daily_limited(failure.reason()));
        }
        if let Some(at) = named {
            attempt.outcome.retry_at = named;
            // Refused until after its time to live ends: give it up now, with why, rather
            // than hold it back to expire unsent.
            if let Some(expiry) = tries.expiry.filter(|e| at >= e.at()) {
                return Next::Done(attempt.expires_first(&expiry, at, failure.reason()));
            }
        }
        if disposition == Disposition::Redeliver {
            // Past its time to live now: say so at once rather than on the next delivery.
            if let Some(expiry) = tries.expiry.filter(|e| e.is_past(Instant::now())) {
                return Next::Done(attempt.expired(&expiry));
            }
        }
        if !retry_in_place {
            return Next::Done(attempt.outcome);
        }
        let wait = self.retry_wait(attempt.outcome.attempts, self.draws.unit());
        let bound = tries.expiry.map_or(tries.cutoffs.last_start, |e| {
            e.at().min(tries.cutoffs.last_start)
        });
        if Instant::now() + wait >= bound {
            return Next::Done(attempt.outcome);
        }
        Next::RetryAfter(wait, attempt)
    }

    /// Full jitter over `0..=base × 2^(attempts − 1)`, capped.
    pub(super) fn retry_wait(&self, attempts: u32, draw: f64) -> Duration {
        let base = self.settings.retry_base;
        let ceiling = base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
            .min(base.saturating_mul(RETRY_CAP_FACTOR));
        ceiling.mul_f64(draw.clamp(0.0, 1.0))
    }
}
