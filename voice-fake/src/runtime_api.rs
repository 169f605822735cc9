//! A minimal Lambda Runtime API on loopback: enough of `/2018-06-01/runtime/...` for a
//! function to fetch events and post responses, with the moments that matter recorded. A
//! function process may die and another take its place: events wait for whoever asks next.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The X-Ray trace header every invocation carries (`Lambda-Runtime-Trace-Id`). The runtime
/// sets it as `_X_AMZN_TRACE_ID`, and the SDK then adds it to every request it signs.
pub const TRACE_ID: &str = "Root=1-00000000-000000000000000000000000;Sampled=0";

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, Notify};

/// One invocation: request id, event, deadline in epoch milliseconds.
type Invocation = (String, String, u64);

#[derive(Default)]
struct Shared {
    /// When the function first asked for an event: the end of its cold start.
    first_next: Mutex<Option<Instant>>,
    waiting: Notify,
    /// Held across the wait for an event: a process that dies while waiting leaves it for
    /// the next one.
    events: tokio::sync::Mutex<Option<mpsc::Receiver<Invocation>>>,
    responses: Mutex<HashMap<String, (Instant, String)>>,
    answered: Notify,
    next_id: AtomicU64,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    events: mpsc::Sender<Invocation>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (events, receiver) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(Some(receiver)),
            ..Default::default()
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(respond))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            events,
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API`, as Lambda sets it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits until the function has asked for its first event; returns when it did.
    pub async fn first_request(&self, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.shared.waiting.notified();
            if let Some(at) = *self.shared.first_next.lock().unwrap() {
                return Some(at);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Hands the function one event and waits for its answer: the time from handing it
    /// over to the answer, and the answer.
    pub async fn invoke(&self, event: String) -> (Duration, String) {
        let started = Instant::now();
        let (at, body) = self
            .invoke_within(event, Duration::from_secs(900))
            .await
            .expect("the function answers within its 900 s timeout");
        (at.duration_since(started), body)
    }

    /// Hands the function one event with `timeout` to answer, as Lambda does; `None` if no
    /// answer came by then (the function crashed, was killed, or ran out of time).
    pub async fn invoke_within(
        &self,
        event: String,
        timeout: Duration,
    ) -> Option<(Instant, String)> {
        let id = format!("req-{}", self.shared.next_id.fetch_add(1, Ordering::SeqCst));
        let limit = Instant::now() + timeout;
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            + timeout.as_millis() as u64;
        tokio::time::timeout(timeout, self.events.send((id.clone(), event, deadline_ms)))
            .await
            .ok()?
            .ok()?;
        loop {
            let answered = self.shared.answered.notified();
            if let Some(answer) = self.shared.responses.lock().unwrap().remove(&id) {
                return Some(answer);
            }
            let left = limit.checked_duration_since(Instant::now())?;
            if tokio::time::timeout(left, answered).await.is_err() {
                return self.shared.responses.lock().unwrap().remove(&id);
            }
        }
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    {
        let mut first = shared.first_next.lock().unwrap();
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    shared.waiting.notify_waiters();
    // One request for an event at a time; one left by a process that died is dropped here
    // without taking an event with it.
    let mut receiver = shared.events.lock().await;
    let Some(event) = receiver.as_mut() else {
        return StatusCode::GONE.into_response();
    };
    let Some((id, body, deadline_ms)) = event.recv().await else {
        return StatusCode::GONE.into_response();
    };
    drop(receiver);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:voice-dispatch".to_owned(),
    );
    set("lambda-runtime-trace-id", TRACE_ID.to_owned());
    set("content-type", "application/json".to_owned());
    response
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    shared
        .responses
        .lock()
        .unwrap()
        .insert(id, (at, String::from_utf8_lossy(&body).into_owned()));
    shared.answered.notify_waiters();
    StatusCode::ACCEPTED.into_response()
}

async fn init_error(_headers: HeaderMap, body: Bytes) -> Response {
    eprintln!("function init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED.into_response()
}
