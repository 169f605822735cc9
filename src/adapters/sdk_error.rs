//! An AWS SDK error said as a sentence an operator reads: what failed, and the service's code
//! and message or the innermost cause, never the error chain's `Debug` dump.

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

/// The innermost error's own words ("Connection refused (os error 111)").
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let root = std::iter::successors(Some(err), |error| error.source())
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
    let root = root.trim();
    if root.is_empty() || root.contains('{') {
        "no further detail".to_owned()
    } else {
        root.to_owned()
    }
}

/// `what failed: Code: message`, or `what timed out`, or `what failed (cause)`.
pub(crate) fn sentence<E, R>(what: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match err {
        SdkError::ServiceError(service) => format!(
            "{what} failed: {}: {}",
            service.err().code().unwrap_or("an error with no code"),
            service.err().message().unwrap_or("no message")
        ),
        SdkError::TimeoutError(_) => format!("{what} timed out"),
        _ => format!("{what} failed ({})", root_cause(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_said_by_its_innermost_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(root_cause(&io), "Connection refused");
        let dump = std::io::Error::other("Inner { kind: Refused }");
        assert_eq!(root_cause(&dump), "no further detail");
    }
}
