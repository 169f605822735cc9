//! What operators read: the log lines and the CloudWatch metrics (EMF).

pub mod lines;
pub mod logging;
pub mod metrics;
