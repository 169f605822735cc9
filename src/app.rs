//! The use case: one batch of records, run against the invocation's deadline, settled,
//! said in one batch line and in metrics. The Lambda adapter feeds it records and turns its
//! report into the partial batch response.

use std::time::{Instant as StdInstant, SystemTime};

use std::sync::Arc;

use tokio::time::Instant;

use crate::core::clock::{Clock, SystemClock};

use crate::core::engine::BatchEngine;
use crate::core::outcome_timer::CallOutcomes;
use crate::core::ports::{
    CheckQueue, DeadLetterQueue, Ledger, NoLedger, OutcomeLedger, RedeliveryDelay, VoiceSender,
};
use crate::core::record::Record;
use crate::core::report::BatchReport;
use crate::core::settle::Settlement;
use crate::observe::lines;
use crate::observe::metrics::MetricsContext;

pub struct VoiceDispatch<S, D, R, L = NoLedger, T = NoTimers> {
    engine: BatchEngine<S, L>,
    settlement: Settlement<D, R>,
    metrics: Option<MetricsContext>,
    clock: Arc<dyn Clock>,
    /// Delivery outcomes' timers, armed before the batch is acknowledged; `None`: off.
    timers: Option<T>,
}

/// What the call path does for delivery outcomes once a batch is settled.
pub trait ArmTimers: Send + Sync {
    fn arm(
        &self,
        report: &mut BatchReport,
        records: &[Record<'_>],
        until: Instant,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// Outcomes off: the type of a use case without them. Never called.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTimers;

impl ArmTimers for NoTimers {
    async fn arm(&self, _report: &mut BatchReport, _records: &[Record<'_>], _until: Instant) {}
}

impl<O: OutcomeLedger, Q: CheckQueue> ArmTimers for CallOutcomes<O, Q> {
    fn arm(
        &self,
        report: &mut BatchReport,
        records: &[Record<'_>],
        until: Instant,
    ) -> impl std::future::Future<Output = ()> + Send {
        CallOutcomes::arm(self, report, records, until)
    }
}

impl<S: VoiceSender, D: DeadLetterQueue, R: RedeliveryDelay, L: Ledger, T: ArmTimers>
    VoiceDispatch<S, D, R, L, T>
{
    pub fn new(engine: BatchEngine<S, L>, settlement: Settlement<D, R>) -> Self {
        Self {
            engine,
            settlement,
            metrics: None,
            clock: Arc::new(SystemClock),
            timers: None,
        }
    }

    /// Arms delivery outcomes' timers after every batch (outcomes on).
    pub fn with_timers(mut self, timers: Option<T>) -> Self {
        self.timers = timers;
        self
    }

    /// The same use case reading the wall clock from `clock` (wiring gives the engine, the
    /// settlement and this one the same).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The engine, with the instance's pacer and circuit breaker.
    pub fn engine(&self) -> &BatchEngine<S, L> {
        &self.engine
    }

    /// Writes CloudWatch EMF metrics after every batch.
    pub fn with_metrics(mut self, metrics: Option<MetricsContext>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs one batch against `deadline` (wall-clock, as Lambda gives it): every record's
    /// fate, settled before the answer is due.
    pub async fn run(&self, records: &[Record<'_>], deadline: SystemTime) -> BatchReport {
        let started = StdInstant::now();
        let deadline = instant_of(deadline, self.clock.wall());
        let reserve = self.engine.reserve(deadline);
        let mut report = self
            .engine
            .run_with_reserve(records, deadline, reserve)
            .await;
        // The sends stopped by `deadline - reserve / 2`; settling gets until a quarter of the
        // reserve is left, and that last quarter is for the answer.
        let until = deadline
            .checked_sub(reserve / 4)
            .unwrap_or_else(Instant::now);
        // Boxed: the nested async state machines are otherwise deep enough to exceed the
        // compiler's layout recursion limit where `main` awaits the runtime.
        Box::pin(self.settlement.settle(&mut report, records, until)).await;
        if let Some(timers) = &self.timers {
            // Before the answer acknowledges anything: within the reserve's last quarter,
            // keeping an eighth for the answer.
            let by = deadline
                .checked_sub(reserve / 8)
                .unwrap_or_else(Instant::now);
            Box::pin(timers.arm(&mut report, records, by)).await;
        }
        lines::batch_done(&report, started.elapsed());
        if let Some(metrics) = &self.metrics {
            metrics.emit(&report);
        }
        report
    }
}

/// Lambda gives the deadline as wall-clock time; timers need a monotonic instant.
fn instant_of(deadline: SystemTime, now: SystemTime) -> Instant {
    Instant::now() + deadline.duration_since(now).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_deadline_is_now() {
        let before = Instant::now();
        let instant = instant_of(SystemTime::UNIX_EPOCH, SystemTime::now());
        assert!(instant >= before && instant <= Instant::now());
    }
}
