//! Building the function from its configuration: one place, shared by the Lambda binary,
//! the local runner and the tests.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

use crate::adapters::dynamodb::DynamoLedger;
use crate::adapters::pinpoint::PinpointVoice;
use crate::adapters::pinpoint_v2::{PinpointV2Voice, Voice};
use crate::adapters::sqs::{SqsDeadLetterQueue, SqsRedelivery};
use crate::app::VoiceDispatch;
use crate::config::{Backend, Config, TlsRoots};
use crate::core::engine::{BatchEngine, EngineSettings};
use crate::core::settle::{Redelivery, Settlement};

/// The function as deployed: Pinpoint SMS Voice for calls, SQS for settling, DynamoDB for
/// the idempotency ledger (when `IDEMPOTENCY_TABLE_NAME` is set).
pub type Dispatch = VoiceDispatch<Voice, SqsDeadLetterQueue, SqsRedelivery, DynamoLedger>;

/// The connect and attempt timeout of the SQS and DynamoDB calls (and the voice call's
/// connect timeout). Fixed: `SEND_ATTEMPT_TIMEOUT_MS` is the voice call's own, set per
/// attempt, so lowering it for short invocations never starves the ledger or the DLQ. The
/// engine and the settlement bound these calls by the invocation's cutoffs as well.
pub const AWS_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The SDK configuration loader with this function's timeouts. Everything else (region,
/// credentials, `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`, `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`)
/// comes from the standard sources, as in any SDK program.
pub fn sdk_config_loader(config: &Config) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(config.tls_roots))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(AWS_CALL_TIMEOUT)
                .operation_attempt_timeout(AWS_CALL_TIMEOUT)
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
    https_client_with(roots, AMAZON_TRUST_SERVICES_ROOTS).0
}

/// [`https_client`] with `bundle` as the Amazon roots; also says which roots it trusts. A
/// bundle that does not load (the HTTPS client would panic on it at its first connection)
/// falls back to the system's roots, with a WARN line.
pub fn https_client_with(
    roots: TlsRoots,
    bundle: &[u8],
) -> (aws_sdk_pinpointsmsvoice::config::SharedHttpClient, TlsRoots) {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let roots = match roots {
        TlsRoots::Amazon => match usable_roots(bundle) {
            Ok(_) => TlsRoots::Amazon,
            Err(error) => {
                tracing::warn!(
                    %error,
                    "the built-in Amazon Trust Services roots do not load: trusting the system's roots instead"
                );
                TlsRoots::System
            }
        },
        TlsRoots::System => TlsRoots::System,
    };
    let trust_store = match roots {
        TlsRoots::Amazon => TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(bundle),
        TlsRoots::System => TrustStore::empty().with_native_roots(true),
    };
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    let client = match TlsContext::builder().with_trust_store(trust_store).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // The builder has no failure today; should one come, the SDK's defaults still work.
        Err(_) => builder.build_https(),
    };
    (client, roots)
}

/// How many trust anchors `bundle` gives, read as the HTTPS client reads it (every PEM block
/// a certificate, every certificate a usable root), or why it gives none.
pub fn usable_roots(bundle: &[u8]) -> Result<usize, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let certificates = CertificateDer::pem_slice_iter(bundle)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("not PEM certificates: {err}"))?;
    let mut store = rustls::RootCertStore::empty();
    for certificate in certificates {
        store
            .add(certificate)
            .map_err(|err| format!("a certificate is not a usable root: {err}"))?;
    }
    if store.is_empty() {
        return Err("no certificate in the bundle".to_owned());
    }
    Ok(store.len())
}

/// Builds the function with clients from one SDK configuration (per-service endpoints come
/// from `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`, `AWS_ENDPOINT_URL_SQS` and
/// `AWS_ENDPOINT_URL_DYNAMODB`, as usual).
pub fn voice_dispatch(config: &Config, sdk: &SdkConfig) -> Dispatch {
    voice_dispatch_with_voice(
        config,
        voice(config, sdk),
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

/// The v2 client, one attempt per send for the same reason (`SendVoiceMessage` has no
/// idempotency token in v2 either). Its endpoint override is
/// `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2`.
pub fn voice_v2_client(sdk: &SdkConfig) -> aws_sdk_pinpointsmsvoicev2::Client {
    aws_sdk_pinpointsmsvoicev2::Client::from_conf(
        aws_sdk_pinpointsmsvoicev2::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
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

/// Builds the function with the voice backend given.
pub fn voice_dispatch_with_voice(
    config: &Config,
    voice: Voice,
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
        BatchEngine::new(voice, engine_settings(config))
            .with_outcome_line(crate::observe::lines::record_done)
            .with_ledger(ledger),
        settlement(config, sqs),
    )
    .with_metrics(config.metrics.clone())
}

/// The engine's settings, as configured (the messages' defaults complete for the backend).
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
        assert_eq!(
            usable_roots(AMAZON_TRUST_SERVICES_ROOTS),
            Ok(5),
            "all five load"
        );
        let (_, trusted) = https_client_with(TlsRoots::Amazon, AMAZON_TRUST_SERVICES_ROOTS);
        assert_eq!(trusted, TlsRoots::Amazon);
    }

    /// Log output captured by a test's own subscriber.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_bundle_that_does_not_load_falls_back_to_the_system_roots_and_says_so() {
        let garbled =
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        for bundle in [&garbled[..], b"", b"-----BEGIN CERTIFICATE-----\n%%%\n"] {
            assert!(
                usable_roots(bundle).is_err(),
                "{}",
                String::from_utf8_lossy(bundle)
            );
            let captured = Captured::default();
            let writer = captured.clone();
            let settings = crate::observe::logging::LogSettings {
                level: Some("INFO".into()),
                json: true,
            };
            let subscriber = crate::observe::logging::subscriber(&settings, move || writer.clone());
            let (_, trusted) = tracing::subscriber::with_default(subscriber, || {
                https_client_with(TlsRoots::Amazon, bundle)
            });
            assert_eq!(trusted, TlsRoots::System);
            let logged = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
            assert!(
                logged.contains("\"level\":\"WARN\"") && logged.contains("system's roots"),
                "the fallback is said at WARN: {logged}"
            );
        }
        // The built-in bundle loads, and nothing is said.
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = crate::observe::logging::subscriber(
            &crate::observe::logging::LogSettings::default(),
            move || writer.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            https_client_with(TlsRoots::Amazon, AMAZON_TRUST_SERVICES_ROOTS)
        });
        assert!(captured.0.lock().unwrap().is_empty());
    }
}
