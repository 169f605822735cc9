//! Scrubbing free text we do not control (service error messages, panic messages) before it
//! reaches a log line or a dead-letter reason.

use crate::core::phone::MaskedPhone;

/// Runs of this many digits or more may be phone numbers (or codes) and are masked.
const MIN_DIGITS_TO_MASK: usize = 7;

/// Masks every run of 7 or more digits (with an optional leading `+`) the way phone numbers
/// are masked everywhere else, so a service message that quotes a number does not leak it.
pub fn scrub_phone_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit() || c == '+') {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let plus = usize::from(candidate.starts_with('+'));
        let digits = candidate[plus..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let run = &candidate[..plus + digits];
        if digits >= MIN_DIGITS_TO_MASK {
            out.push_str(&MaskedPhone::new(run).to_string());
        } else {
            out.push_str(run);
        }
        // `run` holds at least the character `find` stopped at, so the scan moves on.
        rest = &candidate[run.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_inside_a_message_are_masked() {
        assert_eq!(
            scrub_phone_numbers("Invalid destination +12065550142 for origin 12065550199."),
            "Invalid destination +1206*****42 for origin +1206*****99."
        );
    }

    #[test]
    fn short_numbers_and_plain_text_stay() {
        let text = "Rate exceeded: 5 per 60 s (+1 retry), code 429";
        assert_eq!(scrub_phone_numbers(text), text);
    }

    #[test]
    fn handles_a_trailing_plus_and_unicode() {
        assert_eq!(scrub_phone_numbers("é+"), "é+");
        assert_eq!(scrub_phone_numbers("++1234567890é"), "++123*****90é");
    }
}
