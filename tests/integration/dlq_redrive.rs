//! An operator's DLQ redrive, end to end: the release bootstrap under the Runtime API
//! emulator, fed by a poller like the event source mapping, against moto (SQS and the
//! ledger's DynamoDB) and the voice fake; the redrive moves each letter back to the call
//! queue with its body and attributes, as the console's "Start DLQ redrive" (a message move
//! task) does. A redriven letter is the same request: it is never called late, never called
//! twice under at-most-once, and called once when it is still worth a call.

use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use voice_fake::{Behaviour, FakeVoice, Script};

use crate::support::fleet::Fleet;
use crate::support::moto::{
    create_ledger_table, queue_pair, read_all, reason_of, send_entries, Moto, Queue,
};
use crate::support::now_ms;
use crate::support::process::function_environment;

const TIMEOUT: Duration = Duration::from_secs(10);
const LEDGER: &str = "redrive-ledger";
/// Receives before SQS's own redrive policy moves a message: the function's own forward
/// comes first.
const MAX_RECEIVE_COUNT: u32 = 10;
/// The body's shortest time to live.
const TTL_SECONDS: u64 = 5;
/// A queue drained, generously, on a busy machine.
const DRAIN: Duration = Duration::from_secs(60);

/// The world of one scenario: moto with the queues and the ledger's table, and the fake.
struct World {
    moto: Moto,
    sqs: aws_sdk_sqs::Client,
    source: Queue,
    dlq: Queue,
    fake: FakeVoice,
}

impl World {
    async fn start(name: &str, script: Script) -> Self {
        let moto = Moto::start().await;
        let sqs = moto.sqs().await;
        create_ledger_table(&moto.dynamodb().await, LEDGER).await;
        let (source, dlq) = queue_pair(&sqs, name, MAX_RECEIVE_COUNT, 2).await;
        let fake = FakeVoice::start(script).await.expect("the fake");
        Self {
            moto,
            sqs,
            source,
            dlq,
            fake,
        }
    }

    /// The function's environment; `on_unknown` is `ON_UNKNOWN_OUTCOME`.
    fn environment(&self, on_unknown: &str, extra: &[(&'static str, &str)]) -> Vec<(&str, String)> {
        let mut vars = function_environment(
            "redrive",
            "us-east-1",
            &self.fake.endpoint_url(),
            &self.moto.endpoint,
            &self.dlq.url,
        );
        vars.extend([
            ("MAX_RECEIVE_COUNT", MAX_RECEIVE_COUNT.to_string()),
            ("SEND_MAX_ATTEMPTS", "1".into()),
            ("RETRY_BACKOFF_BASE_SECONDS", "1".into()),
            ("RETRY_BACKOFF_MAX_SECONDS", "2".into()),
            ("IDEMPOTENCY_TABLE_NAME", LEDGER.into()),
            ("ON_UNKNOWN_OUTCOME", on_unknown.into()),
        ]);
        vars.extend(
            extra
                .iter()
                .map(|(name, value)| (*name, (*value).to_owned())),
        );
        vars
    }

    /// Sends one call request to `destination`, worth a call for [`TTL_SECONDS`], with
    /// `attributes` of the producer's.
    async fn send(&self, destination: &str, attributes: &[(&str, &str, String)]) -> String {
        self.send_with_ttl(destination, Some(TTL_SECONDS), attributes)
            .await
    }

    /// [`Self::send`] with a time to live of `ttl` seconds (`None`: the function's default).
    async fn send_with_ttl(
        &self,
        destination: &str,
        ttl: Option<u64>,
        attributes: &[(&str, &str, String)],
    ) -> String {
        let mut body = serde_json::json!({
            "DestinationPhoneNumber": destination,
            "Content": {"PlainTextMessage": {"Text": "the alert"}}
        });
        if let Some(ttl) = ttl {
            body["TimeToLive"] = ttl.into();
        }
        let body = body.to_string();
        let mut entry = SendMessageBatchRequestEntry::builder().message_body(body);
        for (name, data_type, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type(*data_type)
                .string_value(value)
                .build()
                .expect("an attribute");
            entry = entry.message_attributes(*name, value);
        }
        send_entries(&self.sqs, &self.source, vec![entry])
            .await
            .remove(0)
    }

    /// The function drains the call queue: one instance with `vars`.
    async fn drain(&self, vars: &[(&str, String)]) {
        let fleet = Fleet::start(1, vars, TIMEOUT).await;
        let done = AtomicBool::new(true);
        fleet.drain(&self.sqs, &self.source, &done, DRAIN).await;
    }

    /// The operator's redrive: every letter back on the call queue with its body and
    /// attributes, then deleted from the DLQ, as a message move task does. The letters
    /// moved, with their `DispatchError` codes.
    async fn redrive(&self) -> Vec<String> {
        let letters = read_all(&self.sqs, &self.dlq).await;
        let mut codes = Vec::new();
        for letter in &letters {
            codes.push(code_of(letter));
            self.sqs
                .send_message()
                .queue_url(&self.source.url)
                .set_message_body(letter.body().map(str::to_owned))
                .set_message_attributes(letter.message_attributes().cloned())
                .send()
                .await
                .expect("SendMessage");
            self.sqs
                .delete_message()
                .queue_url(&self.dlq.url)
                .set_receipt_handle(letter.receipt_handle().map(str::to_owned))
                .send()
                .await
                .expect("DeleteMessage");
        }
        codes
    }

    /// The DLQ's letters now, read once and left there (visible again after 1 s).
    async fn letters(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let letters = read_all(&self.sqs, &self.dlq).await;
        for letter in &letters {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.dlq.url)
                .set_receipt_handle(letter.receipt_handle().map(str::to_owned))
                .visibility_timeout(0)
                .send()
                .await
                .expect("ChangeMessageVisibility");
        }
        letters
    }

    /// Calls to `destination`: all of them, and those the service accepted.
    fn calls(&self, destination: &str) -> (usize, usize) {
        let calls = self.fake.calls_to(destination);
        let accepted = calls.iter().filter(|call| call.accepted()).count();
        (calls.len(), accepted)
    }
}

fn code_of(letter: &aws_sdk_sqs::types::Message) -> String {
    reason_of(letter)
        .and_then(|reason| reason["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn attribute<'a>(letter: &'a aws_sdk_sqs::types::Message, name: &str) -> Option<&'a str> {
    letter.message_attributes()?.get(name)?.string_value()
}

/// The one letter in the DLQ, and its code.
async fn only_letter(world: &World) -> (aws_sdk_sqs::types::Message, String) {
    let mut letters = world.letters().await;
    assert_eq!(letters.len(), 1, "one letter: {letters:?}");
    let letter = letters.remove(0);
    let code = code_of(&letter);
    (letter, code)
}

/// The letter of a call that expired during an outage, with its identity: the ledger key
/// (the original message id) and its first send (the original `SentTimestamp`).
async fn expires_during_an_outage(world: &World, destination: &str) -> String {
    world.fake.set_outage(true);
    let id = world.send(destination, &[]).await;
    world.drain(&world.environment("dead-letter", &[])).await;
    let (letter, code) = only_letter(world).await;
    assert_eq!(code, "Expired");
    assert_eq!(attribute(&letter, "IdempotencyKey"), Some(id.as_str()));
    let sent = letter
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .cloned();
    let first = attribute(&letter, "DispatchFirstSent").map(str::to_owned);
    assert!(first.is_some(), "the first send is carried");
    assert!(
        first.as_deref().map(|f| f.parse::<u64>().unwrap())
            < sent.map(|s| s.parse::<u64>().unwrap()),
        "the request's first send, before the letter's own"
    );
    id
}

#[tokio::test]
async fn an_expired_letter_redriven_goes_back_expired_without_a_call() {
    let destination = "+12065558001";
    let world = World::start("redrive-expired", Script::default()).await;
    expires_during_an_outage(&world, destination).await;
    assert_eq!(
        world.calls(destination).1,
        0,
        "nothing accepted in the outage"
    );
    // The outage is over; the operator redrives.
    world.fake.set_outage(false);
    let before = world.calls(destination).0;
    assert_eq!(world.redrive().await, ["Expired"]);
    world.drain(&world.environment("dead-letter", &[])).await;
    let (_, code) = only_letter(&world).await;
    assert_eq!(code, "Expired", "back in the DLQ, with its reason");
    assert_eq!(
        world.calls(destination).0,
        before,
        "never called, not even late"
    );
}

/// A call whose first attempt may have placed it (a bare 502 from a gateway), under
/// `ON_UNKNOWN_OUTCOME=dead-letter`: dead-lettered `OutcomeUnknown`.
async fn unknown_under_dead_letter(world: &World, destination: &str) {
    // The function's default time to live: expiry is not what this scenario is about.
    world.send_with_ttl(destination, None, &[]).await;
    world.drain(&world.environment("dead-letter", &[])).await;
    let (_, code) = only_letter(world).await;
    assert_eq!(code, "OutcomeUnknown");
    assert_eq!(
        world.calls(destination),
        (1, 0),
        "the one call that may have gone out"
    );
}

#[tokio::test]
async fn an_outcome_unknown_letter_redriven_is_never_placed_under_dead_letter_and_once_under_retry()
{
    let destination = "+12065558002";
    let maybe_placed = Behaviour::Fail {
        status: 502,
        code: None,
        times: Some(1),
        after: None,
        reason: None,
        resource_type: None,
    };
    let world = World::start(
        "redrive-unknown",
        Script::default().with(destination, maybe_placed),
    )
    .await;
    unknown_under_dead_letter(&world, destination).await;
    // Redriven under at most once: the ledger knows the request, so it is not called.
    assert_eq!(world.redrive().await, ["OutcomeUnknown"]);
    world.drain(&world.environment("dead-letter", &[])).await;
    let (_, code) = only_letter(&world).await;
    assert_eq!(code, "OutcomeUnknown");
    assert_eq!(world.calls(destination), (1, 0), "never called twice");
    // The operator decides an alert must go out: redriven under `retry`, called once.
    world.redrive().await;
    world.drain(&world.environment("retry", &[])).await;
    assert!(world.letters().await.is_empty(), "sent, not dead-lettered");
    assert_eq!(
        world.calls(destination),
        (2, 1),
        "placed once more, and only once"
    );
}

#[tokio::test]
async fn a_transient_letter_redriven_is_placed_once() {
    let destination = "+12065558003";
    // Fails once, then accepts. With `MAX_RECEIVE_COUNT=1` every receive is the last, so the
    // function forwards the transient failure to the DLQ with its reason at once.
    let failing = Behaviour::fail_times(500, "InternalServiceErrorException", 1);
    let world = World::start(
        "redrive-transient",
        Script::default().with(destination, failing),
    )
    .await;
    let vars = world.environment("dead-letter", &[("MAX_RECEIVE_COUNT", "1")]);
    world.send_with_ttl(destination, None, &[]).await;
    world.drain(&vars).await;
    let (_, code) = only_letter(&world).await;
    assert_eq!(code, "InternalServiceErrorException");
    assert_eq!(world.calls(destination), (1, 0));
    world.redrive().await;
    world.drain(&vars).await;
    assert!(world.letters().await.is_empty(), "sent, not dead-lettered");
    assert_eq!(world.calls(destination), (2, 1), "placed once");
}

#[tokio::test]
async fn a_first_send_later_than_the_sent_timestamp_extends_nothing() {
    let destination = "+12065558004";
    let world = World::start("redrive-later", Script::default()).await;
    let later = (now_ms() + 3_600_000).to_string();
    world
        .send(destination, &[("DispatchFirstSent", "Number", later)])
        .await;
    // Past the body's time to live by its SentTimestamp, though not by the attribute.
    tokio::time::sleep(Duration::from_secs(TTL_SECONDS + 1)).await;
    world.drain(&world.environment("dead-letter", &[])).await;
    let (letter, code) = only_letter(&world).await;
    assert_eq!(code, "Expired", "the earlier of the two counts");
    assert_eq!(world.calls(destination).0, 0);
    let first: u64 = attribute(&letter, "DispatchFirstSent")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        first < now_ms() - TTL_SECONDS * 1_000,
        "the letter carries the earlier"
    );
}

/// The redrive script in `tools/`: only the letters with the codes asked for go back.
#[tokio::test]
async fn the_filtered_redrive_script_moves_only_the_codes_asked_for() {
    let world = World::start("redrive-filtered", Script::default()).await;
    let expired = "+12065558005";
    expires_during_an_outage(&world, expired).await;
    world.fake.set_outage(false);
    // A second letter, by its body: never a call.
    world
        .sqs
        .send_message()
        .queue_url(&world.source.url)
        .message_body("not json")
        .send()
        .await
        .expect("SendMessage");
    world.drain(&world.environment("dead-letter", &[])).await;
    let mut codes: Vec<String> = world.letters().await.iter().map(code_of).collect();
    codes.sort();
    assert_eq!(codes, ["Expired", "MalformedJson"]);
    let status = tokio::process::Command::new(crate::support::moto::python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/redrive.py"))
        .args(["--from", &world.dlq.url, "--to", &world.source.url])
        .args([
            "--code",
            "MalformedJson",
            "--endpoint-url",
            &world.moto.endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDREDRIVE")
        .env("AWS_SECRET_ACCESS_KEY", "redrive-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdout(Stdio::null())
        .status()
        .await
        .expect("the script runs");
    assert!(status.success());
    let left: Vec<String> = world.letters().await.iter().map(code_of).collect();
    assert_eq!(left, ["Expired"], "the other letter stays");
    let moved = read_all(&world.sqs, &world.source).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].body(), Some("not json"));
    assert!(
        attribute(&moved[0], "IdempotencyKey").is_some(),
        "moved with its attributes"
    );
}
