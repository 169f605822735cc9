//! Logging: the Lambda runtime's `tracing` subscriber, set up as `lambda_runtime` does it
//! (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; `AWS_LAMBDA_LOG_FORMAT=JSON` for JSON
//! lines), with one addition: the AWS SDK and HTTP crates are capped at INFO whatever the
//! level asked for. At TRACE the SDK logs every request it transmits, body included, and
//! the body holds the message text (which can be a one-time code) and phone numbers.

use std::str::FromStr;

use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};
use lambda_runtime::tracing::subscriber::fmt::MakeWriter;
use lambda_runtime::tracing::Subscriber;

/// Crates whose debug and trace output can carry request or response contents.
const CAPPED_AT_INFO: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_pinpointsmsvoice",
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

    fn filter(&self) -> EnvFilter {
        let level = self.level.as_deref().unwrap_or("INFO");
        let mut filter = match LevelFilter::from_str(level) {
            Ok(level) => EnvFilter::builder()
                .with_default_directive(level.into())
                .parse_lossy(""),
            // Not a bare level: directives such as `voice_dispatch=debug,info`.
            Err(_) => EnvFilter::builder()
                .with_default_directive(LevelFilter::INFO.into())
                .parse_lossy(level),
        };
        for target in CAPPED_AT_INFO {
            if let Ok(directive) = format!("{target}=info").parse() {
                filter = filter.add_directive(directive);
            }
        }
        filter
    }
}

/// The subscriber, writing to `writer`.
pub fn subscriber<W>(settings: &LogSettings, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(settings.filter())
        .with_writer(writer);
    if settings.json {
        Box::new(builder.json().finish())
    } else {
        Box::new(builder.finish())
    }
}

/// Installs the subscriber for the process. A second call (the local runner after a test,
/// say) keeps the first.
pub fn init<W>(settings: &LogSettings, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = lambda_runtime::tracing::subscriber::util::SubscriberInitExt::try_init(subscriber(
        settings, writer,
    ));
}
