//! Riding out a failing service and a small quota, end to end: two function instances (each
//! with its own pacer and circuit breaker, as two warm Lambda instances have) share one moto
//! queue through two event source mappings, against the voice fake's outage switch and rate
//! quota.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sqs::types::Message;
use serde_json::json;
use voice_dispatch::config::Config;
use voice_dispatch::core::backoff::Backoff;
use voice_dispatch::core::breaker::BreakerSettings;
use voice_dispatch::core::pacing::SendRate;
use voice_dispatch::core::report::Fate;
use voice_fake::{FakeVoice, ReceivedCall, Script};

use crate::redrive::function;
use crate::support::esm::{Delivery, EventSourceMapping};
use crate::support::moto::{queue_pair, read_all, reason_of, send_bodies, Moto};
use crate::support::*;

/// The queues' redrive backstop, known to the function as the template wires it
/// (`MAX_RECEIVE_COUNT`): redrive must never be what ends a message here.
const MAX_RECEIVE_COUNT: u32 = 40;

fn destination(n: usize) -> String {
    format!("+1206800{n:04}")
}

fn short_lived_body(destination: &str, ttl_seconds: u32) -> String {
    json!({
        "DestinationPhoneNumber": destination,
        "TimeToLive": ttl_seconds,
        "Content": {"PlainTextMessage": {"Text": "only worth a call for a few seconds"}}
    })
    .to_string()
}

fn accepted<'a>(calls: &'a [ReceivedCall], destination: &str) -> Vec<&'a ReceivedCall> {
    calls
        .iter()
        .filter(|call| call.destination == destination && call.accepted())
        .collect()
}

/// Every delivery of one message, for a failure's diagnosis.
fn print_deliveries(id: &str, instances: &[&EventSourceMapping<'_>]) {
    for (instance, esm) in instances.iter().enumerate() {
        for d in esm.receives_of(id) {
            println!(
                "{id} at instance {instance}: receive {} at {:?}, {:?}, delay {:?}, receipt {}",
                d.receive_count, d.at, d.fate, d.retry_delay_seconds, d.receipt_handle
            );
        }
    }
}

const OUTAGE: Duration = Duration::from_secs(30);
/// Messages worth a call for an hour (`MESSAGE_TTL_SECONDS`)...
const NORMAL: usize = 100;
/// ...and messages worth one for `SHORT_TTL` seconds only, less than the outage.
const SHORT_LIVED: usize = 10;
const SHORT_TTL: u32 = 10;

#[tokio::test]
async fn an_outage_is_ridden_out_and_every_message_goes_out_once_after_it() {
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let (source, dlq) = queue_pair(&sqs, "outage", MAX_RECEIVE_COUNT, 30).await;
    let fake = FakeVoice::start(Script::default()).await.unwrap();
    let mut config: Config = test_config();
    config.dead_letter_queue_url = Some(dlq.url.clone());
    config.max_receive_count = Some(MAX_RECEIVE_COUNT);
    config.backoff = Some(Backoff::new(1, 4));
    config.breaker = BreakerSettings {
        threshold: 5,
        open_for: Duration::from_secs(2),
        max_open: Duration::from_secs(4),
    };
    let instance_a = function(&fake, &moto, &config).await;
    let instance_b = function(&fake, &moto, &config).await;

    fake.set_outage(true);
    let ids = send_bodies(&sqs, &source, &outage_bodies()).await;
    let mut esm_a = EventSourceMapping::new(&sqs, &source, &instance_a);
    let mut esm_b = EventSourceMapping::new(&sqs, &source, &instance_b);
    let recovered_at = drain_through_the_outage(&fake, &mut esm_a, &mut esm_b).await;

    let run = RiddenOut {
        calls: fake.calls(),
        recovered_at,
        ids,
        instances: [&esm_a, &esm_b],
    };
    run.the_failing_service_is_asked_at_most_one_and_a_half_times_a_message();
    run.every_message_within_its_time_to_live_is_sent_once_soon_after_recovery();
    run.no_short_lived_message_is_called_after_its_expiry_nor_sent();
    let dead = read_all(&sqs, &dlq).await;
    run.only_the_short_lived_ones_are_dead_lettered_as_expired_each_once(&dead);
}

/// The normal messages, then the short-lived ones.
fn outage_bodies() -> Vec<String> {
    let mut bodies: Vec<String> = (0..NORMAL)
        .map(|n| body(&destination(n), &format!("alert {n}")))
        .collect();
    bodies.extend(
        (NORMAL..NORMAL + SHORT_LIVED).map(|n| short_lived_body(&destination(n), SHORT_TTL)),
    );
    bodies
}

/// Both instances drain the queue while the outage lasts [`OUTAGE`] and after it ends;
/// returns when it ended.
async fn drain_through_the_outage(
    fake: &FakeVoice,
    esm_a: &mut EventSourceMapping<'_>,
    esm_b: &mut EventSourceMapping<'_>,
) -> SystemTime {
    let mut recovered_at = SystemTime::now();
    tokio::join!(
        esm_a.drain(Duration::from_secs(150)),
        esm_b.drain(Duration::from_secs(150)),
        async {
            tokio::time::sleep(OUTAGE).await;
            // Read before the switch: every call that arrived before this moment failed.
            recovered_at = SystemTime::now();
            fake.set_outage(false);
        }
    );
    recovered_at
}

/// What the outage scenario came to.
struct RiddenOut<'a> {
    calls: Vec<ReceivedCall>,
    recovered_at: SystemTime,
    /// The SQS message ids, in the order of [`outage_bodies`].
    ids: Vec<String>,
    instances: [&'a EventSourceMapping<'a>; 2],
}

impl RiddenOut<'_> {
    fn since_recovery(&self, call: &ReceivedCall) -> Duration {
        call.received_at
            .duration_since(self.recovered_at)
            .unwrap_or_default()
    }

    fn deliveries(&self) -> impl Iterator<Item = &Delivery> {
        self.instances.iter().flat_map(|esm| &esm.deliveries)
    }

    fn the_failing_service_is_asked_at_most_one_and_a_half_times_a_message(&self) {
        let messages = NORMAL + SHORT_LIVED;
        let during_outage = self
            .calls
            .iter()
            .filter(|c| c.received_at < self.recovered_at)
            .count();
        let last_sent = self
            .calls
            .iter()
            .filter(|c| c.accepted())
            .map(|c| self.since_recovery(c))
            .max()
            .unwrap_or_default();
        let most_receives = self
            .deliveries()
            .map(|d| d.receive_count)
            .max()
            .unwrap_or(0);
        println!(
            "outage of {OUTAGE:?}: {during_outage} calls to the failing service for {messages} messages \
             ({:.2} a message); the last message went out {last_sent:?} after recovery; \
             at most {most_receives} receives of one message",
            during_outage as f64 / messages as f64
        );
        assert!(
            during_outage as f64 <= 1.5 * messages as f64,
            "{during_outage} calls during the outage for {messages} messages"
        );
    }

    /// Every message within its time to live is sent exactly once, after recovery, soon.
    fn every_message_within_its_time_to_live_is_sent_once_soon_after_recovery(&self) {
        for (n, id) in self.ids.iter().enumerate().take(NORMAL) {
            let sent = accepted(&self.calls, &destination(n));
            if sent.len() != 1 {
                print_deliveries(id, &self.instances);
            }
            assert_eq!(sent.len(), 1, "message {n} sent exactly once");
            let since = self.since_recovery(sent[0]);
            assert!(
                sent[0].received_at >= self.recovered_at && since <= Duration::from_secs(30),
                "message {n} sent {since:?} after recovery"
            );
        }
    }

    /// No short-lived message is called after its expiry, nor sent at all.
    fn no_short_lived_message_is_called_after_its_expiry_nor_sent(&self) {
        let sent_timestamps: HashMap<&str, u64> = self
            .deliveries()
            .filter_map(|d| Some((d.message_id.as_str(), d.sent_timestamp_ms?)))
            .collect();
        for (n, id) in self.ids.iter().enumerate().skip(NORMAL) {
            let sent_ms = sent_timestamps[id.as_str()];
            let expiry = SystemTime::UNIX_EPOCH
                + Duration::from_millis(sent_ms)
                + Duration::from_secs(u64::from(SHORT_TTL));
            for call in self
                .calls
                .iter()
                .filter(|c| c.destination == destination(n))
            {
                assert!(
                    call.received_at < expiry,
                    "message {n} called {:?} after its expiry",
                    call.received_at.duration_since(expiry).unwrap_or_default()
                );
            }
            assert!(
                accepted(&self.calls, &destination(n)).is_empty(),
                "message {n}"
            );
        }
    }

    fn only_the_short_lived_ones_are_dead_lettered_as_expired_each_once(&self, dead: &[Message]) {
        let mut dead_ids: Vec<String> = dead
            .iter()
            .map(|letter| {
                let reason = reason_of(letter).expect("a DispatchError");
                assert_eq!(reason["code"], "Expired");
                reason["sourceMessageId"].as_str().unwrap().to_owned()
            })
            .collect();
        dead_ids.sort();
        let mut short_ids: Vec<String> = self.ids[NORMAL..].to_vec();
        short_ids.sort();
        assert_eq!(dead_ids, short_ids, "only the short-lived ones, each once");
    }
}

#[tokio::test]
async fn a_burst_is_paced_to_the_quota_across_two_instances() {
    const MESSAGES: usize = 150;
    const QUOTA: u32 = 10;
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    let (source, dlq) = queue_pair(&sqs, "burst", MAX_RECEIVE_COUNT, 30).await;
    let fake = FakeVoice::start(Script::default().with_quota_per_second(QUOTA))
        .await
        .unwrap();
    let mut config = test_config();
    config.dead_letter_queue_url = Some(dlq.url.clone());
    config.max_receive_count = Some(MAX_RECEIVE_COUNT);
    config.backoff = Some(Backoff::new(1, 4));
    config.send_rate = SendRate::per_second(5.0);
    let instance_a = function(&fake, &moto, &config).await;
    let instance_b = function(&fake, &moto, &config).await;
    let bodies: Vec<String> = (0..MESSAGES)
        .map(|n| body(&destination(n), &format!("burst {n}")))
        .collect();
    send_bodies(&sqs, &source, &bodies).await;

    let started = Instant::now();
    let mut esm_a = EventSourceMapping::new(&sqs, &source, &instance_a);
    let mut esm_b = EventSourceMapping::new(&sqs, &source, &instance_b);
    tokio::join!(
        esm_a.drain(Duration::from_secs(90)),
        esm_b.drain(Duration::from_secs(90))
    );
    let drained = started.elapsed();

    let calls = fake.calls();
    let throttled = calls.iter().filter(|c| c.status == 429).count();
    println!(
        "{MESSAGES} messages, two instances at 5/s, quota {QUOTA}/s: drained in {drained:?}, \
         {throttled} throttled answers of {} calls",
        calls.len()
    );
    for n in 0..MESSAGES {
        assert_eq!(accepted(&calls, &destination(n)).len(), 1, "message {n}");
    }
    assert!(
        read_all(&sqs, &dlq).await.is_empty(),
        "nothing dead-lettered"
    );
    assert!(
        throttled as f64 <= 0.05 * MESSAGES as f64,
        "{throttled} throttled answers for {MESSAGES} messages"
    );
    let bound = Duration::from_secs_f64(1.5 * MESSAGES as f64 / f64::from(QUOTA) + 5.0);
    assert!(drained <= bound, "drained in {drained:?}, bound {bound:?}");
}

#[tokio::test]
async fn after_the_first_throttle_the_pace_adapts_and_throttles_nearly_vanish() {
    const MESSAGES: usize = 120;
    // One instance configured at twice the account's quota: the pacer must learn it.
    let mut config = test_config();
    config.send_rate = SendRate::per_second(20.0);
    let harness = Harness::with_config(Script::default().with_quota_per_second(10), config).await;
    let records = (0..MESSAGES)
        .map(|n| record(&format!("m{n}"), Some(&body(&destination(n), "x"))))
        .collect();
    let report = harness.run(&event(records)).await;

    let calls = harness.fake.calls();
    let throttled = calls.iter().filter(|c| c.status == 429).count();
    let pace = harness
        .dispatch
        .engine()
        .pacer()
        .map(|pacer| pacer.rate().as_per_second());
    println!(
        "{MESSAGES} messages at a limit of 20/s against a quota of 10/s: {throttled} throttled \
         answers of {} calls; pace at the end {pace:?}/s",
        calls.len()
    );
    assert!(report.outcomes.iter().all(|o| o.fate == Fate::Sent));
    // Unadapted, about half the calls would be throttled.
    assert!(
        throttled as f64 <= 0.1 * MESSAGES as f64,
        "{throttled} throttled answers for {MESSAGES} messages"
    );
}
