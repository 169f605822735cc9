//! Every row of the fates table, through the real SDK client and the wire protocol.

use std::time::Duration;

use voice_dispatch::core::report::Fate;
use voice_fake::{Behaviour, Script};

use crate::support::*;

const DEST: &str = "+12065550142";

async fn one_call(behaviour: Behaviour) -> (Harness, voice_dispatch::core::report::BatchReport) {
    let harness = Harness::start(Script::default().with(DEST, behaviour)).await;
    let report = harness
        .run(&event(vec![record(
            "m1",
            Some(&body(DEST, "<speak>Disk full</speak>")),
        )]))
        .await;
    (harness, report)
}

#[tokio::test]
async fn an_accepted_call_is_sent_and_not_reported() {
    let (harness, report) = one_call(Behaviour::Accept).await;
    assert_eq!(fate(&report, "m1"), Fate::Sent);
    assert!(reported(&report).is_empty());
    assert!(outcome(&report, "m1").voice_message_id.is_some());
    let calls = harness.fake.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.destination, DEST);
    assert_eq!(call.origination.as_deref(), Some(ORIGINATION));
    assert_eq!(call.configuration_set.as_deref(), Some("alerts"));
    assert_eq!(call.content_kind, "SSMLMessage");
    assert_eq!(call.text, "<speak>Disk full</speak>");
    assert_eq!(call.voice_id.as_deref(), Some("Matthew"));
    assert_eq!(call.language_code.as_deref(), Some("en-US"));
}

#[tokio::test]
async fn a_persistent_internal_error_is_transient_after_three_attempts_in_place() {
    let (harness, report) = one_call(Behaviour::fail(500, "InternalServiceErrorException")).await;
    assert_eq!(fate(&report, "m1"), Fate::Transient);
    assert_eq!(
        error_code(&report, "m1").as_deref(),
        Some("InternalServiceErrorException")
    );
    assert_eq!(reported(&report), ["m1"]);
    assert_eq!(
        harness.fake.calls_to(DEST).len(),
        3,
        "an error answer placed nothing: retried in place up to SEND_MAX_ATTEMPTS (3)"
    );
}

#[tokio::test]
async fn an_internal_error_once_is_retried_in_place_into_a_success() {
    let (harness, report) = one_call(Behaviour::fail_times(
        500,
        "InternalServiceErrorException",
        1,
    ))
    .await;
    assert_eq!(fate(&report, "m1"), Fate::Sent);
    assert!(reported(&report).is_empty());
    let statuses: Vec<u16> = harness
        .fake
        .calls_to(DEST)
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [500, 200]);
}

#[tokio::test]
async fn throttling_is_transient() {
    let (harness, report) = one_call(Behaviour::fail(429, "TooManyRequestsException")).await;
    assert_eq!(fate(&report, "m1"), Fate::Transient);
    assert_eq!(
        error_code(&report, "m1").as_deref(),
        Some("TooManyRequestsException")
    );
    assert_eq!(reported(&report), ["m1"]);
    assert!(
        harness.fake.calls_to(DEST).len() > 1,
        "throttling is retried in place first"
    );
}

#[tokio::test]
async fn a_limit_exceeded_is_transient() {
    let (_harness, report) = one_call(Behaviour::fail(412, "LimitExceededException")).await;
    assert_eq!(fate(&report, "m1"), Fate::Transient);
    assert_eq!(
        error_code(&report, "m1").as_deref(),
        Some("LimitExceededException")
    );
}

#[tokio::test]
async fn a_bare_5xx_with_no_error_code_is_transient() {
    for status in [502, 503, 504] {
        let (_harness, report) = one_call(Behaviour::bare_status(status)).await;
        assert_eq!(fate(&report, "m1"), Fate::Transient, "{status}");
        assert_eq!(error_code(&report, "m1"), Some(format!("Http{status}")));
        let reason = outcome(&report, "m1").reason.clone().unwrap();
        assert!(reason.message.contains(&status.to_string()), "{reason:?}");
        assert_eq!(reported(&report), ["m1"]);
    }
}

#[tokio::test]
async fn an_unknown_error_code_is_transient() {
    let (_harness, report) = one_call(Behaviour::fail(400, "BrandNewException")).await;
    assert_eq!(fate(&report, "m1"), Fate::Transient);
    assert_eq!(
        error_code(&report, "m1").as_deref(),
        Some("BrandNewException")
    );
    assert_eq!(reported(&report), ["m1"]);
}

#[tokio::test]
async fn a_bad_request_is_permanent_and_not_retried() {
    let (harness, report) = one_call(Behaviour::fail(400, "BadRequestException")).await;
    assert_eq!(fate(&report, "m1"), Fate::Permanent);
    assert_eq!(
        error_code(&report, "m1").as_deref(),
        Some("BadRequestException")
    );
    assert_eq!(
        reported(&report),
        ["m1"],
        "reported until dead-lettering lands"
    );
    assert_eq!(harness.fake.calls_to(DEST).len(), 1);
}

/// One call to `DEST` answered `NotFoundException`, the body naming `own_set` or not.
async fn not_found(
    own_set: Option<&str>,
    config: voice_dispatch::config::Config,
) -> (Harness, voice_dispatch::core::report::BatchReport) {
    let harness = Harness::with_config(
        Script::default().with(DEST, Behaviour::fail(404, "NotFoundException")),
        config,
    )
    .await;
    let mut message: serde_json::Value =
        serde_json::from_str(&body(DEST, "<speak>Disk full</speak>")).unwrap();
    if let Some(set) = own_set {
        message["ConfigurationSetName"] = set.into();
    }
    let report = harness
        .run(&event(vec![record("m1", Some(&message.to_string()))]))
        .await;
    (harness, report)
}

#[tokio::test]
async fn not_found_for_a_set_the_message_named_is_permanent() {
    let (harness, report) = not_found(Some("its-own-set"), test_config()).await;
    assert_eq!(fate(&report, "m1"), Fate::Permanent);
    assert_eq!(
        error_code(&report, "m1").as_deref(),
        Some("NotFoundException")
    );
    assert_eq!(harness.fake.calls_to(DEST).len(), 1);
    assert_eq!(report.circuit.opened, 0, "that message alone is wrong");
}

#[tokio::test]
async fn not_found_for_the_configured_set_is_transient_and_opens_the_breaker() {
    // CONFIGURATION_SET_NAME names a set that does not exist: a deploy error that would fail
    // every send alike. Nothing is dead-lettered while it is fixed; the breaker (and its
    // alarm) says so.
    let mut config = test_config();
    assert!(config.defaults.configuration_set.is_some());
    config.breaker.threshold = config.max_attempts;
    let (harness, report) = not_found(None, config.clone()).await;
    assert_eq!(fate(&report, "m1"), Fate::Transient);
    assert_eq!(
        error_code(&report, "m1").as_deref(),
        Some("NotFoundException")
    );
    assert_eq!(reported(&report), ["m1"]);
    assert_eq!(
        harness.fake.calls_to(DEST).len() as u32,
        config.max_attempts,
        "an error answer placed nothing: retried in place"
    );
    assert_eq!(
        report.circuit.opened, 1,
        "each attempt counted as the service failing"
    );
}

#[tokio::test]
async fn an_attempt_timeout_is_transient() {
    let mut config = test_config();
    config.send_attempt_timeout = Duration::from_millis(150);
    let harness = Harness::with_config(
        Script::default().with(DEST, Behaviour::slow(Duration::from_secs(2))),
        config,
    )
    .await;
    let report = harness
        .run(&event(vec![record("m1", Some(&body(DEST, "hello")))]))
        .await;
    assert_eq!(fate(&report, "m1"), Fate::Transient);
    assert_eq!(error_code(&report, "m1").as_deref(), Some("Timeout"));
    assert_eq!(reported(&report), ["m1"]);
    assert_eq!(
        harness.fake.calls_to(DEST).len(),
        1,
        "a timed-out attempt may have placed the call: never sent again in place, \
         whatever AWS_MAX_ATTEMPTS says"
    );
}

/// One record sent to an endpoint where nothing listens.
pub async fn to_a_closed_port(scheme: &str) -> voice_dispatch::core::report::BatchReport {
    // Bind a port, then free it: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let config = test_config();
    let sdk = sdk_config(&format!("{scheme}://127.0.0.1:{port}"), &config).await;
    let dispatch = voice_dispatch::wiring::voice_dispatch(&config, &sdk);
    dispatch
        .handle(
            &event(vec![record("m1", Some(&body(DEST, "hello")))]),
            std::time::SystemTime::now() + Duration::from_secs(30),
        )
        .await
        .expect("the event is accepted")
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_retried_in_place_as_nothing_was_written() {
    let report = to_a_closed_port("http").await;
    assert_eq!(fate(&report, "m1"), Fate::Transient);
    assert_eq!(error_code(&report, "m1").as_deref(), Some("ConnectError"));
    assert_eq!(
        outcome(&report, "m1").attempts,
        test_config().max_attempts,
        "refused before a byte was written: safe to try again"
    );
}

#[tokio::test]
async fn a_connection_lost_after_the_request_went_out_is_never_sent_again() {
    // A server that reads the request and hangs up without answering: the call may have
    // been placed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut request = vec![0u8; 64 * 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            drop(socket);
        }
    });
    let config = test_config();
    let sdk = sdk_config(&endpoint, &config).await;
    let dispatch = voice_dispatch::wiring::voice_dispatch(&config, &sdk);
    let report = dispatch
        .handle(
            &event(vec![record("m1", Some(&body(DEST, "hello")))]),
            std::time::SystemTime::now() + Duration::from_secs(30),
        )
        .await
        .expect("the event is accepted");
    assert_eq!(fate(&report, "m1"), Fate::Transient);
    assert_eq!(
        error_code(&report, "m1").as_deref(),
        Some("ConnectionError")
    );
    assert_eq!(outcome(&report, "m1").attempts, 1);
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one request written, none again: not by the SDK, not in place"
    );
}

#[tokio::test]
async fn an_invalid_body_is_permanent_and_makes_no_call() {
    let harness = Harness::start(Script::default()).await;
    let report = harness
        .run(&event(vec![
            record("missing", None),
            record("not-json", Some("call me maybe")),
            record(
                "schema",
                Some(r#"{"DestinationPhoneNumber": "+12065550142"}"#),
            ),
            record("invalid", Some(&body("12065550142", "hi"))),
        ]))
        .await;
    for (id, code) in [
        ("missing", "MissingBody"),
        ("not-json", "MalformedJson"),
        ("schema", "SchemaViolation"),
        ("invalid", "InvalidField"),
    ] {
        assert_eq!(fate(&report, id), Fate::Permanent, "{id}");
        assert_eq!(error_code(&report, id).as_deref(), Some(code), "{id}");
    }
    assert_eq!(
        reported(&report),
        ["missing", "not-json", "schema", "invalid"]
    );
    assert_eq!(harness.fake.request_count(), 0);
}

#[tokio::test]
async fn an_https_endpoint_is_reached_through_the_built_in_roots_without_a_panic() {
    // The function's client trusts the built-in Amazon roots unless told otherwise...
    let (_, trusted) = voice_dispatch::adapters::tls::https_client_with(
        voice_dispatch::wiring::tls_roots(test_config().tls_roots),
        voice_dispatch::adapters::tls::AMAZON_TRUST_SERVICES_ROOTS,
    );
    assert_eq!(trusted, voice_dispatch::adapters::tls::TlsRoots::Amazon);
    // ...and its TLS connector is built from them at the first connection: the refused
    // connection is an ordinary transient failure, not a panic over the bundle.
    let report = to_a_closed_port("https").await;
    assert_eq!(error_code(&report, "m1").as_deref(), Some("ConnectError"));
}

#[tokio::test]
async fn a_bundle_that_does_not_load_falls_back_to_the_system_roots_and_sends_still_run() {
    use voice_dispatch::adapters::tls::TlsRoots;
    let garbled =
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let (http, trusted) =
        voice_dispatch::adapters::tls::https_client_with(TlsRoots::Amazon, garbled);
    assert_eq!(trusted, TlsRoots::System, "the fallback is taken, and said");
    // Handed to the client as it is, this bundle panics at the first connection ("valid PEM
    // certificate"): the record would come back as a caught panic, not a refused connection.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let config = test_config();
    let sdk = sdk_config(&format!("https://127.0.0.1:{port}"), &config).await;
    let voice = aws_sdk_pinpointsmsvoice::Client::from_conf(
        aws_sdk_pinpointsmsvoice::config::Builder::from(&sdk)
            .http_client(http)
            .build(),
    );
    let dispatch = voice_dispatch::wiring::voice_dispatch_with(
        &config,
        voice,
        aws_sdk_sqs::Client::new(&sdk),
        aws_sdk_dynamodb::Client::new(&sdk),
    );
    let report = dispatch
        .handle(
            &event(vec![record("m1", Some(&body(DEST, "hello")))]),
            std::time::SystemTime::now() + Duration::from_secs(30),
        )
        .await
        .expect("the event is accepted");
    assert_eq!(error_code(&report, "m1").as_deref(), Some("ConnectError"));
}
