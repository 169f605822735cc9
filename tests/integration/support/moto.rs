//! A real SQS-compatible server for the tests: `moto_server` on a free loopback port,
//! started per test and killed when the test ends.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_sqs::types::builders::SendMessageBatchRequestEntryBuilder;
use aws_sdk_sqs::types::{
    Message, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use tokio::process::{Child, Command};

pub struct Moto {
    /// Killed when the test ends (`kill_on_drop`).
    _child: Child,
    pub endpoint: String,
    /// One SQS scenario at a time: they measure redelivery timing, which a machine busy
    /// with several moto servers (single-threaded Python) would blur.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where `moto_server` is: `$MOTO_SERVER`, the project's `.venv` (as `make test` installs
/// it), or the `PATH`.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.venv/bin/moto_server"
    ));
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

/// `moto_server`, run by its own Python with one request at a time. moto's server is
/// threaded, and its `TransactWriteItems` neither isolates nor rolls back alone: a cancelled
/// transaction restores a copy of the whole table taken when it began, erasing what other
/// requests wrote meanwhile (`moto/dynamodb/models/__init__.py`). DynamoDB never does that;
/// serving requests one by one makes moto's writes atomic as DynamoDB's are (and its
/// `ReceiveMessage` too). No test long-polls, so nothing waits behind a poll. Python's HTTP
/// server asks DNS for its address's name when it binds (`socket.getfqdn`): answered here,
/// so a server on the Docker bridge sends no query off the machine.
/// The Python `moto_server` runs on (boto3 beside it): its own virtualenv's, else `python3`.
pub fn python() -> PathBuf {
    python_beside(&moto_server())
}

fn python_beside(program: &std::path::Path) -> PathBuf {
    program
        .parent()
        .map(|bin| bin.join("python"))
        .filter(|python| python.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn single_threaded(program: &std::path::Path) -> Command {
    let mut command = Command::new(python_beside(program));
    command.args([
        "-c",
        "import socket, sys, werkzeug.serving as s\n\
         socket.getfqdn = lambda name='': name or 'localhost'\n\
         run = s.run_simple\n\
         s.run_simple = lambda *a, **k: run(*a, **{**k, 'threaded': False})\n\
         from moto.server import main\n\
         main(sys.argv[1:])",
    ]);
    command
}

impl Moto {
    pub async fn start() -> Moto {
        Self::start_on("127.0.0.1").await
    }

    /// `moto_server` listening on `host` (the Docker bridge's address, for containers).
    pub async fn start_on(host: &str) -> Moto {
        let turn = TURN.lock().await;
        let program = moto_server();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind((host, 0))
                .and_then(|listener| listener.local_addr())
                .expect("a free loopback port")
                .port();
            let mut child = single_threaded(&program)
                .args(["-H", host, "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|err| {
                    panic!(
                        "cannot start {}: {err}. The SQS end-to-end tests need moto_server: \
                         run `make test` (it installs moto[server] into .venv), or \
                         `pip install 'moto[server]'`, or set MOTO_SERVER to its path",
                        program.display()
                    )
                });
            let endpoint = format!("http://{host}:{port}");
            if ready(&mut child, &endpoint).await {
                return Moto {
                    _child: child,
                    endpoint,
                    _turn: turn,
                };
            }
        }
        panic!(
            "moto_server ({}) did not start listening",
            program.display()
        );
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk().await)
    }

    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk().await)
    }

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        let config = crate::support::test_config();
        crate::support::sdk_config(&self.endpoint, &config).await
    }
}

async fn ready(child: &mut Child, endpoint: &str) -> bool {
    for _ in 0..100 {
        if let Ok(Some(_exited)) = child.try_wait() {
            return false;
        }
        let addr = endpoint.trim_start_matches("http://").to_owned();
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A queue's URL and ARN.
#[derive(Debug, Clone)]
pub struct Queue {
    pub url: String,
    pub arn: String,
}

/// Creates a queue (FIFO when the name ends in `.fifo`) with the given attributes.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Queue {
    let mut request = sqs.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value);
    }
    let url = request
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("a queue URL");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .expect("a queue ARN");
    Queue { url, arn }
}

/// A source queue with a redrive policy to a new dead-letter queue of the same kind.
pub async fn queue_pair(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout: u32,
) -> (Queue, Queue) {
    let suffix = if name.ends_with(".fifo") { ".fifo" } else { "" };
    let base = name.trim_end_matches(".fifo");
    let dlq = create_queue(sqs, &format!("{base}-dlq{suffix}"), &[]).await;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq.arn,
        "maxReceiveCount": max_receive_count
    })
    .to_string();
    let source = create_queue(
        sqs,
        name,
        &[
            (QueueAttributeName::RedrivePolicy, redrive),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout.to_string(),
            ),
        ],
    )
    .await;
    (source, dlq)
}

/// Visible messages, and in-flight or delayed ones, of a queue.
pub async fn messages_left(sqs: &aws_sdk_sqs::Client, queue: &Queue) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let count = |name: &QueueAttributeName| {
        attributes
            .get(name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    // A delayed message is in neither of the other counts: it is waiting, so it is held.
    (
        count(&QueueAttributeName::ApproximateNumberOfMessages),
        count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            + count(&QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    )
}

/// Everything a queue holds (a dead-letter queue, at the end of a test), read once.
pub async fn read_all(sqs: &aws_sdk_sqs::Client, queue: &Queue) -> Vec<Message> {
    let mut all = Vec::new();
    let mut empty_polls = 0;
    while empty_polls < 2 {
        let messages = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            empty_polls += 1;
        } else {
            empty_polls = 0;
            all.extend(messages);
        }
    }
    all
}

pub fn reason_of(message: &Message) -> Option<serde_json::Value> {
    let value = message.message_attributes()?.get("DispatchError")?;
    serde_json::from_str(value.string_value()?).ok()
}

/// Sends messages to a queue, 10 a call, as `SendMessageBatch` takes them; returns their
/// message ids in the order given.
pub async fn send_entries(
    sqs: &aws_sdk_sqs::Client,
    queue: &Queue,
    entries: Vec<SendMessageBatchRequestEntryBuilder>,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(10) {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                entry
                    .clone()
                    .id(index.to_string())
                    .build()
                    .expect("an entry")
            })
            .collect();
        let output = sqs
            .send_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(batch))
            .send()
            .await
            .expect("SendMessageBatch");
        assert!(output.failed().is_empty(), "{:?}", output.failed());
        let mut sent = output.successful().to_vec();
        sent.sort_by_key(|entry| entry.id().parse::<usize>().unwrap_or(0));
        ids.extend(sent.iter().map(|entry| entry.message_id().to_owned()));
    }
    ids
}

/// Sends plain bodies; returns their message ids in order.
pub async fn send_bodies(
    sqs: &aws_sdk_sqs::Client,
    queue: &Queue,
    bodies: &[String],
) -> Vec<String> {
    let entries = bodies
        .iter()
        .map(|body| SendMessageBatchRequestEntry::builder().message_body(body))
        .collect();
    send_entries(sqs, queue, entries).await
}

/// The idempotency ledger's table, as `template.yaml` declares it.
pub async fn create_ledger_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) {
    voice_dispatch::adapters::dynamodb::DynamoLedger::create_table(dynamodb, name)
        .await
        .expect("CreateTable");
}
