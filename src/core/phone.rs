//! Phone numbers: E.164 validation, and the masked form that is the only one ever logged.

use std::fmt;

/// A phone number in E.164 form: `+`, then 2 to 15 digits, the first not 0.
///
/// Phone numbers are personal data: `Debug` and [`PhoneNumber::masked`] show only the
/// country-code end and the last two digits; [`PhoneNumber::as_str`] is for the wire only.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

/// Why a string is not an E.164 phone number. Never carries the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an E.164 phone number (`+` then 2 to 15 digits, the first not 0)")]
pub struct NotE164;

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, NotE164> {
        let digits = raw.strip_prefix('+').ok_or(NotE164)?;
        let well_formed = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if well_formed {
            Ok(Self(raw.to_owned()))
        } else {
            Err(NotE164)
        }
    }

    /// The number as the service needs it. Never log this.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> MaskedPhone<'_> {
        MaskedPhone(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// Shows `+1206*****42`: the `+`, up to four leading digits (country and area), the last two
/// digits, and one `*` for every digit hidden. At least half of the digits are always hidden,
/// so short numbers show less.
#[derive(Clone, Copy)]
pub struct MaskedPhone<'a>(&'a str);

impl<'a> MaskedPhone<'a> {
    /// Masks any digit string, with or without its `+`.
    pub fn new(raw: &'a str) -> Self {
        Self(raw)
    }
}

impl fmt::Display for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let digits = self.0.strip_prefix('+').unwrap_or(self.0);
        let len = digits.chars().count();
        let hidden = len.saturating_sub(6).max(len / 2);
        let tail = if len >= 8 { 2 } else { 0 };
        let head = len - hidden - tail;
        // Byte offsets of the shown head's end and the shown tail's start (any character may
        // come, not only digits): written piece by piece, nothing allocated per line.
        let offset = |chars: usize| {
            digits
                .char_indices()
                .nth(chars)
                .map_or(digits.len(), |(at, _)| at)
        };
        f.write_char('+')?;
        f.write_str(&digits[..offset(head)])?;
        for _ in 0..hidden {
            f.write_char('*')?;
        }
        f.write_str(&digits[offset(head + hidden)..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_numbers_from_two_to_fifteen_digits() {
        for ok in ["+12", "+12065550142", "+442071838750", "+123456789012345"] {
            assert!(PhoneNumber::parse(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn rejects_numbers_that_are_not_e164() {
        for bad in [
            "",
            "+",
            "+1",
            "12065550142",
            "+012065550142",
            "+1234567890123456",
            "+1 206 555 0142",
            "+1-206-555-0142",
            "+1206555014a",
            "++12065550142",
            "+１２３",
        ] {
            assert_eq!(
                PhoneNumber::parse(bad),
                Err(NotE164),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn masks_all_but_the_area_and_the_last_two_digits() {
        let number = PhoneNumber::parse("+12065550142").unwrap();
        assert_eq!(number.masked().to_string(), "+1206*****42");
    }

    #[test]
    fn short_numbers_keep_at_least_half_of_their_digits_hidden() {
        let short = PhoneNumber::parse("+4412345").unwrap();
        let masked = short.masked().to_string();
        assert_eq!(masked, "+4412***");
    }

    #[test]
    fn masking_counts_characters_not_bytes() {
        // Any text can reach the mask (a scrubbed reason, say): a wide character is one.
        let wide = MaskedPhone::new("+１２３４５６７８９０").to_string();
        assert_eq!(wide, "+１２３*****９０");
        assert_eq!(MaskedPhone::new("").to_string(), "+");
        assert_eq!(MaskedPhone::new("12065550142").to_string(), "+1206*****42");
    }

    #[test]
    fn debug_output_is_masked() {
        let number = PhoneNumber::parse("+12065550142").unwrap();
        let debug = format!("{number:?}");
        assert!(!debug.contains("5550142"), "{debug}");
        assert!(debug.contains("+1206*****42"), "{debug}");
    }
}
