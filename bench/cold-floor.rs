//! The cold start's floor: what a function on `lambda_runtime` must do at init to place
//! calls as this one does, and nothing more. The configuration is read from the environment
//! and the SDK clients the call path builds at init are built exactly as the function
//! builds them (`wiring::sdk_config_loader`, `wiring::voice`, `wiring::call_path_clients`:
//! the voice client always; DynamoDB with the ledger, SQS with delivery outcomes on), on the
//! same runtime flavour (current-thread). No logging, no engine, no payload layer: each
//! invocation is answered with no failures, whatever it holds.
//!
//! A binary of the root package (Cargo.toml says why), linked as the bootstrap is: the
//! same build.rs (a fixed address, `link/hot-text.ld`, stripped) and the same `pow`
//! (`src/link.rs`, so no `libm.so.6`). `voice-bench --cold-only --against B` finds it beside
//! itself (`cargo build --release --bin voice-cold-floor`) and times it as it times the
//! bootstrap, in the same turns: the part of a cold start no change to the function's
//! logging, engine or wiring can remove (docs/performance.md, "The cold start's floor").

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};
use voice_dispatch::config::Config;
use voice_dispatch::wiring;

#[path = "../src/link.rs"]
mod link;

fn main() -> Result<(), lambda_runtime::Error> {
    // As the function does, before anything reads the environment.
    wiring::unset_empty_endpoint_overrides();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let sdk = wiring::sdk_config_loader(&config).load().await;
    // Built and kept for the life of the process, as the function's are; never used.
    let _clients = (
        wiring::voice(&config, &sdk),
        wiring::call_path_clients(&config, &sdk),
    );
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, lambda_runtime::Error>(json!({ "batchItemFailures": [] }))
    }))
    .await
}
