//! Building the function from its configuration: one place, shared by the Lambda binary,
//! the local runner and the tests.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

use crate::adapters::dynamodb::DynamoLedger;
use crate::adapters::eventbridge::EventBridgeOutcomes;
use crate::adapters::lazy::Lazy;
use crate::adapters::pinpoint::PinpointVoice;
use crate::adapters::pinpoint_v2::{PinpointV2Voice, Voice};
use crate::adapters::sqs::{SqsCallQueue, SqsCheckQueue, SqsDeadLetterQueue, SqsRedelivery};
use crate::adapters::tls::{https_client, TlsRoots};
use crate::app::VoiceDispatch;
use crate::config::{Backend, Config, FailoverConfig, MetricsSettings, Roots};
use crate::core::outcome_timer::{CallOutcomes, OutcomeSettings};
use crate::status::StatusDispatch;
use std::sync::Arc;

use crate::core::clock::{Clock, SystemClock};
use crate::core::engine::{BatchEngine, EngineSettings};
use crate::core::route::FailoverSettings;
use crate::core::settle::{Redelivery, Settlement};
use crate::observe::metrics::MetricsContext;

/// The function as deployed: Pinpoint SMS Voice for calls, SQS for settling, DynamoDB for
/// the idempotency ledger (when `IDEMPOTENCY_TABLE_NAME` is set).
pub type Dispatch = VoiceDispatch<Voice, SqsDeadLetterQueue, SqsRedelivery, DynamoLedger, Timers>;

/// The call path's part in delivery outcomes: the ledger and the status queue.
pub type Timers = CallOutcomes<DynamoLedger, SqsCheckQueue>;

/// The status path (delivery outcomes on): the ledger, EventBridge, the status queue.
pub type Status = StatusDispatch<
    DynamoLedger,
    EventBridgeOutcomes,
    SqsCheckQueue,
    SqsDeadLetterQueue,
    SqsRedelivery,
    Option<SqsCallQueue>,
>;

/// The endpoint overrides that are set but empty, by name. The template declares them empty
/// so that `sam local --env-vars` may set them; the SDK would take an empty value as an
/// endpoint, so they must be removed before it reads the environment.
pub fn empty_endpoint_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    vars.into_iter()
        .filter(|(name, value)| name.starts_with("AWS_ENDPOINT_URL") && value.trim().is_empty())
        .map(|(name, _)| name)
        .collect()
}

/// Removes the empty endpoint overrides from this process's environment: call it first in
/// `main`, before any thread or SDK reads the environment.
pub fn unset_empty_endpoint_overrides() {
    for name in empty_endpoint_overrides(std::env::vars()) {
        std::env::remove_var(name);
    }
}

/// The connect and attempt timeout of the SQS and DynamoDB calls (and the voice call's
/// connect timeout). Fixed: `SEND_ATTEMPT_TIMEOUT_MS` is the voice call's own, set per
/// attempt, so lowering it for short invocations never starves the ledger or the DLQ. The
/// engine and the settlement bound these calls by the invocation's cutoffs as well.
pub const AWS_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The SDK configuration loader with this function's timeouts. Everything else (region,
/// credentials, `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`, `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`)
/// comes from the standard sources, as in any SDK program.
pub fn sdk_config_loader(config: &Config) -> ConfigLoader {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(tls_roots(config.tls_roots)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(AWS_CALL_TIMEOUT)
                .operation_attempt_timeout(AWS_CALL_TIMEOUT)
                .build(),
        );
    from_the_environment(loader)
}

/// Lambda gives every function its credentials and region as environment variables, and the
/// SDK's default chains look there first. When they are there, the loader is told so: the
/// rest of the chains (profile files, web identity with an STS client of its own, the
/// container and instance endpoints) is not built at every cold start, where it was a
/// quarter of init's instructions (callgrind). Without them the default chains still decide.
fn from_the_environment(loader: ConfigLoader) -> ConfigLoader {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let loader = if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
    } else {
        loader
    };
    if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
        loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new())
    } else {
        loader
    }
}

/// Builds the function from one SDK configuration (per-service endpoints come from
/// `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`, `AWS_ENDPOINT_URL_SQS` and
/// `AWS_ENDPOINT_URL_DYNAMODB`, as usual): the clients every batch uses built now, at init
/// (which Lambda runs before the first request, not at its memory size's CPU share), the
/// others at their first use.
pub fn voice_dispatch(config: &Config, sdk: &SdkConfig) -> Dispatch {
    let (sqs, dynamodb) = call_path_clients(config, sdk);
    call_path(config, sdk, sqs, dynamodb)
}

/// The call path with its SQS and DynamoDB clients.
fn call_path(
    config: &Config,
    sdk: &SdkConfig,
    sqs: Lazy<aws_sdk_sqs::Client>,
    dynamodb: Option<Lazy<aws_sdk_dynamodb::Client>>,
) -> Dispatch {
    voice_dispatch_with_voices(
        config,
        voice(config, sdk),
        failover(config, sdk),
        sqs,
        dynamodb,
    )
}

/// Both paths of one execution environment: the call path ([`voice_dispatch`]) and, with
/// delivery outcomes on, the status path ([`status_dispatch`]) on the call path's SQS and
/// DynamoDB clients, so that no second client of either is built at the first status record.
pub fn call_and_status_paths(config: &Config, sdk: &SdkConfig) -> (Dispatch, Option<Status>) {
    let (sqs, dynamodb) = call_path_clients(config, sdk);
    let status = dynamodb
        .as_ref()
        .and_then(|dynamodb| status_dispatch(config, sdk, &sqs, dynamodb));
    (call_path(config, sdk, sqs, dynamodb), status)
}

/// The call path's SQS and DynamoDB clients. The ledger claims every record before its call,
/// so its client is built at once; so is SQS with delivery outcomes on (every batch that
/// places a call arms its timers). With them off, SQS only settles what did not go through
/// (a dead letter, a redelivery delay): it is built at its first use, and a run whose calls
/// all go through never builds it. No DynamoDB client without the ledger.
pub fn call_path_clients(
    config: &Config,
    sdk: &SdkConfig,
) -> (
    Lazy<aws_sdk_sqs::Client>,
    Option<Lazy<aws_sdk_dynamodb::Client>>,
) {
    let sqs = match config.outcomes {
        Some(_) => Lazy::from(aws_sdk_sqs::Client::new(sdk)),
        None => lazy_sqs(sdk),
    };
    let dynamodb = config
        .idempotency_table
        .as_ref()
        .map(|_| Lazy::from(aws_sdk_dynamodb::Client::new(sdk)));
    (sqs, dynamodb)
}

/// The SQS client, built when first used.
pub fn lazy_sqs(sdk: &SdkConfig) -> Lazy<aws_sdk_sqs::Client> {
    let sdk = sdk.clone();
    Lazy::new(move || aws_sdk_sqs::Client::new(&sdk))
}

/// The DynamoDB client, built when first used.
pub fn lazy_dynamodb(sdk: &SdkConfig) -> Lazy<aws_sdk_dynamodb::Client> {
    let sdk = sdk.clone();
    Lazy::new(move || aws_sdk_dynamodb::Client::new(&sdk))
}

/// The EventBridge client, built when the status path first publishes an outcome.
pub fn lazy_eventbridge(sdk: &SdkConfig) -> Lazy<aws_sdk_eventbridge::Client> {
    let sdk = sdk.clone();
    Lazy::new(move || aws_sdk_eventbridge::Client::new(&sdk))
}

/// The voice clients' timeouts: the shared connect timeout, and no attempt timeout of their
/// own. Each attempt is given its limit by the engine (`SEND_ATTEMPT_TIMEOUT_MS`, or less
/// when the invocation's abandon point comes first) and held to it by the engine's own timer
/// (`core::engine::attempt`).
fn voice_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .disable_operation_attempt_timeout()
        .build()
}

/// The voice client makes one attempt per send, whatever `AWS_MAX_ATTEMPTS` says: the SDK
/// would retry a timed-out attempt or a connection lost after the request went out, and
/// `SendVoiceMessage` has no idempotency token, so that could place the same call twice. The
/// engine retries the failures that certainly placed nothing, through the pacer and the
/// circuit breaker, and never after a message's expiry.
pub fn voice_client(sdk: &SdkConfig) -> aws_sdk_pinpointsmsvoice::Client {
    aws_sdk_pinpointsmsvoice::Client::from_conf(v1_config(sdk).build())
}

fn v1_config(sdk: &SdkConfig) -> aws_sdk_pinpointsmsvoice::config::Builder {
    aws_sdk_pinpointsmsvoice::config::Builder::from(sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(voice_timeouts())
}

/// The v2 client, one attempt per send for the same reason (`SendVoiceMessage` has no
/// idempotency token in v2 either). Its endpoint override is
/// `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2`.
pub fn voice_v2_client(sdk: &SdkConfig) -> aws_sdk_pinpointsmsvoicev2::Client {
    aws_sdk_pinpointsmsvoicev2::Client::from_conf(v2_config(sdk).build())
}

fn v2_config(sdk: &SdkConfig) -> aws_sdk_pinpointsmsvoicev2::config::Builder {
    aws_sdk_pinpointsmsvoicev2::config::Builder::from(sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(voice_timeouts())
}

/// The failover region's voice backend and settings, when `FAILOVER_REGION` is set: a
/// client of the same API from the same SDK configuration (credentials, HTTP client,
/// timeouts, one attempt per send), for that region, at `FAILOVER_ENDPOINT_URL` or the
/// region's own endpoint: the primary's endpoint override never applies to it.
pub fn failover(config: &Config, sdk: &SdkConfig) -> Option<(Voice, FailoverSettings)> {
    let failover = config.failover.as_ref()?;
    let voice = match config.voice_api {
        Backend::V1 => Voice::V1(PinpointVoice::new(failover_v1_client(sdk, failover))),
        Backend::V2 => Voice::V2(PinpointV2Voice::new(
            failover_v2_client(sdk, failover),
            failover.identity.clone(),
            config.max_price_per_minute.clone(),
        )),
    };
    let settings = FailoverSettings {
        primary_region: sdk
            .region()
            .map_or_else(|| "primary".to_owned(), ToString::to_string),
        region: failover.region.clone(),
        origination: failover.origination.clone(),
        configuration_set: failover.configuration_set.clone(),
        send_rate: failover.send_rate,
    };
    Some((voice, settings))
}

/// The voice backend `VOICE_API` names, from one SDK configuration.
pub fn voice(config: &Config, sdk: &SdkConfig) -> Voice {
    match config.voice_api {
        Backend::V1 => Voice::V1(PinpointVoice::new(voice_client(sdk))),
        Backend::V2 => Voice::V2(PinpointV2Voice::new(
            voice_v2_client(sdk),
            config.origination_identity.clone(),
            config.max_price_per_minute.clone(),
        )),
    }
}

/// The v1 client for the failover region: its region, and `FAILOVER_ENDPOINT_URL` or none
/// (so the region's own), whatever override the primary's client took.
fn failover_v1_client(
    sdk: &SdkConfig,
    failover: &FailoverConfig,
) -> aws_sdk_pinpointsmsvoice::Client {
    let mut client = v1_config(sdk).region(aws_config::Region::new(failover.region.clone()));
    client.set_endpoint_url(failover.endpoint_url.clone());
    aws_sdk_pinpointsmsvoice::Client::from_conf(client.build())
}

/// The v2 client for the failover region, likewise.
fn failover_v2_client(
    sdk: &SdkConfig,
    failover: &FailoverConfig,
) -> aws_sdk_pinpointsmsvoicev2::Client {
    let mut client = v2_config(sdk).region(aws_config::Region::new(failover.region.clone()));
    client.set_endpoint_url(failover.endpoint_url.clone());
    aws_sdk_pinpointsmsvoicev2::Client::from_conf(client.build())
}

/// Builds the function with the clients given: for tests that point each service at its
/// own local endpoint.
pub fn voice_dispatch_with(
    config: &Config,
    voice: aws_sdk_pinpointsmsvoice::Client,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
) -> Dispatch {
    voice_dispatch_with_voice(config, Voice::V1(PinpointVoice::new(voice)), sqs, dynamodb)
}

/// Builds the function with the voice backend given (and no failover region).
pub fn voice_dispatch_with_voice(
    config: &Config,
    voice: Voice,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
) -> Dispatch {
    voice_dispatch_with_voices(config, voice, None, sqs.into(), Some(dynamodb.into()))
}

/// Builds the function with the voice backends given: the primary region's, and the
/// failover region's when there is one; `dynamodb` is the ledger's client (none without one).
pub fn voice_dispatch_with_voices(
    config: &Config,
    voice: Voice,
    failover: Option<(Voice, FailoverSettings)>,
    sqs: Lazy<aws_sdk_sqs::Client>,
    dynamodb: Option<Lazy<aws_sdk_dynamodb::Client>>,
) -> Dispatch {
    for warning in &config.warnings {
        tracing::warn!(%warning, "configuration adjusted");
    }
    let ledger =
        config
            .idempotency_table
            .clone()
            .zip(dynamodb)
            .map(|(table, dynamodb)| match config.outcomes {
                Some(_) => DynamoLedger::recording_calls(dynamodb, table),
                None => DynamoLedger::new(dynamodb, table),
            });
    // One wall clock for the engine, the settlement and the use case.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let timers = config
        .outcomes
        .as_ref()
        .zip(ledger.clone())
        .map(|(outcomes, ledger)| {
            CallOutcomes::new(
                ledger,
                SqsCheckQueue::new(sqs.clone(), outcomes.status_queue_url.clone()),
                outcome_settings(config),
                Arc::clone(&clock),
            )
        });
    let mut engine = BatchEngine::new(voice, engine_settings(config));
    if let Some((sender, settings)) = failover {
        engine = engine.with_failover(sender, settings);
    }
    VoiceDispatch::new(
        engine
            .with_outcome_line(crate::observe::lines::record_done)
            .with_clock(Arc::clone(&clock))
            .with_ledger(ledger),
        settlement(config, sqs).with_clock(Arc::clone(&clock)),
    )
    .with_metrics(config.metrics.as_ref().map(metrics_context))
    .with_clock(clock)
    .with_timers(timers)
}

fn outcome_settings(config: &Config) -> OutcomeSettings {
    OutcomeSettings {
        wait: config.outcome_wait,
        ledger_ttl: config.idempotency_ttl,
    }
}

/// The status path, when delivery outcomes are on (`OUTCOME_EVENT_BUS_NAME`, which the
/// configuration accepts only with the ledger), with its clients ([`status_clients`]).
pub fn status_dispatch(
    config: &Config,
    sdk: &SdkConfig,
    sqs: &Lazy<aws_sdk_sqs::Client>,
    dynamodb: &Lazy<aws_sdk_dynamodb::Client>,
) -> Option<Status> {
    config.outcomes.as_ref()?;
    let (eventbridge, sqs, dynamodb) = status_clients(sdk, sqs, dynamodb);
    status_dispatch_with(config, eventbridge, sqs, dynamodb)
}

/// The status path's clients: the call path's SQS and DynamoDB clients, and an EventBridge
/// client built when it first publishes an outcome (an execution environment may serve only
/// calls).
fn status_clients(
    sdk: &SdkConfig,
    sqs: &Lazy<aws_sdk_sqs::Client>,
    dynamodb: &Lazy<aws_sdk_dynamodb::Client>,
) -> (
    Lazy<aws_sdk_eventbridge::Client>,
    Lazy<aws_sdk_sqs::Client>,
    Lazy<aws_sdk_dynamodb::Client>,
) {
    (lazy_eventbridge(sdk), sqs.clone(), dynamodb.clone())
}

/// The status path with the clients given.
pub fn status_dispatch_with(
    config: &Config,
    eventbridge: impl Into<Lazy<aws_sdk_eventbridge::Client>>,
    sqs: impl Into<Lazy<aws_sdk_sqs::Client>>,
    dynamodb: impl Into<Lazy<aws_sdk_dynamodb::Client>>,
) -> Option<Status> {
    let sqs = sqs.into();
    let outcomes = config.outcomes.as_ref()?;
    let table = config.idempotency_table.clone()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Some(
        StatusDispatch::new(
            DynamoLedger::recording_calls(dynamodb, table),
            EventBridgeOutcomes::new(eventbridge, outcomes.event_bus.clone()),
            SqsCheckQueue::new(sqs.clone(), outcomes.status_queue_url.clone()),
            settlement(config, sqs.clone()).with_clock(Arc::clone(&clock)),
            config.idempotency_ttl,
        )
        .with_redial(
            config
                .redial
                .call_queue_url
                .clone()
                .map(|url| SqsCallQueue::new(sqs, url)),
        )
        .with_clock(clock)
        .with_metrics(config.metrics.as_ref().map(metrics_context)),
    )
}

/// The roots HTTPS trusts, as configured.
pub fn tls_roots(roots: Roots) -> TlsRoots {
    match roots {
        Roots::Amazon => TlsRoots::Amazon,
        Roots::System => TlsRoots::System,
    }
}

/// The metrics writer's context, as configured: its documents carry the function's own log
/// level, so Lambda's filter passes them at every level.
pub fn metrics_context(settings: &MetricsSettings) -> MetricsContext {
    MetricsContext {
        namespace: settings.namespace.clone(),
        function_name: settings.function_name.clone(),
        level: MetricsContext::level_for(settings.log_level.as_deref()),
    }
}

/// The engine's settings, as configured (the messages' defaults complete for the backend).
pub fn engine_settings(config: &Config) -> EngineSettings {
    EngineSettings {
        defaults: config.message_defaults(),
        max_concurrency: config.max_concurrency,
        deadline_safety: config.deadline_safety,
        message_ttl: config.message_ttl,
        max_attempts: config.max_attempts,
        send_rate: config.send_rate,
        breaker: config.breaker,
        attempt_timeout: config.send_attempt_timeout,
        on_unknown: config.on_unknown_outcome,
        ledger_ttl: config.idempotency_ttl,
        outcome_wait: config.outcome_wait,
        // Redial needs the status path (outcomes on) and the ledger: init refuses REDIAL_ON
        // without them, and a message's own `Redial` is then called once.
        redial: config
            .redial
            .available()
            .filter(|_| config.outcomes.is_some() && config.idempotency_table.is_some())
            .cloned(),
        ..EngineSettings::default()
    }
}

pub fn settlement(
    config: &Config,
    sqs: Lazy<aws_sdk_sqs::Client>,
) -> Settlement<SqsDeadLetterQueue, SqsRedelivery> {
    Settlement::new(
        config
            .dead_letter_queue_url
            .clone()
            .map(|url| SqsDeadLetterQueue::new(sqs.clone(), url)),
        // Always on: the pacer's and the breaker's times apply with or without backoff.
        Some((
            SqsRedelivery::new(sqs),
            Redelivery {
                backoff: config.backoff,
                receive_limit: config.max_receive_count,
            },
        )),
    )
}

/// Points a loader at a local endpoint (the voice fake, or any emulator) with dummy
/// credentials and a fixed region: requests are still SigV4-signed, as against AWS.
pub fn local_endpoint(loader: ConfigLoader, endpoint_url: &str) -> ConfigLoader {
    loader
        .endpoint_url(endpoint_url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_pinpointsmsvoice::config::Credentials::new(
            "AKIDLOCALFAKE",
            "local-fake-secret",
            None,
            None,
            "local-endpoint",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The primary's endpoint override, as `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE[_V2]` gives it.
    #[derive(Debug)]
    struct PrimaryOverride;

    const PRIMARY_URL: &str = "http://127.0.0.1:4010";

    impl aws_types::service_config::LoadServiceConfig for PrimaryOverride {
        fn load_config(
            &self,
            key: aws_types::service_config::ServiceConfigKey<'_>,
        ) -> Option<String> {
            // The key names the setting and the service: v1's "Pinpoint SMS Voice", v2's
            // "Pinpoint SMS Voice V2".
            (key.env() == "AWS_ENDPOINT_URL" && key.service_id().starts_with("Pinpoint SMS Voice"))
                .then(|| PRIMARY_URL.to_owned())
        }
    }

    #[test]
    fn the_failover_client_never_takes_the_primarys_endpoint_override() {
        let sdk = SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(BehaviorVersion::latest())
            .service_config(PrimaryOverride)
            .build();
        let mut failover = FailoverConfig {
            region: "us-west-2".into(),
            origination: None,
            identity: None,
            configuration_set: None,
            send_rate: None,
            endpoint_url: None,
        };
        // The check can fail: the primary's clients do take it.
        let shown = |config: &dyn std::fmt::Debug| format!("{config:?}");
        assert!(shown(voice_client(&sdk).config()).contains(PRIMARY_URL));
        assert!(shown(voice_v2_client(&sdk).config()).contains(PRIMARY_URL));
        let v1 = failover_v1_client(&sdk, &failover);
        let v2 = failover_v2_client(&sdk, &failover);
        assert!(!shown(v1.config()).contains(PRIMARY_URL));
        assert!(!shown(v2.config()).contains(PRIMARY_URL));
        assert_eq!(v1.config().region().map(|r| r.as_ref()), Some("us-west-2"));
        assert_eq!(v2.config().region().map(|r| r.as_ref()), Some("us-west-2"));
        // FAILOVER_ENDPOINT_URL, when set, is its endpoint.
        failover.endpoint_url = Some("http://127.0.0.1:4011".into());
        assert!(shown(failover_v1_client(&sdk, &failover).config()).contains("127.0.0.1:4011"));
        assert!(shown(failover_v2_client(&sdk, &failover).config()).contains("127.0.0.1:4011"));
    }

    /// An SDK configuration with a region and nothing else.
    fn sdk_config() -> SdkConfig {
        SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(BehaviorVersion::latest())
            .build()
    }

    #[test]
    fn the_call_path_builds_at_init_only_the_clients_every_batch_uses() {
        let sdk = sdk_config();
        let config = |vars: &[(&str, &str)]| {
            let vars: std::collections::HashMap<String, String> = vars
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
        };
        let origination = ("ORIGINATION_PHONE_NUMBER", "+12065550199");
        let ledger = ("IDEMPOTENCY_TABLE_NAME", "ledger");
        let queue = "https://sqs.us-east-1.amazonaws.com/123456789012";
        let dlq = format!("{queue}/dlq");
        let status = format!("{queue}/status");
        let outcomes = [
            origination,
            ledger,
            ("DEAD_LETTER_QUEUE_URL", dlq.as_str()),
            ("OUTCOME_EVENT_BUS_NAME", "outcomes"),
            ("STATUS_QUEUE_URL", status.as_str()),
        ];
        // Nothing but calls: SQS waits for a record that does not go through.
        let (sqs, dynamodb) = call_path_clients(&config(&[origination]), &sdk);
        assert!(!sqs.is_built());
        assert!(dynamodb.is_none(), "no DynamoDB client without the ledger");
        // The ledger claims every record: its client is built at init.
        let (sqs, dynamodb) = call_path_clients(&config(&[origination, ledger]), &sdk);
        assert!(!sqs.is_built());
        assert!(dynamodb.is_some_and(|client| client.is_built()));
        // Outcomes on: every batch that places a call arms its timers through SQS.
        let (sqs, dynamodb) = call_path_clients(&config(&outcomes), &sdk);
        assert!(sqs.is_built());
        assert!(dynamodb.is_some_and(|client| client.is_built()));
    }

    /// An environment serving both paths has one SQS and one DynamoDB client: the status
    /// path's are the call path's, so a client one path built is built for the other, and
    /// none is built twice.
    #[test]
    fn the_status_path_uses_the_call_paths_clients() {
        let sdk = sdk_config();
        let (sqs, dynamodb) = (lazy_sqs(&sdk), lazy_dynamodb(&sdk));
        let (eventbridge, status_sqs, status_dynamodb) = status_clients(&sdk, &sqs, &dynamodb);
        let _ = status_sqs.config();
        let _ = status_dynamodb.config();
        assert!(
            sqs.is_built(),
            "the status path built an SQS client of its own"
        );
        assert!(
            dynamodb.is_built(),
            "the status path built a DynamoDB client of its own"
        );
        assert!(
            !eventbridge.is_built(),
            "EventBridge waits for the first outcome"
        );
    }

    #[test]
    fn only_empty_endpoint_overrides_are_removed() {
        let vars = [
            ("AWS_ENDPOINT_URL_SQS", ""),
            ("AWS_ENDPOINT_URL_DYNAMODB", "  "),
            (
                "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE",
                "http://127.0.0.1:4010",
            ),
            ("AWS_REGION", ""),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()));
        assert_eq!(
            empty_endpoint_overrides(vars),
            ["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB"]
        );
    }
}
