//! What operators read: the log lines and the CloudWatch metrics (EMF).

pub mod json_lines;
pub mod lines;
pub mod logging;
pub mod metrics;
pub mod stdout;
