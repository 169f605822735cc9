//! Redial end to end: the release bootstrap as the call function and as the status function,
//! each under the Runtime API emulator with a poller like the event source mapping, on moto
//! (SQS, DynamoDB, EventBridge); the voice fake (v2) ends each destination's calls as
//! scripted, call by call. The status function puts a request back on the call queue after a
//! busy, unanswered or failed call, never more often than the policy says; each request ends
//! in exactly one outcome event listing every call.
//!
//! The interval is shortened to [`INTERVAL`] (SQS's `DelaySeconds`); an interval past SQS's
//! longest delay (900 s) is shown by a redial due [`KEPT_FOR`] from now, as the status path
//! sends one after its 900 s delay: the call function keeps it until then. At the template's
//! defaults the arithmetic is `core::redial`'s and `status`'s unit tests'.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use serde_json::{json, Value};
use voice_fake::{Behaviour, CallEnd, EventScript, Script};

use crate::outcomes::{outcomes_until, World, LEDGER, LIMIT, TIMEOUT, WAIT_SECONDS};
use crate::support::fleet::Fleet;
use crate::support::moto::{messages_left, send_entries};

/// `REDIAL_INTERVAL_SECONDS`, shortened.
const INTERVAL: Duration = Duration::from_secs(2);
/// How long after it is sent the injected redial is due.
const KEPT_FOR: Duration = Duration::from_secs(6);

const NO_ANSWER_THEN_ANSWERED: &str = "+12065550301";
const ALWAYS_BUSY: &str = "+12065550302";
const TWICE_REORDERED: &str = "+12065550303";
const PAST_ITS_TIME_TO_LIVE: &str = "+12065550304";
const DAILY_LIMIT: &str = "+12065550305";
const NEVER_FINAL: &str = "+12065550306";
const KEPT_UNTIL_DUE: &str = "+12065550307";
const TEXT: &str = "the database is on fire";

fn script() -> Script {
    let busy = EventScript::new(CallEnd::Busy);
    Script::default()
        .with_events(
            NO_ANSWER_THEN_ANSWERED,
            EventScript::new(CallEnd::NoAnswer).then(&[CallEnd::Answered]),
        )
        .with_events(ALWAYS_BUSY, busy.clone())
        .with_events(
            TWICE_REORDERED,
            busy.clone()
                .then(&[CallEnd::Answered])
                .duplicated()
                .reordered(),
        )
        .with_events(PAST_ITS_TIME_TO_LIVE, busy.clone())
        .with_events(DAILY_LIMIT, busy.clone())
        .with(
            DAILY_LIMIT,
            Behaviour::fail_after(
                1,
                400,
                "ServiceQuotaExceededException",
                "DAILY_DESTINATION_CALL_LIMIT",
            ),
        )
        .with_events(
            NEVER_FINAL,
            EventScript::new(CallEnd::NoAnswer).then(&[CallEnd::Silent]),
        )
        .with_events(KEPT_UNTIL_DUE, busy.then(&[CallEnd::Answered]))
}

/// A scenario's name, for the figures the test prints.
fn scenario(destination: &str) -> &'static str {
    match destination {
        NO_ANSWER_THEN_ANSWERED => "no answer, then answered",
        ALWAYS_BUSY => "always busy, three calls",
        TWICE_REORDERED => "events twice and reordered",
        PAST_ITS_TIME_TO_LIVE => "next call past the time to live",
        DAILY_LIMIT => "daily limit on the second call",
        NEVER_FINAL => "second call never final",
        KEPT_UNTIL_DUE => "interval past 900 s (scaled)",
        _ => "other",
    }
}

fn request_key(destination: &str) -> String {
    format!("redial-{}", destination.trim_start_matches("+1206555"))
}

fn string(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("an attribute")
}

fn number(value: u64) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(value.to_string())
        .build()
        .expect("an attribute")
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// One request per destination, with the body's own `Redial` or `TimeToLive` where the
/// scenario needs them. Their SQS message ids, by destination.
async fn send_requests(world: &World) -> BTreeMap<String, &'static str> {
    let bodies: Vec<(&'static str, Value)> = [
        NO_ANSWER_THEN_ANSWERED,
        ALWAYS_BUSY,
        TWICE_REORDERED,
        PAST_ITS_TIME_TO_LIVE,
        DAILY_LIMIT,
        NEVER_FINAL,
        KEPT_UNTIL_DUE,
    ]
    .into_iter()
    .map(|destination| {
        let mut body = json!({"DestinationPhoneNumber": destination, "MessageBody": TEXT});
        match destination {
            // Its own time to live ends before the next call would start.
            PAST_ITS_TIME_TO_LIVE => {
                body["TimeToLive"] = json!(5);
                body["Redial"] = json!({"IntervalSeconds": 10});
            }
            // Past SQS's longest delay: the status path's own redial of it is delayed 900 s
            // (past this test); the one the test sends stands for it at the end of that delay.
            KEPT_UNTIL_DUE => {
                body["TimeToLive"] = json!(7_200);
                body["Redial"] = json!({"On": ["BUSY"], "MaxCalls": 2, "IntervalSeconds": 3600});
            }
            _ => {}
        }
        (destination, body)
    })
    .collect();
    let entries = bodies
        .iter()
        .map(|(destination, body)| {
            SendMessageBatchRequestEntry::builder()
                .message_body(body.to_string())
                .message_attributes("IdempotencyKey", string(&request_key(destination)))
        })
        .collect();
    let ids = send_entries(&world.sqs, &world.calls, entries).await;
    ids.into_iter()
        .zip(bodies)
        .map(|(id, (destination, _))| (id, destination))
        .collect()
}

/// The redial the status path sends for a call due past SQS's longest delay, at the end of
/// that delay: the body, the call's number, the request's key, its first send, and when it
/// is due.
async fn send_kept_redial(world: &World, due: SystemTime) {
    let body = json!({"DestinationPhoneNumber": KEPT_UNTIL_DUE, "MessageBody": TEXT,
        "TimeToLive": 7_200, "Redial": {"On": ["BUSY"], "MaxCalls": 2, "IntervalSeconds": 3600}});
    world
        .sqs
        .send_message()
        .queue_url(&world.calls.url)
        .message_body(body.to_string())
        .message_attributes("DispatchRedialCall", number(2))
        .message_attributes(
            "DispatchRedialRequest",
            string(&request_key(KEPT_UNTIL_DUE)),
        )
        .message_attributes(
            "DispatchFirstSent",
            number(epoch_ms(SystemTime::now()) - 1_000),
        )
        .message_attributes("DispatchRedialAt", number(epoch_ms(due)))
        .send()
        .await
        .expect("SendMessage");
}

#[tokio::test]
async fn redial_calls_again_until_reached_and_never_more_than_the_policy() {
    let world = World::start_with("v2", script()).await;
    let _finals = world.forward_events();
    let mut environment = world.environment(&world.calls_dlq);
    environment.extend([
        ("REDIAL_ON", "BUSY,NO_ANSWER,FAILED".into()),
        ("REDIAL_MAX_CALLS", "3".into()),
        ("REDIAL_INTERVAL_SECONDS", INTERVAL.as_secs().to_string()),
        ("CALL_QUEUE_URL", world.calls.url.clone()),
    ]);
    let mut status_environment = environment.clone();
    status_environment.retain(|(name, _)| *name != "DEAD_LETTER_QUEUE_URL");
    status_environment.push(("DEAD_LETTER_QUEUE_URL", world.status_dlq.url.clone()));
    let calls = Fleet::start(1, &environment, TIMEOUT).await;
    let status = Fleet::start(1, &status_environment, TIMEOUT).await;
    let started = Instant::now();
    let requests = send_requests(&world).await;
    let due = SystemTime::now() + KEPT_FOR;
    send_kept_redial(&world, due).await;

    let done = AtomicBool::new(false);
    let mut seen = Vec::new();
    let watch = async {
        outcomes_until(&world, requests.len(), &mut seen).await;
        // Time for anything more: a second redial, a duplicate outcome.
        tokio::time::sleep(INTERVAL * 2 + Duration::from_secs(WAIT_SECONDS)).await;
        world.take_outcomes(&mut seen).await;
        // What the call queue still holds: the status path's own redial of the request due
        // in an hour, delayed 900 s, past this test (purged, so the poller may stop).
        let held = messages_left(&world.sqs, &world.calls).await;
        world
            .sqs
            .purge_queue()
            .queue_url(&world.calls.url)
            .send()
            .await
            .expect("PurgeQueue");
        done.store(true, Ordering::SeqCst);
        held
    };
    let ((), (), held) = tokio::join!(
        calls.drain(&world.sqs, &world.calls, &done, LIMIT),
        status.drain(&world.sqs, &world.status, &done, LIMIT),
        watch,
    );
    // The event and the first call's timer may each have put it there: its own key makes it
    // one call whenever it comes.
    assert!(
        held.0 == 0 && (1..=2).contains(&held.1),
        "the redial due in an hour waits on the call queue, and nothing else: {held:?}"
    );

    // Exactly one outcome per request, under the first call's SQS message id.
    let mut by_request: BTreeMap<&str, Vec<(Instant, &Value)>> = BTreeMap::new();
    for (at, event) in &seen {
        let id = event["detail"]["sqsMessageId"].as_str().unwrap_or_default();
        let destination = requests
            .get(id)
            .unwrap_or_else(|| panic!("an outcome for no request: {event}"));
        by_request
            .entry(destination)
            .or_default()
            .push((*at, &event["detail"]));
    }
    assert_eq!(
        seen.len(),
        requests.len(),
        "one event per request: {seen:?}"
    );
    let mut figures = Vec::new();
    let mut check = |destination: &str,
                     outcome: &str,
                     reason: Option<&str>,
                     statuses: &[&str],
                     placed: usize| {
        let outcomes = &by_request[destination];
        assert_eq!(outcomes.len(), 1, "{destination}: {outcomes:?}");
        let (at, detail) = outcomes[0];
        assert_eq!(detail["outcome"], outcome, "{destination}: {detail}");
        assert_eq!(detail["reason"].as_str(), reason, "{destination}: {detail}");
        let listed: Vec<&str> = detail["calls"]
            .as_array()
            .expect("calls")
            .iter()
            // Reached: by its answer, or its completion when that event came first.
            .map(|call| match call["status"].as_str() {
                Some("COMPLETED") => "ANSWERED",
                Some(status) => status,
                None => "-",
            })
            .collect();
        assert_eq!(listed, statuses, "{destination}: {detail}");
        let accepted = world
            .fake
            .calls_to(destination)
            .iter()
            .filter(|call| call.message_id.is_some())
            .count();
        assert_eq!(accepted, placed, "{destination}: calls placed");
        assert!(!detail.to_string().contains(destination), "{detail}");
        assert!(!detail.to_string().contains(TEXT), "{detail}");
        figures.push((destination.to_owned(), placed, at - started));
    };
    check(
        NO_ANSWER_THEN_ANSWERED,
        "reached",
        None,
        &["NO_ANSWER", "ANSWERED"],
        2,
    );
    check(
        ALWAYS_BUSY,
        "unreached",
        Some("CallsUsedUp"),
        &["BUSY", "BUSY", "BUSY"],
        3,
    );
    check(TWICE_REORDERED, "reached", None, &["BUSY", "ANSWERED"], 2);
    check(
        PAST_ITS_TIME_TO_LIVE,
        "unreached",
        Some("TimeToLive"),
        &["BUSY"],
        1,
    );
    check(DAILY_LIMIT, "unreached", Some("DailyLimit"), &["BUSY"], 1);
    check(NEVER_FINAL, "unknown", None, &["NO_ANSWER", "-"], 2);
    check(KEPT_UNTIL_DUE, "reached", None, &["BUSY", "ANSWERED"], 2);
    // The daily limit refused the second call, and nothing called a third time.
    assert_eq!(world.fake.calls_to(DAILY_LIMIT).len(), 2);

    // Each redial at least the interval after its previous call's final event (the fake's
    // busy event is 10 ms after the call).
    let busy = world.fake.calls_to(ALWAYS_BUSY);
    for pair in busy.windows(2) {
        let final_event = pair[0].received_at + Duration::from_millis(10);
        let gap = pair[1]
            .received_at
            .duration_since(final_event)
            .unwrap_or_else(|_| panic!("a redial before its previous call's final event"));
        assert!(gap >= INTERVAL, "a redial {gap:?} after the final event");
    }
    // The redial due past SQS's delay was kept until its time, never called early, and said
    // so at INFO.
    let kept = world.fake.calls_to(KEPT_UNTIL_DUE);
    assert!(kept[1].received_at >= due, "called before it was due");
    let lines = calls.settled_lines().await;
    let scheduled: Vec<&Value> = lines
        .iter()
        .map(|(_, line)| line)
        .filter(|line| line["fields"]["error_code"] == "RedialScheduled")
        .collect();
    assert!(!scheduled.is_empty(), "no RedialScheduled line");
    assert!(
        scheduled.iter().all(|line| line["level"] == "INFO"),
        "{scheduled:?}"
    );
    // No phone number or text in any line of either function.
    for (_, line) in lines.iter().chain(status.settled_lines().await.iter()) {
        let text = line.to_string();
        assert!(!text.contains(TEXT), "{text}");
        assert!(!text.contains("+1206555030"), "{text}");
    }
    // Every request ended: no body is left in the ledger (nor anywhere else of the function's).
    let kept = world
        .moto
        .dynamodb()
        .await
        .scan()
        .table_name(LEDGER)
        .filter_expression("attribute_exists(redial_body)")
        .send()
        .await
        .expect("Scan");
    assert_eq!(
        kept.count(),
        0,
        "bodies left in the ledger: {:?}",
        kept.items()
    );
    for (destination, placed, after) in figures {
        eprintln!(
            "redial figures: {}: {placed} calls, outcome {:.1} s after the request",
            scenario(&destination),
            after.as_secs_f64()
        );
    }
}
