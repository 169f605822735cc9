//! voice-dispatch: SQS voice-call requests to `SendVoiceMessage` (Amazon Pinpoint SMS Voice,
//! or End User Messaging SMS and Voice v2), each record given one fate (the table is
//! [`core::report::FATES`]) and the partial batch response SQS acts on.
//!
//! [`core`] is pure: the message contract, the policies that decide fates, the batch engine
//! and the settlement rules, behind the small traits in [`core::ports`], with no AWS type.
//! [`adapters`] connect it to Lambda, the voice APIs, SQS and DynamoDB; [`observe`] writes
//! what operators read; [`app`] is the use case; [`config`] and [`wiring`] build it.

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
pub mod status;
pub mod wiring;
