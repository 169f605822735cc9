//! Function instances as Lambda runs them: the bootstrap (the release build in CI) as one
//! process per instance, each under its own Runtime API emulator, each fed by a poller that
//! does what the event source mapping does (receive up to 10 with every attribute, invoke
//! with the function's timeout, delete what the answer does not report). Their JSON lines
//! are kept, each with when it was read.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::Message;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::process::Child;
use voice_fake::runtime_api::RuntimeApi;

use crate::support::esm::{delete_unreported, lambda_event, receive, EmptyLooks};
use crate::support::moto::Queue;
use crate::support::process::bootstrap_under;

pub struct Fleet {
    apis: Vec<RuntimeApi>,
    _children: Vec<Child>,
    /// Every JSON line the instances wrote, with when it was read.
    lines: Arc<Mutex<Vec<(Instant, Value)>>>,
    /// The function's timeout: each invocation's deadline.
    timeout: Duration,
}

impl Fleet {
    /// `instances` processes with `vars` as their whole environment (plus the Runtime API).
    pub async fn start(instances: usize, vars: &[(&str, String)], timeout: Duration) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut apis = Vec::new();
        let mut children = Vec::new();
        for _ in 0..instances {
            let api = RuntimeApi::start().await.expect("a runtime API");
            let mut child = bootstrap_under(&api, vars)
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("the bootstrap starts");
            if let Some(stdout) = child.stdout.take() {
                let lines = Arc::clone(&lines);
                tokio::spawn(async move {
                    let mut reader = tokio::io::BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = reader.next_line().await {
                        if let Ok(value) = serde_json::from_str::<Value>(&line) {
                            lines.lock().unwrap().push((Instant::now(), value));
                        }
                    }
                });
            }
            api.first_request(Duration::from_secs(30))
                .await
                .expect("init succeeds: the function asks for an event");
            apis.push(api);
            children.push(child);
        }
        Self {
            apis,
            _children: children,
            lines,
            timeout,
        }
    }

    /// Every instance polls `queue` until `done` says the producer is done and the queue is
    /// empty, or `limit` passes.
    pub async fn drain(
        &self,
        sqs: &aws_sdk_sqs::Client,
        queue: &Queue,
        done: &AtomicBool,
        limit: Duration,
    ) {
        let until = Instant::now() + limit;
        let pollers = self
            .apis
            .iter()
            .map(|api| self.poll(api, sqs, queue, done, until));
        futures::future::join_all(pollers).await;
    }

    async fn poll(
        &self,
        api: &RuntimeApi,
        sqs: &aws_sdk_sqs::Client,
        queue: &Queue,
        done: &AtomicBool,
        until: Instant,
    ) {
        let mut looks = EmptyLooks::default();
        while Instant::now() < until {
            let messages: Vec<Message> = receive(sqs, queue).await;
            if messages.is_empty() {
                if !done.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else if looks.drained(sqs, queue).await {
                    return;
                }
                continue;
            }
            looks.reset();
            let event = lambda_event(&messages, &queue.arn).to_string();
            // No answer (a timeout): nothing is deleted, everything comes back.
            if let Some((_, response)) = api.invoke_within(event, self.timeout).await {
                delete_unreported(sqs, queue, &messages, &response).await;
            }
        }
    }

    /// The instances' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self._children.iter().filter_map(Child::id).collect()
    }

    /// The JSON lines so far, with when each was read.
    pub fn lines(&self) -> Vec<(Instant, Value)> {
        self.lines.lock().unwrap().clone()
    }

    /// The JSON lines once no new one has come for a moment: the pipes are read apart from
    /// the invocations, so the last lines may still be on their way when the queue is empty.
    pub async fn settled_lines(&self) -> Vec<(Instant, Value)> {
        loop {
            let before = self.lines.lock().unwrap().len();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if self.lines.lock().unwrap().len() == before {
                return self.lines();
            }
        }
    }
}
