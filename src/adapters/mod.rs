//! Adapters: the outside side of the ports in [`crate::core::ports`] (Pinpoint SMS Voice, SQS,
//! DynamoDB, and an in-memory ledger for tests and local runs), and the Lambda event shape.

pub mod dynamodb;
pub mod eventbridge;
pub mod lambda;
pub mod lazy;
pub mod memory_ledger;
pub mod payloads;
pub mod pinpoint;
pub mod pinpoint_v2;
pub(crate) mod sdk_error;
pub mod sqs;
pub mod sqs_event;
pub mod status_event;
pub mod tls;
