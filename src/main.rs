use lambda_runtime::{service_fn, LambdaEvent};
use voice_dispatch::adapters::lambda::{handle_routed, RawEvent};
use voice_dispatch::config::Config;
use voice_dispatch::observe::logging::{self, LogSettings};
use voice_dispatch::wiring;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Before anything reads the environment: an empty endpoint override is no override.
    wiring::unset_empty_endpoint_overrides();
    logging::init(&LogSettings::from_env(), std::io::stdout);
    let config = Config::from_env()?;
    let sdk = wiring::sdk_config_loader(&config).load().await;
    let dispatch = wiring::voice_dispatch(&config, &sdk);
    // With delivery outcomes on, the same binary serves the status queue too.
    match wiring::status_dispatch(&config, &sdk).zip(config.outcomes.as_ref()) {
        Some((status, outcomes)) => {
            let status_queue = outcomes.status_queue_url.as_str();
            lambda_runtime::run(service_fn(|event: LambdaEvent<RawEvent>| {
                handle_routed(&dispatch, &status, status_queue, event)
            }))
            .await
        }
        None => {
            lambda_runtime::run(service_fn(|event: LambdaEvent<RawEvent>| {
                dispatch.handle_lambda(event)
            }))
            .await
        }
    }
}
