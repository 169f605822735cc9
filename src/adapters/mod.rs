//! Adapters: the AWS side of the ports in [`crate::ports`] (Pinpoint SMS Voice, SQS), and
//! the Lambda event shape.

pub mod lambda;
pub mod pinpoint;
pub mod sqs;
