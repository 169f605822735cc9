//! TLS for every AWS client: hyper 1 and rustls with ring, trusting the built-in Amazon
//! Trust Services roots unless `TLS_ROOTS=system`.

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
pub fn https_client(roots: TlsRoots) -> aws_sdk_pinpointsmsvoice::config::SharedHttpClient {
    // The built-in bundle is a constant that a test loads as the client will: checking it
    // again at every cold start would parse its five certificates twice.
    client_trusting(roots, AMAZON_TRUST_SERVICES_ROOTS)
}

/// [`https_client`] with `bundle` as the Amazon roots; also says which roots it trusts. A
/// bundle that does not load (the HTTPS client would panic on it at its first connection)
/// falls back to the system's roots, with a WARN line.
pub fn https_client_with(
    roots: TlsRoots,
    bundle: &[u8],
) -> (aws_sdk_pinpointsmsvoice::config::SharedHttpClient, TlsRoots) {
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
fn client_trusting(
    roots: TlsRoots,
    bundle: &[u8],
) -> aws_sdk_pinpointsmsvoice::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let trust_store = match roots {
        TlsRoots::Amazon => TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(bundle),
        TlsRoots::System => TrustStore::empty().with_native_roots(true),
    };
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    match TlsContext::builder().with_trust_store(trust_store).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // The builder has no failure today; should one come, the SDK's defaults still work.
        Err(_) => builder.build_https(),
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
