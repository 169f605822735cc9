//! The codes a record's reason carries: the function's own, one variant each, and the voice
//! service's own code or a bare HTTP status when a send failed with one. Each has one word,
//! the one log lines (`error_code`), the EMF `ErrorCode` dimension and the dead letter's
//! `DispatchError` carry; [`CODES`] lists the function's own with theirs.

use std::borrow::Cow;
use std::fmt;

use crate::core::classify::ServiceCode;

/// Why a record was not sent, as a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    // The body.
    MissingBody,
    MalformedJson,
    SchemaViolation,
    InvalidField,
    UnsupportedContent,
    NotPermitted,
    // Time.
    Expired,
    DeadlineReached,
    InvocationTooShort,
    Abandoned,
    // The gate and the lanes.
    CircuitOpen,
    RateLimited,
    EarlierRecordInGroupFailed,
    Unprocessed,
    // The ledger.
    InProgressElsewhere,
    IdempotencyKeyReused,
    OutcomeUnknown,
    LedgerUnavailable,
    // A bug, confined to its record.
    Panic,
    /// An outcome that carried no reason (a dead letter's code then).
    Unknown,
    // A failed send that carried no service code.
    Timeout,
    ConnectionError,
    ConnectError,
    InvalidRequest,
    UnreadableResponse,
    UnknownServiceError,
    /// The service's own error code (`BadRequestException`, ...), as it said it.
    Service(ServiceCode),
    /// An error answer with no code, by its HTTP status: `Http503`.
    Http(u16),
}

/// The function's own codes and their words: everything but [`Code::Service`] and
/// [`Code::Http`], which take the service's words.
pub const CODES: [(Code, &str); 26] = [
    (Code::MissingBody, "MissingBody"),
    (Code::MalformedJson, "MalformedJson"),
    (Code::SchemaViolation, "SchemaViolation"),
    (Code::InvalidField, "InvalidField"),
    (Code::UnsupportedContent, "UnsupportedContent"),
    (Code::NotPermitted, "NotPermitted"),
    (Code::Expired, "Expired"),
    (Code::DeadlineReached, "DeadlineReached"),
    (Code::InvocationTooShort, "InvocationTooShort"),
    (Code::Abandoned, "Abandoned"),
    (Code::CircuitOpen, "CircuitOpen"),
    (Code::RateLimited, "RateLimited"),
    (
        Code::EarlierRecordInGroupFailed,
        "EarlierRecordInGroupFailed",
    ),
    (Code::Unprocessed, "Unprocessed"),
    (Code::InProgressElsewhere, "InProgressElsewhere"),
    (Code::IdempotencyKeyReused, "IdempotencyKeyReused"),
    (Code::OutcomeUnknown, "OutcomeUnknown"),
    (Code::LedgerUnavailable, "LedgerUnavailable"),
    (Code::Panic, "Panic"),
    (Code::Unknown, "Unknown"),
    (Code::Timeout, "Timeout"),
    (Code::ConnectionError, "ConnectionError"),
    (Code::ConnectError, "ConnectError"),
    (Code::InvalidRequest, "InvalidRequest"),
    (Code::UnreadableResponse, "UnreadableResponse"),
    (Code::UnknownServiceError, "UnknownServiceError"),
];

impl Code {
    /// The code's word: the function's own, the service's code as it said it, or `Http`
    /// and the status.
    pub fn word(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Self::MissingBody => "MissingBody",
            Self::MalformedJson => "MalformedJson",
            Self::SchemaViolation => "SchemaViolation",
            Self::InvalidField => "InvalidField",
            Self::UnsupportedContent => "UnsupportedContent",
            Self::NotPermitted => "NotPermitted",
            Self::Expired => "Expired",
            Self::DeadlineReached => "DeadlineReached",
            Self::InvocationTooShort => "InvocationTooShort",
            Self::Abandoned => "Abandoned",
            Self::CircuitOpen => "CircuitOpen",
            Self::RateLimited => "RateLimited",
            Self::EarlierRecordInGroupFailed => "EarlierRecordInGroupFailed",
            Self::Unprocessed => "Unprocessed",
            Self::InProgressElsewhere => "InProgressElsewhere",
            Self::IdempotencyKeyReused => "IdempotencyKeyReused",
            Self::OutcomeUnknown => "OutcomeUnknown",
            Self::LedgerUnavailable => "LedgerUnavailable",
            Self::Panic => "Panic",
            Self::Unknown => "Unknown",
            Self::Timeout => "Timeout",
            Self::ConnectionError => "ConnectionError",
            Self::ConnectError => "ConnectError",
            Self::InvalidRequest => "InvalidRequest",
            Self::UnreadableResponse => "UnreadableResponse",
            Self::UnknownServiceError => "UnknownServiceError",
            Self::Service(code) => code.as_str(),
            Self::Http(status) => return Cow::Owned(format!("Http{status}")),
        })
    }
}

impl Code {
    /// The code a word stands for: one of the function's own, else the service's (a dead
    /// letter's `DispatchError` read back, say).
    pub fn from_word(word: &str) -> Self {
        if let Some(status) = word
            .strip_prefix("Http")
            .and_then(|status| status.parse::<u16>().ok())
        {
            return Self::Http(status);
        }
        CODES.iter().find(|(_, own)| *own == word).map_or_else(
            || Self::Service(ServiceCode::from(word)),
            |(code, _)| code.clone(),
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.word())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_functions_own_writes_the_word_it_always_has() {
        for (code, word) in CODES {
            assert_eq!(code.word(), word);
            assert_eq!(code.to_string(), word);
        }
        let words: std::collections::HashSet<&str> = CODES.iter().map(|(_, word)| *word).collect();
        assert_eq!(words.len(), CODES.len(), "two codes share a word");
    }

    #[test]
    fn the_services_own_code_and_a_bare_status_keep_the_services_words() {
        for wire in [
            "BadRequestException",
            "InternalServiceErrorException",
            "ServiceQuotaExceededException",
            "SomeCodeAddedNextYear",
        ] {
            assert_eq!(Code::Service(ServiceCode::from(wire)).word(), wire);
        }
        assert_eq!(Code::Http(503).word(), "Http503");
        assert_eq!(Code::Http(502).to_string(), "Http502");
    }

    #[test]
    fn a_word_read_back_is_the_code_that_wrote_it() {
        for (code, word) in CODES {
            assert_eq!(Code::from_word(word), code);
        }
        let throttled = Code::Service(ServiceCode::TooManyRequests);
        assert_eq!(Code::from_word("TooManyRequestsException"), throttled);
        assert_eq!(Code::from_word("Http504"), Code::Http(504));
        let new = Code::from_word("SomeCodeAddedNextYear");
        assert_eq!(
            new,
            Code::Service(ServiceCode::Other("SomeCodeAddedNextYear".into()))
        );
    }
}
