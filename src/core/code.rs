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

/// One of the function's own codes: its word and what it means.
#[derive(Debug, Clone)]
pub struct CodeInfo {
    pub code: Code,
    pub word: &'static str,
    pub meaning: &'static str,
}

const fn own(code: Code, word: &'static str, meaning: &'static str) -> CodeInfo {
    CodeInfo {
        code,
        word,
        meaning,
    }
}

/// The function's own codes, their words and meanings: everything but [`Code::Service`] and
/// [`Code::Http`], which take the service's words. `docs/fates.md` holds [`codes_table`].
pub const CODES: [CodeInfo; 26] = [
    own(Code::MissingBody, "MissingBody", "the record has no body"),
    own(Code::MalformedJson, "MalformedJson", "the body is not JSON"),
    own(
        Code::SchemaViolation,
        "SchemaViolation",
        "the body does not match the message schema",
    ),
    own(
        Code::InvalidField,
        "InvalidField",
        "a member's value breaks its rule",
    ),
    own(
        Code::UnsupportedContent,
        "UnsupportedContent",
        "content the chosen API cannot place",
    ),
    own(
        Code::NotPermitted,
        "NotPermitted",
        "a resource `CONFIGURED_RESOURCES_ONLY` does not permit",
    ),
    own(
        Code::Expired,
        "Expired",
        "past its time to live, or refused until after it",
    ),
    own(
        Code::DeadlineReached,
        "DeadlineReached",
        "not started: the send cutoff has passed",
    ),
    own(
        Code::InvocationTooShort,
        "InvocationTooShort",
        "not started: the invocation is too short for any send",
    ),
    own(
        Code::Abandoned,
        "Abandoned",
        "in flight at the invocation deadline: may have been placed",
    ),
    own(
        Code::CircuitOpen,
        "CircuitOpen",
        "not sent: the circuit breaker is open",
    ),
    own(
        Code::RateLimited,
        "RateLimited",
        "not sent: no pacer permit in time",
    ),
    own(
        Code::EarlierRecordInGroupFailed,
        "EarlierRecordInGroupFailed",
        "not sent: an earlier record of its FIFO group was not",
    ),
    own(
        Code::Unprocessed,
        "Unprocessed",
        "the engine produced no outcome for it",
    ),
    own(
        Code::InProgressElsewhere,
        "InProgressElsewhere",
        "another invocation holds its key",
    ),
    own(
        Code::IdempotencyKeyReused,
        "IdempotencyKeyReused",
        "its key was used for a different message",
    ),
    own(
        Code::OutcomeUnknown,
        "OutcomeUnknown",
        "an earlier attempt may have placed it (at most once)",
    ),
    own(
        Code::LedgerUnavailable,
        "LedgerUnavailable",
        "the ledger could not be written before the send",
    ),
    own(
        Code::Panic,
        "Panic",
        "a bug, caught: transient before its send started, abandoned after",
    ),
    own(
        Code::Unknown,
        "Unknown",
        "a dead letter whose outcome carried no reason",
    ),
    own(
        Code::Timeout,
        "Timeout",
        "no answer within the attempt's time",
    ),
    own(
        Code::ConnectionError,
        "ConnectionError",
        "the connection broke after the request may have gone out",
    ),
    own(
        Code::ConnectError,
        "ConnectError",
        "no connection was made: nothing was written",
    ),
    own(
        Code::InvalidRequest,
        "InvalidRequest",
        "the request could not be built",
    ),
    own(
        Code::UnreadableResponse,
        "UnreadableResponse",
        "an answer that could not be read",
    ),
    own(
        Code::UnknownServiceError,
        "UnknownServiceError",
        "an error answer with neither code nor status",
    ),
];

/// The codes table of `docs/fates.md`.
pub fn codes_table() -> String {
    let mut table = String::from("| code | what it means |\n|---|---|\n");
    for info in &CODES {
        table.push_str(&format!("| `{}` | {} |\n", info.word, info.meaning));
    }
    table.push_str("| the service's own code (`BadRequestException`, `ThrottlingException`, ...) | the voice service's error answer, as it named it |\n");
    table.push_str("| `Http` and the status (`Http502`) | an error answer with no code |\n");
    table
}

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
        CODES.iter().find(|info| info.word == word).map_or_else(
            || Self::Service(ServiceCode::from(word)),
            |info| info.code.clone(),
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
        for CodeInfo { code, word, .. } in CODES {
            assert_eq!(code.word(), word);
            assert_eq!(code.to_string(), word);
        }
        let words: std::collections::HashSet<&str> = CODES.iter().map(|info| info.word).collect();
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
    fn the_fates_documents_codes_table_is_this_table() {
        let fates = include_str!("../../docs/fates.md");
        assert!(
            fates.contains(&codes_table()),
            "docs/fates.md's codes table should read:\n{}",
            codes_table()
        );
    }

    #[test]
    fn a_word_read_back_is_the_code_that_wrote_it() {
        for CodeInfo { code, word, .. } in CODES {
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
