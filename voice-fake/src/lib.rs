//! A loopback fake of Amazon Pinpoint SMS Voice v1 that speaks the service's real wire
//! protocol (restJson1), so the real AWS SDK client can be driven against it over HTTP.
//!
//! - `POST /v1/sms-voice/voice/message` with a JSON body in the API's member names;
//!   success is `200 {"MessageId": "..."}`.
//! - Errors carry the code in `x-amzn-ErrorType` and `{"Message": "..."}` in the body, as
//!   the service does; the SDK parses them into its modelled errors.
//! - Requests must be SigV4-signed for the `sms-voice` signing name, and must hold a
//!   destination and exactly one kind of content; otherwise the fake answers 403 or 400
//!   like the service would.
//!
//! Behaviour is scripted per destination number ([`Script`]); every request is recorded
//! ([`FakeVoice::calls`]), at its arrival, together with the most requests ever in flight at
//! once. Two account-wide switches stand in for the service's bad days: an outage
//! ([`FakeVoice::set_outage`]: every call answers 500 `InternalServiceErrorException`) and a
//! rate quota ([`Script::quota_per_second`]: beyond N calls a second, 429
//! `TooManyRequestsException`).

pub mod events;
pub mod runtime_api;

pub use events::{CallEnd, Envelope, EventScript};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The path `SendVoiceMessage` is bound to in the service model.
pub const SEND_VOICE_MESSAGE_PATH: &str = "/v1/sms-voice/voice/message";

/// How the fake answers: a base latency for every request, and a behaviour per destination
/// number (accept, when a number is not listed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub destinations: HashMap<String, Behaviour>,
    /// The account's call quota: N calls a second, in bursts of up to N (a token bucket).
    /// Calls beyond it answer 429 `TooManyRequestsException`. None: no quota.
    #[serde(default)]
    pub quota_per_second: Option<u32>,
    /// The delivery events of each destination's accepted calls (none for a number not
    /// listed), into the sink [`FakeVoice::events`] gives.
    #[serde(default)]
    pub events: HashMap<String, EventScript>,
    /// The events of every other destination's accepted calls; none when unset.
    #[serde(default)]
    pub default_events: Option<EventScript>,
}

impl Script {
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = latency.as_millis() as u64;
        self
    }

    pub fn with_quota_per_second(mut self, calls: u32) -> Self {
        self.quota_per_second = Some(calls);
        self
    }

    /// The delivery events `destination`'s accepted calls emit.
    pub fn with_events(mut self, destination: &str, events: EventScript) -> Self {
        self.events.insert(destination.to_owned(), events);
        self
    }

    pub fn with(mut self, destination: &str, behaviour: Behaviour) -> Self {
        self.destinations.insert(destination.to_owned(), behaviour);
        self
    }

    /// Reads a script from JSON, as the standalone server and the local runner do.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "behaviour", rename_all = "snake_case", deny_unknown_fields)]
pub enum Behaviour {
    /// 200 with a fresh `MessageId`.
    Accept,
    /// An error response: `status`, and `x-amzn-ErrorType: code` when a code is given (a
    /// bare status is what a proxy or load balancer answers). The first `times` requests
    /// for the number fail and later ones are accepted; with no `times`, every one fails.
    Fail {
        status: u16,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        times: Option<u32>,
        /// The first `after` requests for the number are accepted, and later ones fail (a
        /// destination that reaches its daily limit).
        #[serde(default)]
        after: Option<u32>,
        /// v2 only: the error's `Reason` (`DAILY_DESTINATION_CALL_LIMIT`, ...).
        #[serde(default)]
        reason: Option<String>,
        /// v2 only: a `ResourceNotFoundException`'s `ResourceType` (`configuration-set`,
        /// `pool`, ...).
        #[serde(default)]
        resource_type: Option<String>,
    },
    /// Accepts, after `delay_ms` on top of the base latency.
    Slow { delay_ms: u64 },
}

impl Behaviour {
    pub fn fail(status: u16, code: &str) -> Self {
        Self::Fail {
            status,
            code: Some(code.to_owned()),
            times: None,
            after: None,
            reason: None,
            resource_type: None,
        }
    }

    /// A v2 error with its `Reason`.
    pub fn fail_because(status: u16, code: &str, reason: &str) -> Self {
        Self::Fail {
            status,
            code: Some(code.to_owned()),
            times: None,
            after: None,
            reason: Some(reason.to_owned()),
            resource_type: None,
        }
    }

    /// v2's `ResourceNotFoundException` for a resource of `resource_type`.
    pub fn missing(resource_type: &str) -> Self {
        Self::Fail {
            status: 400,
            code: Some("ResourceNotFoundException".to_owned()),
            times: None,
            after: None,
            reason: None,
            resource_type: Some(resource_type.to_owned()),
        }
    }

    pub fn fail_times(status: u16, code: &str, times: u32) -> Self {
        Self::Fail {
            status,
            code: Some(code.to_owned()),
            times: Some(times),
            after: None,
            reason: None,
            resource_type: None,
        }
    }

    /// Accepts the first `after` requests for the number, then fails every later one with a
    /// v2 error and its `Reason` (a destination at its daily call limit).
    pub fn fail_after(after: u32, status: u16, code: &str, reason: &str) -> Self {
        Self::Fail {
            status,
            code: Some(code.to_owned()),
            times: None,
            after: Some(after),
            reason: Some(reason.to_owned()),
            resource_type: None,
        }
    }

    /// An error status with no error code at all.
    pub fn bare_status(status: u16) -> Self {
        Self::Fail {
            status,
            code: None,
            times: None,
            after: None,
            reason: None,
            resource_type: None,
        }
    }

    pub fn slow(delay: Duration) -> Self {
        Self::Slow {
            delay_ms: delay.as_millis() as u64,
        }
    }
}

/// One request the fake received, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedCall {
    pub destination: String,
    pub origination: Option<String>,
    pub caller_id: Option<String>,
    pub configuration_set: Option<String>,
    /// `SSMLMessage`, `PlainTextMessage` or `CallInstructionsMessage`.
    pub content_kind: String,
    pub text: String,
    pub voice_id: Option<String>,
    pub language_code: Option<String>,
    /// `v1` (restJson1) or `v2` (End User Messaging, awsJson1_0).
    pub api: &'static str,
    /// v2's `TimeToLive`, when sent.
    pub time_to_live: Option<i64>,
    /// v2's `Context`, as sent (sorted by key).
    pub context: Vec<(String, String)>,
    /// v2's `MaxPricePerMinute`, `DryRun`, `ProtectConfigurationId` and
    /// `MessageFeedbackEnabled`, as sent.
    pub v2_options: V2Options,
    /// The status the fake answered with; 0 while the request is still in flight.
    pub status: u16,
    /// When the request arrived: a call counts as placed from here, even if its caller goes
    /// away before the answer.
    pub received_at: SystemTime,
    /// The Region the request was signed for (SigV4's credential scope): which Region's
    /// client sent it.
    pub signing_region: Option<String>,
    /// The `MessageId` the fake answered with, once accepted: unique per call.
    pub message_id: Option<String>,
}

/// The v2 members that change how a call is placed or billed, not what it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V2Options {
    pub max_price_per_minute: Option<String>,
    pub dry_run: Option<bool>,
    pub protect_configuration_id: Option<String>,
    pub message_feedback_enabled: Option<bool>,
}

impl ReceivedCall {
    pub fn accepted(&self) -> bool {
        self.status == 200
    }
}

struct Shared {
    script: Script,
    /// The base latency, changeable while the fake runs.
    latency_ms: AtomicU64,
    calls: Mutex<Vec<ReceivedCall>>,
    attempts: Mutex<HashMap<String, u32>>,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    outage: AtomicBool,
    quota: Option<DefaultDirectRateLimiter>,
    /// Where delivery events go, once a test asked for them.
    sink: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Value>>>,
}

impl Shared {
    fn calls(&self) -> MutexGuard<'_, Vec<ReceivedCall>> {
        // A panicking test thread must not hide every later assertion behind poisoning.
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake. Dropping it stops the server.
pub struct FakeVoice {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FakeVoice {
    /// Starts the fake on a free loopback port.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
    }

    pub async fn start_on(addr: SocketAddr, script: Script) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let quota = script
            .quota_per_second
            .and_then(NonZeroU32::new)
            .map(|calls| RateLimiter::direct(Quota::per_second(calls)));
        let shared = Arc::new(Shared {
            latency_ms: AtomicU64::new(script.latency_ms),
            outage: AtomicBool::new(false),
            quota,
            script,
            calls: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            sink: Mutex::new(None),
        });
        let app = Router::new()
            .route(SEND_VOICE_MESSAGE_PATH, post(send_voice_message))
            .route("/", post(send_voice_message_v2))
            .fallback(unknown_operation)
            .with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = server.await {
                eprintln!("voice-fake: server error: {err}");
            }
        });
        Ok(Self {
            addr,
            shared,
            shutdown: Some(shutdown),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL to give the SDK (`endpoint_url` or
    /// `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received, in arrival order.
    pub fn calls(&self) -> Vec<ReceivedCall> {
        self.shared.calls().clone()
    }

    /// The requests for one destination, in arrival order.
    pub fn calls_to(&self, destination: &str) -> Vec<ReceivedCall> {
        self.shared
            .calls()
            .iter()
            .filter(|call| call.destination == destination)
            .cloned()
            .collect()
    }

    /// Every HTTP request that reached the fake, well-formed or not.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Changes the base latency of the answers to come.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Starts or ends an outage: while it lasts, every call answers 500
    /// `InternalServiceErrorException`, whatever the script says.
    pub fn set_outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::SeqCst);
    }

    /// The delivery events of the calls accepted from now on, as bare records, in the order
    /// the script emits them.
    pub fn events(&self) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        *self
            .shared
            .sink
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sender);
        receiver
    }

    /// The most requests the fake was ever answering at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeVoice {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Counts a request in flight for as long as it lives, even if the client goes away.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the fake answers a call with, before either protocol renders it.
enum Answer {
    /// With the call's `MessageId`.
    Accepted(String),
    Error {
        status: StatusCode,
        code: String,
        message: String,
        reason: Option<String>,
        resource_type: Option<String>,
    },
    /// A status with no error code (a proxy's answer).
    Bare { status: StatusCode, message: String },
}

/// The v1 operation: restJson1, `POST /v1/sms-voice/voice/message`.
async fn send_voice_message(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::enter(&shared);
    if !signed_for_sms_voice(&headers) {
        return error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing or invalid SigV4 Authorization for service sms-voice",
        );
    }
    let call = match parse_request(&body) {
        Ok(call) => ReceivedCall {
            signing_region: signing_region(&headers),
            ..call
        },
        Err(problem) => return error(StatusCode::BAD_REQUEST, "BadRequestException", &problem),
    };
    match answer(&shared, call, Api::V1).await {
        Answer::Accepted(message_id) => accepted(&message_id),
        Answer::Error {
            status,
            code,
            message,
            ..
        } => error(status, &code, &message),
        Answer::Bare { status, message } => (status, message).into_response(),
    }
}

/// The v2 operation: awsJson1_0, `POST /` with `X-Amz-Target: PinpointSMSVoiceV2.SendVoiceMessage`.
async fn send_voice_message_v2(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::enter(&shared);
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    if target != Some("PinpointSMSVoiceV2.SendVoiceMessage") {
        return json_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "this fake speaks only PinpointSMSVoiceV2.SendVoiceMessage",
            None,
            None,
        );
    }
    if !signed_for_sms_voice(&headers) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "Missing or invalid SigV4 Authorization for service sms-voice",
            None,
            None,
        );
    }
    let call = match parse_request_v2(&body) {
        Ok(call) => ReceivedCall {
            signing_region: signing_region(&headers),
            ..call
        },
        Err(problem) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &problem,
                Some("INVALID_PARAMETER"),
                None,
            )
        }
    };
    match answer(&shared, call, Api::V2).await {
        Answer::Accepted(message_id) => {
            let mut response = json_response(StatusCode::OK, &json!({ "MessageId": message_id }));
            if let Ok(id) = HeaderValue::from_str(&message_id) {
                response.headers_mut().insert("x-amzn-RequestId", id);
            }
            response
        }
        Answer::Error {
            status,
            code,
            message,
            reason,
            resource_type,
        } => json_error(
            status,
            &code,
            &message,
            reason.as_deref(),
            resource_type.as_deref(),
        ),
        Answer::Bare { status, message } => (status, message).into_response(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
}

/// Records the call and decides its answer, as the service would on arrival: an outage,
/// then the quota, then the script.
async fn answer(shared: &Arc<Shared>, call: ReceivedCall, api: Api) -> Answer {
    let behaviour = shared
        .script
        .destinations
        .get(&call.destination)
        .cloned()
        .unwrap_or(Behaviour::Accept);
    let attempt = {
        let mut attempts = shared
            .attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = attempts.entry(call.destination.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let index = {
        let mut calls = shared.calls();
        calls.push(call);
        calls.len() - 1
    };
    let outage = shared.outage.load(Ordering::SeqCst);
    let over_quota = !outage && shared.quota.as_ref().is_some_and(|q| q.check().is_err());
    let mut delay = Duration::from_millis(shared.latency_ms.load(Ordering::Relaxed));
    if let Behaviour::Slow { delay_ms } = behaviour {
        delay += Duration::from_millis(delay_ms);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let error = |status: StatusCode, code: &str, message: &str| Answer::Error {
        status,
        code: code.to_owned(),
        message: message.to_owned(),
        reason: None,
        resource_type: None,
    };
    let answer = match behaviour {
        _ if outage => match api {
            Api::V1 => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServiceErrorException",
                "outage: the service is failing on its side",
            ),
            Api::V2 => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "outage: the service is failing on its side",
            ),
        },
        _ if over_quota => match api {
            Api::V1 => error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "calls per second exceeded",
            ),
            // v2 answers throttling with 400.
            Api::V2 => error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "calls per second exceeded",
            ),
        },
        Behaviour::Fail {
            status,
            code,
            times,
            after,
            reason,
            resource_type,
        } if times.is_none_or(|times| attempt <= times)
            && after.is_none_or(|after| attempt > after) =>
        {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = format!("scripted failure (request {attempt})");
            match code {
                Some(code) => Answer::Error {
                    status,
                    code,
                    message,
                    reason,
                    resource_type,
                },
                None => Answer::Bare { status, message },
            }
        }
        _ => Answer::Accepted(format!("fake-{index:016x}")),
    };
    let status = match &answer {
        Answer::Accepted(_) => 200,
        Answer::Error { status, .. } | Answer::Bare { status, .. } => status.as_u16(),
    };
    let accepted = {
        let mut calls = shared.calls();
        calls.get_mut(index).map(|call| {
            call.status = status;
            if let Answer::Accepted(id) = &answer {
                call.message_id = Some(id.clone());
            }
            call.clone()
        })
    };
    if let (Answer::Accepted(id), Some(call)) = (&answer, accepted) {
        let hold = emit_events(shared, &call, id);
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
    }
    answer
}

/// Sends the call's scripted events to the sink: at once when they overtake the answer,
/// otherwise after the script's delay. How long the answer is then held.
fn emit_events(shared: &Arc<Shared>, call: &ReceivedCall, message_id: &str) -> Duration {
    let script = shared.script.events.get(&call.destination);
    let Some(script) = script.or(shared.script.default_events.as_ref()) else {
        return Duration::ZERO;
    };
    let sink = shared
        .sink
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let Some(sink) = sink else {
        return Duration::ZERO;
    };
    // Which of the destination's accepted calls this is: its script may end each differently.
    let nth = shared
        .calls()
        .iter()
        .filter(|earlier| earlier.destination == call.destination && earlier.message_id.is_some())
        .position(|earlier| earlier.message_id.as_deref() == Some(message_id))
        .unwrap_or(0);
    let script = &EventScript {
        end: script.end_of(nth),
        ..script.clone()
    };
    let records = events::records(script, call, message_id);
    if script.before_answer {
        for record in records {
            let _ = sink.send(record);
        }
        return Duration::from_millis(script.hold_answer_ms);
    }
    let delay = Duration::from_millis(script.delay_ms);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for record in records {
            let _ = sink.send(record);
        }
    });
    Duration::ZERO
}

async fn unknown_operation() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "No operation is bound to this method and path",
    )
}

/// SigV4 as the SDK sends it: `AWS4-HMAC-SHA256 Credential=AKID/date/region/sms-voice/aws4_request, ...`.
fn signed_for_sms_voice(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|auth| {
            auth.starts_with("AWS4-HMAC-SHA256 Credential=")
                && auth.contains("/sms-voice/aws4_request")
                && auth.contains("Signature=")
        })
}

/// The Region of SigV4's credential scope: `Credential=AKID/date/region/service/...`.
fn signing_region(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    credential.split('/').nth(2).map(str::to_owned)
}

fn parse_request(body: &[u8]) -> Result<ReceivedCall, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|err| format!("Request body is not JSON: {err}"))?;
    let string = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let destination =
        string(&value, "DestinationPhoneNumber").ok_or("DestinationPhoneNumber is required")?;
    let content = value
        .get("Content")
        .and_then(Value::as_object)
        .ok_or("Content is required")?;
    let kinds = ["SSMLMessage", "PlainTextMessage", "CallInstructionsMessage"];
    let present: Vec<&str> = kinds
        .into_iter()
        .filter(|kind| content.contains_key(*kind))
        .collect();
    let [kind] = present[..] else {
        return Err("Content must hold exactly one message type".to_owned());
    };
    let message = &content[kind];
    let text = string(message, "Text").ok_or("Text is required")?;
    Ok(ReceivedCall {
        destination,
        origination: string(&value, "OriginationPhoneNumber"),
        caller_id: string(&value, "CallerId"),
        configuration_set: string(&value, "ConfigurationSetName"),
        content_kind: kind.to_owned(),
        text,
        voice_id: string(message, "VoiceId"),
        language_code: string(message, "LanguageCode"),
        api: "v1",
        time_to_live: None,
        context: Vec::new(),
        v2_options: V2Options::default(),
        status: 0,
        received_at: SystemTime::now(),
        signing_region: None,
        message_id: None,
    })
}

/// A v2 request (awsJson1_0): the members End User Messaging's `SendVoiceMessage` takes.
fn parse_request_v2(body: &[u8]) -> Result<ReceivedCall, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|err| format!("Request body is not JSON: {err}"))?;
    let string = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let destination =
        string("DestinationPhoneNumber").ok_or("DestinationPhoneNumber is required")?;
    let origination = string("OriginationIdentity").ok_or("OriginationIdentity is required")?;
    let text = string("MessageBody").ok_or("MessageBody is required")?;
    Ok(ReceivedCall {
        destination,
        origination: Some(origination),
        caller_id: None,
        configuration_set: string("ConfigurationSetName"),
        content_kind: string("MessageBodyTextType").unwrap_or_else(|| "TEXT".to_owned()),
        text,
        voice_id: string("VoiceId"),
        language_code: None,
        api: "v2",
        time_to_live: value.get("TimeToLive").and_then(Value::as_i64),
        context: {
            let mut context: Vec<(String, String)> = value
                .get("Context")
                .and_then(Value::as_object)
                .map(|map| {
                    map.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            context.sort();
            context
        },
        v2_options: V2Options {
            max_price_per_minute: string("MaxPricePerMinute"),
            dry_run: value.get("DryRun").and_then(Value::as_bool),
            protect_configuration_id: string("ProtectConfigurationId"),
            message_feedback_enabled: value.get("MessageFeedbackEnabled").and_then(Value::as_bool),
        },
        status: 0,
        received_at: SystemTime::now(),
        signing_region: None,
        message_id: None,
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

/// The awsJson1_0 error shape: `__type`, `Message`, and v2's `Reason` and `ResourceType`.
fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    reason: Option<&str>,
    resource_type: Option<&str>,
) -> Response {
    let mut body = json!({ "__type": code, "Message": message });
    if let Some(reason) = reason {
        body["Reason"] = json!(reason);
    }
    if let Some(resource_type) = resource_type {
        body["ResourceType"] = json!(resource_type);
    }
    json_response(status, &body)
}

fn accepted(message_id: &str) -> Response {
    let mut response = axum::Json(json!({ "MessageId": message_id })).into_response();
    if let Ok(id) = HeaderValue::from_str(message_id) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
    response
}

/// The restJson1 error shape: the code in `x-amzn-ErrorType`, the message in the body.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "Message": message }))).into_response();
    if let Ok(code) = HeaderValue::from_str(code) {
        response.headers_mut().insert("x-amzn-ErrorType", code);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_reads_from_json() {
        let script = Script::from_json(
            r#"{"latency_ms": 50, "destinations": {
                "+12065550500": {"behaviour": "fail", "status": 500, "code": "InternalServiceErrorException"},
                "+12065550501": {"behaviour": "fail", "status": 500, "code": "InternalServiceErrorException", "times": 1},
                "+12065550504": {"behaviour": "slow", "delay_ms": 3000}}}"#,
        )
        .unwrap();
        assert_eq!(script.latency_ms, 50);
        assert_eq!(
            script.destinations["+12065550501"],
            Behaviour::fail_times(500, "InternalServiceErrorException", 1)
        );
        assert_eq!(
            script.destinations["+12065550504"],
            Behaviour::slow(Duration::from_secs(3))
        );
    }

    #[test]
    fn a_script_may_set_a_quota() {
        let script = Script::from_json(r#"{"quota_per_second": 10}"#).unwrap();
        assert_eq!(script.quota_per_second, Some(10));
    }

    #[test]
    fn requests_need_exactly_one_content_kind_and_a_destination() {
        assert!(parse_request(br#"{"Content": {"SSMLMessage": {"Text": "x"}}}"#).is_err());
        assert!(parse_request(
            br#"{"DestinationPhoneNumber": "+1", "Content": {"SSMLMessage": {"Text": "x"}, "PlainTextMessage": {"Text": "y"}}}"#
        )
        .is_err());
        let call = parse_request(
            br#"{"DestinationPhoneNumber": "+1", "Content": {"PlainTextMessage": {"Text": "y", "VoiceId": "Joanna"}}}"#,
        )
        .unwrap();
        assert_eq!(call.content_kind, "PlainTextMessage");
        assert_eq!(call.voice_id.as_deref(), Some("Joanna"));
    }

    #[test]
    fn only_sigv4_for_sms_voice_is_accepted() {
        let mut headers = HeaderMap::new();
        assert!(!signed_for_sms_voice(&headers));
        headers.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/sms-voice/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        assert!(signed_for_sms_voice(&headers));
        assert_eq!(signing_region(&headers).as_deref(), Some("us-east-1"));
        headers.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/sms/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        assert!(!signed_for_sms_voice(&headers));
    }
}
