//! Building the function from its configuration: one place, shared by the Lambda binary,
//! the local runner and the tests.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

use crate::adapters::dynamodb::DynamoLedger;
use crate::adapters::lambda::VoiceDispatch;
use crate::adapters::pinpoint::PinpointVoice;
use crate::adapters::sqs::{SqsDeadLetterQueue, SqsRedelivery};
use crate::config::{Config, TlsRoots};
use crate::engine::{BatchEngine, EngineSettings};
use crate::settle::{Redelivery, Settlement};

/// The function as deployed: Pinpoint SMS Voice for calls, SQS for settling, DynamoDB for
/// the idempotency ledger (when `IDEMPOTENCY_TABLE_NAME` is set).
pub type Dispatch = VoiceDispatch<PinpointVoice, SqsDeadLetterQueue, SqsRedelivery, DynamoLedger>;

/// The SDK configuration loader with this function's timeouts. Everything else (region,
/// credentials, `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`, `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`)
/// comes from the standard sources, as in any SDK program.
pub fn sdk_config_loader(config: &Config) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(config.tls_roots))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.send_attempt_timeout)
                .operation_attempt_timeout(config.send_attempt_timeout)
                .build(),
        )
}

/// The Amazon Trust Services roots (Amazon Root CA 1 to 4, Starfield Services Root G2).
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// HTTPS over hyper 1 and rustls with ring: the SDK's default client minus aws-lc, which
/// costs megabytes of binary and time at every cold start. By default it trusts the Amazon
/// roots only: loading the system store was three quarters of the cold start's instructions
/// (callgrind), and every AWS endpoint chains to an Amazon root.
pub fn https_client(roots: TlsRoots) -> aws_sdk_pinpointsmsvoice::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let trust_store = match roots {
        TlsRoots::Amazon => TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS),
        TlsRoots::System => TrustStore::empty().with_native_roots(true),
    };
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    match TlsContext::builder().with_trust_store(trust_store).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Only a malformed built-in bundle gets here; the system store still works.
        Err(_) => builder.build_https(),
    }
}

/// Builds the function with clients from one SDK configuration (per-service endpoints come
/// from `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`, `AWS_ENDPOINT_URL_SQS` and
/// `AWS_ENDPOINT_URL_DYNAMODB`, as usual).
pub fn voice_dispatch(config: &Config, sdk: &SdkConfig) -> Dispatch {
    voice_dispatch_with(
        config,
        voice_client(sdk),
        aws_sdk_sqs::Client::new(sdk),
        aws_sdk_dynamodb::Client::new(sdk),
    )
}

/// The voice client makes one attempt per send, whatever `AWS_MAX_ATTEMPTS` says: the SDK
/// would retry a timed-out attempt or a connection lost after the request went out, and
/// `SendVoiceMessage` has no idempotency token, so that could place the same call twice. The
/// engine retries the failures that certainly placed nothing, through the pacer and the
/// circuit breaker, and never after a message's expiry.
pub fn voice_client(sdk: &SdkConfig) -> aws_sdk_pinpointsmsvoice::Client {
    aws_sdk_pinpointsmsvoice::Client::from_conf(
        aws_sdk_pinpointsmsvoice::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// Builds the function with the clients given: for tests that point each service at its
/// own local endpoint.
pub fn voice_dispatch_with(
    config: &Config,
    voice: aws_sdk_pinpointsmsvoice::Client,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
) -> Dispatch {
    for warning in &config.warnings {
        tracing::warn!(%warning, "configuration adjusted");
    }
    let ledger = config
        .idempotency_table
        .clone()
        .map(|table| DynamoLedger::new(dynamodb, table));
    VoiceDispatch::new(
        BatchEngine::new(PinpointVoice::new(voice), engine_settings(config)).with_ledger(ledger),
        settlement(config, sqs),
    )
    .with_metrics(config.metrics.clone())
}

pub fn engine_settings(config: &Config) -> EngineSettings {
    EngineSettings {
        defaults: config.defaults.clone(),
        max_concurrency: config.max_concurrency,
        deadline_safety: config.deadline_safety,
        message_ttl: config.message_ttl,
        max_attempts: config.max_attempts,
        send_rate: config.send_rate,
        breaker: config.breaker,
        attempt_timeout: config.send_attempt_timeout,
        on_unknown: config.on_unknown_outcome,
        ledger_ttl: config.idempotency_ttl,
        ..EngineSettings::default()
    }
}

pub fn settlement(
    config: &Config,
    sqs: aws_sdk_sqs::Client,
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

    #[test]
    fn the_built_in_roots_are_the_five_amazon_trust_services_certificates() {
        let pem = String::from_utf8_lossy(AMAZON_TRUST_SERVICES_ROOTS);
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert_eq!(pem.matches("-----END CERTIFICATE-----").count(), 5);
    }
}
