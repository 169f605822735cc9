//! The idempotency ledger on a real DynamoDB-compatible server (moto), through the real SDK
//! client: every claim rule answered by the conditional write exactly as the in-memory
//! ledger (which applies `ledger::may_claim` itself) answers it, and the function using it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use voice_dispatch::adapters::dynamodb::DynamoLedger;
use voice_dispatch::adapters::memory_ledger::MemoryLedger;
use voice_dispatch::core::ledger::{
    body_hash, refusal, Claim, Entry, Finish, Refusal, Status, UnknownOutcome,
};
use voice_dispatch::core::ports::{ClaimAnswer, Ledger};
use voice_dispatch::core::report::Fate;
use voice_dispatch::wiring;
use voice_fake::{FakeVoice, Script};

use crate::support::moto::{create_ledger_table, Moto};
use crate::support::*;

const NOW_MS: u64 = 1_764_000_000_000;

fn claim(key: &str, body: &str, claim_id: &str, now_ms: u64, on_unknown: UnknownOutcome) -> Claim {
    Claim {
        keep: None,
        key: key.to_owned(),
        entry: Entry {
            status: Status::InProgress,
            body_hash: body_hash(body),
            claim_id: claim_id.to_owned(),
            lease_until_ms: now_ms + 60_000,
            expiration: now_ms / 1_000 + 86_400,
            voice_message_id: None,
        },
        now_ms,
        on_unknown,
        request: Default::default(),
    }
}

/// What a claim's answer comes to, comparable across ledgers.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Claimed { replaced: Option<Status> },
    Refused(Refusal),
}

async fn answer<L: Ledger>(ledger: &L, claim: &Claim) -> Answer {
    match ledger.claim(claim).await.expect("the ledger answers") {
        ClaimAnswer::Claimed { replaced } => Answer::Claimed {
            replaced: replaced.map(|entry| entry.status),
        },
        ClaimAnswer::Refused(standing) => Answer::Refused(refusal(&standing, claim)),
    }
}

/// One script of claims and settlements, with the answer each claim must get.
async fn script<L: Ledger>(ledger: &L) -> Vec<Answer> {
    use UnknownOutcome::{DeadLetter, Retry};
    let sent = |id: &str| Finish::Sent {
        voice_message_id: Some(id.to_owned()),
        region: None,
    };
    let mut answers = Vec::new();
    // Free key; then held by a live lease.
    let a1 = claim("a", "body", "c1", NOW_MS, Retry);
    answers.push(answer(ledger, &a1).await);
    answers.push(answer(ledger, &claim("a", "body", "c2", NOW_MS, Retry)).await);
    // Sent: a duplicate, with the call's id; the same key for another body is reuse.
    ledger.finish(&a1, &sent("voice-1")).await.unwrap();
    answers.push(answer(ledger, &claim("a", "body", "c3", NOW_MS, Retry)).await);
    answers.push(answer(ledger, &claim("a", "other", "c4", NOW_MS, Retry)).await);
    // Unknown: at most once refuses it, retry takes it over.
    let b5 = claim("b", "body", "c5", NOW_MS, Retry);
    answer(ledger, &b5).await;
    ledger.finish(&b5, &Finish::Unknown).await.unwrap();
    answers.push(answer(ledger, &claim("b", "body", "c6", NOW_MS, DeadLetter)).await);
    let b7 = claim("b", "body", "c7", NOW_MS, Retry);
    answers.push(answer(ledger, &b7).await);
    // A release by a claim that no longer holds the key does nothing; the holder's frees it.
    ledger.finish(&b5, &Finish::Release).await.unwrap();
    answers.push(answer(ledger, &claim("b", "body", "c8", NOW_MS, Retry)).await);
    ledger.finish(&b7, &Finish::Release).await.unwrap();
    let b9 = claim("b", "body", "c9", NOW_MS, DeadLetter);
    answers.push(answer(ledger, &b9).await);
    // A lease that ran out (its holder died): unknown outcome.
    let later = NOW_MS + 120_000;
    answers.push(answer(ledger, &claim("b", "body", "c10", later, DeadLetter)).await);
    let b11 = claim("b", "body", "c11", later, Retry);
    answers.push(answer(ledger, &b11).await);
    // The lapsed holder's late writes do not touch the new claim.
    ledger.finish(&b9, &Finish::Unknown).await.unwrap();
    ledger.finish(&b9, &Finish::Release).await.unwrap();
    answers.push(answer(ledger, &claim("b", "body", "c12", later, Retry)).await);
    // A placed call's SENT is written whole even if its item vanished meanwhile.
    let d13 = claim("d", "body", "c13", NOW_MS, Retry);
    ledger.finish(&d13, &sent("voice-2")).await.unwrap();
    answers.push(answer(ledger, &claim("d", "other", "c14", NOW_MS, Retry)).await);
    answers.push(answer(ledger, &claim("d", "body", "c15", NOW_MS, Retry)).await);
    // A call that went out after its claim was taken over: the new holder's release cannot
    // undo the SENT.
    let e16 = claim("e", "body", "c16", NOW_MS, Retry);
    answer(ledger, &e16).await;
    let e17 = claim("e", "body", "c17", later, Retry);
    answers.push(answer(ledger, &e17).await);
    ledger.finish(&e16, &sent("voice-3")).await.unwrap();
    ledger.finish(&e17, &Finish::Release).await.unwrap();
    answers.push(answer(ledger, &claim("e", "body", "c18", later, Retry)).await);
    // An entry past its stored expiration is void, whatever the store still holds.
    let much_later = NOW_MS + 2 * 86_400_000;
    answers.push(answer(ledger, &claim("a", "other", "c19", much_later, DeadLetter)).await);
    answers
}

#[tokio::test]
async fn the_dynamodb_ledger_answers_every_claim_as_the_rules_say() {
    let moto = Moto::start().await;
    let dynamodb = moto.dynamodb().await;
    create_ledger_table(&dynamodb, "ledger").await;
    let on_dynamodb = script(&DynamoLedger::new(dynamodb, "ledger".into())).await;
    let in_memory = script(&MemoryLedger::default()).await;
    use Answer::{Claimed, Refused};
    let sent = |id: &str| {
        Refused(Refusal::AlreadySent {
            voice_message_id: Some(id.into()),
        })
    };
    let held_until = |ms: u64| Refused(Refusal::InProgressElsewhere { lease_until_ms: ms });
    let expected = vec![
        Claimed { replaced: None },
        held_until(NOW_MS + 60_000),
        sent("voice-1"),
        Refused(Refusal::KeyReused),
        Refused(Refusal::OutcomeUnknown),
        Claimed {
            replaced: Some(Status::Unknown),
        },
        held_until(NOW_MS + 60_000),
        Claimed { replaced: None },
        Refused(Refusal::OutcomeUnknown),
        Claimed {
            replaced: Some(Status::InProgress),
        },
        held_until(NOW_MS + 180_000),
        Refused(Refusal::KeyReused),
        sent("voice-2"),
        Claimed {
            replaced: Some(Status::InProgress),
        },
        sent("voice-3"),
        Claimed {
            replaced: Some(Status::Sent),
        },
    ];
    assert_eq!(in_memory, expected, "the rules, in memory");
    assert_eq!(
        on_dynamodb, expected,
        "the same rules as DynamoDB conditional writes"
    );
}

/// The DynamoDB operations a client sent, in order (`X-Amz-Target`).
#[derive(Debug, Clone, Default)]
struct Operations(Arc<std::sync::Mutex<Vec<String>>>);

impl Operations {
    fn count(&self, operation: &str) -> usize {
        let target = format!("DynamoDB_20120810.{operation}");
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|t| **t == target)
            .count()
    }
}

impl aws_sdk_dynamodb::config::Intercept for Operations {
    fn name(&self) -> &'static str {
        "Operations"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        self.0.lock().unwrap().push(target.to_owned());
        Ok(())
    }
}

/// A DynamoDB client on `moto` whose every request is counted.
async fn counted(moto: &Moto) -> (aws_sdk_dynamodb::Client, Operations) {
    let operations = Operations::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&moto.sdk().await)
            .interceptor(operations.clone())
            .build(),
    );
    (client, operations)
}

#[tokio::test]
async fn sent_writes_that_meet_share_a_request_and_all_land_in_order() {
    let moto = Moto::start().await;
    let (dynamodb, operations) = counted(&moto).await;
    create_ledger_table(&dynamodb, "grouped").await;
    let ledger = DynamoLedger::new(dynamodb, "grouped".into());
    let now = now_ms();
    let sent = |id: &str| Finish::Sent {
        voice_message_id: Some(id.to_owned()),
        region: None,
    };
    // 60 calls placed at once, and a second SENT for k0 (another holder's) in the same burst.
    let mut writes: Vec<(Claim, Finish)> = (0..60)
        .map(|i| {
            let key = format!("k{i}");
            let claim = claim(&key, "body", &format!("c{i}"), now, UnknownOutcome::Retry);
            (claim, sent(&format!("voice-{i}")))
        })
        .collect();
    writes.push((
        claim("k0", "body", "c-again", now, UnknownOutcome::Retry),
        sent("voice-again"),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (claim, settle) in writes {
        let ledger = ledger.clone();
        tasks.spawn(async move { ledger.finish(&claim, &settle).await });
    }
    while let Some(written) = tasks.join_next().await {
        written.unwrap().expect("every SENT write lands");
    }
    let groups = operations.count("TransactWriteItems");
    assert!(
        (2..=6).contains(&groups),
        "61 SENT writes took {groups} requests: they must share them, and one key's two writes \
         cannot share one"
    );
    assert_eq!(
        operations.count("UpdateItem") + operations.count("PutItem"),
        0
    );
    for i in 1..60 {
        let again = claim(
            &format!("k{i}"),
            "body",
            "later",
            now,
            UnknownOutcome::Retry,
        );
        assert_eq!(
            answer(&ledger, &again).await,
            Answer::Refused(Refusal::AlreadySent {
                voice_message_id: Some(format!("voice-{i}"))
            })
        );
    }
    let again = claim("k0", "body", "later", now, UnknownOutcome::Retry);
    assert_eq!(
        answer(&ledger, &again).await,
        Answer::Refused(Refusal::AlreadySent {
            voice_message_id: Some("voice-again".into())
        }),
        "a key's later write lands after its earlier one"
    );
}

#[tokio::test]
async fn claims_that_meet_share_a_request_and_a_refused_one_does_not_sink_the_rest() {
    let moto = Moto::start().await;
    let (dynamodb, operations) = counted(&moto).await;
    create_ledger_table(&dynamodb, "claims").await;
    let ledger = DynamoLedger::new(dynamodb, "claims".into());
    let now = now_ms();
    // Standing: five keys already sent, one whose outcome is unknown.
    for i in 0..5 {
        let earlier = claim(
            &format!("s{i}"),
            "body",
            "earlier",
            now,
            UnknownOutcome::Retry,
        );
        let sent = Finish::Sent {
            voice_message_id: Some(format!("voice-{i}")),
            region: None,
        };
        ledger.finish(&earlier, &sent).await.unwrap();
    }
    let earlier = claim("u", "body", "earlier", now, UnknownOutcome::Retry);
    ledger.claim(&earlier).await.unwrap();
    ledger.finish(&earlier, &Finish::Unknown).await.unwrap();
    let before = operations.0.lock().unwrap().len();

    let keys: Vec<String> = (0..35)
        .map(|i| format!("f{i}"))
        .chain((0..5).map(|i| format!("s{i}")))
        .chain(["u".to_owned()])
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for key in &keys {
        let ledger = ledger.clone();
        let claim = claim(
            key,
            "body",
            &format!("now-{key}"),
            now,
            UnknownOutcome::Retry,
        );
        let key = key.clone();
        tasks.spawn(async move { (key, answer(&ledger, &claim).await) });
    }
    let mut answers = std::collections::BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (key, answer) = joined.unwrap();
        answers.insert(key, answer);
    }
    for i in 0..35 {
        assert_eq!(
            answers[&format!("f{i}")],
            Answer::Claimed { replaced: None }
        );
    }
    for i in 0..5 {
        assert_eq!(
            answers[&format!("s{i}")],
            Answer::Refused(Refusal::AlreadySent {
                voice_message_id: Some(format!("voice-{i}"))
            })
        );
    }
    assert_eq!(
        answers["u"],
        Answer::Claimed {
            replaced: Some(Status::Unknown)
        },
        "taking over an unknown outcome says what it replaced"
    );
    let during: Vec<String> = operations.0.lock().unwrap()[before..].to_vec();
    let groups = during
        .iter()
        .filter(|t| t.ends_with(".TransactWriteItems"))
        .count();
    let alone = during.iter().filter(|t| t.ends_with(".PutItem")).count();
    assert!(
        (2..=6).contains(&groups),
        "41 claims took {groups} grouped requests: a cancelled group's innocent claims go \
         in the next one"
    );
    assert_eq!(alone, 1, "only the take-over is written alone: {during:?}");
}

#[tokio::test]
async fn an_unreachable_table_is_an_error_not_a_claim() {
    let moto = Moto::start().await;
    let ledger = DynamoLedger::new(moto.dynamodb().await, "no-such-table".into());
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(ledger
        .claim(&claim("a", "body", "c1", now_ms, UnknownOutcome::Retry))
        .await
        .is_err());
}

#[tokio::test]
async fn with_the_ledger_on_a_redelivered_message_is_not_called_again() {
    let moto = Moto::start().await;
    let dynamodb = moto.dynamodb().await;
    create_ledger_table(&dynamodb, "calls-ledger").await;
    let fake = FakeVoice::start(Script::default()).await.unwrap();
    let mut config = test_config();
    config.idempotency_table = Some("calls-ledger".into());
    let voice_sdk = sdk_config(&fake.endpoint_url(), &config).await;
    let dispatch = Arc::new(wiring::voice_dispatch_with(
        &config,
        wiring::voice_client(&voice_sdk),
        moto.sqs().await,
        dynamodb,
    ));
    let delivery = || event(vec![record("m1", Some(&body("+12065550101", "hello")))]);
    let deadline = || SystemTime::now() + Duration::from_secs(30);
    let first = dispatch.handle(&delivery(), deadline()).await.unwrap();
    assert_eq!(fate(&first, "m1"), Fate::Sent);
    // The answer was lost: SQS delivers it again.
    let again = dispatch.handle(&delivery(), deadline()).await.unwrap();
    assert_eq!(fate(&again, "m1"), Fate::Duplicate);
    assert_eq!(
        outcome(&again, "m1").voice_message_id,
        outcome(&first, "m1").voice_message_id,
        "logged with the original call's id"
    );
    assert!(reported(&again).is_empty(), "SQS deletes it");
    assert_eq!(fake.calls().len(), 1, "one person, rung once");
}

/// Delivery outcomes in the same table: a call's first final status stands whatever comes
/// after it, and neither it nor the request's outcome is erased by a `SENT` written again.
#[tokio::test]
async fn a_calls_events_and_its_requests_outcome_survive_a_retried_sent() {
    use voice_dispatch::core::delivery::{CallStatus, DeliveryEvent, Fix, Fixed, Outcome};
    use voice_dispatch::core::ports::OutcomeLedger;

    let moto = Moto::start().await;
    let dynamodb = moto.dynamodb().await;
    create_ledger_table(&dynamodb, "outcomes").await;
    let ledger = DynamoLedger::recording_calls(dynamodb, "outcomes".into());
    let now = now_ms();
    let mut placed = claim("order-42", "body", "c1", now, UnknownOutcome::Retry);
    placed.request.sqs_message_id = "sqs-1".into();
    placed.request.idempotency_key = "order-42".into();
    let sent = Finish::Sent {
        voice_message_id: Some("voice-1".into()),
        region: Some("us-west-2".into()),
    };
    ledger.claim(&placed).await.unwrap();
    ledger.finish(&placed, &sent).await.unwrap();
    let event = |status, at_ms| DeliveryEvent {
        call_id: "voice-1".into(),
        status,
        at_ms,
    };
    let busy = ledger
        .record_event(&event(CallStatus::Busy, 10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (busy.newly, busy.status, busy.request_key.as_str()),
        (true, Some(CallStatus::Busy), "order-42")
    );
    for (status, at) in [
        (CallStatus::Busy, 10),
        (CallStatus::NoAnswer, 20),
        (CallStatus::Answered, 5),
    ] {
        let after = ledger
            .record_event(&event(status, at))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            after.status,
            Some(CallStatus::Busy),
            "{status:?} after the final"
        );
        assert_eq!(after.at_ms, Some(10));
        assert!(!after.newly, "{status:?} after the final is not new");
    }
    let unknown = DeliveryEvent {
        call_id: "voice-never".into(),
        ..event(CallStatus::Busy, 10)
    };
    assert_eq!(ledger.record_event(&unknown).await.unwrap(), None);

    let fix = Fix {
        outcome_key: "order-42",
        unplaced: None,
        outcome: Outcome::Unreached,
        detail: "{\"outcome\":\"unreached\"}".into(),
        expiration: now / 1_000 + 86_400,
        publishing_until_ms: now + 30_000,
        now_ms: now,
        guard: None,
    };
    assert_eq!(ledger.fix(&fix).await.unwrap(), Fixed::Written);
    // The call's SENT written again (a retry of the group, another holder's) erases nothing.
    ledger.finish(&placed, &sent).await.unwrap();
    let call = ledger.call("voice-1").await.unwrap().unwrap();
    assert_eq!(call.status, Some(CallStatus::Busy));
    let reached = Fix {
        outcome: Outcome::Reached,
        ..fix.clone()
    };
    let Fixed::Standing(stood) = ledger.fix(&reached).await.unwrap() else {
        panic!("the first outcome stands");
    };
    assert_eq!(
        (stood.outcome, stood.published),
        (Outcome::Unreached, false)
    );
    assert_eq!(stood.detail, fix.detail);
    ledger.published("order-42").await.unwrap();
    let Fixed::Standing(stood) = ledger.fix(&fix).await.unwrap() else {
        panic!("still standing");
    };
    assert!(stood.published);
    let request = ledger.request("order-42").await.unwrap().unwrap();
    assert_eq!(request.status, Status::Sent);
    assert_eq!(request.call_id.as_deref(), Some("voice-1"));
    assert_eq!(
        (
            request.ids.sqs_message_id.as_str(),
            request.ids.idempotency_key.as_str()
        ),
        ("sqs-1", "order-42")
    );
    assert_eq!(request.region.as_deref(), Some("us-west-2"));

    // An outcome for a request never placed is fixed only while its item shows no claim,
    // call or unknown outcome.
    let unplaced = |key: &'static str| Fix {
        outcome_key: key,
        unplaced: Some(key),
        outcome: Outcome::NotPlaced,
        ..fix.clone()
    };
    assert_eq!(
        ledger.fix(&unplaced("order-42-other")).await.unwrap(),
        Fixed::Written
    );
    let mut maybe = claim("order-43", "body", "c2", now, UnknownOutcome::Retry);
    maybe.request.sqs_message_id = "sqs-2".into();
    ledger.claim(&maybe).await.unwrap();
    ledger.finish(&maybe, &Finish::Unknown).await.unwrap();
    assert_eq!(
        ledger.fix(&unplaced("order-43")).await.unwrap(),
        Fixed::MaybePlaced
    );
    assert!(matches!(
        ledger.fix(&unplaced("order-42-other")).await.unwrap(),
        Fixed::Standing(_)
    ));

    // An outcome past its stored expiration (its key used again after the ledger's TTL, the
    // item not yet deleted) is absent: a new one is fixed.
    let later = Fix {
        now_ms: (fix.expiration + 1) * 1_000,
        ..fix.clone()
    };
    assert_eq!(ledger.fix(&later).await.unwrap(), Fixed::Written);

    // With outcomes off, `SENT` is written alone, as it always was: no call item.
    let plain = DynamoLedger::new(moto.dynamodb().await, "outcomes".into());
    let mut off = claim("order-44", "body", "c3", now, UnknownOutcome::Retry);
    off.request.sqs_message_id = "sqs-3".into();
    plain.claim(&off).await.unwrap();
    let sent_off = Finish::Sent {
        voice_message_id: Some("voice-3".into()),
        region: None,
    };
    plain.finish(&off, &sent_off).await.unwrap();
    assert_eq!(plain.call("voice-3").await.unwrap(), None);
    assert_eq!(
        plain.request("order-44").await.unwrap().unwrap().status,
        Status::Sent
    );
}

/// Redial in the table, on moto: the body kept with the request, the next call marked queued
/// only while the body stands, the outcome fixed with the body's removal unless a later call
/// was queued, and a redial wanted only while all of that says so.
#[tokio::test]
async fn a_kept_body_goes_with_the_outcome_and_a_later_call_outranks_an_earlier_end() {
    use voice_dispatch::core::delivery::{Fix, Fixed, Guard, Outcome};
    use voice_dispatch::core::ports::OutcomeLedger;
    use voice_dispatch::core::redial::{Keep, RedialOn, RedialPolicy};

    let moto = Moto::start().await;
    let dynamodb = moto.dynamodb().await;
    create_ledger_table(&dynamodb, "redial").await;
    let ledger = DynamoLedger::recording_calls(dynamodb, "redial".into());
    let now = now_ms();
    let body = r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "disk full"}"#;
    let keep = Keep {
        body: body.into(),
        policy: RedialPolicy {
            on: vec![RedialOn::Busy, RedialOn::NoAnswer],
            max_calls: 3,
            interval: Duration::from_secs(120),
        },
        first_sent_ms: now - 1_000,
        ttl: Duration::from_secs(3_600),
    };
    let mut first = claim("order-42", body, "c1", now, UnknownOutcome::Retry);
    first.keep = Some(keep.clone());
    ledger.claim(&first).await.unwrap();
    let sent = Finish::Sent {
        voice_message_id: Some("voice-1".into()),
        region: None,
    };
    ledger.finish(&first, &sent).await.unwrap();
    assert_eq!(
        ledger.request("order-42").await.unwrap().unwrap().keep,
        Some(keep),
        "kept through the claim and SENT, read back whole"
    );
    let hash = body_hash(body);
    assert!(
        !ledger.redial_due("order-42", 2, &hash).await.unwrap(),
        "not queued yet"
    );
    assert!(ledger.mark_redial("order-42", 2).await.unwrap());
    assert!(
        ledger.mark_redial("order-42", 2).await.unwrap(),
        "the same call again: idempotent"
    );
    assert!(ledger.redial_due("order-42", 2, &hash).await.unwrap());
    assert!(!ledger
        .redial_due("order-42", 2, &body_hash("another"))
        .await
        .unwrap());
    assert!(!ledger.redial_due("order-42", 3, &hash).await.unwrap());
    assert!(!ledger.redial_due("order-never", 2, &hash).await.unwrap());

    let fix = |call: u8| Fix {
        outcome_key: "order-42",
        unplaced: None,
        outcome: Outcome::Unreached,
        detail: "{}".into(),
        expiration: now / 1_000 + 86_400,
        publishing_until_ms: now + 30_000,
        now_ms: now,
        guard: Some(Guard {
            request_key: "order-42",
            call,
            queued_body: None,
        }),
    };
    assert_eq!(
        ledger.fix(&fix(1)).await.unwrap(),
        Fixed::Superseded,
        "call 2 is queued: call 1's end fixes nothing"
    );
    assert_eq!(ledger.fix(&fix(2)).await.unwrap(), Fixed::Written);
    let request = ledger.request("order-42").await.unwrap().unwrap();
    assert_eq!(request.keep, None, "the body went with the outcome");
    assert_eq!(request.status, Status::Sent, "the rest of the item stays");
    assert!(
        !ledger.mark_redial("order-42", 3).await.unwrap(),
        "no redial after the outcome"
    );
    assert!(!ledger.redial_due("order-42", 2, &hash).await.unwrap());
    assert!(matches!(
        ledger.fix(&fix(2)).await.unwrap(),
        Fixed::Standing(_)
    ));

    // A redial ended without its call decides only as the call queued, with the request's
    // own body: not a message that set the reserved attributes.
    let mut other = claim("order-43", body, "c2", now, UnknownOutcome::Retry);
    other.keep = first.keep.clone();
    ledger.claim(&other).await.unwrap();
    ledger.finish(&other, &sent).await.unwrap();
    assert!(ledger.mark_redial("order-43", 2).await.unwrap());
    let unplaced = |call: u8, hash: &'static str| Fix {
        outcome_key: "order-43",
        guard: Some(Guard {
            request_key: "order-43",
            call,
            queued_body: Some(hash),
        }),
        ..fix(2)
    };
    let right: &'static str = Box::leak(hash.clone().into_boxed_str());
    let wrong: &'static str = Box::leak(body_hash("another").into_boxed_str());
    assert_eq!(
        ledger.fix(&unplaced(2, wrong)).await.unwrap(),
        Fixed::Superseded
    );
    assert_eq!(
        ledger.fix(&unplaced(5, right)).await.unwrap(),
        Fixed::Superseded
    );
    assert_eq!(
        ledger.fix(&unplaced(2, right)).await.unwrap(),
        Fixed::Written
    );
    assert_eq!(
        ledger.request("order-43").await.unwrap().unwrap().keep,
        None
    );
}
