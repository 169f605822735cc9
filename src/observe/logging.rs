//! Logging: a `tracing-subscriber` fmt subscriber set up as `lambda_runtime`'s own
//! (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; `AWS_LAMBDA_LOG_FORMAT=JSON` for JSON
//! lines, each with a `level` and an RFC 3339 `timestamp`, which Lambda's level filter needs:
//! without them it files a line as INFO and drops it at WARN; text lines carry no time, since
//! CloudWatch adds it), with two differences: a plain target
//! filter instead of `EnvFilter` (which brings a regex engine to the binary and its start),
//! and the AWS SDK and HTTP crates capped at INFO whatever the level asked for. At TRACE the SDK logs every request it transmits, body included, and
//! the body holds the message text (which can be a one-time code) and phone numbers.

use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
pub use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Crates whose debug and trace output can carry request or response contents.
const CAPPED_AT_INFO: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_dynamodb",
    "aws_sdk_pinpointsmsvoice",
    "aws_sdk_pinpointsmsvoicev2",
    "aws_sdk_sqs",
    "aws_sigv4",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "h2",
    "hyper",
    "hyper_util",
    "rustls",
];

/// How logs are written, as Lambda's advanced logging controls say.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// `TRACE` .. `ERROR`, or `RUST_LOG`-style directives.
    pub level: Option<String>,
    pub json: bool,
}

impl LogSettings {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            level: var("AWS_LAMBDA_LOG_LEVEL").or_else(|| var("RUST_LOG")),
            json: var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")),
        }
    }

    fn filter(&self) -> Targets {
        let level = self.level.as_deref().unwrap_or("INFO").trim();
        // Lambda's highest level; tracing's is ERROR.
        let level = if level.eq_ignore_ascii_case("FATAL") {
            "ERROR"
        } else {
            level
        };
        let filter = match LevelFilter::from_str(level) {
            Ok(level) => Targets::new().with_default(level),
            // Not a bare level: directives such as `voice_dispatch=debug,info`.
            Err(_) => Targets::from_str(level)
                .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO)),
        };
        CAPPED_AT_INFO.iter().fold(filter, |filter, target| {
            use tracing::Level;
            let asked = [
                Level::TRACE,
                Level::DEBUG,
                Level::INFO,
                Level::WARN,
                Level::ERROR,
            ]
            .into_iter()
            .find(|level| filter.would_enable(target, level))
            .map_or(LevelFilter::OFF, LevelFilter::from_level);
            filter.with_target(*target, asked.min(LevelFilter::INFO))
        })
    }
}

/// The subscriber, writing to `writer`.
pub fn subscriber<W>(settings: &LogSettings, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer);
    let filter = settings.filter();
    if settings.json {
        // The current span (the runtime's, with the request id) is enough: the span list
        // would repeat it on every line. The timer writes RFC 3339 in UTC.
        Box::new(
            builder
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(super::json_lines::JsonLines::default())
                .finish()
                .with(filter),
        )
    } else {
        Box::new(builder.without_time().finish().with(filter))
    }
}

/// Installs the subscriber for the process. A second call (the local runner after a test,
/// say) keeps the first.
pub fn init<W>(settings: &LogSettings, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = tracing::subscriber::set_global_default(subscriber(settings, writer));
}

/// Log output captured by a test's own subscriber.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(level: &str) -> LogSettings {
        LogSettings {
            level: Some(level.to_owned()),
            json: false,
        }
    }

    #[test]
    fn a_bare_level_applies_to_our_code_and_caps_the_sdk_at_info() {
        let filter = settings("TRACE").filter();
        assert!(filter.would_enable("voice_dispatch::core::engine", &tracing::Level::TRACE));
        assert!(!filter.would_enable("aws_smithy_runtime::client", &tracing::Level::DEBUG));
        assert!(filter.would_enable("aws_smithy_runtime::client", &tracing::Level::INFO));
    }

    #[test]
    fn directives_are_honoured_below_the_cap() {
        let filter = settings("voice_dispatch=debug,aws_sigv4=trace,warn").filter();
        assert!(filter.would_enable("voice_dispatch", &tracing::Level::DEBUG));
        assert!(!filter.would_enable("lambda_runtime", &tracing::Level::INFO));
        assert!(!filter.would_enable("aws_sigv4", &tracing::Level::DEBUG));
        assert!(
            !filter.would_enable("aws_config", &tracing::Level::INFO),
            "warn stays warn"
        );
    }

    #[test]
    fn the_default_is_info() {
        let filter = LogSettings::default().filter();
        assert!(filter.would_enable("voice_dispatch", &tracing::Level::INFO));
        assert!(!filter.would_enable("voice_dispatch", &tracing::Level::DEBUG));
    }
}
