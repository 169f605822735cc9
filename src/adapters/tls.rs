//! TLS for every AWS client: hyper 1 and rustls with ring, trusting the built-in Amazon
//! Trust Services roots unless `TLS_ROOTS=system`.

use aws_sdk_pinpointsmsvoice::config::{
    ConfigBag, HttpClient, RuntimeComponents, SharedHttpClient,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};

/// Root certificates for HTTPS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// The Amazon Trust Services roots, built in: every AWS endpoint chains to one, and
    /// parsing five certificates instead of the system's ~140 takes milliseconds off every
    /// cold start.
    #[default]
    Amazon,
    /// The system's store, for endpoints behind a TLS proxy with a private CA.
    System,
}

/// The Amazon Trust Services roots (Amazon Root CA 1 to 4, Starfield Services Root G2).
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] =
    include_bytes!("../../certs/amazon-trust-services.pem");

/// HTTPS over hyper 1 and rustls with ring: the SDK's default client minus aws-lc, which
/// costs megabytes of binary and time at every cold start. By default it trusts the Amazon
/// roots only: loading the system store was three quarters of the cold start's instructions
/// (callgrind), and every AWS endpoint chains to an Amazon root.
pub fn https_client(roots: TlsRoots) -> SharedHttpClient {
    // The built-in bundle is a constant that a test loads as the client will: checking it
    // again at every cold start would parse its five certificates twice.
    client_trusting(roots, AMAZON_TRUST_SERVICES_ROOTS)
}

/// [`https_client`] with `bundle` as the Amazon roots; also says which roots it trusts. A
/// bundle that does not load (the HTTPS client would panic on it at its first connection)
/// falls back to the system's roots, with a WARN line.
pub fn https_client_with(roots: TlsRoots, bundle: &[u8]) -> (SharedHttpClient, TlsRoots) {
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
    (client_trusting(roots, bundle), roots)
}

/// The HTTPS client trusting `roots` (`bundle` as the Amazon roots).
fn client_trusting(roots: TlsRoots, bundle: &[u8]) -> SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
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
    match roots {
        TlsRoots::Amazon => SharedHttpClient::new(AtFirstUse(client)),
        // The system's store is read from disk when the SDK builds its check connector: at
        // init, where a store that does not load says so (a WARN line) before any record.
        TlsRoots::System => client,
    }
}

/// An HTTPS client that builds its connector at its first request, not when an SDK client
/// is built. The SDK's hyper client builds one whole connector (a TLS configuration, its
/// roots parsed from PEM) when each SDK client is built, only to check that it can, and
/// drops it; the first request then builds its own, cached. With the voice, DynamoDB and SQS
/// clients built at init that was three connectors thrown away at every cold start, 13 % of
/// the instructions from exec to the end of the first invocation with the ledger and outcomes
/// on (callgrind). Only for the built-in roots, a constant: a test loads them as the
/// connector will (`the_built_in_roots_are_the_five_amazon_trust_services_certificates`),
/// and [`https_client_with`] checks a bundle before it is trusted.
#[derive(Debug)]
struct AtFirstUse(SharedHttpClient);

impl HttpClient for AtFirstUse {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An HTTP client that counts what the SDK asks of it: a connector built to check the
    /// client (as the SDK's hyper client does), and one built for a request (which fails at
    /// once, so that the call ends there).
    #[derive(Debug, Default)]
    struct Counts {
        checked: AtomicUsize,
        connected: AtomicUsize,
    }

    #[derive(Debug, Clone, Default)]
    struct Counting(Arc<Counts>);

    #[derive(Debug)]
    struct Refusing;

    impl HttpConnector for Refusing {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            HttpConnectorFuture::ready(Err(ConnectorError::other("refused".into(), None)))
        }
    }

    impl HttpClient for Counting {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            self.0.connected.fetch_add(1, Ordering::SeqCst);
            SharedHttpConnector::new(Refusing)
        }

        fn validate_base_client_config(
            &self,
            _: &RuntimeComponentsBuilder,
            _: &ConfigBag,
        ) -> Result<(), BoxError> {
            self.0.checked.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn voice_client(http: SharedHttpClient) -> aws_sdk_pinpointsmsvoice::Client {
        let config = aws_sdk_pinpointsmsvoice::Config::builder()
            .behavior_version(aws_sdk_pinpointsmsvoice::config::BehaviorVersion::latest())
            .region(aws_sdk_pinpointsmsvoice::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_pinpointsmsvoice::config::Credentials::for_tests())
            .http_client(http)
            .build();
        aws_sdk_pinpointsmsvoice::Client::from_conf(config)
    }

    #[test]
    fn only_the_built_in_roots_client_defers_its_connector_to_the_first_request() {
        let client = |roots| format!("{:?}", https_client(roots));
        assert!(client(TlsRoots::Amazon).contains("AtFirstUse"));
        assert!(!client(TlsRoots::System).contains("AtFirstUse"));
    }

    #[tokio::test]
    async fn the_connector_is_built_at_the_first_request_not_when_a_client_is_built() {
        // The SDK's own way, for contrast: building the client builds a connector.
        let bare = Counting::default();
        let _client = voice_client(SharedHttpClient::new(bare.clone()));
        assert_eq!(bare.0.checked.load(Ordering::SeqCst), 1);

        let counting = Counting::default();
        let client = voice_client(SharedHttpClient::new(AtFirstUse(SharedHttpClient::new(
            counting.clone(),
        ))));
        let _second = voice_client(SharedHttpClient::new(AtFirstUse(SharedHttpClient::new(
            counting.clone(),
        ))));
        assert_eq!(
            counting.0.checked.load(Ordering::SeqCst),
            0,
            "no connector at build"
        );
        assert_eq!(counting.0.connected.load(Ordering::SeqCst), 0);
        let sent = client
            .send_voice_message()
            .destination_phone_number("+12065550100")
            .send()
            .await;
        assert!(sent.is_err(), "the refusing connector ends the call");
        assert_eq!(
            counting.0.connected.load(Ordering::SeqCst),
            1,
            "the request's connector comes from the wrapped client"
        );
    }

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

    use crate::observe::logging::Captured;

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
