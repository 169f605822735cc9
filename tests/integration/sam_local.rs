//! SAM local, for real: `sam local invoke` on every sample event and one `sam local
//! start-lambda` invocation, on the template as written, against the voice fake and moto
//! listening on the Docker bridge (a container cannot reach this machine's loopback).
//!
//! Ignored by `cargo test`: it needs a Docker engine, SAM CLI and an image to invoke in.
//! `make sam-local` provides them and runs it (`.ci/run` does too), with:
//! - `SAM`: the `sam` program; `SAM_PYTHON`: a Python with boto3, for `start-lambda`;
//! - `SAM_INVOKE_IMAGE`: the image standing in for `provided.al2023` (never pulled);
//! - `DOCKER_BRIDGE_IP`: the address containers reach this machine at (`172.17.0.1`);
//! - `SAM_BUILD_DIR`: where `sam build` left the template (`.aws-sam/build`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;
use voice_fake::FakeVoice;

use crate::support::moto::Moto;
use crate::support::{events, failures};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `make sam-local`, which sets up Docker and SAM CLI")
    })
}

/// `sam local` with the environment that keeps it on this machine: no telemetry, no image
/// pull, and its version check answered by the metadata `make sam-local` seeded.
fn sam(args: &[&str]) -> Command {
    let mut command = Command::new(var("SAM"));
    command
        .args(args)
        .env("SAM_CLI_TELEMETRY", "0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// The common options: the built template, the stand-in image, never a pull, the machine's
/// architecture, and the env-vars file pointing every endpoint at the local fakes.
fn local_options(env_vars: &std::path::Path) -> Vec<String> {
    let template = PathBuf::from(var("SAM_BUILD_DIR")).join("template.yaml");
    vec![
        "--template".to_owned(),
        template.to_string_lossy().to_string(),
        "--invoke-image".to_owned(),
        var("SAM_INVOKE_IMAGE"),
        "--skip-pull-image".to_owned(),
        "--env-vars".to_owned(),
        env_vars.to_string_lossy().to_string(),
        "--parameter-overrides".to_owned(),
        format!("Architecture={}", var("SAM_ARCHITECTURE")),
    ]
}

/// The env-vars file, as `local/sam-env.json` documents it, with this run's ports.
fn env_vars(fake: &FakeVoice, moto: &str) -> PathBuf {
    let fake = fake.endpoint_url();
    let file = serde_json::json!({"VoiceDispatchFunction": {
        "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE": fake,
        "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2": fake,
        "AWS_ENDPOINT_URL_SQS": moto,
        "AWS_ENDPOINT_URL_DYNAMODB": moto,
        "ORIGINATION_PHONE_NUMBER": "+12065550199",
        "CONFIGURATION_SET_NAME": "",
        // Unpaced, as in the emulator test: the template's 10/min would hold most back.
        "SEND_RATE_LIMIT": "",
        "AWS_ACCESS_KEY_ID": "AKIDSAMLOCAL",
        "AWS_SECRET_ACCESS_KEY": "sam-local-secret",
    }});
    let path = std::env::temp_dir().join(format!("sam-env-{}.json", std::process::id()));
    std::fs::write(&path, file.to_string()).expect("the env-vars file");
    path
}

async fn invoke(env_vars: &std::path::Path, event: &std::path::Path) -> (Value, String) {
    let mut args = vec!["local", "invoke", "VoiceDispatchFunction", "--event"];
    let event = event.to_string_lossy().to_string();
    args.push(&event);
    let options = local_options(env_vars);
    args.extend(options.iter().map(String::as_str));
    let output = sam(&args).output().await.expect("sam local invoke runs");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        output.status.success(),
        "sam local invoke {event}: {stderr}"
    );
    // The response is the last line of stdout; the function's logs go to stderr.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let response = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .unwrap_or_else(|| panic!("{event}: no JSON response in {stdout}\n{stderr}"));
    (response, stderr)
}

async fn bridge_fakes() -> (FakeVoice, Moto) {
    let bridge: IpAddr = var("DOCKER_BRIDGE_IP").parse().expect("DOCKER_BRIDGE_IP");
    let fake = FakeVoice::start_on(SocketAddr::new(bridge, 0), events::mixed_batch_script())
        .await
        .expect("the fake on the bridge");
    let moto = Moto::start_on(&bridge.to_string()).await;
    (fake, moto)
}

#[tokio::test]
#[ignore = "needs Docker and SAM CLI: run `make sam-local`"]
async fn sam_local_invoke_answers_every_sample_event_as_the_emulator_does() {
    let (fake, moto) = bridge_fakes().await;
    let env_vars = env_vars(&fake, &moto.endpoint);
    let mut said = false;
    for file in [
        "single-message.json",
        "mixed-batch.json",
        "fifo-two-groups.json",
        "hostile-bodies.json",
    ] {
        let (response, logs) = invoke(&env_vars, &events::sent_now_copy(file)).await;
        assert_eq!(
            failures(&response),
            events::expected_failures(file),
            "{file}: {logs}"
        );
        // The template's own DLQ and table arrive unresolved: not configured (an unresolved
        // DLQ URL would fail init, and no response would come), and said at init.
        said |= logs.contains("a resource of the stack that SAM local cannot resolve");
    }
    // SAM may attach to a container's output after its first lines (seen in CI): the init
    // WARN is looked for across the four invocations, each a new container.
    assert!(said, "no invocation's logs said the unresolved references");
    // As the events ask: 1 + 2 + 6 + 1 calls accepted. The scripted slow number answers after
    // 5 s, past the attempt's timeout (the emulator test sets 1 s; the template leaves the 5 s
    // default, which `--env-vars` cannot change as the template does not declare it): the
    // fake may count it accepted after the function gave up, so it is left out.
    let accepted = fake
        .calls()
        .iter()
        .filter(|c| c.accepted() && c.destination != "+12065550107")
        .count();
    assert_eq!(accepted, 10, "1 + 2 + 6 + 1 calls, as the events ask");
}

#[tokio::test]
#[ignore = "needs Docker and SAM CLI: run `make sam-local`"]
async fn sam_local_takes_a_generated_event_and_start_lambda_answers_an_invoke() {
    let (fake, moto) = bridge_fakes().await;
    let env_vars = env_vars(&fake, &moto.endpoint);
    // SAM's own sample: a plain-text body, sent long ago. Not JSON: permanent, reported
    // (no dead-letter queue under SAM local), nothing called, and the function stays up.
    let generated = sam(&["local", "generate-event", "sqs", "receive-message"])
        .output()
        .await
        .expect("sam local generate-event runs");
    let event: Value = serde_json::from_slice(&generated.stdout).expect("an SQS event");
    let id = event["Records"][0]["messageId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let path = std::env::temp_dir().join(format!("sam-generated-{}.json", std::process::id()));
    std::fs::write(&path, event.to_string()).expect("the generated event");
    let (response, logs) = invoke(&env_vars, &path).await;
    assert_eq!(failures(&response), [id], "{logs}");
    assert!(logs.contains("MalformedJson"), "{logs}");
    assert!(fake.calls().is_empty());

    // start-lambda, invoked once through the Lambda API (boto3).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let mut args = vec![
        "local",
        "start-lambda",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ];
    let options = local_options(&env_vars);
    args.extend(options.iter().map(String::as_str));
    let _server = sam(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sam local start-lambda starts");
    let mut listening = false;
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap_or(0)))
            .await
            .is_ok()
        {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listening, "sam local start-lambda did not listen");
    let single = events::sent_now_copy("single-message.json");
    let script = format!(
        "import boto3, json, sys\n\
         client = boto3.client('lambda', endpoint_url='http://127.0.0.1:{port}', region_name='us-east-1',\n\
             aws_access_key_id='AKIDSAMLOCAL', aws_secret_access_key='x')\n\
         answer = client.invoke(FunctionName='VoiceDispatchFunction', Payload=open(sys.argv[1], 'rb').read())\n\
         print(answer['Payload'].read().decode())"
    );
    let output = Command::new(var("SAM_PYTHON"))
        .args(["-c", &script])
        .arg(&single)
        .output()
        .await
        .expect("boto3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response: Value = serde_json::from_slice(&output.stdout).expect("a JSON answer");
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(fake.calls().iter().filter(|c| c.accepted()).count(), 1);
}
