//! The function's configuration: read from the environment once, at init, and validated
//! there. An invalid value stops init with an error naming the variable and what it accepts.

use std::time::Duration;

pub mod failover;
pub mod outcomes;
pub mod redial;
pub mod variables;

pub use failover::FailoverConfig;
pub use outcomes::OutcomesConfig;
pub use redial::RedialConfig;

use crate::core::backoff::{Backoff, MAX_VISIBILITY_SECONDS};
use crate::core::breaker::BreakerSettings;
pub use crate::core::contract::Backend;
use crate::core::contract::MessageDefaults;
use crate::core::defaults::DEFAULTS;
use crate::core::expiry::{MAX_CONFIGURED_TTL_SECONDS, MIN_TTL_SECONDS};
use crate::core::ledger::UnknownOutcome;
use crate::core::pacing::SendRate;
use crate::core::phone::PhoneNumber;

#[derive(Debug, Clone)]
pub struct Config {
    pub defaults: MessageDefaults,
    /// Sends in flight per invocation.
    pub max_concurrency: usize,
    /// Time kept in reserve before the invocation deadline: no send starts inside it.
    pub deadline_safety: Duration,
    /// How long one attempt of `SendVoiceMessage` may take (less when the invocation's
    /// abandon point comes first). The SDK never retries it: a timed-out attempt may have
    /// placed the call.
    pub send_attempt_timeout: Duration,
    /// Where permanent failures are sent; without it they are reported and redrive moves
    /// them after `maxReceiveCount`.
    pub dead_letter_queue_url: Option<String>,
    /// How transient failures are spaced out; without it they come back after the queue's
    /// visibility timeout.
    pub backoff: Option<Backoff>,
    /// How long a call request stays worth placing, unless its body says otherwise.
    pub message_ttl: Duration,
    /// Sends per second per instance; `None`: unpaced.
    pub send_rate: Option<SendRate>,
    pub breaker: BreakerSettings,
    /// Requests per record per invocation; failures that placed nothing are retried in place.
    pub max_attempts: u32,
    /// The source queue's `maxReceiveCount`, when known: lets redelivery keep redrive from
    /// moving a message before its time to live.
    pub max_receive_count: Option<u32>,
    /// The DynamoDB table of the idempotency ledger; `None`: no ledger.
    pub idempotency_table: Option<String>,
    /// How long ledger entries stay valid.
    pub idempotency_ttl: Duration,
    /// What to do when an earlier attempt's outcome is unknown.
    pub on_unknown_outcome: UnknownOutcome,
    /// CloudWatch EMF metrics, written when running as a Lambda function
    /// (`AWS_LAMBDA_FUNCTION_NAME` is set).
    pub metrics: Option<MetricsSettings>,
    /// Which root certificates HTTPS trusts (`TLS_ROOTS`).
    pub tls_roots: Roots,
    /// Values adjusted to ones that work, each said once as a WARN line at init.
    pub warnings: Vec<String>,
    /// Which voice API places the calls (`VOICE_API`).
    pub voice_api: Backend,
    /// v2's `OriginationIdentity` (`ORIGINATION_IDENTITY`): a phone number, its ID or ARN, or
    /// a pool ID or ARN. Without it, the origination number.
    pub origination_identity: Option<String>,
    /// v2's `MaxPricePerMinute` (`MAX_PRICE_PER_MINUTE`).
    pub max_price_per_minute: Option<String>,
    /// `CONFIGURED_RESOURCES_ONLY` (v2): the role may place calls only from
    /// `ORIGINATION_IDENTITY` and with `CONFIGURATION_SET_NAME` (the template grants
    /// `SendVoiceMessage` on those ARNs alone), so a body naming others is refused.
    pub configured_resources_only: bool,
    /// The failover region (`FAILOVER_REGION` and its settings); `None`: off.
    pub failover: Option<FailoverConfig>,
    /// Delivery outcomes (`OUTCOME_EVENT_BUS_NAME`, `STATUS_QUEUE_URL`); `None`: off.
    pub outcomes: Option<OutcomesConfig>,
    /// How long a placed call's final event is waited for (`OUTCOME_WAIT_SECONDS`).
    pub outcome_wait: Duration,
    /// Redial (`REDIAL_ON`, `REDIAL_MAX_CALLS`, `REDIAL_INTERVAL_SECONDS`, `CALL_QUEUE_URL`).
    pub redial: RedialConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

pub const MAX_CONCURRENCY: &str = "MAX_CONCURRENCY";
pub const DEADLINE_SAFETY_MS: &str = "DEADLINE_SAFETY_MS";
pub const SEND_ATTEMPT_TIMEOUT_MS: &str = "SEND_ATTEMPT_TIMEOUT_MS";
/// Set by Lambda from `ApplicationLogLevel`.
pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
pub const ORIGINATION_PHONE_NUMBER: &str = "ORIGINATION_PHONE_NUMBER";
pub const CONFIGURATION_SET_NAME: &str = "CONFIGURATION_SET_NAME";
pub const DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";
pub const RETRY_BACKOFF_BASE_SECONDS: &str = "RETRY_BACKOFF_BASE_SECONDS";
pub const RETRY_BACKOFF_MAX_SECONDS: &str = "RETRY_BACKOFF_MAX_SECONDS";
pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
pub const AWS_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
pub const TLS_ROOTS: &str = "TLS_ROOTS";
pub const VOICE_API: &str = "VOICE_API";
pub const ORIGINATION_IDENTITY: &str = "ORIGINATION_IDENTITY";
pub const MAX_PRICE_PER_MINUTE: &str = "MAX_PRICE_PER_MINUTE";
pub const CONFIGURED_RESOURCES_ONLY: &str = "CONFIGURED_RESOURCES_ONLY";
pub const MESSAGE_TTL_SECONDS: &str = "MESSAGE_TTL_SECONDS";
pub const SEND_RATE_LIMIT: &str = "SEND_RATE_LIMIT";
pub const CIRCUIT_BREAKER_THRESHOLD: &str = "CIRCUIT_BREAKER_THRESHOLD";
pub const CIRCUIT_BREAKER_OPEN_SECONDS: &str = "CIRCUIT_BREAKER_OPEN_SECONDS";
pub const SEND_MAX_ATTEMPTS: &str = "SEND_MAX_ATTEMPTS";
pub const MAX_RECEIVE_COUNT: &str = "MAX_RECEIVE_COUNT";
pub const IDEMPOTENCY_TABLE_NAME: &str = "IDEMPOTENCY_TABLE_NAME";
pub const IDEMPOTENCY_TTL_SECONDS: &str = "IDEMPOTENCY_TTL_SECONDS";
pub const ON_UNKNOWN_OUTCOME: &str = "ON_UNKNOWN_OUTCOME";
/// Set to `true` by `sam local`.
pub const AWS_SAM_LOCAL: &str = "AWS_SAM_LOCAL";
/// The logical IDs of the stack's own resources that the template passes by `!Ref`.
pub const STACK_RESOURCE_IDS: &str = "STACK_RESOURCE_IDS";

impl Default for Config {
    fn default() -> Self {
        Self {
            defaults: MessageDefaults::default(),
            max_concurrency: DEFAULTS.max_concurrency,
            deadline_safety: DEFAULTS.deadline_safety,
            send_attempt_timeout: DEFAULTS.send_attempt_timeout,
            dead_letter_queue_url: None,
            backoff: None,
            message_ttl: DEFAULTS.message_ttl,
            send_rate: None,
            breaker: BreakerSettings::default(),
            max_attempts: DEFAULTS.max_attempts,
            max_receive_count: None,
            idempotency_table: None,
            idempotency_ttl: DEFAULTS.idempotency_ttl,
            on_unknown_outcome: UnknownOutcome::default(),
            metrics: None,
            tls_roots: Roots::Amazon,
            warnings: Vec::new(),
            voice_api: Backend::V1,
            origination_identity: None,
            max_price_per_minute: None,
            configured_resources_only: false,
            failover: None,
            outcomes: None,
            outcome_wait: crate::core::outcome_timer::DEFAULT_OUTCOME_WAIT,
            redial: RedialConfig {
                defaults: crate::core::redial::RedialPolicy::default(),
                call_queue_url: None,
            },
        }
    }
}

impl Config {
    /// What a message may leave out, for the configured backend: the body's defaults, and
    /// under v2 its voices, identity and grant. Built here, and only here.
    pub fn message_defaults(&self) -> MessageDefaults {
        MessageDefaults {
            backend: self.voice_api,
            v2_voices: match self.voice_api {
                Backend::V1 => &[],
                Backend::V2 => aws_sdk_pinpointsmsvoicev2::types::VoiceId::values(),
            },
            v2_identity: self
                .origination_identity
                .clone()
                .filter(|_| self.voice_api == Backend::V2),
            configured_resources_only: self.configured_resources_only,
            ..self.defaults.clone()
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, in production). An empty
    /// value counts as unset, as CloudFormation passes empty parameters through as "".
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config = Self::read(lookup)?;
        if let Some(failover) = &config.failover {
            failover::check_against_primary(failover, &config)?;
        }
        // An entry that lapsed while its message could still be delivered would let that
        // delivery call again.
        if config.idempotency_table.is_some() && config.idempotency_ttl < config.message_ttl {
            return Err(ConfigError {
                variable: IDEMPOTENCY_TTL_SECONDS,
                problem: format!(
                    "must be at least MESSAGE_TTL_SECONDS ({} s), or a redelivery could call again",
                    config.message_ttl.as_secs()
                ),
            });
        }
        if config.outcomes.is_some() {
            outcomes::check_ledger_ttl(
                config.idempotency_ttl,
                config.message_ttl,
                config.outcome_wait,
            )?;
        }
        Ok(config)
    }

    fn read(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let unresolved = Unresolved::read(&lookup);
        // Empty counts as unset, and so does a `!Ref` that SAM local could not resolve.
        let get = |name: &str| lookup(name).filter(|value| unresolved.keeps(name, value));
        let voice = read_voice(&get)?;
        let (backoff, backoff_warning) = backoff(&get)?;
        let (send_rate, failover) = read_regions(&get, &voice)?;
        let (outcomes, outcome_wait) = outcomes::read_outcomes(&get)?;
        let base = Self::default();
        let message_ttl = seconds(
            MESSAGE_TTL_SECONDS,
            get(MESSAGE_TTL_SECONDS),
            MIN_TTL_SECONDS..=MAX_CONFIGURED_TTL_SECONDS,
            base.message_ttl,
        )?;
        let redial = redial::read_redial(&get, message_ttl)?;
        Ok(Self {
            warnings: [backoff_warning, voice.warning]
                .into_iter()
                .flatten()
                .chain(unresolved.warnings())
                .collect(),
            voice_api: voice.backend,
            configured_resources_only: voice.configured_resources_only,
            origination_identity: voice.identity,
            max_price_per_minute: voice.max_price_per_minute,
            defaults: voice.defaults,
            max_concurrency: ranged(
                MAX_CONCURRENCY,
                get(MAX_CONCURRENCY),
                1..=1_000,
                base.max_concurrency as u64,
            )? as usize,
            deadline_safety: millis(DEADLINE_SAFETY_MS, &get, base.deadline_safety)?,
            send_attempt_timeout: millis(SEND_ATTEMPT_TIMEOUT_MS, &get, base.send_attempt_timeout)?,
            dead_letter_queue_url: get(DEAD_LETTER_QUEUE_URL)
                .map(|url| queue_url(DEAD_LETTER_QUEUE_URL, url.trim()))
                .transpose()?,
            breaker: read_breaker(&get, backoff)?,
            backoff,
            message_ttl,
            send_rate,
            failover,
            outcomes,
            outcome_wait,
            redial,
            max_attempts: ranged(
                SEND_MAX_ATTEMPTS,
                get(SEND_MAX_ATTEMPTS),
                1..=10,
                u64::from(base.max_attempts),
            )? as u32,
            max_receive_count: read_max_receive_count(&get)?,
            idempotency_table: get(IDEMPOTENCY_TABLE_NAME).map(|name| name.trim().to_owned()),
            idempotency_ttl: read_ledger_ttl(&get, base.idempotency_ttl)?,
            on_unknown_outcome: read_on_unknown(&get)?,
            metrics: read_metrics(&get),
            tls_roots: read_tls_roots(&get)?,
        })
    }
}

/// What the voice settings come to: the messages' defaults for the backend, v2's price, and
/// the one WARN for v2 settings given under v1.
struct VoiceSettings {
    defaults: MessageDefaults,
    backend: Backend,
    identity: Option<String>,
    configured_resources_only: bool,
    max_price_per_minute: Option<String>,
    warning: Option<String>,
}

/// `VOICE_API` and the settings that follow it. v2's own settings are read under v2 only:
/// under v1 they are ignored, with one WARN line, and never fail init.
fn read_voice(get: &impl Fn(&str) -> Option<String>) -> Result<VoiceSettings, ConfigError> {
    let backend = one_of(
        VOICE_API,
        get(VOICE_API),
        &[("v1", Backend::V1), ("v2", Backend::V2)],
    )?;
    let v2_only = |name: &str| get(name).filter(|_| backend == Backend::V2);
    let origination = get(ORIGINATION_PHONE_NUMBER)
        .map(|raw| {
            PhoneNumber::parse(raw.trim())
                .map_err(|err| invalid(ORIGINATION_PHONE_NUMBER, err.to_string()))
        })
        .transpose()?;
    let identity = v2_only(ORIGINATION_IDENTITY)
        .map(|identity| origination_identity(ORIGINATION_IDENTITY, identity.trim()))
        .transpose()?;
    let configuration_set = get(CONFIGURATION_SET_NAME)
        .map(|name| configuration_set(CONFIGURATION_SET_NAME, name.trim(), backend))
        .transpose()?;
    let configured_resources_only = one_of(
        CONFIGURED_RESOURCES_ONLY,
        v2_only(CONFIGURED_RESOURCES_ONLY),
        &[("false", false), ("true", true)],
    )?;
    if configured_resources_only && identity.is_none() {
        return Err(ConfigError {
            variable: CONFIGURED_RESOURCES_ONLY,
            problem: format!(
                "true needs {ORIGINATION_IDENTITY}: the one identity calls may come from"
            ),
        });
    }
    Ok(VoiceSettings {
        // What a body may leave out; the backend's part is in `Config::message_defaults`.
        defaults: MessageDefaults {
            origination,
            configuration_set,
            ..MessageDefaults::default()
        },
        backend,
        identity,
        configured_resources_only,
        max_price_per_minute: v2_only(MAX_PRICE_PER_MINUTE)
            .map(|price| max_price(price.trim()))
            .transpose()?,
        warning: ignored_v2(get, backend),
    })
}

/// The one WARN for v2's settings given under v1, where they are ignored.
fn ignored_v2(get: &impl Fn(&str) -> Option<String>, backend: Backend) -> Option<String> {
    let given = get(ORIGINATION_IDENTITY).is_some()
        || get(MAX_PRICE_PER_MINUTE).is_some()
        // The template passes "false" under v1: only "true" is said.
        || get(CONFIGURED_RESOURCES_ONLY).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    (backend == Backend::V1 && given).then(|| {
        format!(
            "{ORIGINATION_IDENTITY}, {MAX_PRICE_PER_MINUTE} and {CONFIGURED_RESOURCES_ONLY} are v2's: ignored under VOICE_API=v1"
        )
    })
}

/// The send rate per instance, and the failover region (with its own rate, by default the
/// same).
fn read_regions(
    get: &impl Fn(&str) -> Option<String>,
    voice: &VoiceSettings,
) -> Result<(Option<SendRate>, Option<FailoverConfig>), ConfigError> {
    let send_rate = read_send_rate(get)?;
    let failover = failover::read_failover(
        get,
        voice.backend,
        voice.configured_resources_only,
        send_rate,
    )?;
    Ok((send_rate, failover))
}

/// Sends per second per instance (`N/s`, `N/min`); unset: unpaced.
fn read_send_rate(get: &impl Fn(&str) -> Option<String>) -> Result<Option<SendRate>, ConfigError> {
    get(SEND_RATE_LIMIT)
        .map(|rate| SendRate::parse(&rate).map_err(|problem| invalid(SEND_RATE_LIMIT, problem)))
        .transpose()
}

/// The variables SAM local passed one of the stack's own logical IDs for, with that ID:
/// `sam local` cannot resolve a `!Ref` to a resource of the stack and passes the resource's
/// name (`DeadLetterQueue`, `IdempotencyTable`), which the template lists in
/// `STACK_RESOURCE_IDS`. Such a variable is "not configured", with a warning saying how to give
/// a real one. Deployed (no `AWS_SAM_LOCAL`), none is, and every value is checked as usual.
struct Unresolved(Vec<(&'static str, String)>);

impl Unresolved {
    fn read(lookup: &impl Fn(&str) -> Option<String>) -> Self {
        let sam_local =
            lookup(AWS_SAM_LOCAL).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !sam_local {
            return Self(Vec::new());
        }
        let ids = lookup(STACK_RESOURCE_IDS).unwrap_or_default();
        let is_stack_id = |value: &str| {
            ids.split(',')
                .any(|id| !id.trim().is_empty() && id.trim() == value)
        };
        let variables = variables::VARIABLES.iter().filter_map(|variable| {
            let value = lookup(variable.name)?;
            is_stack_id(value.trim()).then(|| (variable.name, value.trim().to_owned()))
        });
        Self(variables.collect())
    }

    /// Whether `name`'s `value` counts as set: not empty, nor an unresolved `!Ref`.
    fn keeps(&self, name: &str, value: &str) -> bool {
        !value.trim().is_empty() && !self.0.iter().any(|(variable, _)| *variable == name)
    }

    fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|(variable, id)| {
            format!(
                "{variable} is {id}, a resource of the stack that SAM local cannot resolve: not configured here; give a real one in the --env-vars file (local/sam-env.json)"
            )
        })
    }
}

/// Which root certificates HTTPS trusts (`TLS_ROOTS`); `wiring` builds the client with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Roots {
    /// The Amazon Trust Services roots built into the function.
    #[default]
    Amazon,
    /// The system's store, for endpoints behind a TLS proxy with a private CA.
    System,
}

/// What EMF metrics need to know, read when running as a Lambda function; `wiring` turns it
/// into the metrics writer's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `METRICS_NAMESPACE`.
    pub namespace: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// `AWS_LAMBDA_LOG_LEVEL`, as Lambda set it.
    pub log_level: Option<String>,
}

/// Which root certificates HTTPS trusts.
fn read_tls_roots(get: &impl Fn(&str) -> Option<String>) -> Result<Roots, ConfigError> {
    one_of(
        TLS_ROOTS,
        get(TLS_ROOTS),
        &[("amazon", Roots::Amazon), ("system", Roots::System)],
    )
}

/// The source queue's `maxReceiveCount`, when given.
fn read_max_receive_count(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<u32>, ConfigError> {
    get(MAX_RECEIVE_COUNT)
        .map(|raw| ranged(MAX_RECEIVE_COUNT, Some(raw), 1..=1_000, 0).map(|n| n as u32))
        .transpose()
}

/// What the ledger does with a key whose earlier attempt's outcome is unknown.
fn read_on_unknown(get: &impl Fn(&str) -> Option<String>) -> Result<UnknownOutcome, ConfigError> {
    one_of(
        ON_UNKNOWN_OUTCOME,
        get(ON_UNKNOWN_OUTCOME),
        &[
            ("retry", UnknownOutcome::Retry),
            ("dead-letter", UnknownOutcome::DeadLetter),
        ],
    )
}

/// CloudWatch EMF metrics, written when running as a Lambda function.
fn read_metrics(get: &impl Fn(&str) -> Option<String>) -> Option<MetricsSettings> {
    get(AWS_LAMBDA_FUNCTION_NAME).map(|function_name| MetricsSettings {
        namespace: get(METRICS_NAMESPACE).unwrap_or_else(|| DEFAULTS.metrics_namespace.to_owned()),
        function_name,
        log_level: get(AWS_LAMBDA_LOG_LEVEL),
    })
}

fn invalid(variable: &'static str, problem: String) -> ConfigError {
    ConfigError { variable, problem }
}

/// v2's `OriginationIdentity` (given in `variable`), within its pattern.
fn origination_identity(variable: &'static str, identity: &str) -> Result<String, ConfigError> {
    if crate::core::contract::v2_limits::is_origination_identity(identity) {
        Ok(identity.to_owned())
    } else {
        Err(ConfigError {
            variable,
            problem: crate::core::contract::v2_limits::IDENTITY_RULE.to_owned(),
        })
    }
}

/// A configuration set (given in `variable`): under v2 its name or ARN within v2's pattern;
/// v1's names are its own.
fn configuration_set(
    variable: &'static str,
    set: &str,
    backend: Backend,
) -> Result<String, ConfigError> {
    if backend == Backend::V2 && !crate::core::contract::v2_limits::is_resource_name(set) {
        return Err(ConfigError {
            variable,
            problem: format!(
                "under VOICE_API=v2, {} ({} characters given)",
                crate::core::contract::v2_limits::RESOURCE_NAME_RULE,
                set.chars().count()
            ),
        });
    }
    Ok(set.to_owned())
}

/// The circuit breaker: its threshold and first open time, and its longest pause, which is
/// the backoff's longest: neither waits longer than the operator allowed for a retry.
fn read_breaker(
    get: &impl Fn(&str) -> Option<String>,
    backoff: Option<Backoff>,
) -> Result<BreakerSettings, ConfigError> {
    let base = BreakerSettings::default();
    let max_open = match backoff {
        Some(backoff) => Duration::from_secs(u64::from(backoff.max_seconds())),
        None => seconds(
            RETRY_BACKOFF_MAX_SECONDS,
            get(RETRY_BACKOFF_MAX_SECONDS),
            1..=MAX_VISIBILITY_SECONDS,
            base.max_open,
        )?,
    };
    Ok(BreakerSettings {
        threshold: ranged(
            CIRCUIT_BREAKER_THRESHOLD,
            get(CIRCUIT_BREAKER_THRESHOLD),
            1..=1_000,
            u64::from(base.threshold),
        )? as u32,
        open_for: seconds(
            CIRCUIT_BREAKER_OPEN_SECONDS,
            get(CIRCUIT_BREAKER_OPEN_SECONDS),
            1..=MAX_VISIBILITY_SECONDS,
            base.open_for,
        )?,
        max_open,
    })
}

fn queue_url(variable: &'static str, url: &str) -> Result<String, ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.to_owned())
    } else {
        Err(ConfigError {
            variable,
            problem: "expected a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"
                .to_owned(),
        })
    }
}

/// One of a few words, case and surrounding space ignored; unset, the first.
fn one_of<T: Copy>(
    variable: &'static str,
    value: Option<String>,
    words: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(value) = value else {
        return Ok(words[0].1);
    };
    let value = value.trim().to_ascii_lowercase();
    words
        .iter()
        .find(|(word, _)| *word == value)
        .map(|(_, choice)| *choice)
        .ok_or_else(|| ConfigError {
            variable,
            problem: format!(
                "expected {}",
                words
                    .iter()
                    .map(|(word, _)| format!("`{word}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        })
}

/// v2's `MaxPricePerMinute`: up to two digits, a point, one to five digits (`0.10`), as the
/// API's pattern says; checked at init, since every send would otherwise be refused.
fn max_price(price: &str) -> Result<String, ConfigError> {
    if crate::core::contract::v2_limits::is_price(price) {
        Ok(price.to_owned())
    } else {
        Err(ConfigError {
            variable: MAX_PRICE_PER_MINUTE,
            problem: crate::core::contract::v2_limits::PRICE_RULE.to_owned(),
        })
    }
}

/// Backoff is on when `RETRY_BACKOFF_BASE_SECONDS` is set. A base above the maximum the
/// operator set (the template accepts both independently) is lowered to it, with a warning:
/// refusing it would fail every invocation and send all traffic to the DLQ uncalled.
fn backoff(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(Option<Backoff>, Option<String>), ConfigError> {
    let limit = u64::from(MAX_VISIBILITY_SECONDS);
    let Some(base) = get(RETRY_BACKOFF_BASE_SECONDS) else {
        return Ok((None, None));
    };
    let base = ranged(RETRY_BACKOFF_BASE_SECONDS, Some(base), 1..=limit, 0)?;
    let max = ranged(
        RETRY_BACKOFF_MAX_SECONDS,
        get(RETRY_BACKOFF_MAX_SECONDS),
        1..=limit,
        u64::from(DEFAULTS.backoff_max_seconds).max(base),
    )?;
    let warning = (base > max).then(|| {
        format!(
            "{RETRY_BACKOFF_BASE_SECONDS} ({base}) is above {RETRY_BACKOFF_MAX_SECONDS} ({max}): \
             backing off {max} s every time"
        )
    });
    Ok((
        Some(Backoff::new(base.min(max) as u32, max as u32)),
        warning,
    ))
}

/// `IDEMPOTENCY_TTL_SECONDS`: an hour to a year.
fn read_ledger_ttl(
    get: &impl Fn(&str) -> Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    seconds(
        IDEMPOTENCY_TTL_SECONDS,
        get(IDEMPOTENCY_TTL_SECONDS),
        3_600..=31_536_000,
        default,
    )
}

/// A duration in whole seconds within `range`.
fn seconds(
    variable: &'static str,
    raw: Option<String>,
    range: std::ops::RangeInclusive<u32>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let range = u64::from(*range.start())..=u64::from(*range.end());
    let value = ranged(variable, raw, range, default.as_secs())?;
    Ok(Duration::from_secs(value))
}

/// A duration in milliseconds, from 100 ms to 10 minutes.
fn millis(
    variable: &'static str,
    get: &impl Fn(&str) -> Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let ms = ranged(
        variable,
        get(variable),
        100..=600_000,
        default.as_millis() as u64,
    )?;
    Ok(Duration::from_millis(ms))
}

fn ranged(
    variable: &'static str,
    raw: Option<String>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let problem = || ConfigError {
        variable,
        problem: format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        ),
    };
    let value: u64 = raw.trim().parse().map_err(|_| problem())?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(problem())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = config(&[]).unwrap();
        assert_eq!(config.max_concurrency, 10);
        assert_eq!(config.deadline_safety, Duration::from_millis(1_000));
        assert!(config.defaults.origination.is_none());
        assert!(config.defaults.configuration_set.is_none());
        assert!(config.dead_letter_queue_url.is_none());
        assert!(config.backoff.is_none());
        assert!(config.metrics.is_none(), "no metrics outside Lambda");
    }

    #[test]
    fn tls_roots_are_amazon_unless_system_is_asked_for() {
        assert_eq!(config(&[]).unwrap().tls_roots, Roots::Amazon);
        assert_eq!(
            config(&[(TLS_ROOTS, "System")]).unwrap().tls_roots,
            Roots::System
        );
        assert_eq!(config_err(&[(TLS_ROOTS, "none")]).variable, TLS_ROOTS);
    }

    #[test]
    fn metrics_name_the_function_and_the_namespace() {
        let config = config(&[(AWS_LAMBDA_FUNCTION_NAME, "calls")]).unwrap();
        let metrics = config.metrics.unwrap();
        assert_eq!(metrics.function_name, "calls");
        assert_eq!(metrics.namespace, "VoiceDispatch");
        let config = super::tests::config(&[
            (AWS_LAMBDA_FUNCTION_NAME, "calls"),
            (METRICS_NAMESPACE, "Alerting"),
        ])
        .unwrap();
        assert_eq!(config.metrics.unwrap().namespace, "Alerting");
    }

    #[test]
    fn dead_lettering_is_on_with_a_queue_url() {
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/calls-dlq";
        let config = config(&[(DEAD_LETTER_QUEUE_URL, url)]).unwrap();
        assert_eq!(config.dead_letter_queue_url.as_deref(), Some(url));
        let err = config_err(&[(DEAD_LETTER_QUEUE_URL, "calls-dlq")]);
        assert_eq!(err.variable, DEAD_LETTER_QUEUE_URL);
    }

    fn config_err(vars: &[(&str, &str)]) -> ConfigError {
        config(vars).unwrap_err()
    }

    #[test]
    fn backoff_is_on_with_a_base_and_capped_at_900_by_default() {
        let config = config(&[(RETRY_BACKOFF_BASE_SECONDS, "5")]).unwrap();
        let backoff = config.backoff.unwrap();
        assert_eq!(backoff.ceiling(1), 5);
        assert_eq!(backoff.ceiling(20), 900);
    }

    #[test]
    fn backoff_max_is_read_and_bounded_by_base_and_twelve_hours() {
        let config = config(&[
            (RETRY_BACKOFF_BASE_SECONDS, "60"),
            (RETRY_BACKOFF_MAX_SECONDS, "43200"),
        ])
        .unwrap();
        assert_eq!(config.backoff.unwrap().ceiling(20), 43_200);
        for (base, max, variable) in [
            ("0", "900", RETRY_BACKOFF_BASE_SECONDS),
            ("43201", "900", RETRY_BACKOFF_BASE_SECONDS),
            ("60", "43201", RETRY_BACKOFF_MAX_SECONDS),
            ("60", "0", RETRY_BACKOFF_MAX_SECONDS),
        ] {
            let err = config_err(&[
                (RETRY_BACKOFF_BASE_SECONDS, base),
                (RETRY_BACKOFF_MAX_SECONDS, max),
            ]);
            assert_eq!(err.variable, variable, "{base} {max}: {err}");
        }
    }

    #[test]
    fn voice_api_selects_the_backend_and_v2_takes_its_own_defaults() {
        assert_eq!(config(&[]).unwrap().voice_api, super::Backend::V1);
        let v2 = config(&[
            (VOICE_API, " V2 "),
            (ORIGINATION_IDENTITY, "pool-0123"),
            (MAX_PRICE_PER_MINUTE, "0.10"),
        ])
        .unwrap();
        assert_eq!(v2.voice_api, super::Backend::V2);
        assert_eq!(v2.origination_identity.as_deref(), Some("pool-0123"));
        assert_eq!(v2.max_price_per_minute.as_deref(), Some("0.10"));
        assert_eq!(config_err(&[(VOICE_API, "v3")]).variable, VOICE_API);
        for bad in ["ten", "1", "123.4", "0.123456", ".", "0.1e"] {
            assert_eq!(
                config_err(&[(VOICE_API, "v2"), (MAX_PRICE_PER_MINUTE, bad)]).variable,
                MAX_PRICE_PER_MINUTE,
                "{bad}"
            );
        }
        // The pattern allows no digit before the point; under v1 the price is never read.
        let half = config(&[(VOICE_API, "v2"), (MAX_PRICE_PER_MINUTE, ".5")]).unwrap();
        assert_eq!(half.max_price_per_minute.as_deref(), Some(".5"));
        assert_eq!(
            config(&[(MAX_PRICE_PER_MINUTE, ".5")])
                .unwrap()
                .max_price_per_minute,
            None
        );
        let ignored = config(&[(ORIGINATION_IDENTITY, "pool-1")]).unwrap();
        assert_eq!(ignored.warnings.len(), 1, "said once, as a WARN at init");
        assert!(v2.warnings.is_empty());
        // Under v1, v2's settings are ignored and never fail init, whatever they hold.
        let v1 = config(&[
            (ORIGINATION_IDENTITY, "pool 1"),
            (MAX_PRICE_PER_MINUTE, "ten"),
            (CONFIGURED_RESOURCES_ONLY, "yes"),
        ])
        .unwrap();
        assert_eq!(v1.origination_identity, None);
        assert_eq!(v1.warnings.len(), 1);
        let long = "p".repeat(257);
        for bad in [long.as_str(), "pool 1", "pool;1"] {
            assert_eq!(
                config_err(&[(VOICE_API, "v2"), (ORIGINATION_IDENTITY, bad)]).variable,
                ORIGINATION_IDENTITY,
                "{bad}"
            );
        }
    }

    #[test]
    fn under_v2_the_configuration_set_follows_the_v2_pattern_and_may_be_an_arn() {
        let arn = "arn:aws:sms-voice:us-east-1:123456789012:configuration-set/alerts";
        let v2 = config(&[(VOICE_API, "v2"), (CONFIGURATION_SET_NAME, arn)]).unwrap();
        assert_eq!(v2.defaults.configuration_set.as_deref(), Some(arn));
        let err = config_err(&[(VOICE_API, "v2"), (CONFIGURATION_SET_NAME, "alerts set")]);
        assert_eq!(err.variable, CONFIGURATION_SET_NAME);
        // v1 names are v1's business.
        assert!(config(&[(CONFIGURATION_SET_NAME, "alerts set")]).is_ok());
    }

    #[test]
    fn configured_resources_only_needs_v2_and_an_identity() {
        let pinned = config(&[
            (VOICE_API, "v2"),
            (
                ORIGINATION_IDENTITY,
                "arn:aws:sms-voice:us-east-1:1:pool/pool-1",
            ),
            (CONFIGURED_RESOURCES_ONLY, "true"),
        ])
        .unwrap();
        assert!(pinned.configured_resources_only);
        assert!(pinned.warnings.is_empty());
        let err = config_err(&[(VOICE_API, "v2"), (CONFIGURED_RESOURCES_ONLY, "true")]);
        assert_eq!(err.variable, CONFIGURED_RESOURCES_ONLY);
        assert_eq!(
            config_err(&[(VOICE_API, "v2"), (CONFIGURED_RESOURCES_ONLY, "yes")]).variable,
            CONFIGURED_RESOURCES_ONLY
        );
        // As the template deploys a v1 stack: nothing to say.
        let template_v1 = config(&[(CONFIGURED_RESOURCES_ONLY, "false")]).unwrap();
        assert!(template_v1.warnings.is_empty());
        let under_v1 = config(&[(CONFIGURED_RESOURCES_ONLY, "true")]).unwrap();
        assert!(
            !under_v1.configured_resources_only,
            "v2's: ignored under v1"
        );
        assert_eq!(under_v1.warnings.len(), 1);
        assert!(
            !config(&[(VOICE_API, "v2"), (CONFIGURED_RESOURCES_ONLY, "false")])
                .unwrap()
                .configured_resources_only
        );
    }

    #[test]
    fn a_base_above_the_maximum_set_is_lowered_to_it_with_one_warning() {
        let clamped = config(&[
            (RETRY_BACKOFF_BASE_SECONDS, "600"),
            (RETRY_BACKOFF_MAX_SECONDS, "60"),
        ])
        .unwrap();
        let backoff = clamped.backoff.unwrap();
        assert_eq!((backoff.ceiling(1), backoff.ceiling(10)), (60, 60));
        assert_eq!(clamped.warnings.len(), 1);
        assert!(clamped.warnings[0].contains(RETRY_BACKOFF_BASE_SECONDS));
        let fine = config(&[
            (RETRY_BACKOFF_BASE_SECONDS, "5"),
            (RETRY_BACKOFF_MAX_SECONDS, "60"),
        ])
        .unwrap();
        assert!(
            fine.warnings.is_empty(),
            "nothing to say when it is in order"
        );
    }

    #[test]
    fn a_base_above_the_default_cap_raises_the_cap_to_the_base() {
        let config = config(&[(RETRY_BACKOFF_BASE_SECONDS, "1200")]).unwrap();
        assert_eq!(config.backoff.unwrap().ceiling(1), 1_200);
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            (ORIGINATION_PHONE_NUMBER, "+12065550199"),
            (CONFIGURATION_SET_NAME, "alerts"),
            (MAX_CONCURRENCY, "50"),
            (DEADLINE_SAFETY_MS, "2500"),
            (SEND_ATTEMPT_TIMEOUT_MS, "3000"),
        ])
        .unwrap();
        assert_eq!(
            config.defaults.origination.unwrap().as_str(),
            "+12065550199"
        );
        assert_eq!(config.defaults.configuration_set.as_deref(), Some("alerts"));
        assert_eq!(config.max_concurrency, 50);
        assert_eq!(config.deadline_safety, Duration::from_millis(2_500));
        assert_eq!(config.send_attempt_timeout, Duration::from_millis(3_000));
        // Every variable of the table that the function reads itself: its sample changes
        // the configuration (v2's own under v2, where they are read).
        let read = |vars: &[(&str, &str)]| format!("{:?}", super::tests::config(vars));
        for variable in variables::VARIABLES {
            let Some(sample) = variable.sample else {
                continue;
            };
            let mut context = Vec::new();
            if [
                ORIGINATION_IDENTITY,
                MAX_PRICE_PER_MINUTE,
                CONFIGURED_RESOURCES_ONLY,
            ]
            .contains(&variable.name)
            {
                context.push((VOICE_API, "v2"));
            }
            if variable.name == CONFIGURED_RESOURCES_ONLY {
                context.push((ORIGINATION_IDENTITY, "pool-1"));
            }
            // The failover settings go together: the region and its origination (under v1 a
            // number, under v2 an identity). One missing is an error, which differs too.
            if let Some(failover) = variable.name.strip_prefix("FAILOVER_") {
                if failover != "REGION" {
                    context.push((failover::FAILOVER_REGION, "us-west-2"));
                }
                if failover == "ORIGINATION_IDENTITY" {
                    context.push((VOICE_API, "v2"));
                } else if failover != "ORIGINATION_PHONE_NUMBER" {
                    context.push((failover::FAILOVER_ORIGINATION_PHONE_NUMBER, "+12065550178"));
                }
                context.push((IDEMPOTENCY_TABLE_NAME, "ledger"));
            }
            // Outcomes go together: the bus, the status queue and the ledger.
            if [outcomes::OUTCOME_EVENT_BUS_NAME, outcomes::STATUS_QUEUE_URL]
                .contains(&variable.name)
            {
                context.push((IDEMPOTENCY_TABLE_NAME, "ledger"));
                context.push((
                    DEAD_LETTER_QUEUE_URL,
                    "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
                ));
                context.push(if variable.name == outcomes::STATUS_QUEUE_URL {
                    (outcomes::OUTCOME_EVENT_BUS_NAME, "outcomes")
                } else {
                    (
                        outcomes::STATUS_QUEUE_URL,
                        "https://sqs.us-east-1.amazonaws.com/123456789012/status",
                    )
                });
            }
            // Redial goes with outcomes, the ledger and the call queue.
            if variable.name.starts_with("REDIAL_") || variable.name == redial::CALL_QUEUE_URL {
                context.extend([
                    (IDEMPOTENCY_TABLE_NAME, "ledger"),
                    (IDEMPOTENCY_TTL_SECONDS, "86400"),
                    (
                        DEAD_LETTER_QUEUE_URL,
                        "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
                    ),
                    (outcomes::OUTCOME_EVENT_BUS_NAME, "outcomes"),
                    (
                        outcomes::STATUS_QUEUE_URL,
                        "https://sqs.us-east-1.amazonaws.com/123456789012/status",
                    ),
                ]);
                if variable.name != redial::CALL_QUEUE_URL {
                    context.push((
                        redial::CALL_QUEUE_URL,
                        "https://sqs.us-east-1.amazonaws.com/123456789012/calls",
                    ));
                }
            }
            // Under SAM local, a stack's own logical ID is not configured.
            match variable.name {
                AWS_SAM_LOCAL => context.push((STACK_RESOURCE_IDS, "IdempotencyTable")),
                STACK_RESOURCE_IDS => context.push((AWS_SAM_LOCAL, "true")),
                _ => {}
            }
            if [AWS_SAM_LOCAL, STACK_RESOURCE_IDS].contains(&variable.name) {
                context.push((IDEMPOTENCY_TABLE_NAME, "IdempotencyTable"));
            }
            // The metrics' settings are read when running as a Lambda function.
            if [METRICS_NAMESPACE, AWS_LAMBDA_LOG_LEVEL].contains(&variable.name) {
                context.push((AWS_LAMBDA_FUNCTION_NAME, "voice"));
            }
            let mut set = context.clone();
            set.push((variable.name, sample));
            assert!(
                super::tests::config(&set).is_ok(),
                "{}'s sample is valid",
                variable.name
            );
            assert_ne!(read(&set), read(&context), "{} is not read", variable.name);
        }
        // And the table has every variable the configuration names.
        for name in [
            MAX_CONCURRENCY,
            DEADLINE_SAFETY_MS,
            SEND_ATTEMPT_TIMEOUT_MS,
            AWS_LAMBDA_LOG_LEVEL,
            ORIGINATION_PHONE_NUMBER,
            CONFIGURATION_SET_NAME,
            DEAD_LETTER_QUEUE_URL,
            RETRY_BACKOFF_BASE_SECONDS,
            RETRY_BACKOFF_MAX_SECONDS,
            METRICS_NAMESPACE,
            AWS_LAMBDA_FUNCTION_NAME,
            TLS_ROOTS,
            VOICE_API,
            ORIGINATION_IDENTITY,
            MAX_PRICE_PER_MINUTE,
            CONFIGURED_RESOURCES_ONLY,
            MESSAGE_TTL_SECONDS,
            SEND_RATE_LIMIT,
            CIRCUIT_BREAKER_THRESHOLD,
            CIRCUIT_BREAKER_OPEN_SECONDS,
            SEND_MAX_ATTEMPTS,
            MAX_RECEIVE_COUNT,
            IDEMPOTENCY_TABLE_NAME,
            IDEMPOTENCY_TTL_SECONDS,
            ON_UNKNOWN_OUTCOME,
            failover::FAILOVER_REGION,
            failover::FAILOVER_ORIGINATION_PHONE_NUMBER,
            failover::FAILOVER_ORIGINATION_IDENTITY,
            failover::FAILOVER_CONFIGURATION_SET_NAME,
            failover::FAILOVER_SEND_RATE_LIMIT,
            failover::FAILOVER_ENDPOINT_URL,
            outcomes::OUTCOME_EVENT_BUS_NAME,
            outcomes::STATUS_QUEUE_URL,
            outcomes::OUTCOME_WAIT_SECONDS,
        ] {
            assert!(
                variables::VARIABLES.iter().any(|v| v.name == name),
                "{name} is missing from the table"
            );
        }
    }

    #[test]
    fn under_sam_local_the_stacks_own_logical_ids_are_not_configured_and_said_so() {
        let stack = [
            (STACK_RESOURCE_IDS, "DeadLetterQueue,IdempotencyTable"),
            (DEAD_LETTER_QUEUE_URL, "DeadLetterQueue"),
            (IDEMPOTENCY_TABLE_NAME, "IdempotencyTable"),
        ];
        let mut local = stack.to_vec();
        local.push((AWS_SAM_LOCAL, "true"));
        let read = config(&local).unwrap();
        assert_eq!(read.dead_letter_queue_url, None);
        assert_eq!(read.idempotency_table, None);
        assert_eq!(read.warnings.len(), 2, "{:?}", read.warnings);
        assert!(read.warnings[0].contains("DEAD_LETTER_QUEUE_URL is DeadLetterQueue"));
        assert!(read.warnings[1].contains("local/sam-env.json"));
        // A real value given under SAM local stands.
        let mut given = local.clone();
        given.push((
            DEAD_LETTER_QUEUE_URL,
            "http://172.17.0.1:5000/123456789012/dlq",
        ));
        let given = config(&given).unwrap();
        assert!(given.dead_letter_queue_url.is_some());
        // Deployed, the same values are what they are: a queue URL that is not one fails init.
        assert_eq!(config_err(&stack).variable, DEAD_LETTER_QUEUE_URL);
        let deployed = config(&stack[..1]).unwrap();
        assert!(deployed.warnings.is_empty());
    }

    #[test]
    fn the_breakers_longest_pause_is_the_backoffs_cap_whatever_raised_it() {
        let raised = config(&[(RETRY_BACKOFF_BASE_SECONDS, "1200")]).unwrap();
        assert_eq!(raised.backoff.unwrap().ceiling(10), 1_200);
        assert_eq!(raised.breaker.max_open, Duration::from_secs(1_200));
        let capped = config(&[
            (RETRY_BACKOFF_BASE_SECONDS, "10"),
            (RETRY_BACKOFF_MAX_SECONDS, "60"),
        ])
        .unwrap();
        assert_eq!(capped.breaker.max_open, Duration::from_secs(60));
        let off = config(&[(RETRY_BACKOFF_MAX_SECONDS, "60")]).unwrap();
        assert_eq!(off.breaker.max_open, Duration::from_secs(60));
    }

    #[test]
    fn time_to_live_pacing_breaker_and_attempts_have_defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.message_ttl, Duration::from_secs(3_600));
        assert_eq!(config.send_rate, None, "unset means no limit");
        assert_eq!(config.breaker.threshold, 5);
        assert_eq!(config.breaker.open_for, Duration::from_secs(30));
        assert_eq!(config.breaker.max_open, Duration::from_secs(900));
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.max_receive_count, None);
        assert_eq!(
            config.idempotency_table, None,
            "no ledger unless a table is named"
        );
        assert_eq!(config.idempotency_ttl, Duration::from_secs(1_209_600));
        assert_eq!(config.on_unknown_outcome, UnknownOutcome::Retry);
    }

    #[test]
    fn the_ledger_is_on_with_a_table_and_its_policy_is_read() {
        let config = config(&[
            (IDEMPOTENCY_TABLE_NAME, "calls-ledger"),
            (IDEMPOTENCY_TTL_SECONDS, "86400"),
            (ON_UNKNOWN_OUTCOME, "dead-letter"),
        ])
        .unwrap();
        assert_eq!(config.idempotency_table.as_deref(), Some("calls-ledger"));
        assert_eq!(config.idempotency_ttl, Duration::from_secs(86_400));
        assert_eq!(config.on_unknown_outcome, UnknownOutcome::DeadLetter);
        assert_eq!(
            config_err(&[(ON_UNKNOWN_OUTCOME, "twice")]).variable,
            ON_UNKNOWN_OUTCOME
        );
        assert_eq!(
            config_err(&[(IDEMPOTENCY_TTL_SECONDS, "60")]).variable,
            IDEMPOTENCY_TTL_SECONDS
        );
        let err = config_err(&[
            (IDEMPOTENCY_TABLE_NAME, "calls-ledger"),
            (IDEMPOTENCY_TTL_SECONDS, "3600"),
            (MESSAGE_TTL_SECONDS, "7200"),
        ]);
        assert_eq!(
            err.variable, IDEMPOTENCY_TTL_SECONDS,
            "entries must outlive the message"
        );
    }

    #[test]
    fn time_to_live_pacing_breaker_and_attempts_are_read_and_bounded() {
        let config = config(&[
            (MESSAGE_TTL_SECONDS, "600"),
            (SEND_RATE_LIMIT, "10/min"),
            (CIRCUIT_BREAKER_THRESHOLD, "8"),
            (CIRCUIT_BREAKER_OPEN_SECONDS, "2"),
            (RETRY_BACKOFF_MAX_SECONDS, "4"),
            (SEND_MAX_ATTEMPTS, "1"),
            (MAX_RECEIVE_COUNT, "100"),
        ])
        .unwrap();
        assert_eq!(config.max_receive_count, Some(100));
        assert_eq!(config.message_ttl, Duration::from_secs(600));
        assert_eq!(config.send_rate, SendRate::per_second(10.0 / 60.0));
        assert_eq!(config.breaker.threshold, 8);
        assert_eq!(config.breaker.open_for, Duration::from_secs(2));
        assert_eq!(config.breaker.max_open, Duration::from_secs(4));
        assert_eq!(config.max_attempts, 1);
        for (variable, value) in [
            (MESSAGE_TTL_SECONDS, "4"),
            (MESSAGE_TTL_SECONDS, "1209601"),
            (SEND_RATE_LIMIT, "10"),
            (SEND_RATE_LIMIT, "0/s"),
            (CIRCUIT_BREAKER_THRESHOLD, "0"),
            (CIRCUIT_BREAKER_OPEN_SECONDS, "0"),
            (SEND_MAX_ATTEMPTS, "11"),
            (MAX_RECEIVE_COUNT, "1001"),
        ] {
            assert_eq!(
                config_err(&[(variable, value)]).variable,
                variable,
                "{value}"
            );
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[(ORIGINATION_PHONE_NUMBER, ""), (MAX_CONCURRENCY, " ")]).unwrap();
        assert!(config.defaults.origination.is_none());
        assert_eq!(config.max_concurrency, 10);
    }

    #[test]
    fn out_of_range_values_name_the_variable_and_the_range() {
        for (variable, value, range) in [
            (MAX_CONCURRENCY, "0", "from 1 to 1000"),
            (MAX_CONCURRENCY, "1001", "from 1 to 1000"),
            (MAX_CONCURRENCY, "ten", "from 1 to 1000"),
            (DEADLINE_SAFETY_MS, "-5", "from 100 to 600000"),
            (SEND_ATTEMPT_TIMEOUT_MS, "10", "from 100 to 600000"),
        ] {
            let err = config(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable);
            let text = err.to_string();
            assert!(text.contains(variable) && text.contains(range), "{text}");
        }
    }

    #[test]
    fn a_bad_origination_number_fails_init_without_echoing_it() {
        let err = config(&[(ORIGINATION_PHONE_NUMBER, "2065550199")]).unwrap_err();
        assert_eq!(err.variable, ORIGINATION_PHONE_NUMBER);
        assert!(!err.to_string().contains("2065550199"));
    }
}
