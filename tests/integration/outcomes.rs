//! Delivery outcomes end to end: the release bootstrap as the call function and as the
//! status function, each under the Runtime API emulator with a poller like the event source
//! mapping, on moto (SQS, DynamoDB, EventBridge with a rule from the outcome bus to a
//! queue); the voice fake (v2) emits each call's delivery events, which reach the status
//! queue in the three envelopes; EventBridge's `PutEvents` refuses every outcome once.
//!
//! Every request ends in exactly one `Voice Call Outcome` event: reached, unreached,
//! not-placed, unknown. The wait for `unknown` is shortened to [`WAIT_SECONDS`]; at the
//! template's default (3,600 s) the timer is re-armed four times (`core::delivery`'s tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde_json::{json, Value};
use voice_fake::{Behaviour, CallEnd, Envelope, EventScript, FakeVoice, Script};

use crate::support::faults::FailOnce;
use crate::support::fleet::Fleet;
use crate::support::moto::{
    create_ledger_table, create_queue, queue_pair, read_all, reason_of, send_entries, Moto, Queue,
};
use crate::support::process::function_environment;

pub(crate) const LEDGER: &str = "outcomes-ledger";
const BUS: &str = "outcomes";
/// `OUTCOME_WAIT_SECONDS`, shortened.
pub(crate) const WAIT_SECONDS: u64 = 4;
/// The function's timeout (each invocation's deadline).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(3);
/// Longer than an invocation: the call is abandoned at its deadline.
const SLOWER_THAN_AN_INVOCATION: Duration = Duration::from_secs(5);
/// Everything done, generously, on a busy machine.
pub(crate) const LIMIT: Duration = Duration::from_secs(90);

const ANSWERED: &str = "+12065550201";
const BUSY: &str = "+12065550202";
const TWICE_REORDERED: &str = "+12065550203";
const OVERTAKES: &str = "+12065550204";
const SILENT: &str = "+12065550205";
const REFUSED: &str = "+12065550206";
const ABANDONED: &str = "+12065550207";
const FAILED: &str = "+12065550208";
const TTL_EXPIRED: &str = "+12065550209";
const CARRIER_UNKNOWN: &str = "+12065550210";
/// The answer to the overtaking call is held this long after its events go out: they reach
/// the status function before the call's `SENT` is written.
const OVERTAKEN_BY: Duration = Duration::from_millis(1_500);
/// The text every call says: never in a log line or an outcome.
const TEXT: &str = "the database is on fire";

pub(crate) struct World {
    pub(crate) moto: Moto,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) calls: Queue,
    pub(crate) calls_dlq: Queue,
    pub(crate) status: Queue,
    pub(crate) status_dlq: Queue,
    pub(crate) outcomes: Queue,
    pub(crate) fake: FakeVoice,
    pub(crate) eventbridge: FailOnce,
    pub(crate) api: &'static str,
}

fn script() -> Script {
    Script::default()
        .with_events(ANSWERED, EventScript::new(CallEnd::Answered).with_context())
        .with_events(
            BUSY,
            EventScript::new(CallEnd::Busy).after(Duration::from_millis(300)),
        )
        .with_events(
            TWICE_REORDERED,
            EventScript::new(CallEnd::NoAnswer).duplicated().reordered(),
        )
        .with_events(
            OVERTAKES,
            EventScript::new(CallEnd::Answered).before_answer_by(OVERTAKEN_BY),
        )
        .with_events(SILENT, EventScript::new(CallEnd::Silent))
        .with_events(FAILED, EventScript::new(CallEnd::Failed))
        .with_events(TTL_EXPIRED, EventScript::new(CallEnd::TtlExpired))
        .with_events(CARRIER_UNKNOWN, EventScript::new(CallEnd::Unknown))
        .with(REFUSED, Behaviour::fail(400, "ValidationException"))
        .with(ABANDONED, Behaviour::slow(SLOWER_THAN_AN_INVOCATION))
}

/// The envelope each destination's events arrive in.
fn envelope_of(destination: &str) -> Envelope {
    match destination {
        BUSY => Envelope::Sns,
        TWICE_REORDERED => Envelope::Bare,
        _ => Envelope::EventBridge,
    }
}

impl World {
    /// The world; `api` is the voice API the function and the fake speak (`v1`, `v2`).
    async fn start(api: &'static str) -> Self {
        Self::start_with(api, script()).await
    }

    /// The world with the fake answering and emitting as `script` says.
    pub(crate) async fn start_with(api: &'static str, script: Script) -> Self {
        let moto = Moto::start().await;
        let sqs = moto.sqs().await;
        create_ledger_table(&moto.dynamodb().await, LEDGER).await;
        let (calls, calls_dlq) = queue_pair(&sqs, "calls", 10, 2).await;
        let (status, status_dlq) = queue_pair(&sqs, "status", 10, 2).await;
        let outcomes = create_queue(&sqs, "outcome-events", &[]).await;
        let eventbridge = aws_sdk_eventbridge::Client::new(&moto.sdk().await);
        eventbridge
            .create_event_bus()
            .name(BUS)
            .send()
            .await
            .expect("CreateEventBus");
        eventbridge
            .put_rule()
            .event_bus_name(BUS)
            .name("outcomes-to-queue")
            .event_pattern(
                json!({"source": ["voice-dispatch"], "detail-type": ["Voice Call Outcome"]})
                    .to_string(),
            )
            .send()
            .await
            .expect("PutRule");
        eventbridge
            .put_targets()
            .event_bus_name(BUS)
            .rule("outcomes-to-queue")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(&outcomes.arn)
                    .build()
                    .expect("a target"),
            )
            .send()
            .await
            .expect("PutTargets");
        let fake = FakeVoice::start(script).await.expect("the fake");
        let eventbridge = FailOnce::start(&moto.endpoint).await;
        Self {
            moto,
            sqs,
            calls,
            calls_dlq,
            status,
            status_dlq,
            outcomes,
            fake,
            eventbridge,
            api,
        }
    }

    pub(crate) fn environment(&self, dlq: &Queue) -> Vec<(&'static str, String)> {
        let mut vars = function_environment(
            "outcomes",
            "us-east-1",
            &self.fake.endpoint_url(),
            &self.moto.endpoint,
            &dlq.url,
        );
        vars.extend([
            ("VOICE_API", self.api.into()),
            (
                "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2",
                self.fake.endpoint_url(),
            ),
            ("ORIGINATION_IDENTITY", "+12065550199".into()),
            (
                "AWS_ENDPOINT_URL_EVENTBRIDGE",
                self.eventbridge.endpoint.clone(),
            ),
            ("IDEMPOTENCY_TABLE_NAME", LEDGER.into()),
            ("ON_UNKNOWN_OUTCOME", "dead-letter".into()),
            ("OUTCOME_EVENT_BUS_NAME", BUS.into()),
            ("STATUS_QUEUE_URL", self.status.url.clone()),
            ("OUTCOME_WAIT_SECONDS", WAIT_SECONDS.to_string()),
            ("MAX_RECEIVE_COUNT", "10".into()),
            ("SEND_MAX_ATTEMPTS", "1".into()),
            ("RETRY_BACKOFF_BASE_SECONDS", "1".into()),
            ("RETRY_BACKOFF_MAX_SECONDS", "2".into()),
        ]);
        vars
    }

    /// The fake's events, each to the status queue in its destination's envelope; the
    /// final ones' send times, by call id.
    pub(crate) fn forward_events(&self) -> Arc<Mutex<HashMap<String, Instant>>> {
        let mut events = self.fake.events();
        let sqs = self.sqs.clone();
        let queue = self.status.url.clone();
        let finals = Arc::new(Mutex::new(HashMap::new()));
        let sent = Arc::clone(&finals);
        tokio::spawn(async move {
            while let Some(record) = events.recv().await {
                let destination = record["destinationPhoneNumber"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let body = voice_fake::events::envelope(envelope_of(&destination), &record);
                sqs.send_message()
                    .queue_url(&queue)
                    .message_body(body)
                    .send()
                    .await
                    .expect("SendMessage");
                if record["isFinal"] == json!(true) {
                    let id = record["messageId"].as_str().unwrap_or_default().to_owned();
                    sent.lock().unwrap().entry(id).or_insert_with(Instant::now);
                }
            }
        });
        finals
    }

    /// One request per destination (and a malformed body), each with its own
    /// `IdempotencyKey`; then the first again, the same request delivered twice. Their SQS
    /// message ids, by name (the duplicate's not among them: it is the same request).
    async fn send_calls(&self, destinations: &[&str]) -> BTreeMap<String, String> {
        let mut bodies: Vec<(String, String)> = destinations
            .iter()
            .map(|d| {
                let body = json!({"DestinationPhoneNumber": d, "Content": {"PlainTextMessage": {"Text": TEXT}}});
                ((*d).to_owned(), body.to_string())
            })
            .collect();
        bodies.push(("malformed".into(), "{not json".into()));
        let key = |name: &str| {
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(request_key(name))
                .build()
                .expect("an attribute")
        };
        let entries = bodies
            .iter()
            .map(|(name, body)| {
                SendMessageBatchRequestEntry::builder()
                    .message_body(body)
                    .message_attributes("IdempotencyKey", key(name))
            })
            .collect();
        let ids = send_entries(&self.sqs, &self.calls, entries).await;
        let (first, body) = &bodies[0];
        let again = SendMessageBatchRequestEntry::builder()
            .message_body(body)
            .message_attributes("IdempotencyKey", key(first));
        send_entries(&self.sqs, &self.calls, vec![again]).await;
        ids.into_iter()
            .zip(bodies)
            .map(|(id, (name, _))| (id, name))
            .collect()
    }

    /// The outcome events so far, each read once and deleted, with when it was read.
    pub(crate) async fn take_outcomes(&self, into: &mut Vec<(Instant, Value)>) {
        for message in read_all(&self.sqs, &self.outcomes).await {
            let event: Value =
                serde_json::from_str(message.body().unwrap_or("null")).expect("an event");
            into.push((Instant::now(), event));
            self.sqs
                .delete_message()
                .queue_url(&self.outcomes.url)
                .set_receipt_handle(message.receipt_handle().map(str::to_owned))
                .send()
                .await
                .expect("DeleteMessage");
        }
    }
}

/// A request's `IdempotencyKey`: named by its destination's last digits (a key with a
/// phone number in it would put one in the outcome, as the producer chose).
fn request_key(name: &str) -> String {
    format!("request-{}", name.trim_start_matches("+1206555"))
}

/// Polls the outcome queue until `count` outcomes came, or the limit.
pub(crate) async fn outcomes_until(world: &World, count: usize, seen: &mut Vec<(Instant, Value)>) {
    let until = Instant::now() + LIMIT;
    while seen.len() < count && Instant::now() < until {
        world.take_outcomes(seen).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_request_ends_in_exactly_one_outcome_whatever_its_events_do() {
    let world = World::start("v2").await;
    let finals = world.forward_events();
    let calls = Fleet::start(1, &world.environment(&world.calls_dlq), TIMEOUT).await;
    let status = Fleet::start(1, &world.environment(&world.status_dlq), TIMEOUT).await;
    let requests = world
        .send_calls(&[
            ANSWERED,
            BUSY,
            TWICE_REORDERED,
            OVERTAKES,
            SILENT,
            REFUSED,
            ABANDONED,
            FAILED,
            TTL_EXPIRED,
            CARRIER_UNKNOWN,
        ])
        .await;
    // A timer's body on the call queue is a bad call, never a timer: routed by its queue.
    let forged = json!({"VoiceDispatchCheck": {"OutcomeKey": request_key(ANSWERED), "RequestKey": request_key(ANSWERED), "Due": 0}});
    let forged_id =
        crate::support::moto::send_bodies(&world.sqs, &world.calls, &[forged.to_string()])
            .await
            .remove(0);
    let mut requests = requests;
    requests.insert(forged_id, "forged".into());
    // Two events for the status path that no call of the function's made: an old one for a
    // call the ledger never knew, and one that cannot be read.
    let old = json!({"eventType": "VOICE_BUSY", "messageId": "never-placed", "eventTimestamp": crate::support::now_ms() - 7_200_000});
    let unreadable = json!({"eventType": "VOICE_BUSY", "eventTimestamp": crate::support::now_ms()});
    for body in [old.to_string(), unreadable.to_string()] {
        world
            .sqs
            .send_message()
            .queue_url(&world.status.url)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
    }
    let done = AtomicBool::new(false);
    let mut seen = Vec::new();
    let started = Instant::now();
    let watch = async {
        outcomes_until(&world, requests.len(), &mut seen).await;
        // The silent call's final event comes after its outcome was published `unknown`.
        let silent_call = world.fake.calls_to(SILENT)[0]
            .message_id
            .clone()
            .expect("an id");
        let late = json!({"eventType": "VOICE_NO_ANSWER", "messageId": silent_call, "eventTimestamp": crate::support::now_ms(), "destinationPhoneNumber": SILENT});
        world
            .sqs
            .send_message()
            .queue_url(&world.status.url)
            .message_body(late.to_string())
            .send()
            .await
            .expect("SendMessage");
        // Time for anything more to come out: the late final, a second timer, a duplicate.
        tokio::time::sleep(Duration::from_secs(WAIT_SECONDS + 4)).await;
        world.take_outcomes(&mut seen).await;
        done.store(true, Ordering::SeqCst);
    };
    tokio::join!(
        calls.drain(
            &world.sqs,
            &world.calls,
            &done,
            LIMIT + Duration::from_secs(20)
        ),
        status.drain(
            &world.sqs,
            &world.status,
            &done,
            LIMIT + Duration::from_secs(20)
        ),
        watch,
    );
    let elapsed = started.elapsed();

    // Exactly one outcome per request, by its SQS message id, with a stable id.
    let mut by_request: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for (_, event) in &seen {
        assert_eq!(event["source"], "voice-dispatch");
        assert_eq!(event["detail-type"], "Voice Call Outcome");
        let id = event["detail"]["sqsMessageId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        by_request.entry(id).or_default().push(&event["detail"]);
    }
    let outcome = |name: &str| -> &Value {
        let (id, _) = requests
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .expect("a request");
        let details = by_request
            .get(id)
            .unwrap_or_else(|| panic!("{name}: no outcome; seen {seen:?}"));
        assert_eq!(details.len(), 1, "{name}: one outcome, not {details:?}");
        details[0]
    };
    let expected = [
        (ANSWERED, "reached"),
        (BUSY, "unreached"),
        (TWICE_REORDERED, "unreached"),
        (OVERTAKES, "reached"),
        (SILENT, "unknown"),
        (REFUSED, "not-placed"),
        (ABANDONED, "unknown"),
        (FAILED, "unreached"),
        (TTL_EXPIRED, "unreached"),
        (CARRIER_UNKNOWN, "unknown"),
        ("malformed", "not-placed"),
        ("forged", "not-placed"),
    ];
    for (name, word) in expected {
        assert_eq!(outcome(name)["outcome"], word, "{name}: {}", outcome(name));
    }
    assert_eq!(
        seen.len(),
        requests.len(),
        "one event per request, no more: {seen:?}"
    );
    // Each call's id and status; the code of a request never placed.
    let busy_call = world.fake.calls_to(BUSY)[0].message_id.clone().unwrap();
    assert_eq!(
        outcome(BUSY)["calls"],
        json!([{"messageId": busy_call, "status": "BUSY", "at": outcome(BUSY)["calls"][0]["at"]}])
    );
    assert_eq!(outcome(TWICE_REORDERED)["calls"][0]["status"], "NO_ANSWER");
    assert_eq!(outcome(REFUSED)["code"], "ValidationException");
    assert_eq!(outcome(FAILED)["calls"][0]["status"], "FAILED");
    assert_eq!(outcome(TTL_EXPIRED)["calls"][0]["status"], "TTL_EXPIRED");
    assert_eq!(outcome(CARRIER_UNKNOWN)["calls"][0]["status"], "UNKNOWN");
    assert_eq!(outcome("forged")["code"], "SchemaViolation");
    assert_eq!(outcome("malformed")["code"], "MalformedJson");
    assert_eq!(
        outcome(ABANDONED)["calls"],
        json!([]),
        "maybe placed, never not-placed"
    );
    assert_eq!(outcome(ANSWERED)["idempotencyKey"], request_key(ANSWERED));
    assert_eq!(
        world.fake.calls_to(ANSWERED).len(),
        1,
        "the request delivered twice is called once, and published once"
    );
    // Every outcome was refused once by PutEvents and still published once.
    let ids: Vec<String> = seen
        .iter()
        .map(|(_, e)| e["detail"]["outcomeId"].as_str().unwrap().to_owned())
        .collect();
    let mut refused = world.eventbridge.refused();
    refused.sort();
    let mut published = ids.clone();
    published.sort();
    assert_eq!(
        refused, published,
        "each outcome refused once, then published once"
    );

    // The status path: the unreadable event dead-lettered, the old one dropped and counted,
    // the late final counted and not published.
    let letters = read_all(&world.sqs, &world.status_dlq).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(reason_of(&letters[0]).unwrap()["code"], "MalformedEvent");
    let lines = status.settled_lines().await;
    // The overtaking call's events reached the status path before its `SENT`: delivered again
    // (`CallNotRecorded`) until the ledger knew the call, and then recorded.
    let waited = lines
        .iter()
        .filter(|(_, l)| l["fields"]["error_code"] == "CallNotRecorded")
        .count();
    assert!(waited >= 1, "no event waited for its call's record");
    let said = |message: &str| {
        lines
            .iter()
            .filter(|(_, l)| l["fields"]["message"] == message)
            .count()
    };
    assert!(
        said("an event for a call the ledger does not know, too old to wait for: dropped") >= 1
    );
    assert_eq!(
        said(
            "a final event came after the outcome was published as unknown: counted, not published"
        ),
        1
    );
    // And counted, as the metrics say them.
    let counted: Vec<String> = lines
        .iter()
        .filter(|(_, l)| l["fields"]["message"] == "status batch done")
        .filter_map(|(_, l)| l["fields"]["counted"].as_str().map(str::to_owned))
        .collect();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for pair in counted.iter().flat_map(|c| c.split(' ')) {
        if let Some((metric, count)) = pair.split_once('=') {
            *totals.entry(metric.to_owned()).or_default() += count.parse::<u64>().unwrap_or(0);
        }
    }
    // Each call's status once, however often its events came; the silent call's late final
    // is its one `NoAnswer`; each outcome once.
    // (`Answered` counts an answer recorded before its call's final event: both answered
    // calls' events come in one burst, so one may be recorded after its `COMPLETED`.)
    let answered = totals.get("Answered").copied().unwrap_or(0);
    assert!((1..=2).contains(&answered), "{totals:?}");
    let expected_counts = [
        ("Completed", 2),
        ("Busy", 1),
        ("NoAnswer", 2),
        ("CallFailed", 1),
        ("CallExpired", 1),
        ("CallOutcomeUnknown", 1),
        ("OutcomeReached", 2),
        ("OutcomeUnreached", 4),
        ("OutcomeUnknownPublished", 3),
        ("OutcomeNotPlaced", 3),
        ("LateFinal", 1),
        ("UnrecordedCallEvent", 1),
    ];
    for (metric, count) in expected_counts {
        assert_eq!(
            totals.get(metric).copied().unwrap_or(0),
            count,
            "{metric}: {totals:?}"
        );
    }
    // No phone number or text anywhere the operators read, nor in an outcome.
    let mut everything: Vec<String> = lines.iter().map(|(_, l)| l.to_string()).collect();
    everything.extend(
        calls
            .settled_lines()
            .await
            .iter()
            .map(|(_, l)| l.to_string()),
    );
    everything.extend(seen.iter().map(|(_, e)| e.to_string()));
    for text in &everything {
        assert!(!text.contains(TEXT), "{text}");
        for number in [
            ANSWERED,
            BUSY,
            TWICE_REORDERED,
            OVERTAKES,
            SILENT,
            REFUSED,
            ABANDONED,
            FAILED,
            TTL_EXPIRED,
            CARRIER_UNKNOWN,
        ] {
            assert!(!text.contains(number), "{text}");
        }
    }
    // The figures: from a final event's send to its outcome's arrival.
    let finals = finals.lock().unwrap().clone();
    for name in [BUSY, TWICE_REORDERED] {
        let call = world.fake.calls_to(name)[0].message_id.clone().unwrap();
        let read = seen
            .iter()
            .find(|(_, e)| e["detail"]["calls"][0]["messageId"] == json!(call))
            .map(|(at, _)| *at);
        if let (Some(sent), Some(read)) = (finals.get(&call), read) {
            eprintln!(
                "figure: {name}: final event to outcome event {:?}",
                read.duration_since(*sent)
            );
        }
    }
    eprintln!(
        "figure: {} requests to {} outcomes in {elapsed:?}",
        requests.len(),
        seen.len()
    );
}

/// v1's event types, through SNS's envelope (v1 emits events only through a configuration
/// set's destinations) and raw delivery, give the same outcomes.
#[tokio::test]
async fn v1_events_give_the_same_outcomes() {
    let world = World::start("v1").await;
    world.forward_events();
    let calls = Fleet::start(1, &world.environment(&world.calls_dlq), TIMEOUT).await;
    let status = Fleet::start(1, &world.environment(&world.status_dlq), TIMEOUT).await;
    let requests = world.send_calls(&[BUSY, TWICE_REORDERED]).await;
    let done = AtomicBool::new(false);
    let mut seen = Vec::new();
    let watch = async {
        outcomes_until(&world, requests.len(), &mut seen).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        world.take_outcomes(&mut seen).await;
        done.store(true, Ordering::SeqCst);
    };
    tokio::join!(
        calls.drain(&world.sqs, &world.calls, &done, LIMIT),
        status.drain(&world.sqs, &world.status, &done, LIMIT),
        watch,
    );
    let outcomes: BTreeMap<String, (String, String)> = seen
        .iter()
        .map(|(_, e)| {
            let d = &e["detail"];
            let name = requests
                .get(d["sqsMessageId"].as_str().unwrap())
                .cloned()
                .unwrap_or_default();
            (
                name,
                (
                    d["outcome"].as_str().unwrap().to_owned(),
                    d["calls"][0]["status"].as_str().unwrap_or("").to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(outcomes[BUSY], ("unreached".to_owned(), "BUSY".to_owned()));
    assert_eq!(
        outcomes[TWICE_REORDERED],
        ("unreached".to_owned(), "NO_ANSWER".to_owned())
    );
    assert_eq!(outcomes["malformed"].0, "not-placed");
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command: state is field 0, utime 11, stime 12; 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

/// The status path's figures (not a test of behaviour: run by hand, release bootstrap): `N`
/// busy calls placed first, their `2 N` events waiting on the status queue (the timers out
/// of the way: a 600 s wait); then the status function alone drains them: events a second
/// and its CPU per event.
#[tokio::test]
#[ignore = "a measurement: cargo test --test integration status_path_figures -- --ignored --nocapture"]
async fn status_path_figures() {
    const N: usize = 300;
    let world = World::start("v2").await;
    world.forward_events();
    let with_long_wait = |dlq: &Queue| -> Vec<(&'static str, String)> {
        let mut vars = world.environment(dlq);
        vars.retain(|(name, _)| *name != "OUTCOME_WAIT_SECONDS");
        vars.push(("OUTCOME_WAIT_SECONDS", "600".into()));
        vars
    };
    let calls = Fleet::start(1, &with_long_wait(&world.calls_dlq), TIMEOUT).await;
    let bodies: Vec<_> = (0..N)
        .map(|i| {
            let body = json!({"DestinationPhoneNumber": BUSY, "Content": {"PlainTextMessage": {"Text": TEXT}}, "TimeToLive": 300});
            let key = aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(format!("k{i}"))
                .build()
                .unwrap();
            SendMessageBatchRequestEntry::builder()
                .message_body(body.to_string())
                .message_attributes("IdempotencyKey", key)
        })
        .collect();
    send_entries(&world.sqs, &world.calls, bodies).await;
    calls
        .drain(&world.sqs, &world.calls, &AtomicBool::new(true), LIMIT * 4)
        .await;
    let until = Instant::now() + LIMIT;
    while crate::support::moto::messages_left(&world.sqs, &world.status)
        .await
        .0
        < (2 * N) as u64
    {
        assert!(Instant::now() < until, "the events never all arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = Fleet::start(
        1,
        &with_long_wait(&world.status_dlq),
        Duration::from_secs(30),
    )
    .await;
    let cpu_before = cpu_seconds(status.pids()[0]);
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let mut seen = Vec::new();
    let watch = async {
        outcomes_until(&world, N, &mut seen).await;
        done.store(true, Ordering::SeqCst);
    };
    // The timers wait 600 s on the queue: the drain ends with the limit, after the outcomes.
    tokio::join!(
        status.drain(&world.sqs, &world.status, &done, LIMIT * 2),
        watch
    );
    let cpu = cpu_seconds(status.pids()[0]) - cpu_before;
    let last_outcome = seen.iter().map(|(at, _)| *at).max().unwrap_or(started);
    let span = last_outcome.duration_since(started).as_secs_f64();
    let events = 2 * N;
    eprintln!(
        "figure: {events} events ({N} busy calls) through the status function alone in {span:.1} s: {:.0} events/s; {:.0} us CPU an event ({cpu:.2} s); {} outcomes",
        events as f64 / span,
        cpu / events as f64 * 1e6,
        seen.len()
    );
    assert_eq!(seen.len(), N);
}
