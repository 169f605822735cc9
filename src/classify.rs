//! The one place that decides whether a failed send is worth retrying.
//!
//! Adapters describe what went wrong as a [`SendFailure`] (the service's error code, a
//! timeout, a broken connection, ...); [`classify`] turns that into a [`Disposition`]. The
//! README's fates table is this function; the tests below pin every row of it.

/// What went wrong with one `SendVoiceMessage` call, after the SDK's own retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// The service answered with an error response.
    Service {
        /// The modelled error code (`BadRequestException`, ...), if the response had one.
        code: Option<String>,
        status: Option<u16>,
        message: String,
    },
    /// No answer in time: an attempt or the whole operation timed out.
    Timeout(String),
    /// The request never got an answer: connection refused or reset, DNS, TLS.
    Connection(String),
    /// The request could not even be built, so it never reached the service.
    InvalidRequest(String),
    /// A response came back but could not be read as the protocol says.
    UnreadableResponse {
        status: Option<u16>,
        message: String,
    },
}

/// Whether a failure deserves another delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// May succeed later: let SQS redeliver (and, after `maxReceiveCount`, dead-letter).
    Transient,
    /// Will fail the same way every time: retrying only burns quota and delays the DLQ.
    Permanent,
}

/// Error codes that mean "this request itself is wrong": retrying cannot help.
const PERMANENT_CODES: &[&str] = &["BadRequestException", "NotFoundException"];

/// Error codes that mean "not now". Listed for the record: any code not named in
/// [`PERMANENT_CODES`] is transient, so an unknown or new code never loses a message.
const TRANSIENT_CODES: &[&str] = &[
    "InternalServiceErrorException",
    "TooManyRequestsException",
    "LimitExceededException",
];

pub fn classify(failure: &SendFailure) -> Disposition {
    match failure {
        SendFailure::Service {
            code: Some(code), ..
        } if PERMANENT_CODES.contains(&code.as_str()) => Disposition::Permanent,
        SendFailure::Service {
            code: Some(code), ..
        } if TRANSIENT_CODES.contains(&code.as_str()) => Disposition::Transient,
        // An unknown code, or none (a bare 5xx from a proxy): retry, and let redrive decide.
        SendFailure::Service { .. } => Disposition::Transient,
        SendFailure::Timeout(_) | SendFailure::Connection(_) => Disposition::Transient,
        // The same input builds the same broken request every time.
        SendFailure::InvalidRequest(_) => Disposition::Permanent,
        SendFailure::UnreadableResponse { .. } => Disposition::Transient,
    }
}

impl SendFailure {
    /// The stable code that logs, metrics and dead-letter reasons carry.
    pub fn code(&self) -> String {
        match self {
            Self::Service {
                code: Some(code), ..
            } => code.clone(),
            Self::Service {
                code: None,
                status: Some(status),
                ..
            } => format!("Http{status}"),
            Self::Service { .. } => "UnknownServiceError".to_owned(),
            Self::Timeout(_) => "Timeout".to_owned(),
            Self::Connection(_) => "ConnectionError".to_owned(),
            Self::InvalidRequest(_) => "InvalidRequest".to_owned(),
            Self::UnreadableResponse { .. } => "UnreadableResponse".to_owned(),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Service { message, .. } | Self::UnreadableResponse { message, .. } => message,
            Self::Timeout(message) | Self::Connection(message) | Self::InvalidRequest(message) => {
                message
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: Option<&str>, status: u16) -> SendFailure {
        SendFailure::Service {
            code: code.map(str::to_owned),
            status: Some(status),
            message: "m".to_owned(),
        }
    }

    #[test]
    fn internal_errors_throttling_and_limits_are_transient() {
        for (code, status) in [
            ("InternalServiceErrorException", 500),
            ("TooManyRequestsException", 429),
            ("LimitExceededException", 412),
        ] {
            assert_eq!(
                classify(&service(Some(code), status)),
                Disposition::Transient,
                "{code}"
            );
        }
    }

    #[test]
    fn bad_request_and_not_found_are_permanent() {
        assert_eq!(
            classify(&service(Some("BadRequestException"), 400)),
            Disposition::Permanent
        );
        assert_eq!(
            classify(&service(Some("NotFoundException"), 404)),
            Disposition::Permanent
        );
    }

    #[test]
    fn an_unknown_code_is_transient_whatever_its_status() {
        for status in [400, 403, 500] {
            assert_eq!(
                classify(&service(Some("SomethingNewException"), status)),
                Disposition::Transient
            );
        }
    }

    #[test]
    fn any_5xx_without_a_code_is_transient() {
        for status in [500, 502, 503, 504] {
            let failure = service(None, status);
            assert_eq!(classify(&failure), Disposition::Transient);
            assert_eq!(failure.code(), format!("Http{status}"));
        }
    }

    #[test]
    fn timeouts_and_connection_errors_are_transient() {
        assert_eq!(
            classify(&SendFailure::Timeout("t".into())),
            Disposition::Transient
        );
        assert_eq!(
            classify(&SendFailure::Connection("c".into())),
            Disposition::Transient
        );
        assert_eq!(
            classify(&SendFailure::UnreadableResponse {
                status: Some(502),
                message: "x".into()
            }),
            Disposition::Transient
        );
    }

    #[test]
    fn a_request_that_cannot_be_built_is_permanent() {
        assert_eq!(
            classify(&SendFailure::InvalidRequest("missing field".into())),
            Disposition::Permanent
        );
    }

    #[test]
    fn codes_name_the_failure() {
        assert_eq!(
            service(Some("BadRequestException"), 400).code(),
            "BadRequestException"
        );
        assert_eq!(SendFailure::Timeout("t".into()).code(), "Timeout");
        assert_eq!(
            SendFailure::Connection("c".into()).code(),
            "ConnectionError"
        );
    }
}
