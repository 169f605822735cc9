//! The fake as a standalone server, for the Lambda runtime emulator and the benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use voice_fake::{FakeVoice, Script};

/// A loopback fake of Amazon Pinpoint SMS Voice v1 (restJson1), scripted per destination.
#[derive(Parser)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4010)]
    port: u16,
    /// Address to listen on: loopback, or the Docker bridge's for SAM local's containers.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// JSON script: {"latency_ms": N, "destinations": {"+1...": {"behaviour": ...}}}.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Base latency of every answer, overriding the script's.
    #[arg(long)]
    latency_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut script = match &args.script {
        None => Script::default(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|err| err.to_string())
            .and_then(|json| Script::from_json(&json).map_err(|err| err.to_string()))
        {
            Ok(script) => script,
            Err(err) => {
                eprintln!("voice-fake: cannot read script {}: {err}", path.display());
                return ExitCode::FAILURE;
            }
        },
    };
    if let Some(latency_ms) = args.latency_ms {
        script.latency_ms = latency_ms;
    }
    let fake = match FakeVoice::start_on(SocketAddr::new(args.host, args.port), script).await {
        Ok(fake) => fake,
        Err(err) => {
            eprintln!(
                "voice-fake: cannot listen on 127.0.0.1:{}: {err}",
                args.port
            );
            return ExitCode::FAILURE;
        }
    };
    println!("voice-fake listening on {}", fake.endpoint_url());
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
