//! The v2 API's (End User Messaging SMS and Voice v2) rules for the `SendVoiceMessage`
//! members this function sets, from its Smithy model: one place for the configuration
//! (`ORIGINATION_IDENTITY`, `CONFIGURATION_SET_NAME`, `MAX_PRICE_PER_MINUTE`) and the message
//! contract alike. A value the service would refuse with a `ValidationException` is refused
//! here, before any request, with the member's name and the rule.

/// `OriginationIdentity`: 1–256 of `[A-Za-z0-9_:/+-]` (a phone number, its ID or ARN, a
/// pool ID or ARN).
pub fn is_origination_identity(value: &str) -> bool {
    name_like(value, b"_:/+-")
}

/// `ConfigurationSetName` and `ProtectConfigurationId` (a name, an ID or an ARN): 1–256 of
/// `[A-Za-z0-9_:/-]`.
pub fn is_resource_name(value: &str) -> bool {
    name_like(value, b"_:/-")
}

/// What a rejected identity or resource name must look like, for error messages.
pub const IDENTITY_RULE: &str = "1 to 256 of A-Z, a-z, 0-9 and _ : / + -";
pub const RESOURCE_NAME_RULE: &str = "1 to 256 of A-Z, a-z, 0-9 and _ : / -";

/// `MaxPricePerMinute`, in US dollars: up to two digits, a point, one to five digits.
pub fn is_price(value: &str) -> bool {
    value.split_once('.').is_some_and(|(whole, fraction)| {
        whole.len() <= 2
            && whole.bytes().all(|b| b.is_ascii_digit())
            && (1..=5).contains(&fraction.len())
            && fraction.bytes().all(|b| b.is_ascii_digit())
    })
}

pub const PRICE_RULE: &str = "a price such as 0.10: up to two digits, a point, one to five digits";

/// `Context`: at most 5 entries.
pub const MAX_CONTEXT_ENTRIES: usize = 5;
/// A `Context` key: 1–100 characters, none of them white space (`\S+`).
pub fn is_context_key(key: &str) -> bool {
    (1..=100).contains(&key.chars().count()) && !key.chars().any(is_space)
}
/// A `Context` value: 1–800 characters, neither starting nor ending with white space.
pub fn is_context_value(value: &str) -> bool {
    (1..=MAX_CONTEXT_VALUE_CHARS).contains(&value.chars().count()) && trim_space(value) == value
}

/// A value without the white space at either end that the model's patterns refuse there.
pub fn trim_space(value: &str) -> &str {
    value.trim_matches(is_space)
}

/// The model's `\s`: ASCII white space, as its regular expressions (Java's) mean it.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}
pub const MAX_CONTEXT_VALUE_CHARS: usize = 800;

fn name_like(value: &str, punctuation: &[u8]) -> bool {
    (1..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || punctuation.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_names_follow_the_model_patterns() {
        for good in [
            "+12065550100",
            "pool-0123456789abcdef",
            "arn:aws:sms-voice:us-east-1:123456789012:pool/pool-1",
        ] {
            assert!(is_origination_identity(good), "{good}");
        }
        for bad in ["", " pool-1", "pool 1", "pool\u{e9}", &"p".repeat(257)] {
            assert!(!is_origination_identity(bad), "{bad:?}");
        }
        assert!(is_resource_name(
            "arn:aws:sms-voice:us-east-1:123456789012:configuration-set/alerts"
        ));
        for bad in ["", "alerts!", "a+b", " alerts", &"s".repeat(257)] {
            assert!(!is_resource_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn prices_and_context_entries_follow_the_model_patterns() {
        for good in ["0.10", ".5", "12.12345"] {
            assert!(is_price(good), "{good}");
        }
        for bad in ["1", "123.1", "1.123456", "1.", "a.1", ""] {
            assert!(!is_price(bad), "{bad}");
        }
        assert!(is_context_key("ticket") && !is_context_key("a b") && !is_context_key(""));
        assert!(!is_context_key(&"k".repeat(101)));
        assert!(is_context_value("T 1") && !is_context_value(" T") && !is_context_value("T\n"));
        assert!(!is_context_value("") && !is_context_value(&"v".repeat(801)));
        // Only the pattern's white space: a no-break space is a character like any other.
        assert!(is_context_value("T-1\u{a0}") && is_context_key("a\u{a0}b"));
    }
}
