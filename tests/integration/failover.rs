//! Failover to a second region, end to end: two voice fakes as two regions (the primary at
//! `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE`, the failover one at `FAILOVER_ENDPOINT_URL`), the
//! bootstrap as two instances under Runtime API emulators, fed by pollers like the event
//! source mapping, against moto's SQS (and DynamoDB for the ledger).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use voice_fake::{Behaviour, FakeVoice, ReceivedCall, Script};

use crate::support::fleet::Fleet;
use crate::support::moto::{
    create_ledger_table, queue_pair, read_all, reason_of, send_bodies, Moto, Queue,
};
use crate::support::process::{function_environment, one_invocation_with};
use crate::support::{body, record};

const INSTANCES: usize = 2;
/// The function's timeout in these runs.
const TIMEOUT: Duration = Duration::from_secs(10);
const THRESHOLD: u32 = 5;
/// The breaker's open period: with failover on, the primary's stays at it while its
/// probes fail; the failover region's doubles up to the longest (the backoff's cap), which
/// these runs shorten but for the outage run, at the template's default.
const OPEN_FOR: Duration = Duration::from_secs(2);
const MAX_OPEN: Duration = Duration::from_secs(4);
/// The template's default for `RETRY_BACKOFF_MAX_SECONDS`, the breaker's longest pause.
const DEFAULT_MAX_OPEN: Duration = Duration::from_secs(900);
/// One batch's time here on a busy 2-core machine, generously: the poller's next receive
/// (after the outage a message comes every 0.5 s, so each of two instances gets one about
/// every second), the ledger's claim and last write at moto, and the call.
const ONE_BATCH: Duration = Duration::from_secs(3);
const PRIMARY: &str = "us-east-1";
const LEDGER: &str = "failover-ledger";
/// Sends in flight per instance: calls already out when a breaker opens.
const MAX_CONCURRENCY: usize = 5;
const SECONDARY: &str = "us-west-2";

fn destination(n: usize) -> String {
    format!("+1206700{n:04}")
}

/// The environment of every instance: the primary at `east`, the failover region at `west`.
fn environment(
    east: &FakeVoice,
    west: &FakeVoice,
    moto: &Moto,
    dlq: &Queue,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut vars = function_environment(
        "failover",
        PRIMARY,
        &east.endpoint_url(),
        &moto.endpoint,
        &dlq.url,
    );
    vars.extend([
        ("MAX_RECEIVE_COUNT", "40".into()),
        ("MAX_CONCURRENCY", MAX_CONCURRENCY.to_string()),
        ("RETRY_BACKOFF_BASE_SECONDS", "1".into()),
        ("RETRY_BACKOFF_MAX_SECONDS", MAX_OPEN.as_secs().to_string()),
        ("CIRCUIT_BREAKER_THRESHOLD", THRESHOLD.to_string()),
        (
            "CIRCUIT_BREAKER_OPEN_SECONDS",
            OPEN_FOR.as_secs().to_string(),
        ),
        // Failover needs the idempotency ledger (init refuses it without).
        ("IDEMPOTENCY_TABLE_NAME", LEDGER.into()),
        ("FAILOVER_REGION", SECONDARY.into()),
        ("FAILOVER_ORIGINATION_PHONE_NUMBER", "+12065550177".into()),
        ("FAILOVER_ENDPOINT_URL", west.endpoint_url()),
    ]);
    vars.extend(
        extra
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    vars
}

/// One message to each of the first `n` destinations, saying `word` and its number; their
/// message ids, in order.
async fn send_to_destinations(
    sqs: &aws_sdk_sqs::Client,
    queue: &Queue,
    n: usize,
    word: &str,
) -> Vec<String> {
    let bodies: Vec<String> = (0..n)
        .map(|n| body(&destination(n), &format!("{word} {n}")))
        .collect();
    send_bodies(sqs, queue, &bodies).await
}

/// moto with SQS queues and the ledger's table.
async fn moto_with_ledger(name: &str) -> (Moto, aws_sdk_sqs::Client, Queue, Queue) {
    let moto = Moto::start().await;
    let sqs = moto.sqs().await;
    create_ledger_table(&moto.dynamodb().await, LEDGER).await;
    let (source, dlq) = queue_pair(&sqs, name, 40, 30).await;
    (moto, sqs, source, dlq)
}

/// What the primary costs an instance during an outage of `outage`: its breaker's
/// threshold, the sends already out when it opens, and one probe per open period (with
/// failover on, every `OPEN_FOR`, however long the outage). A bound for the failover
/// region too, whose open periods double from `OPEN_FOR`.
fn primary_calls_bound(outage: Duration) -> usize {
    primary_calls_bound_at(outage, OPEN_FOR)
}

/// [`primary_calls_bound`] for a breaker whose open period is `open_for`.
fn primary_calls_bound_at(outage: Duration, open_for: Duration) -> usize {
    let later = outage
        .saturating_sub(open_for)
        .as_secs()
        .div_ceil(open_for.as_secs());
    INSTANCES * (THRESHOLD as usize + (MAX_CONCURRENCY - 1) + 1 + later as usize)
}

fn accepted_by_destination(calls: &[ReceivedCall]) -> HashMap<String, usize> {
    let mut accepted = HashMap::new();
    for call in calls.iter().filter(|c| c.accepted()) {
        *accepted.entry(call.destination.clone()).or_default() += 1;
    }
    accepted
}

fn since(at: SystemTime, start: SystemTime) -> Duration {
    at.duration_since(start).unwrap_or_default()
}

fn messages_with(lines: &[(Instant, Value)], message: &str) -> usize {
    lines
        .iter()
        .filter(|(_, line)| line["fields"]["message"] == message)
        .count()
}

/// The outage run: a stream of messages, the primary failing for a while, then a second
/// stream after recovery.
const MESSAGES: usize = 100;
const AFTER: usize = 20;
const EVERY: Duration = Duration::from_millis(330);
const AFTER_EVERY: Duration = Duration::from_millis(500);
const OUTAGE_FROM: Duration = Duration::from_secs(1);
const OUTAGE: Duration = Duration::from_secs(30);
/// The primary's open period in the outage run. Doubling from it, failed probes would come
/// 3, 9, 21 and 45 s after the breaker opened: the 30 s outage ends well before the fourth,
/// so a doubling breaker would keep the calls away about 15 s after recovery.
const OUTAGE_OPEN_FOR: Duration = Duration::from_secs(3);

/// What the outage run saw: each region's calls, and when the outage began and ended.
struct OutageRun {
    east: Vec<ReceivedCall>,
    west: Vec<ReceivedCall>,
    outage_started: SystemTime,
    recovered_at: SystemTime,
    lines: Vec<(Instant, Value)>,
}

impl OutageRun {
    /// Calls to the primary while it was failing.
    fn failing(&self) -> usize {
        let during = |c: &&ReceivedCall| {
            c.received_at >= self.outage_started && c.received_at < self.recovered_at
        };
        self.east.iter().filter(during).count()
    }

    /// How long after the outage began the first call went through the secondary.
    fn moved_after(&self) -> Duration {
        let accepted = self.west.iter().filter(|c| c.accepted());
        let after = accepted.map(|c| since(c.received_at, self.outage_started));
        after.min().unwrap_or_default()
    }

    /// How long after recovery the primary took its first call again.
    fn back_after(&self) -> Option<Duration> {
        let since_recovery = |c: &ReceivedCall| since(c.received_at, self.recovered_at);
        let back = self
            .east
            .iter()
            .filter(|c| c.accepted() && c.received_at >= self.recovered_at);
        back.map(since_recovery).min()
    }

    /// How long after recovery the secondary took its last call.
    fn last_on_secondary(&self) -> Duration {
        let after = self
            .west
            .iter()
            .map(|c| since(c.received_at, self.recovered_at));
        after.max().unwrap_or_default()
    }
}

/// Phase 1: the streams and the outage, run against a fleet at the template's default cap
/// (`RETRY_BACKOFF_MAX_SECONDS` left unset: 900 s), the breaker's open period
/// `OUTAGE_OPEN_FOR`.
/// moto is handed back with its queues: it stops when dropped.
async fn run_outage() -> (OutageRun, Moto, aws_sdk_sqs::Client, Queue) {
    let (moto, sqs, source, dlq) = moto_with_ledger("failover-outage").await;
    let east = FakeVoice::start(Script::default()).await.unwrap();
    let west = FakeVoice::start(Script::default()).await.unwrap();
    let mut vars = environment(&east, &west, &moto, &dlq, &[]);
    vars.retain(|(name, _)| {
        !["RETRY_BACKOFF_MAX_SECONDS", "CIRCUIT_BREAKER_OPEN_SECONDS"].contains(name)
    });
    vars.push((
        "CIRCUIT_BREAKER_OPEN_SECONDS",
        OUTAGE_OPEN_FOR.as_secs().to_string(),
    ));
    let fleet = Fleet::start(INSTANCES, &vars, TIMEOUT).await;
    let done = AtomicBool::new(false);
    let t0 = tokio::time::Instant::now();
    let started = SystemTime::now();
    let (mut outage_started, mut recovered_at) = (started, started);
    let send = |n: usize| {
        let (sqs, source) = (&sqs, &source);
        async move {
            send_bodies(sqs, source, &[body(&destination(n), &format!("alert {n}"))]).await;
        }
    };
    tokio::join!(
        fleet.drain(&sqs, &source, &done, Duration::from_secs(150)),
        async {
            // On absolute ticks, so a busy machine does not stretch the stream.
            for n in 0..MESSAGES {
                tokio::time::sleep_until(t0 + EVERY * n as u32).await;
                send(n).await;
            }
            let after = t0 + OUTAGE_FROM + OUTAGE;
            for k in 0..AFTER {
                tokio::time::sleep_until(after + AFTER_EVERY * k as u32).await;
                send(MESSAGES + k).await;
            }
            done.store(true, Ordering::SeqCst);
        },
        async {
            tokio::time::sleep_until(t0 + OUTAGE_FROM).await;
            outage_started = SystemTime::now();
            east.set_outage(true);
            tokio::time::sleep_until(t0 + OUTAGE_FROM + OUTAGE).await;
            // Read before the switch: every call that arrived before this moment failed.
            recovered_at = SystemTime::now();
            east.set_outage(false);
        }
    );
    let run = OutageRun {
        east: east.calls(),
        west: west.calls(),
        outage_started,
        recovered_at,
        lines: fleet.settled_lines().await,
    };
    (run, moto, sqs, dlq)
}

/// Phase 2: each message sent exactly once, in one region or the other; none
/// dead-lettered; most of the stream through the secondary.
async fn each_message_was_sent_once(run: &OutageRun, sqs: &aws_sdk_sqs::Client, dlq: &Queue) {
    let mut all = run.east.clone();
    all.extend(run.west.iter().cloned());
    let accepted = accepted_by_destination(&all);
    for n in 0..MESSAGES + AFTER {
        assert_eq!(
            accepted.get(&destination(n)),
            Some(&1),
            "message {n} sent exactly once"
        );
    }
    assert!(read_all(sqs, dlq).await.is_empty(), "none dead-lettered");
    let stream: Vec<String> = (0..MESSAGES).map(destination).collect();
    let through_secondary = run
        .west
        .iter()
        .filter(|c| c.accepted() && stream.contains(&c.destination))
        .count();
    assert!(
        through_secondary * 100 >= MESSAGES * 80,
        "{through_secondary} of {MESSAGES} through the secondary"
    );
}

/// Phase 3: what the primary cost while failing, how soon the calls moved, and how soon
/// they came back: within the base open period, its jitter (a quarter of it) and one batch,
/// although the cap is 900 s and the outage lasted many open periods.
fn moved_soon_and_handed_back_within_the_base_open_period(run: &OutageRun) {
    let (failing, bound) = (
        run.failing(),
        primary_calls_bound_at(OUTAGE, OUTAGE_OPEN_FOR),
    );
    assert!(
        failing <= bound,
        "{failing} calls to the failing region (bound {bound})"
    );
    // Moved once the breaker opened: its threshold of failures, which the stream brings
    // within that many messages (fewer, with retries in place), and one batch.
    let moved_after = run.moved_after();
    assert!(
        moved_after <= EVERY * THRESHOLD + ONE_BATCH,
        "moved {moved_after:?} after the outage began"
    );
    let back_by = OUTAGE_OPEN_FOR + OUTAGE_OPEN_FOR / 4 + ONE_BATCH;
    let back_after = run.back_after();
    assert!(
        back_after.is_some_and(|back| back <= back_by),
        "back on the primary {back_after:?} after recovery (bound {back_by:?})"
    );
    let last_on_secondary = run.last_on_secondary();
    assert!(
        last_on_secondary <= back_by,
        "calls to the secondary {last_on_secondary:?} after recovery"
    );
    assert!(
        back_by < DEFAULT_MAX_OPEN,
        "doubling would have kept them away"
    );
}

/// Phase 4: calls from the failover region carry its own number, signed for its region;
/// the move and the return are said once per instance; each sent record's line names its
/// region, and `FailedOver` counts the records tried there.
fn regions_are_named_and_said(run: &OutageRun) {
    assert!(run
        .west
        .iter()
        .all(|c| c.origination.as_deref() == Some("+12065550177")
            && c.signing_region.as_deref() == Some(SECONDARY)));
    assert!(run
        .east
        .iter()
        .all(|c| c.signing_region.as_deref() == Some(PRIMARY)));
    let lines = &run.lines;
    let moved = messages_with(
        lines,
        "calls moved to the failover region: the primary region's voice service is failing on its side",
    );
    let returned = messages_with(
        lines,
        "calls back on the primary region: its voice service answered again",
    );
    assert!((1..=INSTANCES).contains(&moved), "{moved} WARN lines");
    assert!((1..=INSTANCES).contains(&returned), "{returned} INFO lines");
    let sent_lines: Vec<&Value> = lines
        .iter()
        .map(|(_, line)| line)
        .filter(|line| line["fields"]["message"] == "record sent")
        .collect();
    assert_eq!(sent_lines.len(), MESSAGES + AFTER);
    assert!(sent_lines.iter().all(|line| {
        [PRIMARY, SECONDARY].contains(&line["fields"]["region"].as_str().unwrap_or(""))
    }));
    let failed_over: u64 = lines
        .iter()
        .filter(|(_, line)| line["Region"] == SECONDARY)
        .filter_map(|(_, line)| line["FailedOver"].as_u64())
        .sum();
    assert_eq!(
        failed_over as usize,
        run.west.len(),
        "FailedOver counts the records tried there"
    );
}

/// (a) A 30 s outage of the primary during a stream of 100 messages, at the template's
/// default cap: the failover region takes them, the primary costs its breakers' thresholds
/// and one probe per open period, and after recovery (a second stream keeps calls coming
/// for 10 s) the calls are back on the primary within the base open period, its jitter and
/// one batch.
#[tokio::test]
async fn a_primary_outage_is_carried_by_the_failover_region_and_handed_back() {
    let (run, _moto, sqs, dlq) = run_outage().await;
    let stream: Vec<String> = (0..MESSAGES).map(destination).collect();
    let through_secondary = run
        .west
        .iter()
        .filter(|c| c.accepted() && stream.contains(&c.destination));
    println!(
        "outage of {OUTAGE:?} in a stream of {MESSAGES} at a {DEFAULT_MAX_OPEN:?} cap: {} calls \
         to the failing region (bound {}), {} through the secondary, moved {:?} after the \
         outage began, back on the primary {:?} after recovery, the last call to the \
         secondary {:?} after recovery",
        run.failing(),
        primary_calls_bound_at(OUTAGE, OUTAGE_OPEN_FOR),
        through_secondary.count(),
        run.moved_after(),
        run.back_after(),
        run.last_on_secondary()
    );
    each_message_was_sent_once(&run, &sqs, &dlq).await;
    moved_soon_and_handed_back_within_the_base_open_period(&run);
    regions_are_named_and_said(&run);
}

/// Under v2 the failover region places calls through its own v2 client (signed for its
/// region) from `FAILOVER_ORIGINATION_IDENTITY`, with its configuration set.
#[tokio::test]
async fn under_v2_the_failover_region_calls_from_its_own_identity_and_set() {
    const MESSAGES: usize = 10;
    let (moto, sqs, source, dlq) = moto_with_ledger("failover-v2").await;
    let east = FakeVoice::start(Script::default()).await.unwrap();
    let west = FakeVoice::start(Script::default()).await.unwrap();
    east.set_outage(true);
    let mut vars = environment(&east, &west, &moto, &dlq, &[]);
    vars.retain(|(name, _)| {
        ![
            "FAILOVER_ORIGINATION_PHONE_NUMBER",
            "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE",
        ]
        .contains(name)
    });
    vars.extend([
        ("VOICE_API", "v2".to_owned()),
        (
            "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2",
            east.endpoint_url(),
        ),
        ("ORIGINATION_IDENTITY", "pool-east".to_owned()),
        ("CONFIGURATION_SET_NAME", "alerts-east".to_owned()),
        ("FAILOVER_ORIGINATION_IDENTITY", "pool-west".to_owned()),
        ("FAILOVER_CONFIGURATION_SET_NAME", "alerts-west".to_owned()),
    ]);
    let fleet = Fleet::start(1, &vars, TIMEOUT).await;
    send_to_destinations(&sqs, &source, MESSAGES, "v2").await;
    let done = AtomicBool::new(true);
    fleet
        .drain(&sqs, &source, &done, Duration::from_secs(60))
        .await;
    let west_calls = west.calls();
    assert_eq!(
        accepted_by_destination(&west_calls).len(),
        MESSAGES,
        "all through the secondary"
    );
    assert!(west_calls.iter().all(|c| c.api == "v2"
        && c.origination.as_deref() == Some("pool-west")
        && c.configuration_set.as_deref() == Some("alerts-west")
        && c.signing_region.as_deref() == Some(SECONDARY)));
    assert!(east.calls().iter().all(|c| c.api == "v2"
        && c.origination.as_deref() == Some("pool-east")
        && c.signing_region.as_deref() == Some(PRIMARY)));
    assert!(east.calls().len() <= primary_calls_bound(Duration::ZERO) / INSTANCES);
}

/// (b) Both regions failing: records wait behind both breakers and expire as with one
/// region; each region costs its thresholds and probes.
#[tokio::test]
async fn with_both_regions_failing_records_wait_and_expire_as_today() {
    const MESSAGES: usize = 10;
    const TTL: u64 = 8;
    let (moto, sqs, source, dlq) = moto_with_ledger("failover-both").await;
    let east = FakeVoice::start(Script::default()).await.unwrap();
    let west = FakeVoice::start(Script::default()).await.unwrap();
    east.set_outage(true);
    west.set_outage(true);
    let fleet = Fleet::start(
        INSTANCES,
        &environment(&east, &west, &moto, &dlq, &[]),
        TIMEOUT,
    )
    .await;
    let bodies: Vec<String> = (0..MESSAGES)
        .map(|n| {
            json!({
                "DestinationPhoneNumber": destination(n),
                "TimeToLive": TTL,
                "Content": {"PlainTextMessage": {"Text": "worth a call for a few seconds"}}
            })
            .to_string()
        })
        .collect();
    let ids = send_bodies(&sqs, &source, &bodies).await;
    let done = AtomicBool::new(true);
    fleet
        .drain(&sqs, &source, &done, Duration::from_secs(60))
        .await;

    let (east_calls, west_calls) = (east.calls(), west.calls());
    println!(
        "both failing for {TTL} s: {} calls to the primary, {} to the secondary",
        east_calls.len(),
        west_calls.len()
    );
    assert!(east_calls.iter().chain(&west_calls).all(|c| !c.accepted()));
    let bound = primary_calls_bound(Duration::from_secs(TTL));
    assert!(
        east_calls.len() <= bound,
        "{} calls to the primary",
        east_calls.len()
    );
    assert!(
        west_calls.len() <= bound,
        "{} calls to the secondary",
        west_calls.len()
    );
    assert!(
        !west_calls.is_empty(),
        "the secondary was tried once the primary's breaker opened"
    );
    let dead = read_all(&sqs, &dlq).await;
    let mut dead_ids: Vec<String> = dead
        .iter()
        .map(|letter| {
            let reason = reason_of(letter).expect("a DispatchError");
            assert_eq!(reason["code"], "Expired", "{reason}");
            reason["sourceMessageId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    dead_ids.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        dead_ids, expected,
        "every message dead-lettered once, as expired"
    );
}

/// (c) Primary attempts that time out may have placed their calls: with the ledger on, none
/// of those records is ever sent through the secondary; records never tried move.
#[tokio::test]
async fn a_call_that_may_have_been_placed_never_goes_through_the_secondary() {
    const MESSAGES: usize = 20;
    let (moto, sqs, source, dlq) = moto_with_ledger("failover-timeouts").await;
    let east = FakeVoice::start(Script::default().with_latency(Duration::from_secs(2)))
        .await
        .unwrap();
    let west = FakeVoice::start(Script::default()).await.unwrap();
    let extra = [
        ("SEND_ATTEMPT_TIMEOUT_MS", "300"),
        ("ON_UNKNOWN_OUTCOME", "retry"),
    ];
    let fleet = Fleet::start(
        INSTANCES,
        &environment(&east, &west, &moto, &dlq, &extra),
        TIMEOUT,
    )
    .await;
    let ids = send_to_destinations(&sqs, &source, MESSAGES, "code").await;
    let done = AtomicBool::new(true);
    tokio::join!(
        fleet.drain(&sqs, &source, &done, Duration::from_secs(90)),
        async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            east.set_latency(Duration::ZERO);
        }
    );

    let (east_calls, west_calls) = (east.calls(), west.calls());
    let maybe_placed: Vec<&String> = east_calls.iter().map(|c| &c.destination).collect();
    let crossed: Vec<&String> = west_calls
        .iter()
        .map(|c| &c.destination)
        .filter(|d| maybe_placed.contains(d))
        .collect();
    println!(
        "timeouts at the primary: {} calls there, {} through the secondary, {} crossed",
        east_calls.len(),
        west_calls.len(),
        crossed.len()
    );
    if !crossed.is_empty() {
        for (n, id) in ids.iter().enumerate() {
            if !crossed.contains(&&destination(n)) {
                continue;
            }
            for (_, line) in fleet
                .settled_lines()
                .await
                .iter()
                .filter(|(_, l)| l["fields"]["message_id"] == id.as_str())
            {
                println!("{n}: {}", line["fields"]);
            }
        }
    }
    assert!(crossed.is_empty(), "called in both regions: {crossed:?}");
    assert!(!west_calls.is_empty(), "the records never tried moved");
    let mut all = east_calls.clone();
    all.extend(west_calls.iter().cloned());
    let accepted = accepted_by_destination(&all);
    for n in 0..MESSAGES {
        assert!(
            accepted.contains_key(&destination(n)),
            "message {n} went out"
        );
    }
    assert!(read_all(&sqs, &dlq).await.is_empty());
}

/// (d) Throttling is the primary's quota, not an outage: no call moves, the pacer slows.
#[tokio::test]
async fn throttling_at_the_primary_moves_nothing_and_is_paced_as_today() {
    const MESSAGES: usize = 20;
    let (moto, sqs, source, dlq) = moto_with_ledger("failover-throttled").await;
    let east = FakeVoice::start(Script::default().with_quota_per_second(2))
        .await
        .unwrap();
    let west = FakeVoice::start(Script::default()).await.unwrap();
    let extra = [("SEND_RATE_LIMIT", "5/s")];
    let fleet = Fleet::start(
        INSTANCES,
        &environment(&east, &west, &moto, &dlq, &extra),
        TIMEOUT,
    )
    .await;
    send_to_destinations(&sqs, &source, MESSAGES, "burst").await;
    let done = AtomicBool::new(true);
    let started = Instant::now();
    fleet
        .drain(&sqs, &source, &done, Duration::from_secs(90))
        .await;
    let east_calls = east.calls();
    let throttled = east_calls.iter().filter(|c| c.status == 429).count();
    println!(
        "a 2/s quota at the primary: {} calls, {throttled} throttled, all sent in {:?}, {} to the secondary",
        east_calls.len(),
        started.elapsed(),
        west.calls().len()
    );
    assert!(west.calls().is_empty(), "throttling never moves a call");
    assert!(throttled > 0, "the quota was met");
    let accepted = accepted_by_destination(&east_calls);
    for n in 0..MESSAGES {
        assert_eq!(
            accepted.get(&destination(n)),
            Some(&1),
            "message {n} sent once"
        );
    }
    assert!(read_all(&sqs, &dlq).await.is_empty());
}

/// (e) With failover off the lines and metrics are what they were: no region anywhere; with
/// it on, the same invocation names the region.
#[tokio::test]
async fn with_failover_off_no_line_or_metric_names_a_region() {
    let failing = "+12065550666";
    let script = || {
        Script::default().with(
            failing,
            Behaviour::fail(500, "InternalServiceErrorException"),
        )
    };
    // Each run its own message ids: both share the ledger's table.
    let records = |run: &str| {
        vec![
            record(&format!("ok-{run}"), Some(&body("+12065550142", "fine"))),
            record(&format!("down-{run}"), Some(&body(failing, "down"))),
        ]
    };
    let moto = Moto::start().await;
    create_ledger_table(&moto.dynamodb().await, LEDGER).await;
    let ledger = [
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint.as_str()),
        ("IDEMPOTENCY_TABLE_NAME", LEDGER),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
    ];
    let off = one_invocation_with(script(), &ledger, records("off"), TIMEOUT).await;
    let mut failover = ledger.to_vec();
    failover.extend([
        ("FAILOVER_REGION", SECONDARY),
        ("FAILOVER_ORIGINATION_PHONE_NUMBER", "+12065550177"),
        ("FAILOVER_ENDPOINT_URL", "{fake}"),
    ]);
    let on = one_invocation_with(script(), &failover, records("on"), TIMEOUT).await;
    assert!(off
        .lines
        .iter()
        .any(|l| l["fields"]["message"] == "record not sent"));
    assert!(
        !off.lines.iter().any(|l| l.to_string().contains("egion")),
        "failover off: no region in any line or document"
    );
    // The same lines with the same fields, but for the region's own, and the same metric
    // documents before the regions' own.
    let shape = |lines: &[Value]| -> Vec<(String, Vec<String>)> {
        let mut shape: Vec<(String, Vec<String>)> = lines
            .iter()
            .filter(|l| l.get("_aws").is_none())
            .map(|l| {
                let mut fields: Vec<String> = l["fields"]
                    .as_object()
                    .map(|f| f.keys().cloned().collect())
                    .unwrap_or_default();
                fields.retain(|f| f != "region" && f != "failed_over" && f != "elapsed_ms");
                (l["fields"]["message"].to_string(), fields)
            })
            .collect();
        shape.sort();
        shape
    };
    assert_eq!(shape(&on.lines), shape(&off.lines));
    let dimensions = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.get("_aws"))
            .map(|aws| aws["CloudWatchMetrics"][0]["Dimensions"].to_string())
            .collect()
    };
    let (on_dimensions, off_dimensions) = (dimensions(&on.lines), dimensions(&off.lines));
    assert_eq!(on_dimensions[..off_dimensions.len()], off_dimensions[..]);
    assert!(on_dimensions[off_dimensions.len()..]
        .iter()
        .all(|d| d == r#"[["FunctionName","Region"]]"#));
    let not_sent = on
        .lines
        .iter()
        .find(|l| l["fields"]["message"] == "record not sent")
        .expect("the failing record's line");
    assert_eq!(not_sent["fields"]["region"], PRIMARY);
    assert!(on.lines.iter().any(|l| l["Region"] == SECONDARY));
    let batch = |lines: &[Value]| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == "batch done")
            .cloned()
            .expect("the batch line")
    };
    assert!(batch(&off.lines)["fields"].get("failed_over").is_none());
    assert_eq!(batch(&on.lines)["fields"]["failed_over"], 0);
}
