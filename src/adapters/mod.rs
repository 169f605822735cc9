//! Adapters: the AWS side of the ports in [`crate::ports`], and the Lambda event shape.

pub mod lambda;
pub mod pinpoint;
