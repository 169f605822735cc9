//! The voice service's own words, as far as anything here depends on them: its error codes,
//! v2's reasons, the kinds of resource v2 says are missing. Adapters read them from an answer
//! with `From<&str>`; anything else the service says is kept as it said it, never matched.

/// Declares an enum of the service's words: one variant per word, and one for any other
/// word, whose text only `From<&str>` can set (so a named word is never "other").
macro_rules! service_words {
    (
        $(#[$meta:meta])*
        $name:ident, $other:ident {
            $($(#[$doc:meta])* $variant:ident => $wire:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$doc])* $variant,)*
            /// Any other word, as the service said it.
            Other($other),
        }

        /// A word of the service's that is not named in its enum.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $other(String);

        impl From<&str> for $name {
            fn from(wire: &str) -> Self {
                match wire {
                    $($wire => Self::$variant,)*
                    other => Self::Other($other(other.to_owned())),
                }
            }
        }

        impl $name {
            /// The word as the service says it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other($other(word)) => word,
                }
            }
        }
    };
}

service_words! {
    /// The voice service's error codes that decide something here, v1's and v2's; any other
    /// code is transient, so an unknown or new one never loses a message.
    ServiceCode, OtherCode {
        // The request itself is wrong: retrying cannot help. (v2 says a destination opted
        // out, unverified or blocked with a `ConflictException`.)
        BadRequest => "BadRequestException",
        NotFound => "NotFoundException",
        Validation => "ValidationException",
        Conflict => "ConflictException",
        ResourceNotFound => "ResourceNotFoundException",
        /// v2's quota error: per destination for the daily call limit, account-wide
        /// otherwise (a spend limit reached: every send would fail).
        ServiceQuotaExceeded => "ServiceQuotaExceededException",
        // "You are sending too fast": the pacer slows down. (v2 answers throttling with
        // HTTP 400: the code decides, never the status.)
        TooManyRequests => "TooManyRequestsException",
        LimitExceeded => "LimitExceededException",
        Throttling => "ThrottlingException",
        // The service failing on its side: the circuit breaker counts them.
        InternalServiceError => "InternalServiceErrorException",
        InternalServer => "InternalServerException",
        /// The role may not place the call, or the account is refused (v2
        /// `ACCOUNT_DISABLED`, `INSUFFICIENT_ACCOUNT_REPUTATION`): every call fails alike
        /// until someone fixes it.
        AccessDenied => "AccessDeniedException",
    }
}

service_words! {
    /// Why v2 refused, when it said (its error's `Reason`).
    ServiceReason, OtherReason {
        /// One destination's daily call limit, which resets at 00:00 UTC.
        DailyDestinationCallLimit => "DAILY_DESTINATION_CALL_LIMIT",
    }
}

service_words! {
    /// The kind of resource v2's `ResourceNotFoundException` says does not exist.
    ResourceType, OtherResource {
        ConfigurationSet => "configuration-set",
        Pool => "pool",
        PhoneNumber => "phone-number",
        SenderId => "sender-id",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_word_reads_back_as_itself_and_a_named_one_is_never_other() {
        for wire in [
            "BadRequestException",
            "InternalServiceErrorException",
            "ServiceQuotaExceededException",
            "AccessDeniedException",
            "SomeCodeAddedNextYear",
        ] {
            assert_eq!(ServiceCode::from(wire).as_str(), wire);
        }
        assert_eq!(
            ServiceCode::from("ThrottlingException"),
            ServiceCode::Throttling
        );
        assert!(matches!(
            ServiceCode::from("SomeCodeAddedNextYear"),
            ServiceCode::Other(_)
        ));
        assert_eq!(
            ServiceReason::from("DAILY_DESTINATION_CALL_LIMIT"),
            ServiceReason::DailyDestinationCallLimit
        );
        assert_eq!(ServiceReason::from("SPEND_LIMIT").as_str(), "SPEND_LIMIT");
        assert_eq!(ResourceType::from("pool"), ResourceType::Pool);
        assert_eq!(
            ResourceType::from("protect-configuration").as_str(),
            "protect-configuration"
        );
    }
}
