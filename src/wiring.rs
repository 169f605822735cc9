//! Building the function from its configuration: one place, shared by the Lambda binary,
//! the local runner and the tests.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

use crate::adapters::lambda::VoiceDispatch;
use crate::adapters::pinpoint::PinpointVoice;
use crate::config::Config;
use crate::engine::{BatchEngine, EngineSettings};

/// The SDK configuration loader with this function's timeouts. Everything else (region,
/// credentials, `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`, `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`)
/// comes from the standard sources, as in any SDK program.
pub fn sdk_config_loader(config: &Config) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(config.send_attempt_timeout)
            .operation_attempt_timeout(config.send_attempt_timeout)
            .build(),
    )
}

pub fn voice_dispatch(config: &Config, sdk: &SdkConfig) -> VoiceDispatch<PinpointVoice> {
    let client = aws_sdk_pinpointsmsvoice::Client::new(sdk);
    VoiceDispatch::new(BatchEngine::new(
        PinpointVoice::new(client),
        EngineSettings {
            defaults: config.defaults.clone(),
            max_concurrency: config.max_concurrency,
            deadline_safety: config.deadline_safety,
        },
    ))
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
