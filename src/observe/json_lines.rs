//! JSON lines as `tracing-subscriber`'s `json()` format writes them (the same members with
//! the same values: `timestamp`, `level`, `fields`, and the current `span` with its fields
//! and `name`), written straight into the line. Its own format parses the span's stored
//! JSON back into a map, and builds the line through a serde map, on every event: a
//! quarter of the per-record line's cost, and the line is paid once per record.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format: one JSON object per line, its time RFC 3339 in UTC.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(event.metadata().level().as_str())?;
        writer.write_str("\",\"fields\":{")?;
        let mut fields = Members::new(&mut writer);
        event.record(&mut fields);
        fields.result?;
        writer.write_char('}')?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            // The span's fields, stored once as a JSON object when it was made.
            let stored = extensions
                .get::<FormattedFields<JsonFields>>()
                .map(|formatted| formatted.fields.trim())
                .and_then(|object| object.strip_prefix('{')?.strip_suffix('}'))
                .map(str::trim)
                .unwrap_or_default();
            if !stored.is_empty() {
                writer.write_str(stored)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            json_string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes each field as a JSON member, as `tracing-serde` records it: strings escaped,
/// numbers and booleans bare (a float that is not finite as `null`), anything else by its
/// `Debug` text.
struct Members<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl<'a, 'w> Members<'a, 'w> {
    fn new(writer: &'a mut Writer<'w>) -> Self {
        Self {
            writer,
            first: true,
            result: Ok(()),
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'w>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { "," };
        self.first = false;
        self.result = self
            .writer
            .write_str(separator)
            .and_then(|()| json_string(self.writer, field.name()))
            .and_then(|()| self.writer.write_char(':'))
            .and_then(|()| value(self.writer));
    }
}

impl Visit for Members<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // Written by serde_json itself (`null` when not finite), into a buffer on the stack:
        // the same text `tracing-serde` gives, to the last digit and exponent.
        self.member(field, |w| {
            let mut buffer = [0u8; 32];
            let mut cursor = std::io::Cursor::new(&mut buffer[..]);
            serde_json::to_writer(&mut cursor, &value).map_err(|_| fmt::Error)?;
            let written = cursor.position() as usize;
            w.write_str(std::str::from_utf8(&buffer[..written]).map_err(|_| fmt::Error)?)
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| json_string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `text` as a JSON string, escaped as `serde_json` escapes it.
fn json_string(writer: &mut Writer<'_>, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaped(writer).write_str(text)?;
    writer.write_char('"')
}

/// Writes what it is given escaped for the inside of a JSON string, as `serde_json` does:
/// `"` and `\` escaped, the control characters as `\b`, `\t`, `\n`, `\f`, `\r` or
/// `\u00XX`, everything else as it is. `Debug` text goes through it piece by piece, with no
/// copy of its own.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut start = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[start..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = at + 1;
        }
        self.0.write_str(&text[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::logging::Captured;
    use proptest::prelude::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        Escaped(&mut out).write_str(text).unwrap();
        format!("\"{out}\"")
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "\n\r\t\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "é → 日本",
        ] {
            assert_eq!(
                escaped(text),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    /// Lines written by `subscriber` while `emit` runs.
    fn lines_of(
        subscriber: impl Subscriber + Send + Sync + 'static,
        captured: &std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        emit: impl Fn(),
    ) -> Vec<serde_json::Value> {
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                let stamp = value["timestamp"].take();
                let stamp = stamp.as_str().unwrap_or_default().to_owned();
                assert!(
                    time::OffsetDateTime::parse(
                        &stamp,
                        &time::format_description::well_known::Rfc3339
                    )
                    .is_ok(),
                    "RFC 3339: {stamp}"
                );
                value
            })
            .collect()
    }

    #[test]
    fn lines_carry_what_tracing_subscribers_json_format_writes() {
        let emit = || {
            tracing::info!(a = 1, "outside any span");
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "8476a536-e9f4-11e8-9739",
                xrayTraceId = "Root=1-5bef4de7;Sampled=1"
            );
            let _entered = span.enter();
            let none: Option<&str> = None;
            tracing::info!(
                message_id = %"m\"1",
                fate = "sent",
                receive_count = Some(2u32),
                attempts = 1u32,
                latency_ms = 1.5f64,
                whole_ms = 2.0f64,
                huge = 1.0e16f64,
                tiny = -2.5e-7f64,
                not_a_number = f64::NAN,
                below = -3i64,
                destination = Some("+1206*****42"),
                region = none,
                circuit_open = false,
                "record sent"
            );
            tracing::warn!(error = ?"line\nbreak", reason = "tab\there", "record not sent");
            let bare = tracing::info_span!("bare");
            let _bare = bare.enter();
            tracing::error!("in a span without fields");
        };
        let (old, new) = (Captured::default(), Captured::default());
        let writer = old.clone();
        let theirs = tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .with_timer(SystemTime)
            .json()
            .with_span_list(false)
            .finish();
        let writer = new.clone();
        let ours = tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .finish();
        let expected = lines_of(theirs, &old.0, emit);
        let written = lines_of(ours, &new.0, emit);
        assert_eq!(written.len(), 4);
        assert_eq!(written, expected);
        assert_eq!(written[1]["span"]["requestId"], "8476a536-e9f4-11e8-9739");
        assert_eq!(
            written[1]["fields"]["not_a_number"],
            serde_json::Value::Null
        );
        // The float text itself is serde_json's, exponent form included.
        let ours = String::from_utf8(new.0.lock().unwrap().clone()).unwrap();
        let theirs = String::from_utf8(old.0.lock().unwrap().clone()).unwrap();
        for member in ["\"huge\":", "\"tiny\":", "\"latency_ms\":"] {
            let text = |lines: &str| {
                let at = lines.find(member).map_or(0, |at| at + member.len());
                lines[at..]
                    .split([',', '}'])
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            };
            assert!(ours.contains(member), "{member}");
            assert_eq!(text(&ours), text(&theirs), "{member}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, rng_seed: proptest::test_runner::RngSeed::Fixed(27), failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(text in any::<String>()) {
            prop_assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap());
        }
    }
}
