//! End to end on a real SQS server (moto): partial batch responses, SQS redelivery, the
//! redrive policy, dead-lettering and backoff, with the exact bookkeeping of every message.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use voice_dispatch::config::Config;
use voice_dispatch::core::backoff::Backoff;
use voice_dispatch::wiring::{self, Dispatch};
use voice_fake::{Behaviour, FakeVoice, ReceivedCall, Script};

use crate::support::esm::EventSourceMapping;
use crate::support::moto::{
    messages_left, queue_pair, read_all, reason_of, send_entries, Moto, Queue,
};
use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Success,
    /// The service fails the first two deliveries, then accepts.
    InternalErrorTwice,
    ThrottledTwice,
    PersistentInternalError,
    PersistentThrottling,
    BadRequest,
    Malformed,
}

impl Kind {
    fn behaviour(self) -> Option<Behaviour> {
        match self {
            Kind::Success | Kind::Malformed => None,
            Kind::InternalErrorTwice => Some(Behaviour::fail_times(
                500,
                "InternalServiceErrorException",
                2,
            )),
            Kind::ThrottledTwice => Some(Behaviour::fail_times(429, "TooManyRequestsException", 2)),
            Kind::PersistentInternalError => {
                Some(Behaviour::fail(500, "InternalServiceErrorException"))
            }
            Kind::PersistentThrottling => Some(Behaviour::fail(429, "TooManyRequestsException")),
            Kind::BadRequest => Some(Behaviour::fail(400, "BadRequestException")),
        }
    }

    fn is_sent(self) -> bool {
        matches!(
            self,
            Kind::Success | Kind::InternalErrorTwice | Kind::ThrottledTwice
        )
    }

    fn is_permanent(self) -> bool {
        matches!(self, Kind::BadRequest | Kind::Malformed)
    }
}

/// One message of a scenario, before it is sent to the queue.
struct Planned {
    kind: Kind,
    destination: String,
    body: String,
    group: Option<String>,
    attributes: Vec<(String, MessageAttributeValue)>,
}

fn planned(kind: Kind, n: usize, text: &str) -> Planned {
    let destination = format!("+1206700{n:04}");
    let body = match kind {
        Kind::Malformed => format!("not json #{n}: {text}"),
        _ => body(&destination, text),
    };
    Planned {
        kind,
        destination,
        body,
        group: None,
        attributes: Vec::new(),
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .unwrap()
}

/// Sends the plan to the queue; returns the SQS message id of each planned message.
async fn send_all(sqs: &aws_sdk_sqs::Client, queue: &Queue, plan: &[Planned]) -> Vec<String> {
    let entries = plan
        .iter()
        .enumerate()
        .map(|(n, message)| {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .message_body(&message.body)
                .set_message_group_id(message.group.clone());
            if message.group.is_some() {
                entry = entry.message_deduplication_id(format!("dedup-{n}"));
            }
            for (name, value) in &message.attributes {
                entry = entry.message_attributes(name, value.clone());
            }
            entry
        })
        .collect();
    send_entries(sqs, queue, entries).await
}

fn script_for(plans: &[&[Planned]]) -> Script {
    let mut script = Script::default();
    for plan in plans {
        for message in plan.iter() {
            if let Some(behaviour) = message.kind.behaviour() {
                script = script.with(&message.destination, behaviour);
            }
        }
    }
    script
}

/// The deployed function, its voice client pointed at the fake, its SQS client at moto.
pub async fn function(fake: &FakeVoice, moto: &Moto, config: &Config) -> Dispatch {
    let voice_sdk = sdk_config(&fake.endpoint_url(), config).await;
    wiring::voice_dispatch_with(
        config,
        wiring::voice_client(&voice_sdk),
        moto.sqs().await,
        moto.dynamodb().await,
    )
}

/// These scenarios pin redrive by receive count: one request per delivery (no retries in
/// place), so that "fails the first two deliveries" is exact, and no circuit breaker, which
/// would defer records while persistent failures keep it open (it has its own scenario in
/// `outage.rs`).
fn one_request_per_delivery(mut config: Config) -> Config {
    config.max_attempts = 1;
    config.breaker.threshold = 1_000;
    config
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<String> {
    message.attributes()?.get(&name).cloned()
}

#[tokio::test]
async fn every_message_is_sent_once_or_dead_lettered_with_exact_bookkeeping() {
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let (source, dlq) = queue_pair(&sqs, "calls", 3, 1).await;
    let (fifo_source, fifo_dlq) = queue_pair(&sqs, "calls.fifo", 3, 1).await;
    let standard = standard_plan();
    let fifo = fifo_plan();
    let total = standard.len() + fifo.len();
    assert!(total >= 200, "{total} messages");

    let fake = FakeVoice::start(script_for(&[&standard, &fifo]))
        .await
        .unwrap();
    let mut config = one_request_per_delivery(test_config());
    config.dead_letter_queue_url = Some(dlq.url.clone());
    // Backoff on (short), which also releases deferred records at once. Needed here for
    // moto, not for SQS: moto frees a FIFO group only while scanning past its expired
    // in-flight messages, and when a group's failed head and the records deferred behind it
    // expire together it can deliver the later ones first. Released deferred records are
    // freed while the head is still in flight, so the head comes back first, as on SQS.
    config.backoff = Some(Backoff::new(1, 1));
    let dispatch = function(&fake, &moto, &config).await;
    config.dead_letter_queue_url = Some(fifo_dlq.url.clone());
    let fifo_dispatch = function(&fake, &moto, &config).await;

    let standard_ids = send_all(&sqs, &source, &standard).await;
    let fifo_ids = send_all(&sqs, &fifo_source, &fifo).await;
    let mut esm = EventSourceMapping::new(&sqs, &source, &dispatch);
    let mut fifo_esm = EventSourceMapping::new(&sqs, &fifo_source, &fifo_dispatch);
    both_queues_drain(&mut esm, &mut fifo_esm).await;

    let dead = read_all(&sqs, &dlq).await;
    let fifo_dead = read_all(&sqs, &fifo_dlq).await;
    let calls = fake.calls();
    let dead_by_source =
        dead_letters_by_source(dead.iter().chain(&fifo_dead), &standard, &standard_ids);
    let queues = [
        (&standard, &standard_ids, &esm, &source.arn),
        (&fifo, &fifo_ids, &fifo_esm, &fifo_source.arn),
    ];
    for (plan, ids, esm, source_arn) in queues {
        for (planned, id) in plan.iter().zip(ids) {
            let observed = Observed::of(planned, id, source_arn, esm, &dead_by_source, &calls);
            if planned.kind.is_sent() {
                observed.was_sent_exactly_once();
            } else if planned.kind.is_permanent() {
                observed.was_forwarded_at_once_with_its_reason();
            } else {
                observed.was_moved_by_sqs_after_three_receives();
            }
        }
    }
    nothing_else_is_dead_lettered(&standard, &fifo, dead.len() + fifo_dead.len());
    no_call_is_placed_twice_nor_for_a_dead_letter(&standard, &fifo, &calls);
    each_fifo_group_is_called_in_order_the_failed_one_holding_back_the_rest(&calls);
    a_fifo_dead_letter_keeps_its_group_and_deduplicates_on_its_source(&fifo_dead);
}

/// The standard queue: 210 messages of every kind. Attributes travel to the DLQ unchanged;
/// a message already using all 10 gets no reason.
fn standard_plan() -> Vec<Planned> {
    let mut standard = Vec::new();
    for (kind, count) in [
        (Kind::Success, 100),
        (Kind::InternalErrorTwice, 20),
        (Kind::ThrottledTwice, 10),
        (Kind::PersistentInternalError, 20),
        (Kind::PersistentThrottling, 10),
        (Kind::BadRequest, 25),
        (Kind::Malformed, 25),
    ] {
        for _ in 0..count {
            let n = standard.len();
            standard.push(planned(kind, n, &format!("standard message {n}")));
        }
    }
    for message in standard
        .iter_mut()
        .filter(|m| m.kind == Kind::BadRequest)
        .take(5)
    {
        message
            .attributes
            .push(("Severity".into(), string_attribute("critical")));
        message.attributes.push((
            "Checksum".into(),
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(vec![0, 159, 146, 150]))
                .build()
                .unwrap(),
        ));
    }
    let full_house = standard
        .iter()
        .position(|m| m.kind == Kind::Malformed)
        .unwrap();
    standard[full_house].attributes = (0..10)
        .map(|n| (format!("attr{n}"), string_attribute(&n.to_string())))
        .collect();
    standard
}

/// The FIFO queue: 5 groups of 6, one with a transient failure in the middle, one with a
/// bad request in the middle.
fn fifo_plan() -> Vec<Planned> {
    let mut fifo = Vec::new();
    for group in 0..5 {
        for position in 1..=6 {
            let kind = match (group, position) {
                (1, 3) => Kind::InternalErrorTwice,
                (2, 2) => Kind::BadRequest,
                _ => Kind::Success,
            };
            let n = 1_000 + group * 10 + position;
            let mut message = planned(kind, n, &format!("g{group}-{position}"));
            message.group = Some(format!("g{group}"));
            fifo.push(message);
        }
    }
    fifo
}

async fn both_queues_drain(
    esm: &mut EventSourceMapping<'_>,
    fifo_esm: &mut EventSourceMapping<'_>,
) {
    tokio::join!(
        esm.drain(Duration::from_secs(90)),
        fifo_esm.drain(Duration::from_secs(90))
    );
    assert_eq!(
        messages_left(esm.sqs, esm.queue).await,
        (0, 0),
        "nothing left in flight"
    );
    assert_eq!(messages_left(fifo_esm.sqs, fifo_esm.queue).await, (0, 0));
}

/// Each dead letter is either a forwarded permanent failure (its reason names the source
/// message) or a message the redrive policy moved (same message id). Count both ways.
fn dead_letters_by_source<'a>(
    dead: impl Iterator<Item = &'a Message>,
    standard: &[Planned],
    standard_ids: &[String],
) -> HashMap<String, Vec<&'a Message>> {
    let mut dead_by_source: HashMap<String, Vec<&Message>> = HashMap::new();
    for message in dead {
        let source_id = reason_of(message)
            .and_then(|reason| reason["sourceMessageId"].as_str().map(str::to_owned))
            .or_else(|| {
                // Redriven, or forwarded without a reason (all 10 attributes taken).
                let original = standard
                    .iter()
                    .zip(standard_ids)
                    .find(|(planned, _)| Some(planned.body.as_str()) == message.body());
                original.map(|(_, id)| id.clone())
            })
            .expect("every dead letter traces back to a source message");
        dead_by_source.entry(source_id).or_default().push(message);
    }
    dead_by_source
}

/// What became of one planned message: its deliveries, its dead letters, its calls.
struct Observed<'a> {
    planned: &'a Planned,
    id: &'a str,
    source_arn: &'a str,
    receives: usize,
    letters: &'a [&'a Message],
    accepted: usize,
    what: String,
}

impl<'a> Observed<'a> {
    /// Also checks that SQS's `ApproximateReceiveCount` matches the deliveries seen.
    fn of(
        planned: &'a Planned,
        id: &'a str,
        source_arn: &'a str,
        esm: &EventSourceMapping<'_>,
        dead_by_source: &'a HashMap<String, Vec<&'a Message>>,
        calls: &[ReceivedCall],
    ) -> Self {
        let receive_counts: Vec<u32> = esm
            .receives_of(id)
            .iter()
            .map(|d| d.receive_count)
            .collect();
        let receives = receive_counts.len();
        assert_eq!(
            receive_counts,
            (1..=receives as u32).collect::<Vec<_>>(),
            "{id}: SQS's ApproximateReceiveCount matches the deliveries seen"
        );
        Self {
            planned,
            id,
            source_arn,
            receives,
            letters: dead_by_source.get(id).map_or(&[], Vec::as_slice),
            accepted: calls
                .iter()
                .filter(|c| c.destination == planned.destination && c.accepted())
                .count(),
            what: format!("{:?} {id}", planned.kind),
        }
    }

    fn was_sent_exactly_once(&self) {
        let what = &self.what;
        assert_eq!(self.accepted, 1, "{what}: sent exactly once");
        assert_eq!(self.letters.len(), 0, "{what}: not also dead-lettered");
        let receives = self.receives;
        match (self.planned.kind, &self.planned.group) {
            (Kind::Success, None) => assert_eq!(receives, 1, "{what}"),
            // Held back behind a failed record of its group: received again, unsent.
            (Kind::Success, Some(_)) => assert!((1..=3).contains(&receives), "{what}"),
            _ => assert_eq!(receives, 3, "{what}: fails twice, sent on the third"),
        }
    }

    fn was_forwarded_at_once_with_its_reason(&self) {
        let (what, planned, id) = (&self.what, self.planned, self.id);
        assert_eq!(self.accepted, 0, "{what}");
        assert_eq!(self.receives, 1, "{what}: dead-lettered after one receive");
        assert_eq!(self.letters.len(), 1, "{what}: in the DLQ once");
        let letter = self.letters[0];
        assert_eq!(
            letter.body(),
            Some(planned.body.as_str()),
            "{what}: byte-identical body"
        );
        let attributes = letter.message_attributes().cloned().unwrap_or_default();
        for (name, value) in &planned.attributes {
            assert_eq!(
                attributes.get(name),
                Some(value),
                "{what}: attribute {name} kept"
            );
        }
        match reason_of(letter) {
            Some(reason) => {
                assert_eq!(reason["sourceMessageId"], id);
                assert_eq!(reason["sourceQueueArn"], self.source_arn);
                assert_eq!(reason["receiveCount"], 1);
                let code = if planned.kind == Kind::BadRequest {
                    "BadRequestException"
                } else {
                    "MalformedJson"
                };
                assert_eq!(reason["code"], code, "{what}");
                assert!(reason["time"].as_str().is_some_and(|t| t.ends_with('Z')));
            }
            None => assert_eq!(
                planned.attributes.len(),
                10,
                "{what}: only a full message lacks the reason"
            ),
        }
    }

    fn was_moved_by_sqs_after_three_receives(&self) {
        let what = &self.what;
        assert_eq!(self.accepted, 0, "{what}");
        assert_eq!(
            self.receives, 3,
            "{what}: dead-lettered by redrive after exactly 3 receives"
        );
        assert_eq!(self.letters.len(), 1, "{what}: in the DLQ once");
        let letter = self.letters[0];
        assert_eq!(
            letter.message_id(),
            Some(self.id),
            "{what}: moved by SQS itself"
        );
        assert!(
            reason_of(letter).is_none(),
            "{what}: no forward by the function"
        );
    }
}

/// Only the permanent failures and the persistent ones are in the DLQs.
fn nothing_else_is_dead_lettered(standard: &[Planned], fifo: &[Planned], dead_letters: usize) {
    let mut tally: BTreeMap<Kind, usize> = BTreeMap::new();
    for planned in standard.iter().chain(fifo) {
        *tally.entry(planned.kind).or_default() += 1;
    }
    let permanent = tally[&Kind::BadRequest] + tally[&Kind::Malformed];
    let persistent = tally[&Kind::PersistentInternalError] + tally[&Kind::PersistentThrottling];
    assert_eq!(
        dead_letters,
        permanent + persistent,
        "nothing else in the DLQs"
    );
}

fn no_call_is_placed_twice_nor_for_a_dead_letter(
    standard: &[Planned],
    fifo: &[Planned],
    calls: &[ReceivedCall],
) {
    assert_eq!(
        calls.iter().filter(|c| c.accepted()).count(),
        standard
            .iter()
            .chain(fifo)
            .filter(|p| p.kind.is_sent())
            .count(),
        "no call placed twice, none placed for a dead letter"
    );
}

/// FIFO: per group, the calls were placed in order, the failed one holding back the rest.
fn each_fifo_group_is_called_in_order_the_failed_one_holding_back_the_rest(calls: &[ReceivedCall]) {
    for group in 0..5 {
        let prefix = format!("g{group}-");
        let texts: Vec<String> = calls
            .iter()
            .filter(|c| c.accepted() && c.text.starts_with(&prefix))
            .map(|c| c.text.clone())
            .collect();
        let expected: Vec<String> = (1..=6)
            .filter(|position| !(group == 2 && *position == 2))
            .map(|position| format!("g{group}-{position}"))
            .collect();
        assert_eq!(texts, expected, "group g{group}");
    }
}

/// FIFO dead letters keep their group, deduplicated on the source message id.
fn a_fifo_dead_letter_keeps_its_group_and_deduplicates_on_its_source(fifo_dead: &[Message]) {
    assert_eq!(fifo_dead.len(), 1);
    let letter = &fifo_dead[0];
    assert_eq!(
        system_attribute(letter, MessageSystemAttributeName::MessageGroupId).as_deref(),
        Some("g2")
    );
    let source_id = reason_of(letter).unwrap()["sourceMessageId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        system_attribute(letter, MessageSystemAttributeName::MessageDeduplicationId),
        Some(source_id)
    );
}

#[tokio::test]
async fn with_backoff_the_gap_between_deliveries_grows() {
    // The settlement's jitter source is seeded, once, when it is built, from this thread's
    // generator (`Draws::new`): seeded here first, the means compared below are the same
    // every run.
    fastrand::seed(0x0bac_c0ff);
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let (source, dlq) = queue_pair(&sqs, "backoff", 3, 1).await;
    let plan: Vec<Planned> = (0..40)
        .map(|n| planned(Kind::PersistentInternalError, n, "backoff"))
        .collect();
    let fake = FakeVoice::start(script_for(&[&plan])).await.unwrap();
    let mut config = one_request_per_delivery(test_config());
    config.dead_letter_queue_url = Some(dlq.url.clone());
    config.backoff = Some(Backoff::new(3, 60));
    let dispatch = function(&fake, &moto, &config).await;
    let ids = send_all(&sqs, &source, &plan).await;

    let mut esm = EventSourceMapping::new(&sqs, &source, &dispatch);
    esm.drain(Duration::from_secs(90)).await;

    let mut first_gaps = Vec::new();
    let mut second_gaps = Vec::new();
    for id in &ids {
        let receives = esm.receives_of(id);
        assert_eq!(receives.len(), 3, "{id}");
        let ceilings = [3, 6];
        for (step, pair) in receives.windows(2).enumerate() {
            let delay = pair[0]
                .retry_delay_seconds
                .expect("every transient failure is delayed");
            assert!(
                delay <= ceilings[step],
                "{id}: {delay} s after receive {}",
                step + 1
            );
            let gap = pair[1].at.duration_since(pair[0].at);
            // SQS keeps the message invisible for the delay the function set (moto counts
            // whole milliseconds from its own clock: allow a little slack).
            assert!(
                gap + Duration::from_millis(150) >= Duration::from_secs(u64::from(delay)),
                "{id}: redelivered after {gap:?}, delay was {delay} s"
            );
            if step == 0 {
                &mut first_gaps
            } else {
                &mut second_gaps
            }
            .push(gap.as_secs_f64());
        }
    }
    let mean = |gaps: &[f64]| gaps.iter().sum::<f64>() / gaps.len() as f64;
    // Full jitter: uniform over 0..=3 s, then 0..=6 s: means of about 1.5 s and 3 s.
    assert!(
        mean(&second_gaps) > mean(&first_gaps) + 0.75,
        "first gaps average {:.2} s, second {:.2} s",
        mean(&first_gaps),
        mean(&second_gaps)
    );
    assert_eq!(
        read_all(&sqs, &dlq).await.len(),
        40,
        "then redrive dead-letters them"
    );
}

#[tokio::test]
async fn a_failed_forward_keeps_the_record_reported() {
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let (source, _dlq) = queue_pair(&sqs, "forward-fails", 3, 30).await;
    let fake = FakeVoice::start(Script::default()).await.unwrap();
    let mut config = test_config();
    config.dead_letter_queue_url = Some(format!("{}/123456789012/no-such-queue", moto.endpoint));
    let dispatch = function(&fake, &moto, &config).await;
    let plan = vec![
        planned(Kind::Malformed, 0, "x"),
        planned(Kind::Success, 1, "y"),
    ];
    let ids = send_all(&sqs, &source, &plan).await;

    let mut esm = EventSourceMapping::new(&sqs, &source, &dispatch);
    assert_eq!(esm.poll_once().await, 2);
    let report = &esm.reports[0];
    let malformed = outcome(report, &ids[0]);
    assert!(!malformed.dead_lettered);
    assert_eq!(
        reported(report),
        [ids[0].clone()],
        "never deleted before the DLQ holds it"
    );
    assert_eq!(
        messages_left(&sqs, &source).await,
        (0, 1),
        "still in flight, not deleted"
    );
}

#[tokio::test]
async fn a_failed_visibility_change_leaves_the_fate_alone() {
    let moto = Moto::start().await;
    let fake = FakeVoice::start(Script::default().with(
        "+12065550001",
        Behaviour::fail(500, "InternalServiceErrorException"),
    ))
    .await
    .unwrap();
    let mut config = test_config();
    config.backoff = Some(Backoff::new(5, 60));
    let dispatch = function(&fake, &moto, &config).await;
    // A record from a queue that does not exist: GetQueueUrl fails.
    let mut record = record("m1", Some(&body("+12065550001", "x")));
    record["eventSourceARN"] = serde_json::json!("arn:aws:sqs:us-east-1:123456789012:gone");
    let report = dispatch
        .handle(
            &event(vec![record]),
            std::time::SystemTime::now() + Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        fate(&report, "m1"),
        voice_dispatch::core::report::Fate::Transient
    );
    assert_eq!(outcome(&report, "m1").retry_delay_seconds, None);
    assert_eq!(reported(&report), ["m1"]);
}
