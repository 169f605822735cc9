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
#[derive(Debug, Default)]
pub struct JsonLines {
    time: LineTime,
}

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
        self.time.write(&mut writer, std::time::SystemTime::now())?;
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

/// A line's time as `tracing-subscriber`'s `SystemTime` timer writes it: RFC 3339 in UTC to
/// the microsecond (`2026-12-07T09:10:11.123456Z`). The date and time to the second are
/// written once a second and kept; each line adds its microseconds (the timer's `core::fmt`
/// date was a fifth of a per-record line's instructions).
#[derive(Debug, Default)]
struct LineTime {
    /// The last second written: seconds since the epoch, and `YYYY-MM-DDTHH:MM:SS.`.
    second: std::sync::Mutex<Option<(i64, [u8; 20])>>,
}

impl LineTime {
    /// `now`, as the timer writes it. Outside the years 0 to 9999, which `time` cannot
    /// write in four digits, the timer itself writes the line's time (reading the clock
    /// again: a clock that far off is wrong by more than that anyway).
    fn write(&self, writer: &mut impl fmt::Write, now: std::time::SystemTime) -> fmt::Result {
        let written = since_the_epoch(now)
            .and_then(|(seconds, micros)| Some((self.to_the_second(seconds)?, micros)));
        let Some((prefix, micros)) = written else {
            return SystemTime.format_time(&mut Writer::new(writer));
        };
        let mut fraction = *b"000000Z";
        put_digits(&mut fraction[..6], micros);
        writer.write_str(std::str::from_utf8(&prefix).map_err(|_| fmt::Error)?)?;
        writer.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
    }

    /// `YYYY-MM-DDTHH:MM:SS.` for `seconds`: the kept one when it is that second's, else
    /// made and kept.
    fn to_the_second(&self, seconds: i64) -> Option<[u8; 20]> {
        let mut kept = self
            .second
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *kept {
            Some((second, prefix)) if second == seconds => Some(prefix),
            _ => {
                let prefix = to_the_second(seconds)?;
                *kept = Some((seconds, prefix));
                Some(prefix)
            }
        }
    }
}

/// Whole seconds since the epoch (before it, negative) and the microseconds after them, as
/// the timer counts them: an instant before the epoch is its second below and the
/// microseconds up from that.
fn since_the_epoch(now: std::time::SystemTime) -> Option<(i64, u32)> {
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => Some((i64::try_from(since.as_secs()).ok()?, since.subsec_micros())),
        Err(before) => {
            let before = before.duration();
            let seconds = i64::try_from(before.as_secs()).ok()?;
            match before.subsec_nanos() {
                0 => Some((-seconds, 0)),
                nanos => Some((-seconds - 1, (1_000_000_000 - nanos) / 1_000)),
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` for a second since the epoch, the year in four digits.
fn to_the_second(seconds: i64) -> Option<[u8; 20]> {
    let time = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    if !(0..=9999).contains(&time.year()) {
        return None;
    }
    let mut prefix = *b"0000-00-00T00:00:00.";
    let fields = [
        (0, u32::try_from(time.year()).ok()?, 4),
        (5, u32::from(u8::from(time.month())), 2),
        (8, u32::from(time.day()), 2),
        (11, u32::from(time.hour()), 2),
        (14, u32::from(time.minute()), 2),
        (17, u32::from(time.second()), 2),
    ];
    for (at, value, width) in fields {
        put_digits(&mut prefix[at..at + width], value);
    }
    Some(prefix)
}

/// The last `into.len()` decimal digits of `value`, zero-padded, into `into`.
fn put_digits(into: &mut [u8], mut value: u32) {
    for digit in into.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
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
        // Most text (names, ids, masked numbers) holds nothing to escape: one pass over all
        // of it, with no branch per byte, and it goes out whole.
        let plain = text.bytes().fold(true, |plain, byte| {
            plain & (byte >= 0x20) & (byte != b'"') & (byte != b'\\')
        });
        if plain {
            return self.0.write_str(text);
        }
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
    use std::time::Duration;

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
            .event_format(JsonLines::default())
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

    fn line_time(time: &LineTime, at: std::time::SystemTime) -> String {
        let mut text = String::new();
        time.write(&mut text, at).unwrap();
        text
    }

    /// `seconds` from the epoch (negative: before it), then `micros` more.
    fn at(seconds: i64, micros: u64) -> std::time::SystemTime {
        let second = match u64::try_from(seconds) {
            Ok(after) => std::time::UNIX_EPOCH + Duration::from_secs(after),
            Err(_) => std::time::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()),
        };
        second + Duration::from_micros(micros)
    }

    /// `time`'s own formatting of `at`, to the microsecond.
    fn formatted_by_time(at: std::time::SystemTime) -> String {
        let format = time::format_description::parse_borrowed::<2>(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z",
        )
        .unwrap();
        time::OffsetDateTime::from(at).format(&format).unwrap()
    }

    /// The same text as the timer this replaces, read off the same clock: written between
    /// two of the timer's own, it sorts between them (fixed-width RFC 3339 sorts as time).
    #[test]
    fn a_lines_time_is_the_one_tracing_subscribers_timer_writes() {
        let theirs = || {
            let mut text = String::new();
            SystemTime.format_time(&mut Writer::new(&mut text)).unwrap();
            text
        };
        let time = LineTime::default();
        for _ in 0..1_000 {
            let before = theirs();
            let ours = line_time(&time, std::time::SystemTime::now());
            let after = theirs();
            assert_eq!(ours.len(), before.len(), "{ours} against {before}");
            assert!(
                before <= ours && ours <= after,
                "{before} ≤ {ours} ≤ {after}"
            );
        }
    }

    /// The second kept from one line to the next is replaced when the second changes:
    /// across midnight UTC, a new year, a leap day, and back in time (the wall clock may be
    /// set back).
    #[test]
    fn a_kept_second_never_outlives_its_second() {
        let time = LineTime::default();
        let new_year = 1_798_761_600; // 2027-01-01T00:00:00Z
        for (instant, expected) in [
            (at(new_year - 1, 999_999), "2026-12-31T23:59:59.999999Z"),
            (at(new_year, 0), "2027-01-01T00:00:00.000000Z"),
            (at(new_year, 42), "2027-01-01T00:00:00.000042Z"),
            (at(new_year - 1, 5), "2026-12-31T23:59:59.000005Z"),
            (at(1_835_395_200, 7), "2028-02-29T00:00:00.000007Z"),
            (at(0, 0), "1970-01-01T00:00:00.000000Z"),
            (at(253_402_300_799, 999_999), "9999-12-31T23:59:59.999999Z"),
            (at(-1, 999_999), "1969-12-31T23:59:59.999999Z"),
            (at(-1, 0), "1969-12-31T23:59:59.000000Z"),
            (at(-62_167_219_200, 5), "0000-01-01T00:00:00.000005Z"),
        ] {
            assert_eq!(line_time(&time, instant), expected);
        }
        // Before the epoch, a part of a microsecond counts as the timer counts it: 1.5 µs
        // before is written 0.999998 s into the second before.
        let before = std::time::UNIX_EPOCH - Duration::from_nanos(1_500);
        assert_eq!(line_time(&time, before), "1969-12-31T23:59:59.999998Z");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, rng_seed: proptest::test_runner::RngSeed::Fixed(27), failure_persistence: None, ..ProptestConfig::default() })]
        /// Any run of instants, near one another or not, through one kept second.
        #[test]
        fn any_instants_are_written_as_time_formats_them(
            start in -62_167_219_200i64..253_402_300_000,
            steps in proptest::collection::vec(0i64..3_000_000, 1..20),
        ) {
            let time = LineTime::default();
            let mut micros = start * 1_000_000;
            for step in steps {
                micros += step;
                let instant = at(micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000).unsigned_abs());
                prop_assert_eq!(line_time(&time, instant), formatted_by_time(instant));
            }
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
