//! Chaos, end to end: three bootstrap processes (the release build in CI), each under its
//! own Lambda Runtime API emulator, fed by pollers that do what the event source mapping
//! does, against moto (SQS and DynamoDB) and the voice fake, which counts a call when it
//! arrives. Faults: a third of the answers lost, producer duplicates sharing an
//! `IdempotencyKey`, a key reused for another message, a process SIGKILLed with calls in
//! flight and restarted (at points of progress the test chooses), and a visibility timeout
//! shorter than a batch.
//!
//! What a kill can leave unrecorded is known exactly: the pollers note which records (and
//! their ledger keys) they handed to which process and when; the calls a killed process
//! placed for the records of the invocation it died in, whose ledger item does not say
//! `SENT` when the test reads the table right after the kill, are the calls in flight at
//! that kill (without the ledger, every call that invocation placed).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sqs::types::{Message, MessageAttributeValue, SendMessageBatchRequestEntry};
use serde_json::Value;
use tokio::process::Child;
use voice_fake::runtime_api::RuntimeApi;
use voice_fake::{FakeVoice, ReceivedCall, Script};

use crate::support::body;
use crate::support::esm::{delete_unreported, lambda_event, receive};
use crate::support::moto::{
    create_ledger_table, messages_left, queue_pair, read_all, reason_of, send_entries, Moto, Queue,
};
use crate::support::process::bootstrap_under;

const PROCESSES: usize = 3;
const LEDGER_TABLE: &str = "chaos-ledger";
/// Each call takes this long at the fake, so kills land on calls in flight.
const CALL_LATENCY: Duration = Duration::from_millis(400);
/// Two sends in flight per invocation: a batch of 10 takes about 2 s...
const MAX_CONCURRENCY: &str = "2";
/// ...and the queue hides a received message for less than that.
const VISIBILITY_TIMEOUT: u32 = 1;
/// Shorter than the default 5 s attempt timeout plus the 1 s reserve.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(5);
const LOST_ANSWERS: f64 = 0.3;
/// The kills the test decides: when the fake has taken this many calls, a process whose
/// running invocation has a call at the fake still unanswered is killed (a seeded choice
/// among them). Every run reaches each point: all messages but the few a kill or a reused
/// key may cost are called at least once (97 destinations, and the at-most-once run
/// requires three quarters of its 102 messages called), so no kill depends on how fast the
/// machine drains the queue. A few, not one every so often: with `retry`, every kill may
/// place its calls in flight again.
const KILL_AT_CALLS: [usize; 5] = [10, 22, 34, 46, 58];
/// How often the killer looks at the fake while it waits for its next kill.
const LOOK_EVERY: Duration = Duration::from_millis(20);
const TIME_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ledger {
    Retry,
    DeadLetter,
    Off,
}

/// One message the producer sends.
struct Planned {
    destination: String,
    body: String,
    key: Option<String>,
}

fn plan() -> Vec<Planned> {
    let message = |n: usize, key: Option<String>| {
        let destination = format!("+1206900{n:04}");
        Planned {
            body: body(&destination, &format!("chaos {n}")),
            destination,
            key,
        }
    };
    let mut plan: Vec<Planned> = (0..90).map(|n| message(n, None)).collect();
    // Producer duplicates: the same message twice under one key.
    for n in 90..95 {
        plan.push(message(n, Some(format!("alert-{n}"))));
        plan.push(message(n, Some(format!("alert-{n}"))));
    }
    // A key reused for a different message.
    plan.push(message(95, Some("reused".into())));
    plan.push(message(96, Some("reused".into())));
    plan
}

async fn send_plan(sqs: &aws_sdk_sqs::Client, queue: &Queue, plan: &[Planned]) -> Vec<String> {
    let entries = plan
        .iter()
        .map(|planned| {
            let entry = SendMessageBatchRequestEntry::builder().message_body(&planned.body);
            match &planned.key {
                Some(key) => entry.message_attributes(
                    "IdempotencyKey",
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(key)
                        .build()
                        .expect("an attribute"),
                ),
                None => entry,
            }
        })
        .collect();
    send_entries(sqs, queue, entries).await
}

/// Where a function process finds everything, as Lambda would set its environment; and the
/// ledger's table, when the run keeps one, for the test to read at each kill.
struct Environment {
    vars: Vec<(&'static str, String)>,
    ledger: Option<aws_sdk_dynamodb::Client>,
}

/// One function process and the Runtime API it pulls from. A killed process is replaced by
/// a new one with a new Runtime API, as Lambda starts a new execution environment.
struct Slot {
    /// The process's name: its calls carry it as their configuration set, so the fake can
    /// tell which process placed each call.
    incarnation: tokio::sync::RwLock<(Arc<RuntimeApi>, Child, String)>,
    /// The invocation the process is running, while its poller waits for the answer.
    running: Mutex<Option<Invocation>>,
    /// Bumped on every kill: a poller waiting on the dead process gives up at once.
    kills: tokio::sync::watch::Sender<u64>,
}

impl Slot {
    fn running(&self) -> Option<Invocation> {
        self.running.lock().unwrap().clone()
    }
}

/// One event handed to a process: which process, the destinations of its records (with
/// each record's ledger key), when.
#[derive(Debug, Clone)]
struct Invocation {
    process: String,
    destinations: Vec<String>,
    keys: Vec<(String, String)>,
    handed_at: SystemTime,
}

impl Invocation {
    /// Whether `call` is one this invocation placed: by its process, for one of its records,
    /// since it was handed over.
    fn placed(&self, call: &ReceivedCall) -> bool {
        call.configuration_set.as_deref() == Some(self.process.as_str())
            && call.received_at >= self.handed_at
            && self.destinations.contains(&call.destination)
    }

    /// Whether one of the calls it placed is still waiting for the fake's answer.
    fn waits_for_the_fake(&self, calls: &[ReceivedCall]) -> bool {
        calls
            .iter()
            .any(|call| self.placed(call) && call.status == 0)
    }
}

/// A process the test killed: the invocation it died in, and (with the ledger) the
/// destinations whose ledger item did not say `SENT` right after the kill: the records whose
/// call the ledger had not recorded, the only ones a later delivery may call again.
#[derive(Debug)]
struct Kill {
    invocation: Invocation,
    unrecorded: Option<Vec<String>>,
}

impl Kill {
    /// Whether `call` was in flight at this kill: placed by the invocation it ended and, with
    /// the ledger, not recorded as sent.
    fn hit(&self, call: &ReceivedCall) -> bool {
        self.invocation.placed(call)
            && self
                .unrecorded
                .as_ref()
                .is_none_or(|unrecorded| unrecorded.contains(&call.destination))
    }
}

/// A record's ledger key: its producer's `IdempotencyKey`, or its message id.
fn ledger_key(message: &Message) -> Option<String> {
    let key = message
        .message_attributes()
        .and_then(|attributes| attributes.get("IdempotencyKey"))
        .and_then(|value| value.string_value())
        .or(message.message_id())?;
    Some(voice_dispatch::core::ledger::stored_key(key))
}

/// The destinations of `invocation` whose ledger item does not say `SENT`.
async fn unrecorded(dynamodb: &aws_sdk_dynamodb::Client, invocation: &Invocation) -> Vec<String> {
    let sent = voice_dispatch::core::ledger::Status::Sent.as_str();
    let mut unrecorded = Vec::new();
    for (destination, key) in &invocation.keys {
        let item = dynamodb
            .get_item()
            .table_name(LEDGER_TABLE)
            .key(
                "id",
                aws_sdk_dynamodb::types::AttributeValue::S(key.clone()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("the ledger answers");
        let status = item
            .item()
            .and_then(|item| item.get("status"))
            .and_then(|status| status.as_s().ok());
        if status.is_some_and(|status| status != sent) {
            unrecorded.push(destination.clone());
        }
    }
    unrecorded
}

fn destination_of(message: &Message) -> Option<String> {
    let body: Value = serde_json::from_str(message.body()?).ok()?;
    Some(body["DestinationPhoneNumber"].as_str()?.to_owned())
}

async fn incarnate(environment: &Environment, name: String) -> (Arc<RuntimeApi>, Child, String) {
    let api = Arc::new(RuntimeApi::start().await.expect("a runtime API"));
    let child = bootstrap_under(&api, &environment.vars)
        .env("CONFIGURATION_SET_NAME", &name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bootstrap starts");
    api.first_request(Duration::from_secs(30))
        .await
        .expect("the function asks for an event");
    (api, child, name)
}

/// What the event source mapping does for one process: receive, invoke, delete what was not
/// reported, unless the answer was "lost".
async fn poll(
    slot: &Slot,
    sqs: &aws_sdk_sqs::Client,
    queue: &Queue,
    lost: &Mutex<fastrand::Rng>,
    done: &AtomicBool,
) {
    let mut kills = slot.kills.subscribe();
    while !done.load(Ordering::SeqCst) {
        let messages: Vec<Message> = receive(sqs, queue).await;
        if messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let event = lambda_event(&messages, &queue.arn).to_string();
        // Under the incarnation's lock, which the killer takes to kill: a kill either comes
        // before this (and the event goes to the new process) or sees what it hands over.
        let api = {
            let incarnation = slot.incarnation.read().await;
            kills.borrow_and_update();
            *slot.running.lock().unwrap() = Some(Invocation {
                process: incarnation.2.clone(),
                destinations: messages.iter().filter_map(destination_of).collect(),
                keys: messages
                    .iter()
                    .filter_map(|message| Some((destination_of(message)?, ledger_key(message)?)))
                    .collect(),
                handed_at: SystemTime::now(),
            });
            incarnation.0.clone()
        };
        let answer = tokio::select! {
            answer = api.invoke_within(event, INVOCATION_TIMEOUT) => answer,
            _ = kills.changed() => None,
        };
        *slot.running.lock().unwrap() = None;
        // No answer (killed, timed out): nothing is deleted, everything comes back.
        let Some((_, response)) = answer else {
            continue;
        };
        let lose = lost.lock().unwrap().f64() < LOST_ANSWERS;
        if lose {
            continue;
        }
        delete_unreported(sqs, queue, &messages, &response).await;
    }
}

struct Outcome {
    calls: Vec<ReceivedCall>,
    kills: Vec<Kill>,
    dead: Vec<Message>,
    ids: Vec<String>,
}

/// Kills, at each of [`KILL_AT_CALLS`], a process with a call in flight in its running
/// invocation, and starts another in its place; stops early only if the run is `done`.
async fn kill_with_calls_in_flight(
    slots: &[Arc<Slot>],
    environment: &Environment,
    fake: &FakeVoice,
    seed: u64,
    done: &AtomicBool,
    kills: &Mutex<Vec<Kill>>,
) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    for (generation, at_calls) in (1..).zip(KILL_AT_CALLS) {
        loop {
            if done.load(Ordering::SeqCst) {
                return;
            }
            let calls = fake.calls();
            let waiting: Vec<usize> = (0..slots.len())
                .filter(|&n| {
                    slots[n]
                        .running()
                        .is_some_and(|invocation| invocation.waits_for_the_fake(&calls))
                })
                .collect();
            if calls.len() >= at_calls && !waiting.is_empty() {
                let n = waiting[rng.usize(..waiting.len())];
                if kill(&slots[n], n, generation, environment, fake, kills).await {
                    break;
                }
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
}

/// Kills slot `n`'s process if its running invocation still waits for the fake (it may have
/// been answered since the killer looked), and starts its successor; whether it did.
async fn kill(
    slot: &Slot,
    n: usize,
    generation: usize,
    environment: &Environment,
    fake: &FakeVoice,
    kills: &Mutex<Vec<Kill>>,
) -> bool {
    let mut incarnation = slot.incarnation.write().await;
    let Some(invocation) = slot
        .running()
        .filter(|invocation| invocation.process == incarnation.2)
        .filter(|invocation| invocation.waits_for_the_fake(&fake.calls()))
    else {
        return false;
    };
    let _ = incarnation.1.start_kill();
    let _ = incarnation.1.wait().await;
    // Read right after the process is gone: nothing of its own can change the ledger now.
    let unrecorded = match &environment.ledger {
        Some(dynamodb) => Some(unrecorded(dynamodb, &invocation).await),
        None => None,
    };
    kills.lock().unwrap().push(Kill {
        invocation,
        unrecorded,
    });
    slot.kills.send_modify(|k| *k += 1);
    *incarnation = incarnate(environment, format!("process-{n}-{generation}")).await;
    true
}

/// Waits until no call at the fake waits for its answer but those of killed processes, which
/// never get one: every call placed is counted.
async fn calls_settled(fake: &FakeVoice, kills: &[Kill]) -> Vec<ReceivedCall> {
    let killed = |call: &ReceivedCall| {
        kills
            .iter()
            .any(|kill| call.configuration_set.as_deref() == Some(kill.invocation.process.as_str()))
    };
    let started = Instant::now();
    loop {
        let calls = fake.calls();
        let waiting: Vec<&ReceivedCall> = calls
            .iter()
            .filter(|call| call.status == 0 && !killed(call))
            .collect();
        if waiting.is_empty() {
            return calls;
        }
        // Only a process whose poller stopped waiting at the invocation's timeout may still
        // have calls out, and it starts none after its deadline.
        assert!(
            started.elapsed() < INVOCATION_TIMEOUT + CALL_LATENCY,
            "calls still unanswered {:?} after the run: {waiting:?}",
            started.elapsed()
        );
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

async fn run(ledger: Ledger, seed: u64) -> Outcome {
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let dynamodb = moto.dynamodb().await;
    create_ledger_table(&dynamodb, LEDGER_TABLE).await;
    let (source, dlq) = queue_pair(&sqs, "chaos", 1_000, VISIBILITY_TIMEOUT).await;
    let fake = FakeVoice::start(Script::default().with_latency(CALL_LATENCY))
        .await
        .expect("the fake");
    let mut vars = vec![
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDCHAOS".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "chaos-secret".to_owned()),
        ("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE", fake.endpoint_url()),
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", "chaos".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "WARN".to_owned()),
        ("ORIGINATION_PHONE_NUMBER", "+12065550199".to_owned()),
        ("DEAD_LETTER_QUEUE_URL", dlq.url.clone()),
        ("MAX_CONCURRENCY", MAX_CONCURRENCY.to_owned()),
        // SEND_ATTEMPT_TIMEOUT_MS (5 s) and DEADLINE_SAFETY_MS (1 s) at their defaults: a
        // 5 s invocation leaves less than one whole attempt, and calls still go out.
        ("RETRY_BACKOFF_BASE_SECONDS", "1".to_owned()),
        ("RETRY_BACKOFF_MAX_SECONDS", "2".to_owned()),
    ];
    match ledger {
        Ledger::Retry => vars.push(("IDEMPOTENCY_TABLE_NAME", LEDGER_TABLE.to_owned())),
        Ledger::DeadLetter => {
            vars.push(("IDEMPOTENCY_TABLE_NAME", LEDGER_TABLE.to_owned()));
            vars.push(("ON_UNKNOWN_OUTCOME", "dead-letter".to_owned()));
        }
        Ledger::Off => {}
    }
    let environment = Environment {
        vars,
        ledger: (ledger != Ledger::Off).then_some(dynamodb),
    };
    let mut slots = Vec::new();
    for n in 0..PROCESSES {
        slots.push(Arc::new(Slot {
            incarnation: tokio::sync::RwLock::new(
                incarnate(&environment, format!("process-{n}-0")).await,
            ),
            running: Mutex::new(None),
            kills: tokio::sync::watch::channel(0).0,
        }));
    }

    let plan = plan();
    let ids = send_plan(&sqs, &source, &plan).await;
    let lost = Mutex::new(fastrand::Rng::with_seed(seed));
    let done = AtomicBool::new(false);
    let kills = Mutex::new(Vec::new());
    let started = Instant::now();
    let pollers = futures::future::join_all(
        slots
            .iter()
            .map(|slot| poll(slot, &sqs, &source, &lost, &done)),
    );
    let killer = kill_with_calls_in_flight(&slots, &environment, &fake, seed, &done, &kills);
    let watcher = async {
        let mut empty_looks = 0;
        while empty_looks < 3 {
            assert!(
                started.elapsed() < TIME_LIMIT,
                "the queue did not drain within {TIME_LIMIT:?} ({ledger:?})"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            if messages_left(&sqs, &source).await == (0, 0) {
                empty_looks += 1;
            } else {
                empty_looks = 0;
            }
        }
        done.store(true, Ordering::SeqCst);
    };
    // The queue drained, every poller has its last answer (or its process was killed).
    tokio::join!(pollers, killer, watcher);
    let kills = kills.into_inner().unwrap();
    let calls = calls_settled(&fake, &kills).await;
    let dead = read_all(&sqs, &dlq).await;
    Outcome {
        calls,
        kills,
        dead,
        ids,
    }
}

impl Outcome {
    fn calls_to(&self, destination: &str) -> Vec<&ReceivedCall> {
        self.calls
            .iter()
            .filter(|call| call.destination == destination)
            .collect()
    }

    /// Destinations called more than once.
    fn doubles(&self) -> Vec<String> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for call in &self.calls {
            *counts.entry(call.destination.as_str()).or_default() += 1;
        }
        let mut doubles: Vec<String> = counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(d, _)| d.to_owned())
            .collect();
        doubles.sort();
        doubles
    }

    /// Whether a call was in flight (placed, its invocation not answered) when the process
    /// that made it was killed: the one moment the ledger cannot cover, since the call may
    /// have been placed and not yet recorded.
    fn in_flight_at_a_kill(&self, call: &ReceivedCall) -> bool {
        self.kills.iter().any(|kill| kill.hit(call))
    }

    /// The calls the killed invocation had placed when `kill` ended it (with the ledger:
    /// and had not recorded as sent).
    fn in_flight_at(&self, kill: &Kill) -> Vec<&ReceivedCall> {
        self.calls.iter().filter(|call| kill.hit(call)).collect()
    }

    /// Every kill the test decided was made, each of an invocation with calls in flight.
    /// (How many kills a run makes depends on nothing else.)
    fn assert_every_kill_hit_calls_in_flight(&self) {
        assert_eq!(
            self.kills.len(),
            KILL_AT_CALLS.len(),
            "the queue drained before the kills at {KILL_AT_CALLS:?} calls: {:?}",
            self.kills
        );
        for kill in &self.kills {
            assert!(
                !self.in_flight_at(kill).is_empty(),
                "{kill:?} killed no call in flight"
            );
        }
    }

    fn dead_letter_codes(&self) -> HashMap<String, String> {
        self.dead
            .iter()
            .filter_map(|letter| {
                let reason = reason_of(letter)?;
                Some((
                    reason["sourceMessageId"].as_str()?.to_owned(),
                    reason["code"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }
}

fn report(ledger: Ledger, outcome: &Outcome) {
    let in_flight: Vec<usize> = outcome
        .kills
        .iter()
        .map(|kill| outcome.in_flight_at(kill).len())
        .collect();
    println!(
        "chaos with the ledger {ledger:?}: {} calls for {} messages, {} kills (calls in flight \
         at each: {in_flight:?}), {} destinations called more than once, {} dead letters",
        outcome.calls.len(),
        outcome.ids.len(),
        outcome.kills.len(),
        outcome.doubles().len(),
        outcome.dead.len()
    );
}

#[tokio::test]
async fn with_the_ledger_and_retry_every_message_is_called_once_but_for_calls_in_flight_at_a_kill()
{
    let outcome = run(Ledger::Retry, 11).await;
    report(Ledger::Retry, &outcome);
    outcome.assert_every_kill_hit_calls_in_flight();
    let plan = plan();
    let codes = outcome.dead_letter_codes();
    let mut explained = 0;
    for destination in outcome.doubles() {
        let calls = outcome.calls_to(&destination);
        assert!(
            calls[..calls.len() - 1]
                .iter()
                .any(|call| outcome.in_flight_at_a_kill(call)),
            "{destination} called {} times, and no call of it was in flight at a kill",
            calls.len()
        );
        explained += 1;
    }
    println!("calls in flight at a kill and placed again: {explained}");
    // The key reused for another message: one of the two is called, the other never is.
    let reused: Vec<usize> = (0..plan.len())
        .filter(|&n| plan[n].key.as_deref() == Some("reused"))
        .collect();
    let called: Vec<bool> = reused
        .iter()
        .map(|&n| !outcome.calls_to(&plan[n].destination).is_empty())
        .collect();
    assert_eq!(called.iter().filter(|c| **c).count(), 1, "{called:?}");
    let refused = reused[called.iter().position(|c| !c).unwrap_or(0)];
    assert_eq!(
        codes.get(&outcome.ids[refused]).map(String::as_str),
        Some("IdempotencyKeyReused")
    );
    // Every other message went out; none is lost.
    for (n, planned) in plan.iter().enumerate() {
        if n != refused {
            assert!(
                !outcome.calls_to(&planned.destination).is_empty(),
                "message {n} was never called"
            );
        }
    }
}

#[tokio::test]
async fn with_the_ledger_at_most_once_nobody_is_called_twice_and_nothing_is_lost() {
    let outcome = run(Ledger::DeadLetter, 12).await;
    report(Ledger::DeadLetter, &outcome);
    outcome.assert_every_kill_hit_calls_in_flight();
    assert!(
        outcome.doubles().is_empty(),
        "called twice: {:?}",
        outcome.doubles()
    );
    let plan = plan();
    let codes = outcome.dead_letter_codes();
    let mut unknown = 0;
    for (n, (planned, id)) in plan.iter().zip(&outcome.ids).enumerate() {
        let called = !outcome.calls_to(&planned.destination).is_empty();
        let code = codes.get(id).map(String::as_str);
        match code {
            Some("OutcomeUnknown") => unknown += 1,
            Some("IdempotencyKeyReused") => {}
            Some(other) => panic!("message {n} dead-lettered as {other}"),
            None => assert!(called, "message {n} neither called nor dead-lettered"),
        }
    }
    // Only calls in flight at a kill or a lost answer may be given up as unknown: most
    // messages are placed.
    let called = plan
        .iter()
        .filter(|planned| !outcome.calls_to(&planned.destination).is_empty())
        .count();
    assert!(
        called * 4 >= plan.len() * 3,
        "{called} of {} messages called",
        plan.len()
    );
    println!("dead-lettered as OutcomeUnknown: {unknown}");
}

#[tokio::test]
async fn without_the_ledger_the_same_faults_ring_people_twice() {
    let outcome = run(Ledger::Off, 13).await;
    report(Ledger::Off, &outcome);
    outcome.assert_every_kill_hit_calls_in_flight();
    let plan = plan();
    for (n, planned) in plan.iter().enumerate() {
        assert!(
            !outcome.calls_to(&planned.destination).is_empty(),
            "message {n} was never called"
        );
    }
    println!(
        "without the ledger, {} destinations were called more than once: the duplicates the \
         ledger prevents",
        outcome.doubles().len()
    );
    // The producer's five duplicates alone ring five people twice.
    assert!(outcome.doubles().len() >= 5, "{:?}", outcome.doubles());
}
