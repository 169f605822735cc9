//! The pure core: the message contract, the fates, and the policies that decide them
//! (classification, expiry, pacing, the circuit breaker, the ledger's rules, backoff), the
//! batch engine and the settlement rules. It reaches the outside world only through the
//! small traits in [`ports`].

pub mod backoff;
pub mod breaker;
pub mod calls;
pub mod classify;
pub mod clock;
pub mod code;
pub mod contract;
pub mod dead_letter;
pub mod defaults;
pub mod delivery;
pub mod draws;
pub mod engine;
pub mod expiry;
pub mod ledger;
pub mod outcome_timer;
pub mod pacing;
pub mod phone;
pub mod ports;
pub mod record;
pub mod redact;
pub mod redial;
pub mod report;
pub mod route;
pub mod service;
pub mod settle;
