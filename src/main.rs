use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{service_fn, LambdaEvent, Runtime};
use voice_dispatch::adapters::lambda::handle_routed;
use voice_dispatch::adapters::payloads::{Payloads, TakePayloads};
use voice_dispatch::config::Config;
use voice_dispatch::observe::logging::{self, LogSettings};
use voice_dispatch::observe::stdout;
use voice_dispatch::wiring;

mod link;

fn main() -> Result<(), lambda_runtime::Error> {
    // Before anything reads the environment: an empty endpoint override is no override.
    wiring::unset_empty_endpoint_overrides();
    // Lines are gathered and written out when the runtime goes idle (and at the end of each
    // invocation): one write for a burst of record lines, none held while the process waits.
    logging::init(&LogSettings::from_env(), || stdout::GatheredStdout);
    stdout::flush_on_panic();
    let served = stdout::runtime(stdout::flush)?.block_on(serve());
    stdout::flush();
    served
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let sdk = wiring::sdk_config_loader(&config).load().await;
    let (dispatch, status) = wiring::call_and_status_paths(&config, &sdk);
    // Each payload is taken before the runtime reads it, and read once, by the function.
    let payloads = Payloads::default();
    let taking = TakePayloads(payloads.clone());
    // With delivery outcomes on, the same binary serves the status queue too.
    match status.zip(config.outcomes.as_ref()) {
        Some((status, outcomes)) => {
            let status_queue = outcomes.status_queue_url.as_str();
            let (dispatch, status) = (&dispatch, &status);
            let handler = service_fn(|event: LambdaEvent<()>| {
                let payload = payloads.take(&event.context.request_id);
                async move {
                    let answer =
                        handle_routed(dispatch, status, status_queue, payload, &event.context)
                            .await;
                    stdout::flush();
                    answer
                }
            });
            // As `lambda_runtime::run`: its tracing layer, then the payload's.
            Runtime::new(handler)
                .layer(TracingLayer::new())
                .layer(taking)
                .run()
                .await
        }
        None => {
            let dispatch = &dispatch;
            let handler = service_fn(|event: LambdaEvent<()>| {
                let payload = payloads.take(&event.context.request_id);
                async move {
                    let answer = dispatch.handle_lambda(payload, &event.context).await;
                    stdout::flush();
                    answer
                }
            });
            Runtime::new(handler)
                .layer(TracingLayer::new())
                .layer(taking)
                .run()
                .await
        }
    }
}
