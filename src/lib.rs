//! voice-dispatch: SQS voice-call requests to Amazon Pinpoint SMS Voice `SendVoiceMessage`,
//! each record given its fate (sent, transient, permanent, deferred) and the partial batch
//! response SQS acts on.
//!
//! The pure core (`message`, `phone`, `classify`, `expiry`, `pacing`, `breaker`, `ledger`, `engine`,
//! `report`, `backoff`, `dead_letter`, `settle`) knows nothing of the AWS SDK; `adapters` connect it to Pinpoint
//! SMS Voice, SQS and Lambda; `wiring` builds it.

// Record isolation relies on catching panics; with panic = "abort" (the default of
// `cargo lambda build --release` unless the profile says otherwise) one bad record would
// kill the whole invocation and SQS would redeliver calls already placed.
#[cfg(not(panic = "unwind"))]
compile_error!("voice-dispatch needs panic = \"unwind\": set it in [profile.release]");

pub mod adapters;
pub mod app;
pub mod config;
pub mod core;
pub mod observe;
pub mod wiring;
