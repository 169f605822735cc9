//! The codes a record's reason carries: the function's own, one variant each, and the voice
//! service's own code or a bare HTTP status when a send failed with one. Each has one word,
//! the one log lines (`error_code`), the EMF `ErrorCode` dimension and the dead letter's
//! `DispatchError` carry: for the function's own, the variant's name. [`CODES`] lists them
//! with their meanings, from the same declaration as the enum, so none can be left out.

use std::borrow::Cow;
use std::fmt;

use crate::core::service::ServiceCode;

/// One of the function's own codes: its word and what it means.
#[derive(Debug, Clone)]
pub struct CodeInfo {
    pub code: Code,
    pub word: &'static str,
    pub meaning: &'static str,
}

/// Declares [`Code`], its words and [`CODES`] from one list: each of the function's own
/// codes, written once, with its meaning.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident: $meaning:literal,)*) => {
        /// Why a record was not sent, as a stable code.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
            /// The service's own error code (`BadRequestException`, ...), as it said it.
            Service(ServiceCode),
            /// An error answer with no code, by its HTTP status: `Http503`.
            Http(u16),
        }

        /// The function's own codes, their words and meanings: everything but
        /// [`Code::Service`] and [`Code::Http`], which take the service's words.
        /// `docs/fates.md` holds [`codes_table`].
        pub const CODES: &[CodeInfo] = &[
            $(CodeInfo {
                code: Code::$variant,
                word: stringify!($variant),
                meaning: $meaning,
            },)*
        ];

        impl Code {
            /// The code's word: the function's own, the service's code as it said it, or
            /// `Http` and the status.
            pub fn word(&self) -> Cow<'_, str> {
                match self {
                    $(Self::$variant => Cow::Borrowed(stringify!($variant)),)*
                    Self::Service(code) => Cow::Borrowed(code.as_str()),
                    Self::Http(status) => Cow::Owned(format!("Http{status}")),
                }
            }
        }
    };
}

codes! {
    // The body.
    MissingBody: "the record has no body",
    MalformedJson: "the body is not JSON",
    SchemaViolation: "the body does not match the message schema",
    InvalidField: "a member's value breaks its rule",
    UnsupportedContent: "content the chosen API cannot place",
    NotPermitted: "a resource `CONFIGURED_RESOURCES_ONLY` does not permit",
    // Time.
    Expired: "past its time to live, or refused until after it",
    DeadlineReached: "not started: the send cutoff has passed",
    InvocationTooShort: "not started: the invocation is too short for any send",
    Abandoned: "in flight at the invocation deadline: may have been placed",
    // The gate and the lanes.
    CircuitOpen: "not sent: the circuit breaker is open",
    RateLimited: "not sent: no pacer permit in time",
    EarlierRecordInGroupFailed: "not sent: an earlier record of its FIFO group was not",
    Unprocessed: "the engine produced no outcome for it",
    // The ledger.
    InProgressElsewhere: "another invocation holds its key",
    IdempotencyKeyReused: "its key was used for a different message",
    OutcomeUnknown: "an earlier attempt may have placed it (at most once)",
    LedgerUnavailable: "the ledger could not be written before the send",
    // A bug, confined to its record.
    Panic: "a bug, caught: transient before its send started, abandoned after",
    /// An outcome that carried no reason (a dead letter's code then).
    Unknown: "a dead letter whose outcome carried no reason",
    // A failed send that carried no service code.
    Timeout: "no answer within the attempt's time",
    ConnectionError: "the connection broke after the request may have gone out",
    ConnectError: "no connection was made: nothing was written",
    InvalidRequest: "the request could not be built",
    UnreadableResponse: "an answer that could not be read",
    UnknownServiceError: "an error answer with neither code nor status",
    // Delivery outcomes (the status path).
    MalformedEvent: "a status-queue message that is a delivery event or timer by its envelope but cannot be read",
    CallNotRecorded: "an event for a call the ledger does not know yet: it may have overtaken the `SENT` write",
    OutcomeNotPublished: "the request's outcome is fixed but EventBridge did not take it yet",
    TimerNotArmed: "the request's outcome timer could not be armed on the status queue",
    // Redial.
    RedialScheduled: "a redial whose interval is longer than SQS's longest delay: kept until its time (INFO)",
    DailyLimit: "a redial refused for the recipient's daily call limit: the request ends `unreached`",
    RedialNotQueued: "the request's next call could not be put on the call queue",
    RedialNotDue: "a redial its request no longer wants (its outcome is fixed, a later call is queued, or the body is not the request's): not called",
}

/// The codes table of `docs/fates.md`.
pub fn codes_table() -> String {
    let mut table = String::from("| code | what it means |\n|---|---|\n");
    for info in CODES {
        table.push_str(&format!("| `{}` | {} |\n", info.word, info.meaning));
    }
    table.push_str("| the service's own code (`BadRequestException`, `ThrottlingException`, ...) | the voice service's error answer, as it named it |\n");
    table.push_str("| `Http` and the status (`Http502`) | an error answer with no code |\n");
    table
}

impl Code {
    /// The code a word stands for: one of the function's own, else the service's.
    #[cfg(test)]
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
        // The words before codes were types, literal for literal.
        const WORDS: [&str; 26] = [
            "MissingBody",
            "MalformedJson",
            "SchemaViolation",
            "InvalidField",
            "UnsupportedContent",
            "NotPermitted",
            "Expired",
            "DeadlineReached",
            "InvocationTooShort",
            "Abandoned",
            "CircuitOpen",
            "RateLimited",
            "EarlierRecordInGroupFailed",
            "Unprocessed",
            "InProgressElsewhere",
            "IdempotencyKeyReused",
            "OutcomeUnknown",
            "LedgerUnavailable",
            "Panic",
            "Unknown",
            "Timeout",
            "ConnectionError",
            "ConnectError",
            "InvalidRequest",
            "UnreadableResponse",
            "UnknownServiceError",
        ];
        let written: Vec<&str> = CODES.iter().map(|info| info.word).collect();
        assert_eq!(written[..WORDS.len()], WORDS);
        // Then the status path's, added with delivery outcomes, and redial's.
        assert_eq!(
            written[WORDS.len()..],
            [
                "MalformedEvent",
                "CallNotRecorded",
                "OutcomeNotPublished",
                "TimerNotArmed",
                "RedialScheduled",
                "DailyLimit",
                "RedialNotQueued",
                "RedialNotDue"
            ]
        );
        for CodeInfo { code, word, .. } in CODES {
            assert_eq!(code.word(), *word);
            assert_eq!(code.to_string(), *word);
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
            assert_eq!(Code::from_word(word), *code);
        }
        let throttled = Code::Service(ServiceCode::TooManyRequests);
        assert_eq!(Code::from_word("TooManyRequestsException"), throttled);
        assert_eq!(Code::from_word("Http504"), Code::Http(504));
        let new = Code::from_word("SomeCodeAddedNextYear");
        assert_eq!(
            new,
            Code::Service(ServiceCode::from("SomeCodeAddedNextYear"))
        );
    }
}
