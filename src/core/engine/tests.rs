//! The engine's tests: lanes, attempts, the deadline, the breaker and the pacer, the
//! ledger, failover, all on tokio's paused clock unless a test says why not.
use std::time::SystemTime;

use super::budget::Cutoffs;
use super::lanes::lanes;
use super::*;
use crate::core::classify::ServiceCode;
use std::sync::Arc;

use super::outcomes::epoch_ms;
use crate::core::breaker::BreakerSettings;
use crate::core::classify::{SendFailure, Signal};
use crate::core::clock::SetClock;
use crate::core::ledger::{self, Claim, Entry, Status, UnknownOutcome};
use crate::core::pacing::SendRate;
use crate::core::ports::{ClaimAnswer, NoLedger};

fn record<'a>(id: &'a str, group: Option<&'a str>) -> Record<'a> {
    Record {
        message_id: id,
        body: None,
        receive_count: Some(1),
        fifo_group: group,
        sent_at: None,
        idempotency_key: id.into(),
        ..Record::default()
    }
}

#[test]
fn standard_records_each_get_their_own_lane() {
    let records = [record("a", None), record("b", None), record("c", None)];
    assert_eq!(lanes(&records).0, vec![vec![0], vec![1], vec![2]]);
}

#[test]
fn fifo_records_share_a_lane_per_group_in_event_order() {
    let records = [
        record("a1", Some("a")),
        record("b1", Some("b")),
        record("a2", Some("a")),
        record("b2", Some("b")),
        record("a3", Some("a")),
    ];
    assert_eq!(lanes(&records).0, vec![vec![0, 2, 4], vec![1, 3]]);
}

#[test]
fn a_message_id_seen_before_in_the_batch_is_no_lane_but_a_copy() {
    let records = [
        record("a", None),
        record("b", None),
        record("a", None),
        record("a", None),
    ];
    let (lanes, copies) = lanes(&records);
    assert_eq!(lanes, vec![vec![0], vec![1]]);
    assert_eq!(copies, vec![(2, 0), (3, 0)]);
}

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::core::phone::PhoneNumber;
use crate::core::ports::SentCall;

/// Answers from a script, then with `then` (or a destination's own answer); records
/// when each request started.
struct ScriptedVoice {
    script: Mutex<VecDeque<Result<SentCall, SendFailure>>>,
    then: Result<SentCall, SendFailure>,
    by_destination: Vec<(String, Result<SentCall, SendFailure>)>,
    started: Mutex<Vec<Instant>>,
    /// Each request's origination number.
    originations: Mutex<Vec<Option<String>>>,
    latency: Duration,
}

impl ScriptedVoice {
    fn new(then: Result<SentCall, SendFailure>) -> Self {
        Self {
            script: Mutex::new(VecDeque::new()),
            then,
            by_destination: Vec::new(),
            started: Mutex::new(Vec::new()),
            originations: Mutex::new(Vec::new()),
            latency: Duration::from_millis(10),
        }
    }

    fn for_destination(mut self, destination: &str, answer: Result<SentCall, SendFailure>) -> Self {
        self.by_destination.push((destination.to_owned(), answer));
        self
    }

    fn first(self, answers: Vec<Result<SentCall, SendFailure>>) -> Self {
        self.script.lock().unwrap().extend(answers);
        self
    }

    fn requests(&self) -> usize {
        self.started.lock().unwrap().len()
    }
}

impl VoiceSender for ScriptedVoice {
    async fn send(&self, message: &VoiceMessage) -> Result<SentCall, SendFailure> {
        self.started.lock().unwrap().push(Instant::now());
        self.originations
            .lock()
            .unwrap()
            .push(message.origination.as_ref().map(|n| n.as_str().to_owned()));
        // Past the attempt's limit the engine's timer drops this future.
        tokio::time::sleep(self.latency).await;
        if let Some((_, answer)) = self
            .by_destination
            .iter()
            .find(|(destination, _)| destination == message.destination.as_str())
        {
            return answer.clone();
        }
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| self.then.clone())
    }
}

fn accepted() -> Result<SentCall, SendFailure> {
    Ok(SentCall {
        message_id: Some("voice-1".into()),
    })
}

fn internal_error() -> Result<SentCall, SendFailure> {
    Err(SendFailure::Service {
        code: Some("InternalServiceErrorException".into()),
        status: Some(500),
        message: "down".into(),
        reason: None,
        resource_type: None,
    })
}

fn throttled() -> Result<SentCall, SendFailure> {
    Err(SendFailure::Service {
        code: Some("TooManyRequestsException".into()),
        status: Some(429),
        message: "slow down".into(),
        reason: None,
        resource_type: None,
    })
}

fn settings() -> EngineSettings {
    EngineSettings {
        defaults: MessageDefaults {
            origination: PhoneNumber::parse("+12065550199").ok(),
            configuration_set: None,
            backend: crate::core::contract::Backend::V1,
            v2_voices: &[],
            v2_identity: None,
            configured_resources_only: false,
        },
        deadline_safety: Duration::from_millis(500),
        retry_base: Duration::from_millis(100),
        attempt_timeout: Duration::from_millis(100),
        ..EngineSettings::default()
    }
}

const BODY: &str = r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"PlainTextMessage": {"Text": "Disk full"}}}"#;
const OTHER: &str = "+12065550143";
const BODY_TO_OTHER: &str = r#"{"DestinationPhoneNumber": "+12065550143", "Content": {"PlainTextMessage": {"Text": "Disk full"}}}"#;
const BODY_TTL_10: &str = r#"{"DestinationPhoneNumber": "+12065550142", "TimeToLive": 10, "Content": {"PlainTextMessage": {"Text": "Disk full"}}}"#;

fn sent(id: &str, body: &'static str, age: Duration) -> Record<'static> {
    Record {
        message_id: Box::leak(id.to_owned().into_boxed_str()),
        body: Some(body),
        receive_count: Some(1),
        fifo_group: None,
        sent_at: Some(SystemTime::now() - age),
        idempotency_key: id.to_owned().into(),
        ..Record::default()
    }
}

fn in_seconds(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

#[tokio::test(start_paused = true)]
async fn a_record_past_its_time_to_live_is_expired_and_never_sent() {
    let mut settings = settings();
    settings.message_ttl = Duration::from_secs(60);
    let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings);
    let records = [
        sent("old", BODY, Duration::from_secs(61)),
        sent("fresh", BODY, Duration::from_secs(59)),
        sent("own-ttl", BODY_TTL_10, Duration::from_secs(11)),
    ];
    let report = engine.run(&records, in_seconds(30)).await;
    let fates: Vec<Fate> = report.outcomes.iter().map(|o| o.fate).collect();
    assert_eq!(fates, [Fate::Expired, Fate::Sent, Fate::Expired]);
    let reason = report.outcomes[0].reason.as_ref().unwrap();
    assert_eq!(reason.code, Code::Expired);
    assert!(
        reason.message.contains("time to live of 60 s"),
        "{reason:?}"
    );
    assert_eq!(report.outcomes[0].attempts, 0);
    assert_eq!(
        engine.primary.sender.requests(),
        1,
        "only the fresh one was sent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reserve_at_or_above_the_invocation_time_still_leaves_time_to_send() {
    let mut too_long = settings();
    too_long.deadline_safety = Duration::from_secs(600);
    let engine = BatchEngine::new(ScriptedVoice::new(accepted()), too_long);
    let deadline = in_seconds(3);
    assert_eq!(engine.reserve(deadline), Duration::from_millis(1_500));
    let report = engine
        .run(&[sent("m", BODY, Duration::ZERO)], deadline)
        .await;
    assert_eq!(report.outcomes[0].fate, Fate::Sent);
    // A reserve that fits is kept as set.
    let fits = BatchEngine::new(ScriptedVoice::new(accepted()), settings());
    assert_eq!(fits.reserve(in_seconds(3)), Duration::from_millis(500));
}

/// Outcomes told by [`costly_line`] so far: what lines have cost, at [`LINE_COST`] each.
static LINES_TOLD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
/// What one line costs, as thousands of lines do at a small CPU share.
const LINE_COST: Duration = Duration::from_millis(1);

fn costly_line(_: &RecordOutcome) {
    LINES_TOLD.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// tokio's paused clock, plus what the lines told so far cost: the time the engine measures
/// its telling by.
#[derive(Debug)]
struct LinesCost;

impl Clock for LinesCost {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn now(&self) -> Instant {
        Instant::now() + LINE_COST * LINES_TOLD.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// 3,000 records, 10 in flight, 100 ms calls, a 5 s invocation with a 1 s reserve (the last
/// start at 3.5 s), and every line costing 1 ms. Sending until the last start would start
/// 350 and leave 2,650 lines (2.65 s) to tell after it, past the deadline. Instead, on the
/// engine's clock (calls, then lines, one after the other on one thread):
/// - four waves of 10 start before 32 lines are told and their cost is trusted (each wave
///   starts once the one before is told: with 0, 10, 20 and 30 told), and end at 0.4 s;
/// - then no send starts while `now + 1.5 × 1 ms × (3,000 − told)` reaches 3.5 s, that is
///   while `0.4 s + told × 1 ms + 1.5 ms × (3,000 − told) ≥ 3.5 s`: told ≤ 2,800. Records
///   are deferred (and told) 10 at a time, so at 2,810 told one more wave of 10 starts;
/// - after it (0.1 s), `0.5 s + 2.82 s + 1.5 × 0.18 s` is past the last start: the rest are
///   deferred.
///
/// Exactly 50 sent, and the answer at 0.5 s of calls + 3 s of lines = 3.5 s, 1.5 s early.
#[tokio::test(start_paused = true)]
async fn a_batch_stops_starting_sends_while_there_is_time_to_tell_every_record_left() {
    const RECORDS: usize = 3_000;
    const IN_FLIGHT: usize = 10;
    let mut voice = ScriptedVoice::new(accepted());
    voice.latency = Duration::from_millis(100);
    let settings = EngineSettings {
        max_concurrency: IN_FLIGHT,
        deadline_safety: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(5),
        ..settings()
    };
    let engine = BatchEngine::new(voice, settings)
        .with_outcome_line(costly_line)
        .with_clock(Arc::new(LinesCost));
    let ids: Vec<String> = (0..RECORDS).map(|n| format!("m{n}")).collect();
    let records: Vec<Record<'static>> = ids
        .iter()
        .map(|id| sent(id, BODY, Duration::ZERO))
        .collect();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let report = engine.run(&records, deadline).await;
    let lines = LINE_COST * LINES_TOLD.load(std::sync::atomic::Ordering::SeqCst);
    let answered = Instant::now() + lines;
    assert_eq!(report.outcomes.len(), RECORDS);
    assert_eq!(lines, LINE_COST * RECORDS as u32, "one line per record");
    let sent = report.counts().sent;
    assert_eq!(
        sent,
        5 * IN_FLIGHT,
        "four waves before the cost is trusted, one at the end"
    );
    assert_eq!(report.counts().deferred, RECORDS - sent);
    assert!(
        answered < deadline,
        "answered {:?} late",
        answered - deadline
    );
    assert_eq!(answered - start, Duration::from_millis(500) + lines);
}

/// v2's refusal for a destination at its daily call limit.
fn daily_limited() -> Result<SentCall, SendFailure> {
    Err(SendFailure::Service {
        code: Some("ServiceQuotaExceededException".into()),
        status: Some(400),
        message: "limit".into(),
        reason: Some(crate::core::classify::ServiceReason::DailyDestinationCallLimit),
        resource_type: None,
    })
}

/// 2026-11-30 00:00:00 UTC.
const DAY: u64 = 1_795_996_800;

/// The wall clock at `seconds` into that day (past 86,400: into the next), moving with
/// tokio's clock from there.
fn wall_at(seconds: u64) -> (Arc<SetClock>, SystemTime) {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(DAY + seconds);
    (Arc::new(SetClock::at(wall)), wall)
}

/// A record sent `age` before `wall`.
fn sent_before(id: &str, wall: SystemTime, age: Duration) -> Record<'static> {
    Record {
        sent_at: Some(wall - age),
        ..sent(id, BODY, Duration::ZERO)
    }
}

async fn daily_limited_run(at_second: u64, ttl: Duration) -> RecordOutcome {
    let (clock, wall) = wall_at(at_second);
    let mut settings = settings();
    settings.message_ttl = ttl;
    let engine = BatchEngine::new(ScriptedVoice::new(daily_limited()), settings).with_clock(clock);
    let report = engine
        .run(&[sent_before("m", wall, Duration::ZERO)], in_seconds(30))
        .await;
    report.outcomes[0].clone()
}

#[tokio::test(start_paused = true)]
async fn a_destination_at_its_daily_limit_waits_for_the_next_day_and_says_why() {
    // At 20:00 UTC, with a time to live longer than any day: the reset comes within it.
    let outcome = daily_limited_run(20 * 3_600, Duration::from_secs(2 * 86_400)).await;
    assert_eq!(outcome.fate, Fate::Transient);
    assert_eq!(
        outcome.attempts, 1,
        "not retried in place: it resets with the day"
    );
    let reason = outcome.reason.as_ref().unwrap();
    assert_eq!(
        reason.code,
        Code::Service(ServiceCode::from("ServiceQuotaExceededException"))
    );
    assert!(
        reason
            .message
            .contains("Reason: DAILY_DESTINATION_CALL_LIMIT"),
        "{reason:?}"
    );
    let wait = outcome.retry_at.unwrap() - Instant::now();
    let to_midnight = 4 * 3_600;
    assert!(
        wait.as_secs().abs_diff(to_midnight) <= 2,
        "back at the next 00:00 UTC: {wait:?} vs {to_midnight} s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_daily_limit_that_resets_after_the_time_to_live_gives_the_record_up_at_once() {
    // At noon UTC the reset is 12 h away, long after the 5 s time to live.
    let outcome = daily_limited_run(12 * 3_600, Duration::from_secs(5)).await;
    assert_eq!(
        outcome.fate,
        Fate::Expired,
        "not held back to expire unsent"
    );
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.retry_at, None);
    let reason = outcome.reason.as_ref().unwrap();
    assert_eq!(reason.code, Code::Expired);
    assert!(
        reason
            .message
            .contains("ServiceQuotaExceededException (DAILY_DESTINATION_CALL_LIMIT)")
            && reason.message.contains("time to live of 5 s"),
        "{reason:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn two_seconds_before_midnight_utc_a_daily_limit_resets_within_a_five_second_time_to_live() {
    // The run crosses midnight UTC: the reset comes 2 s in, inside the time to live.
    let outcome = daily_limited_run(86_400 - 2, Duration::from_secs(5)).await;
    assert_eq!(outcome.fate, Fate::Transient, "{outcome:?}");
    let wait = outcome.retry_at.unwrap() - Instant::now();
    assert!(wait <= Duration::from_secs(2), "{wait:?}");
}

#[tokio::test(start_paused = true)]
async fn a_body_time_to_live_longer_than_the_setting_keeps_the_record_alive() {
    let mut settings = settings();
    settings.message_ttl = Duration::from_secs(5);
    let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings);
    let records = [sent("m", BODY_TTL_10, Duration::from_secs(8))];
    let report = engine.run(&records, in_seconds(30)).await;
    assert_eq!(report.outcomes[0].fate, Fate::Sent);
}

#[tokio::test(start_paused = true)]
async fn an_error_answer_is_retried_in_place_and_a_timeout_is_not() {
    let engine = BatchEngine::new(
        ScriptedVoice::new(accepted()).first(vec![internal_error()]),
        settings(),
    );
    let report = engine
        .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
        .await;
    assert_eq!(report.outcomes[0].fate, Fate::Sent);
    assert_eq!(report.outcomes[0].attempts, 2);

    let engine = BatchEngine::new(
        ScriptedVoice::new(accepted()).first(vec![Err(SendFailure::Timeout("t".into()))]),
        settings(),
    );
    let report = engine
        .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
        .await;
    assert_eq!(
        report.outcomes[0].fate,
        Fate::Transient,
        "the call may have gone out"
    );
    assert_eq!(report.outcomes[0].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn attempts_in_place_stop_at_the_configured_number() {
    let mut settings = settings();
    settings.max_attempts = 4;
    settings.breaker.threshold = 100;
    let engine = BatchEngine::new(ScriptedVoice::new(internal_error()), settings);
    let report = engine
        .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
        .await;
    assert_eq!(report.outcomes[0].fate, Fate::Transient);
    assert_eq!(report.outcomes[0].attempts, 4);
    assert_eq!(engine.primary.sender.requests(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_wait_would_pass_the_expiry_is_not_started() {
    let mut settings = settings();
    settings.message_ttl = Duration::from_secs(10);
    // Waits before a retry are drawn from 0..=1 h: with 0.5 s left, the seeded draw
    // lands past the expiry.
    settings.retry_base = Duration::from_secs(3_600);
    settings.max_attempts = 10;
    let engine = BatchEngine::new(ScriptedVoice::new(internal_error()), settings)
        .with_draws(Draws::seeded(8));
    let record = sent("m", BODY, Duration::from_millis(9_500));
    let report = engine.run(&[record], in_seconds(600)).await;
    let outcome = &report.outcomes[0];
    assert_eq!(outcome.fate, Fate::Transient, "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(engine.primary.sender.requests(), 1);
    assert_eq!(
        outcome.reason.as_ref().unwrap().code,
        Code::Service(ServiceCode::from("InternalServiceErrorException"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_would_wait_past_expiry_is_given_up_as_expired_on_the_next_look() {
    let mut settings = settings();
    settings.message_ttl = Duration::from_secs(10);
    settings.max_attempts = 10;
    settings.breaker.threshold = 100;
    settings.attempt_timeout = Duration::from_secs(3);
    // Each attempt takes 2 s; with 5 s left, the third would start after expiry.
    let mut voice = ScriptedVoice::new(internal_error());
    voice.latency = Duration::from_secs(2);
    let engine = BatchEngine::new(voice, settings);
    let expires = Instant::now() + Duration::from_secs(5);
    let report = engine
        .run(&[sent("m", BODY, Duration::from_secs(5))], in_seconds(600))
        .await;
    let outcome = &report.outcomes[0];
    let started = engine.primary.sender.started.lock().unwrap().clone();
    assert!(started.iter().all(|at| *at < expires), "{started:?}");
    assert_eq!(outcome.fate, Fate::Expired);
    let reason = outcome.reason.as_ref().unwrap();
    assert!(
        reason
            .message
            .contains("last attempt failed with InternalServiceErrorException"),
        "{reason:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_defers_the_rest_with_its_remaining_time() {
    let mut settings = settings();
    settings.max_concurrency = 1;
    settings.max_attempts = 1;
    settings.breaker = BreakerSettings {
        threshold: 2,
        open_for: Duration::from_secs(20),
        max_open: Duration::from_secs(60),
    };
    let engine = BatchEngine::new(ScriptedVoice::new(internal_error()), settings);
    let records: Vec<Record<'_>> = (0..5)
        .map(|n| sent(&format!("m{n}"), BODY, Duration::ZERO))
        .collect();
    let start = Instant::now();
    let report = engine.run(&records, in_seconds(30)).await;
    let fates: Vec<Fate> = report.outcomes.iter().map(|o| o.fate).collect();
    assert_eq!(
        fates,
        [
            Fate::Transient,
            Fate::Transient,
            Fate::Deferred,
            Fate::Deferred,
            Fate::Deferred
        ]
    );
    assert_eq!(
        engine.primary.sender.requests(),
        2,
        "nothing sent while open"
    );
    for deferred in &report.outcomes[2..] {
        assert_eq!(deferred.reason.as_ref().unwrap().code, Code::CircuitOpen);
        // Opened at 20 ms (two 10 ms attempts); open 20 s, jitter up to 5 s.
        let after = deferred.retry_at.unwrap() - start;
        assert!(
            after >= Duration::from_millis(20_020) && after <= Duration::from_millis(25_020),
            "remaining open time plus at most a quarter of it: {after:?}"
        );
    }
    assert_eq!(
        report.circuit,
        CircuitReport {
            opened: 1,
            open_at_end: true,
            outage_at_end: true,
        }
    );

    tokio::time::advance(Duration::from_secs(20)).await;
    after_its_open_time_one_probe_closes_it(engine, &records[..2]).await;
}

/// The breaker outlives the invocation: the same instance, its service answering again, is
/// past the open time.
async fn after_its_open_time_one_probe_closes_it(
    engine: BatchEngine<ScriptedVoice>,
    records: &[Record<'_>],
) {
    let engine = BatchEngine {
        primary: Region {
            sender: ScriptedVoice::new(accepted()),
            ..engine.primary
        },
        failover: None,
        settings: engine.settings.clone(),
        ledger: None::<NoLedger>,
        tell: |_| {},
        telling: budget::Telling::default(),
        said: budget::SaidOnce::default(),
        clock: engine.clock.clone(),
        draws: Draws::seeded(1),
    };
    let report = engine.run(records, in_seconds(30)).await;
    assert!(report.outcomes.iter().all(|o| o.fate == Fate::Sent));
    assert_eq!(
        report.circuit,
        CircuitReport {
            opened: 0,
            open_at_end: false,
            outage_at_end: false,
        }
    );
}

#[tokio::test(start_paused = true)]
async fn records_that_cannot_get_a_permit_before_the_cutoff_are_deferred_to_successive_slots() {
    let mut settings = settings();
    settings.send_rate = SendRate::per_second(1.0);
    let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings);
    let records: Vec<Record<'_>> = (0..6)
        .map(|n| sent(&format!("m{n}"), BODY, Duration::ZERO))
        .collect();
    // Sends may start before 3.5 s - 0.5 s = 3 s: at 0, 1 and 2 s. The slot at 3 s and
    // those after it go to the records turned away, one period apart.
    let start = Instant::now();
    let deadline = start + Duration::from_millis(3_500);
    let report = engine.run(&records, deadline).await;
    let fates: Vec<Fate> = report.outcomes.iter().map(|o| o.fate).collect();
    assert_eq!(fates[..3], [Fate::Sent; 3]);
    assert_eq!(fates[3..], [Fate::Deferred; 3]);
    let mut slots = Vec::new();
    for outcome in &report.outcomes[3..] {
        assert_eq!(outcome.reason.as_ref().unwrap().code, Code::RateLimited);
        assert_eq!(outcome.attempts, 0, "never attempted");
        slots.push((outcome.retry_at.unwrap() - start).as_millis());
    }
    assert_eq!(slots, [3_000, 4_000, 5_000]);
    let started = engine.primary.sender.started.lock().unwrap().clone();
    let offsets: Vec<u128> = started.iter().map(|at| (*at - start).as_millis()).collect();
    assert_eq!(offsets, [0, 1_000, 2_000]);
}

#[tokio::test(start_paused = true)]
async fn a_recipient_throttled_again_while_others_go_through_keeps_the_pace_and_stops_retrying() {
    let mut settings = settings();
    settings.send_rate = SendRate::per_second(10.0);
    settings.max_attempts = 5;
    let voice = ScriptedVoice::new(accepted()).for_destination(OTHER, throttled());
    let engine = BatchEngine::new(voice, settings);
    let records = [
        sent("busy-recipient", BODY_TO_OTHER, Duration::ZERO),
        sent("a", BODY, Duration::ZERO),
        sent("b", BODY, Duration::ZERO),
    ];
    let report = engine.run(&records, in_seconds(30)).await;
    let busy = &report.outcomes[0];
    assert_eq!(busy.fate, Fate::Transient);
    assert_eq!(
        busy.attempts, 2,
        "the second throttle, after others went through, ends the retries"
    );
    assert_eq!(report.outcomes[1].fate, Fate::Sent);
    assert_eq!(
        engine.pacer().unwrap().rate(),
        SendRate::per_second(5.0).unwrap(),
        "halved once, for the first throttle only"
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttle_slows_the_pacer_and_the_record_is_retried_at_the_new_pace() {
    let mut settings = settings();
    settings.send_rate = SendRate::per_second(4.0);
    let engine = BatchEngine::new(
        ScriptedVoice::new(accepted()).first(vec![throttled()]),
        settings,
    );
    let report = engine
        .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
        .await;
    assert_eq!(report.outcomes[0].fate, Fate::Sent);
    assert_eq!(report.outcomes[0].attempts, 2);
    assert_eq!(
        engine.pacer().unwrap().rate(),
        SendRate::per_second(2.0).unwrap()
    );
    assert_eq!(
        report.circuit.opened, 0,
        "throttling does not trip the breaker"
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_cut_at_the_abandon_point_after_the_floor_counts_as_the_service_failing() {
    let mut settings = settings();
    settings.breaker.threshold = 1;
    settings.attempt_timeout = Duration::from_secs(5);
    let mut hung = ScriptedVoice::new(accepted());
    hung.latency = Duration::from_secs(60);
    let engine = BatchEngine::new(hung, settings);
    // Abandon at 2.75 s: the attempt started at 0 waited longer than the 1 s floor.
    let report = engine
        .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(3))
        .await;
    assert_eq!(report.outcomes[0].fate, Fate::Abandoned);
    assert_eq!(
        report.outcomes[0].latency,
        Duration::from_millis(2_750),
        "the attempt was given the time to the abandon point, not 5 s"
    );
    assert_eq!(report.circuit.opened, 1, "{report:?}");
    assert_eq!(
        report.outcomes[0].signal,
        Some(Signal::ServiceFailing),
        "counted in ServiceFailing too"
    );
}

/// A sender's own timeout (the SDK's connect timeout) within an attempt cut to the abandon
/// point says what the engine's timer would have said there: abandoned, the call perhaps
/// placed. Given the whole attempt timeout, the same answer is the attempt's timeout.
#[tokio::test(start_paused = true)]
async fn a_senders_timeout_within_an_attempt_cut_to_the_abandon_point_is_abandoned() {
    // One record whose send answers the connection's timeout at 2 s, attempts given 5 s.
    async fn timed_out_by(deadline: Instant) -> BatchReport {
        let mut settings = settings();
        settings.attempt_timeout = Duration::from_secs(5);
        let mut voice =
            ScriptedVoice::new(Err(SendFailure::Timeout("the connection timed out".into())));
        voice.latency = Duration::from_secs(2);
        BatchEngine::new(voice, settings)
            .run(&[sent("m", BODY, Duration::ZERO)], deadline)
            .await
    }
    // Abandon at 2.75 s, the attempt cut to it.
    let cut = timed_out_by(in_seconds(3)).await;
    assert_eq!(cut.outcomes[0].fate, Fate::Abandoned, "{cut:?}");
    assert_eq!(cut.outcomes[0].latency, Duration::from_secs(2));
    let whole = timed_out_by(in_seconds(30)).await;
    assert_ne!(whole.outcomes[0].fate, Fate::Abandoned, "{whole:?}");
    assert_eq!(
        whole.outcomes[0].reason.as_ref().map(|r| r.code.clone()),
        Some(Code::Timeout),
        "{whole:?}"
    );
}

/// Progress at any invocation length the function accepts, over the configuration space
/// the template and the README accept. The deadline arithmetic, for an invocation of
/// `L`: reserve `r = min(DEADLINE_SAFETY_MS, L / 2)`, abandon point `A = L − r / 2`, last
/// start `S = min(L − r, A − min(SEND_ATTEMPT_TIMEOUT_MS, 1 s))`.
mod progress {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    use super::*;

    #[derive(Debug, Clone)]
    struct Case {
        invocation_ms: u64,
        attempt_ms: u64,
        safety_ms: u64,
        max_attempts: u32,
        retry_base_ms: u64,
        /// Sends per second, `None`: unpaced.
        rate: Option<f64>,
        threshold: u32,
        open_seconds: u64,
        ttl_seconds: u64,
        concurrency: usize,
        records: usize,
        latency_ms: u64,
    }

    /// Edges first, then anything in the accepted range.
    fn millis(low: u64, high: u64, edges: &[u64]) -> BoxedStrategy<u64> {
        let edges: Vec<u64> = edges.to_vec();
        prop_oneof![proptest::sample::select(edges), low..=high].boxed()
    }

    fn configurations() -> impl Strategy<Value = Case> {
        (
            (
                millis(3_000, 900_000, &[3_000, 5_000, 10_000, 60_000, 900_000]),
                millis(100, 600_000, &[100, 999, 1_000, 5_000, 600_000]),
                millis(100, 600_000, &[100, 1_000, 5_000, 600_000]),
                1u32..=10,
                millis(10, 10_000, &[10, 250, 10_000]),
            ),
            (
                proptest::option::of(prop_oneof![Just(1.0 / 3_600.0), 0.001f64..=10_000.0]),
                1u32..=1_000,
                1u64..=43_200,
                millis(5, 1_209_600, &[5, 60, 3_600, 345_600]),
                prop_oneof![Just(1usize), Just(10), 1usize..=1_000],
                1usize..=40,
            ),
        )
            .prop_map(
                |(
                    (invocation_ms, attempt_ms, safety_ms, max_attempts, retry_base_ms),
                    (rate, threshold, open_seconds, ttl_seconds, concurrency, records),
                )| Case {
                    invocation_ms,
                    attempt_ms,
                    safety_ms,
                    max_attempts,
                    retry_base_ms,
                    rate,
                    threshold,
                    open_seconds,
                    ttl_seconds,
                    concurrency,
                    records,
                    latency_ms: 0,
                },
            )
    }

    /// A runner with a fixed seed: the same cases on every run.
    fn runner(cases: u32) -> TestRunner {
        TestRunner::new_with_rng(
            Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        )
    }

    /// tokio's timers fire on whole milliseconds, rounded up.
    const TICK: Duration = Duration::from_millis(1);

    struct Moments {
        /// `S` and `A`, from the start.
        last_start: Duration,
        abandon: Duration,
    }

    fn moments(case: &Case) -> Moments {
        let invocation = Duration::from_millis(case.invocation_ms);
        let reserve = Duration::from_millis(case.safety_ms).min(invocation / 2);
        let abandon = invocation - reserve / 2;
        let floor = Duration::from_millis(case.attempt_ms).min(START_FLOOR);
        Moments {
            last_start: (invocation - reserve).min(abandon.saturating_sub(floor)),
            abandon,
        }
    }

    /// Runs a fresh instance (breaker closed, pacer full) on a batch sent just now, on
    /// tokio's paused clock; also how long it took.
    fn run_case(case: &Case) -> (BatchReport, Duration) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut voice = ScriptedVoice::new(accepted());
            voice.latency = Duration::from_millis(case.latency_ms);
            let engine = BatchEngine::new(
                voice,
                EngineSettings {
                    max_concurrency: case.concurrency,
                    deadline_safety: Duration::from_millis(case.safety_ms),
                    message_ttl: Duration::from_secs(case.ttl_seconds),
                    max_attempts: case.max_attempts,
                    retry_base: Duration::from_millis(case.retry_base_ms),
                    send_rate: case.rate.and_then(SendRate::per_second),
                    breaker: BreakerSettings {
                        threshold: case.threshold,
                        open_for: Duration::from_secs(case.open_seconds),
                        ..BreakerSettings::default()
                    },
                    attempt_timeout: Duration::from_millis(case.attempt_ms),
                    ..settings()
                },
            );
            let records: Vec<Record<'static>> = (0..case.records)
                .map(|n| sent(&format!("m{n}"), BODY, Duration::ZERO))
                .collect();
            let start = Instant::now();
            let deadline = start + Duration::from_millis(case.invocation_ms);
            let report = engine.run(&records, deadline).await;
            (report, start.elapsed())
        })
    }

    fn sent_count(report: &BatchReport) -> usize {
        report
            .outcomes
            .iter()
            .filter(|o| o.fate == Fate::Sent)
            .count()
    }

    #[test]
    fn any_accepted_configuration_sends_at_least_one_record_when_calls_beat_the_floor() {
        let strategy = configurations().prop_flat_map(|case| {
            let floor_ms = case.attempt_ms.min(START_FLOOR.as_millis() as u64);
            (Just(case), 0..floor_ms).prop_map(|(case, latency_ms)| Case {
                latency_ms,
                ttl_seconds: case.ttl_seconds.max(case.invocation_ms / 1_000 + 1),
                ..case
            })
        });
        runner(300)
            .run(&strategy, |case| {
                let (report, took) = run_case(&case);
                prop_assert!(sent_count(&report) >= 1, "{case:?}: {report:?}");
                prop_assert!(took <= moments(&case).abandon + TICK, "{case:?}: {took:?}");
                for outcome in &report.outcomes {
                    let code = outcome.reason.as_ref().map(|r| r.code.word());
                    let code = code.as_deref();
                    prop_assert!(
                        outcome.fate == Fate::Sent
                            || (outcome.fate == Fate::Deferred
                                && matches!(code, Some("DeadlineReached" | "RateLimited"))),
                        "{case:?}: {outcome:?}"
                    );
                }
                Ok(())
            })
            .unwrap();
    }

    /// Unpaced, within the time to live: each of the `c` lanes sends in rounds `m = 0,
    /// 1, ...` starting at `m·d` while `m·d < S`, and a round's call counts while it
    /// ends before the abandon point and within the attempt timeout (`(m + 1)·d < A`
    /// and `d ≤ SEND_ATTEMPT_TIMEOUT_MS`); the first round that does not stops the lane.
    /// Sent: `min(n, c × R)`, `R` the rounds that count.
    #[test]
    fn where_calls_take_longer_the_number_sent_is_what_the_time_allows() {
        let strategy = configurations().prop_flat_map(|case| {
            let floor_ms = case.attempt_ms.min(START_FLOOR.as_millis() as u64);
            let invocation_ms = case.invocation_ms;
            (Just(case), floor_ms..=invocation_ms).prop_map(|(case, latency_ms)| Case {
                latency_ms,
                rate: None,
                ttl_seconds: case.ttl_seconds.max(case.invocation_ms / 1_000 + 1),
                ..case
            })
        });
        runner(300)
            .run(&strategy, |case| {
                let Moments {
                    last_start,
                    abandon,
                } = moments(&case);
                let d = Duration::from_millis(case.latency_ms);
                let mut rounds = 0usize;
                for m in 0u32.. {
                    let start = d * m;
                    // A tie between a call's end and a cutoff (within the timers' 1 ms
                    // tick) is a race on the paused clock: not a case for an exact count.
                    let near = |a: Duration, b: Duration| a.abs_diff(b) <= TICK;
                    prop_assume!(!near(start, last_start) && !near(start + d, abandon));
                    if start >= last_start
                        || start + d > abandon
                        || case.latency_ms > case.attempt_ms
                    {
                        break;
                    }
                    rounds += 1;
                }
                let expected = case.records.min(case.concurrency * rounds);
                let (report, took) = run_case(&case);
                prop_assert_eq!(sent_count(&report), expected, "{:?}", case);
                prop_assert!(took <= abandon + TICK, "{:?}: {:?}", case, took);
                Ok(())
            })
            .unwrap();
    }
}

/// A second region: an outage moves calls there and back; nothing else does.
mod failover {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory_ledger::MemoryLedger;

    const OPEN_FOR: Duration = Duration::from_secs(10);

    fn failover_settings() -> FailoverSettings {
        FailoverSettings {
            primary_region: "us-east-1".into(),
            region: "us-west-2".into(),
            origination: PhoneNumber::parse("+12065550777").ok(),
            configuration_set: None,
            send_rate: None,
        }
    }

    fn two_regions(primary: ScriptedVoice, failover: ScriptedVoice) -> BatchEngine<ScriptedVoice> {
        let settings = EngineSettings {
            max_concurrency: 1,
            breaker: BreakerSettings {
                threshold: 2,
                open_for: OPEN_FOR,
                max_open: OPEN_FOR * 4,
            },
            ..settings()
        };
        BatchEngine::new(primary, settings).with_failover(failover, failover_settings())
    }

    fn failover_of<L: Ledger>(engine: &BatchEngine<ScriptedVoice, L>) -> &ScriptedVoice {
        &engine.failover.as_ref().unwrap().region.sender
    }

    fn region_of(outcome: &RecordOutcome) -> Option<&str> {
        outcome.region.as_ref().map(|tag| &*tag.name)
    }

    fn batch(prefix: &str, n: usize) -> Vec<Record<'static>> {
        (0..n)
            .map(|i| sent(&format!("{prefix}{i}"), BODY, Duration::ZERO))
            .collect()
    }

    /// Opens `breaker` for the service failing on its side, lets a probe fail the same way,
    /// and says how long it is open now.
    async fn open_period_after_a_failed_probe(
        breaker: &crate::core::breaker::CircuitBreaker,
    ) -> Duration {
        let fail = || {
            let now = Instant::now();
            let attempt = breaker.admit(now).expect("admitted");
            breaker.observe(
                attempt,
                Some(crate::core::classify::Signal::ServiceFailing),
                now,
            );
        };
        fail();
        fail();
        let open = breaker.check(Instant::now()).unwrap_err();
        tokio::time::advance(open.remaining).await;
        fail();
        breaker.check(Instant::now()).unwrap_err().open_for
    }

    #[tokio::test(start_paused = true)]
    async fn with_failover_the_primary_is_probed_every_period_and_the_failover_region_still_doubles(
    ) {
        let engine = two_regions(
            ScriptedVoice::new(accepted()),
            ScriptedVoice::new(accepted()),
        );
        let primary = open_period_after_a_failed_probe(&engine.primary.breaker).await;
        assert_eq!(primary, OPEN_FOR, "its calls go elsewhere meanwhile");
        let failover = &engine.failover.as_ref().unwrap().region.breaker;
        assert_eq!(
            open_period_after_a_failed_probe(failover).await,
            OPEN_FOR * 2,
            "nothing carries its calls"
        );
        // Without failover the primary doubles as it always did.
        let alone = BatchEngine::new(ScriptedVoice::new(accepted()), engine.settings.clone());
        assert_eq!(
            open_period_after_a_failed_probe(&alone.primary.breaker).await,
            OPEN_FOR * 2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_moves_calls_to_the_failover_region_and_a_good_probe_brings_them_back() {
        let primary =
            ScriptedVoice::new(accepted()).first(vec![internal_error(), internal_error()]);
        let engine = two_regions(primary, ScriptedVoice::new(accepted()));
        let report = engine.run(&batch("a", 6), in_seconds(30)).await;
        assert!(report.outcomes.iter().all(|o| o.fate == Fate::Sent));
        assert_eq!(
            engine.primary.sender.requests(),
            2,
            "the breaker's threshold, no more"
        );
        assert_eq!(failover_of(&engine).requests(), 6);
        assert!(report
            .outcomes
            .iter()
            .all(|o| region_of(o) == Some("us-west-2")));
        assert_eq!(
            report.outcomes[0].attempts, 3,
            "failed twice in place (nothing placed), then moved"
        );
        // The failover region's calls come from its own number.
        assert!(failover_of(&engine)
            .originations
            .lock()
            .unwrap()
            .iter()
            .all(|o| o.as_deref() == Some("+12065550777")));
        let [primary, failover] = report.by_region().expect("failover on");
        assert_eq!(
            (primary.tried(), failover.sent),
            (0, 6),
            "a record counts where it was last tried"
        );

        // After the open period, the primary's probe succeeds and takes the calls back.
        tokio::time::advance(OPEN_FOR).await;
        let report = engine.run(&batch("b", 3), in_seconds(30)).await;
        assert!(report.outcomes.iter().all(|o| o.fate == Fate::Sent));
        assert!(report
            .outcomes
            .iter()
            .all(|o| region_of(o) == Some("us-east-1")));
        assert_eq!(failover_of(&engine).requests(), 6, "none more there");
        assert_eq!(
            engine
                .primary
                .sender
                .originations
                .lock()
                .unwrap()
                .last()
                .cloned()
                .flatten()
                .as_deref(),
            Some("+12065550199"),
            "the primary's own number again"
        );
    }

    /// Paced: the primary's next permit is a while off when its breaker turns half-open.
    /// One record takes the probe and waits for that permit; the others go on to the
    /// failover region at once, rather than queueing for primary permits they could
    /// never use (the probe is out) and moving, or being turned away, only after.
    #[tokio::test(start_paused = true)]
    async fn paced_while_the_primary_awaits_its_probe_one_record_probes_and_the_rest_move() {
        let open_for = Duration::from_secs(1);
        let settings = EngineSettings {
            max_concurrency: 4,
            // One permit every 2 s: the next comes 1 s after the breaker turns half-open.
            send_rate: SendRate::per_second(0.5),
            breaker: BreakerSettings {
                threshold: 1,
                open_for,
                max_open: open_for * 4,
            },
            ..settings()
        };
        let failover = FailoverSettings {
            send_rate: SendRate::per_second(10.0),
            ..failover_settings()
        };
        let engine = BatchEngine::new(ScriptedVoice::new(internal_error()), settings)
            .with_failover(ScriptedVoice::new(accepted()), failover);
        // One failure opens the primary's breaker (the permit spent), for 1 s.
        let first_permit = Instant::now();
        engine.run(&batch("a", 1), in_seconds(30)).await;
        tokio::time::advance(open_for).await;
        let (primary_before, failover_before) = (
            engine.primary.sender.requests(),
            failover_of(&engine).requests(),
        );
        let started = Instant::now();
        let report = engine.run(&batch("b", 4), in_seconds(30)).await;
        assert!(report.outcomes.iter().all(|o| o.fate == Fate::Sent));
        assert!(report
            .outcomes
            .iter()
            .all(|o| region_of(o) == Some("us-west-2")));
        assert_eq!(
            engine.primary.sender.requests() - primary_before,
            1,
            "one probe, which failed and moved"
        );
        assert_eq!(failover_of(&engine).requests() - failover_before, 4);
        // The probe waited for the primary's next permit, a period after the one spent
        // first; the others moved at once, at the failover region's pace, before that
        // permit; and nobody waited for a primary permit after it.
        let period = Duration::from_secs(2);
        let done = first_permit.elapsed();
        assert!(done >= period && done < period * 2, "{done:?}");
        let moved_at: Vec<Duration> = failover_of(&engine).started.lock().unwrap()
            [failover_before..failover_before + 3]
            .iter()
            .map(|at| *at - first_permit)
            .collect();
        assert!(
            moved_at.iter().all(|at| *at < period),
            "before the probe's permit: {moved_at:?}"
        );
        assert!(started.elapsed() < period, "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_in_the_primary_never_moves_calls() {
        let engine = two_regions(
            ScriptedVoice::new(throttled()),
            ScriptedVoice::new(accepted()),
        );
        let report = engine.run(&batch("t", 4), in_seconds(30)).await;
        assert_eq!(failover_of(&engine).requests(), 0);
        assert!(report
            .outcomes
            .iter()
            .all(|o| o.fate == Fate::Transient && region_of(o) == Some("us-east-1")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_resource_of_the_functions_own_opens_the_breaker_but_never_moves_calls() {
        let missing_set = Err(SendFailure::Service {
            code: Some("NotFoundException".into()),
            status: Some(404),
            message: "configuration set not found".into(),
            reason: None,
            resource_type: None,
        });
        let mut engine = two_regions(
            ScriptedVoice::new(missing_set),
            ScriptedVoice::new(accepted()),
        );
        engine.settings.defaults.configuration_set = Some("east-set".into());
        let report = engine.run(&batch("m", 4), in_seconds(30)).await;
        assert_eq!(
            failover_of(&engine).requests(),
            0,
            "a deploy error stays in sight"
        );
        assert_eq!(report.circuit.opened, 1);
        assert!(report.circuit.open_at_end);
        assert!(
            !report.circuit.outage_at_end,
            "open for the function's own setup, not an outage: ServiceOutage stays 0"
        );
        assert!(report.outcomes.iter().all(|o| o.fate != Fate::Sent));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_naming_its_own_origination_waits_for_the_primary() {
        const OWN: &str = r#"{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "+12065550111", "Content": {"PlainTextMessage": {"Text": "x"}}}"#;
        let engine = two_regions(
            ScriptedVoice::new(internal_error()),
            ScriptedVoice::new(accepted()),
        );
        let records = [
            sent("own", OWN, Duration::ZERO),
            sent("own2", OWN, Duration::ZERO),
            sent("plain", BODY, Duration::ZERO),
        ];
        let report = engine.run(&records, in_seconds(30)).await;
        assert_eq!(report.outcomes[2].fate, Fate::Sent, "the plain one moved");
        assert_eq!(region_of(&report.outcomes[2]), Some("us-west-2"));
        assert_eq!(failover_of(&engine).requests(), 1);
        for outcome in &report.outcomes[..2] {
            assert_ne!(outcome.fate, Fate::Sent);
            assert!(outcome.is_reported(), "redelivered, not lost");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn with_both_regions_failing_records_wait_as_they_do_with_one() {
        let engine = two_regions(
            ScriptedVoice::new(internal_error()),
            ScriptedVoice::new(internal_error()),
        );
        let report = engine.run(&batch("d", 5), in_seconds(30)).await;
        assert!(report
            .outcomes
            .iter()
            .all(|o| o.fate != Fate::Sent && o.is_reported()));
        let circuit_open = report
            .outcomes
            .iter()
            .filter(|o| {
                o.reason
                    .as_ref()
                    .is_some_and(|r| r.code == Code::CircuitOpen)
            })
            .count();
        assert!(
            circuit_open >= 3,
            "held back once both breakers opened: {circuit_open}"
        );
        assert!(report
            .outcomes
            .iter()
            .filter(|o| o
                .reason
                .as_ref()
                .is_some_and(|r| r.code == Code::CircuitOpen))
            .all(|o| o.retry_at.is_some()));
        assert_eq!(engine.primary.sender.requests(), 2);
        assert_eq!(
            failover_of(&engine).requests(),
            2,
            "each region its threshold"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_may_have_been_placed_never_goes_through_the_other_region() {
        let ledger = Arc::new(MemoryLedger::default());
        let mut primary = ScriptedVoice::new(accepted());
        primary.latency = Duration::from_secs(1);
        let engine =
            two_regions(primary, ScriptedVoice::new(accepted())).with_ledger(Some(ledger.clone()));
        // Every primary attempt times out (100 ms attempts): the first record's call may
        // have been placed; after two the breaker opens for a regional outage.
        let first = engine.run(&batch("p", 3), in_seconds(30)).await;
        assert_eq!(first.outcomes[0].fate, Fate::Transient);
        assert_eq!(
            first.outcomes[0].attempts, 1,
            "a timeout is not tried again in place"
        );
        assert_eq!(first.outcomes[1].attempts, 1);
        assert_eq!(
            first.outcomes[2].fate,
            Fate::Sent,
            "never tried: it may move"
        );
        assert_eq!(region_of(&first.outcomes[2]), Some("us-west-2"));
        assert_eq!(failover_of(&engine).requests(), 1);

        // Their next delivery: the ledger holds both as unknown, so they wait for the
        // primary (ON_UNKNOWN_OUTCOME=retry) instead of ringing from the other region.
        let again = engine.run(&batch("p", 2), in_seconds(30)).await;
        assert_eq!(failover_of(&engine).requests(), 1, "nothing more there");
        for outcome in &again.outcomes {
            assert_eq!(outcome.reason.as_ref().unwrap().code, Code::CircuitOpen);
        }
        // Held back, their entries still say unknown: a third delivery waits as well.
        assert_eq!(ledger.entry("p0").unwrap().status, ledger::Status::Unknown);
        let third = engine.run(&batch("p", 2), in_seconds(30)).await;
        assert_eq!(
            failover_of(&engine).requests(),
            1,
            "never through the other region"
        );
        assert!(third.outcomes.iter().all(|o| o.fate != Fate::Sent));
    }

    #[tokio::test(start_paused = true)]
    async fn with_failover_off_outcomes_and_the_report_name_no_region() {
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings());
        let report = engine.run(&batch("o", 2), in_seconds(30)).await;
        assert!(report.outcomes.iter().all(|o| o.region.is_none()));
        assert_eq!(report.regions, None);
        assert_eq!(report.by_region(), None);
    }
}

mod with_a_ledger {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory_ledger::MemoryLedger;

    fn engine(
        voice: ScriptedVoice,
        ledger: &Arc<MemoryLedger>,
        on_unknown: UnknownOutcome,
    ) -> BatchEngine<ScriptedVoice, Arc<MemoryLedger>> {
        // A slow voice gets an attempt timeout its calls fit in.
        let attempt_timeout = settings().attempt_timeout.max(voice.latency * 2);
        let settings = EngineSettings {
            on_unknown,
            attempt_timeout,
            ..settings()
        };
        BatchEngine::new(voice, settings).with_ledger(Some(ledger.clone()))
    }

    fn timeout() -> Result<SentCall, SendFailure> {
        Err(SendFailure::Timeout("attempt timed out".into()))
    }

    async fn run_one<L: Ledger>(
        engine: &BatchEngine<ScriptedVoice, L>,
        record: Record<'_>,
    ) -> RecordOutcome {
        engine
            .run(&[record], in_seconds(30))
            .await
            .outcomes
            .remove(0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_sent_call_is_recorded_and_a_redelivery_is_a_duplicate_not_called_again() {
        let ledger = Arc::new(MemoryLedger::default());
        let engine = engine(
            ScriptedVoice::new(accepted()),
            &ledger,
            UnknownOutcome::Retry,
        );
        let first = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
        assert_eq!(first.fate, Fate::Sent);
        let entry = ledger.entry("m").unwrap();
        assert_eq!(entry.status, Status::Sent);
        assert_eq!(entry.voice_message_id.as_deref(), Some("voice-1"));

        let again = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
        assert_eq!(again.fate, Fate::Duplicate);
        assert_eq!(
            again.voice_message_id.as_deref(),
            Some("voice-1"),
            "the original call"
        );
        assert!(!again.is_reported(), "SQS deletes it");
        assert_eq!(engine.primary.sender.requests(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_v2_dry_run_places_nothing_so_the_key_stays_free_for_the_real_call() {
        const DRY: &str =
            r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "hi", "DryRun": true}"#;
        let ledger = Arc::new(MemoryLedger::default());
        let mut settings = settings();
        settings.defaults.backend = crate::core::contract::Backend::V2;
        settings.defaults.v2_voices = &["JOANNA"];
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings)
            .with_ledger(Some(ledger.clone()));
        let first = run_one(&engine, sent("m", DRY, Duration::ZERO)).await;
        assert_eq!(first.fate, Fate::Sent, "the service checked it");
        assert_eq!(ledger.entry("m"), None, "released, not recorded SENT");
        let again = run_one(&engine, sent("m", DRY, Duration::ZERO)).await;
        assert_eq!(
            again.fate,
            Fate::Sent,
            "not a duplicate of a call never placed"
        );
        assert_eq!(engine.primary.sender.requests(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_that_placed_nothing_releases_the_claim_for_the_retry() {
        let ledger = Arc::new(MemoryLedger::default());
        let mut voice = ScriptedVoice::new(accepted());
        voice.then = Err(SendFailure::Service {
            code: Some("InternalServiceErrorException".into()),
            status: Some(500),
            message: "down".into(),
            reason: None,
            resource_type: None,
        });
        let engine = engine(voice, &ledger, UnknownOutcome::DeadLetter);
        let failed = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
        assert_eq!(failed.fate, Fate::Transient);
        assert_eq!(ledger.entry("m"), None, "released");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ambiguous_failure_is_unknown_and_the_policy_decides_the_next_delivery() {
        for (policy, fate, calls) in [
            (UnknownOutcome::Retry, Fate::Sent, 2),
            (UnknownOutcome::DeadLetter, Fate::Permanent, 1),
        ] {
            let ledger = Arc::new(MemoryLedger::default());
            let voice = ScriptedVoice::new(accepted()).first(vec![timeout()]);
            let engine = engine(voice, &ledger, policy);
            let first = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
            assert_eq!(first.fate, Fate::Transient);
            assert_eq!(
                first.attempts, 1,
                "a timed-out attempt is not sent again in place"
            );
            assert_eq!(ledger.entry("m").unwrap().status, Status::Unknown);

            let next = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
            assert_eq!(next.fate, fate, "{policy:?}");
            assert_eq!(engine.primary.sender.requests(), calls, "{policy:?}");
            if policy == UnknownOutcome::DeadLetter {
                assert_eq!(next.reason.unwrap().code, Code::OutcomeUnknown);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_whose_holder_died_is_an_unknown_outcome_once_its_lease_ends() {
        let ledger = Arc::new(MemoryLedger::default());
        let now_ms = epoch_ms(SystemTime::now());
        let dead_holder = Claim {
            keep: None,
            key: "m".into(),
            entry: Entry {
                status: Status::InProgress,
                body_hash: ledger::body_hash(BODY),
                claim_id: "crashed".into(),
                lease_until_ms: now_ms + 5_000,
                expiration: now_ms / 1_000 + 86_400,
                voice_message_id: None,
            },
            now_ms,
            on_unknown: UnknownOutcome::default(),
            request: Default::default(),
        };
        assert!(matches!(
            ledger.claim(&dead_holder).await,
            Ok(ClaimAnswer::Claimed { .. })
        ));
        let engine = engine(
            ScriptedVoice::new(accepted()),
            &ledger,
            UnknownOutcome::DeadLetter,
        );
        let held = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
        assert_eq!(held.fate, Fate::Deferred);
        assert_eq!(
            held.reason.as_ref().unwrap().code,
            Code::InProgressElsewhere
        );
        let back_in = held.retry_at.unwrap() - Instant::now();
        assert!(
            back_in > Duration::from_millis(4_500) && back_in <= Duration::from_secs(5),
            "when the lease ends: {back_in:?}"
        );
        assert_eq!(engine.primary.sender.requests(), 0);

        // SystemTime does not move with tokio's paused clock: lapse the lease by hand.
        let mut lapsed = dead_holder.clone();
        lapsed.entry.lease_until_ms = now_ms - 1;
        lapsed.now_ms = now_ms + 10_000;
        let _ = ledger.claim(&lapsed).await;
        let after = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
        assert_eq!(after.fate, Fate::Permanent);
        assert_eq!(after.reason.unwrap().code, Code::OutcomeUnknown);
        assert_eq!(
            engine.primary.sender.requests(),
            0,
            "at most once: never called"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_reused_for_another_body_is_never_called() {
        let ledger = Arc::new(MemoryLedger::default());
        let engine = engine(
            ScriptedVoice::new(accepted()),
            &ledger,
            UnknownOutcome::Retry,
        );
        let mut first = sent("m1", BODY, Duration::ZERO);
        first.idempotency_key = "order-42".into();
        let mut other = sent("m2", BODY_TO_OTHER, Duration::ZERO);
        other.idempotency_key = "order-42".into();
        assert_eq!(run_one(&engine, first).await.fate, Fate::Sent);
        let reused = run_one(&engine, other).await;
        assert_eq!(reused.fate, Fate::Permanent);
        assert_eq!(reused.reason.unwrap().code, Code::IdempotencyKeyReused);
        assert_eq!(engine.primary.sender.requests(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_sent_unrecorded_when_the_ledger_is_down() {
        let ledger = Arc::new(MemoryLedger::default());
        ledger.set_down(true);
        let engine = engine(
            ScriptedVoice::new(accepted()),
            &ledger,
            UnknownOutcome::Retry,
        );
        let outcome = run_one(&engine, sent("m", BODY, Duration::ZERO)).await;
        assert_eq!(outcome.fate, Fate::Transient);
        assert_eq!(outcome.reason.unwrap().code, Code::LedgerUnavailable);
        assert_eq!(engine.primary.sender.requests(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn two_instances_racing_for_one_key_place_one_call() {
        let ledger = Arc::new(MemoryLedger::default());
        let mut slow = ScriptedVoice::new(accepted());
        slow.latency = Duration::from_secs(2);
        let a = engine(slow, &ledger, UnknownOutcome::Retry);
        let b = engine(
            ScriptedVoice::new(accepted()),
            &ledger,
            UnknownOutcome::Retry,
        );
        let (from_a, from_b) = tokio::join!(
            run_one(&a, sent("m", BODY, Duration::ZERO)),
            run_one(&b, sent("m", BODY, Duration::ZERO)),
        );
        let mut fates = [from_a.fate, from_b.fate];
        fates.sort_by_key(|fate| fate.as_str());
        assert_eq!(fates, [Fate::Deferred, Fate::Sent]);
        assert_eq!(a.primary.sender.requests() + b.primary.sender.requests(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_abandoned_at_the_deadline_is_abandoned_and_unknown() {
        let ledger = Arc::new(MemoryLedger::default());
        let mut stuck = ScriptedVoice::new(accepted());
        stuck.latency = Duration::from_secs(60);
        let engine = engine(stuck, &ledger, UnknownOutcome::Retry);
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(2))
            .await;
        let outcome = &report.outcomes[0];
        assert_eq!(outcome.fate, Fate::Abandoned);
        assert!(outcome.is_reported());
        assert_eq!(ledger.entry("m").unwrap().status, Status::Unknown);
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_never_attempted_releases_its_claim() {
        let ledger = Arc::new(MemoryLedger::default());
        let mut settings = settings();
        settings.send_rate = SendRate::per_second(1.0);
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings)
            .with_ledger(Some(ledger.clone()));
        let records = [
            sent("first", BODY, Duration::ZERO),
            sent("second", BODY, Duration::ZERO),
        ];
        // Sends may start until 0.9 s - 0.5 s: only the first.
        let report = engine
            .run(&records, Instant::now() + Duration::from_millis(900))
            .await;
        assert_eq!(report.outcomes[1].fate, Fate::Deferred);
        assert_eq!(
            ledger.entry("second"),
            None,
            "released: its retry can claim it"
        );
    }

    /// A ledger whose claim holds a large local across its await, as an SDK request held
    /// inline would.
    struct BulkyClaims(MemoryLedger);

    const BALLAST: usize = 16 * 1024;

    impl Ledger for BulkyClaims {
        async fn claim(&self, claim: &Claim) -> Result<ClaimAnswer, crate::core::ports::PortError> {
            let ballast = [1u8; BALLAST];
            tokio::task::yield_now().await;
            std::hint::black_box(&ballast);
            self.0.claim(claim).await
        }

        fn finish(
            &self,
            claim: &Claim,
            last: &crate::core::ledger::Finish,
        ) -> impl std::future::Future<Output = Result<(), crate::core::ports::PortError>> + Send
        {
            self.0.finish(claim, last)
        }
    }

    /// The batch moves each record's future whole into its slot, and holds one for each
    /// record in flight: the ledger's claim, taken on one path of several (and on the rare
    /// expired one), is on the heap rather than sizing every record's future, ledger or not.
    #[tokio::test(start_paused = true)]
    async fn a_ledgers_claim_never_sizes_a_records_future() {
        let records = [sent("m1", BODY, Duration::ZERO)];
        let now = Instant::now();
        let cutoffs = Cutoffs::new(
            in_seconds(30),
            Duration::from_secs(2),
            Duration::from_secs(1),
            now,
        );
        let plain = BatchEngine::new(ScriptedVoice::new(accepted()), settings())
            .with_ledger(Some(MemoryLedger::default()));
        let plain = std::mem::size_of_val(&plain.run_lane(vec![0], &records, cutoffs));
        let bulky = BatchEngine::new(ScriptedVoice::new(accepted()), settings())
            .with_ledger(Some(BulkyClaims(MemoryLedger::default())));
        let lane = bulky.run_lane(vec![0], &records, cutoffs);
        let size = std::mem::size_of_val(&lane);
        assert!(
            size <= plain + 64,
            "a record's future is {size} bytes with a {BALLAST}-byte local in the claim, \
             {plain} without: it holds the claim inline"
        );
        // The claim still runs: the record is claimed and sent.
        let finished = lane.await;
        assert_eq!(finished[0].1.fate, Fate::Sent);
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_id_twice_in_one_batch_is_sent_once_and_both_share_the_outcome() {
    let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings());
    let records = [
        sent("m", BODY, Duration::ZERO),
        sent("n", BODY_TO_OTHER, Duration::ZERO),
        sent("m", BODY, Duration::ZERO),
    ];
    let report = engine.run(&records, in_seconds(30)).await;
    assert_eq!(engine.primary.sender.requests(), 2);
    assert_eq!(report.outcomes[0].fate, Fate::Sent);
    assert_eq!(report.outcomes[2].fate, Fate::Sent);
    assert_eq!(
        report.outcomes[2].voice_message_id,
        report.outcomes[0].voice_message_id
    );
}

#[test]
fn cutoffs_keep_the_reserve_before_the_deadline() {
    let now = Instant::now();
    let deadline = now + Duration::from_secs(10);
    let cutoffs = Cutoffs::new(
        deadline,
        Duration::from_millis(1_000),
        Duration::from_millis(200),
        now,
    );
    assert_eq!(deadline - cutoffs.last_start, Duration::from_millis(1_000));
    assert_eq!(deadline - cutoffs.abandon, Duration::from_millis(500));
    assert_eq!(deadline - cutoffs.record_by, Duration::from_millis(375));
}

#[test]
fn a_send_starts_while_the_start_floor_fits_before_the_abandon_cutoff() {
    let now = Instant::now();
    let deadline = now + Duration::from_secs(10);
    let cutoffs = Cutoffs::new(
        deadline,
        Duration::from_millis(1_000),
        Duration::from_secs(3),
        now,
    );
    assert_eq!(
        deadline - cutoffs.last_start,
        Duration::from_millis(1_500),
        "abandon at 9.5 s minus the 1 s floor, not minus the whole 3 s attempt"
    );
    // An attempt timeout under the floor is its own floor.
    let short = Cutoffs::new(
        deadline,
        Duration::from_millis(200),
        Duration::from_millis(300),
        now,
    );
    assert_eq!(deadline - short.abandon, Duration::from_millis(100));
    assert_eq!(deadline - short.last_start, Duration::from_millis(400));
}

#[test]
fn lambdas_default_three_seconds_with_the_default_settings_leave_time_to_start() {
    let now = Instant::now();
    let defaults = EngineSettings::default();
    let deadline = now + Duration::from_secs(3);
    let cutoffs = Cutoffs::new(
        deadline,
        defaults.deadline_safety,
        defaults.attempt_timeout,
        now,
    );
    // Abandon at 2.5 s; starts until 1.5 s; an attempt at 1.2 s gets 1.3 s, cut to the
    // abandon point; one at the start gets 2.5 s, not the configured 5 s.
    assert_eq!(cutoffs.last_start - now, Duration::from_millis(1_500));
    assert_eq!(
        cutoffs.attempt_limit(defaults.attempt_timeout, now + Duration::from_millis(1_200)),
        (Duration::from_millis(1_300), true)
    );
    assert_eq!(
        cutoffs.attempt_limit(defaults.attempt_timeout, now),
        (Duration::from_millis(2_500), true)
    );
    let long = Cutoffs::new(
        now + Duration::from_secs(60),
        defaults.deadline_safety,
        defaults.attempt_timeout,
        now,
    );
    assert_eq!(
        long.attempt_limit(defaults.attempt_timeout, now),
        (defaults.attempt_timeout, false)
    );
}

/// A panic in a record's processing, before and after its send started, with the ledger.
mod panics {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory_ledger::MemoryLedger;

    /// Where a planted bug fires.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Bug {
        /// While building the `n`th request (1-based), before handing back its future.
        Building(usize),
        /// After the service's answer to the first request came back.
        AfterAnswer,
    }

    /// A scripted voice with a planted bug.
    struct Buggy {
        voice: ScriptedVoice,
        bug: Bug,
        built: AtomicUsize,
    }

    impl VoiceSender for Buggy {
        fn send(
            &self,
            message: &VoiceMessage,
        ) -> impl std::future::Future<Output = Result<SentCall, SendFailure>> + Send {
            let n = self.built.fetch_add(1, Ordering::SeqCst) + 1;
            if self.bug == Bug::Building(n) {
                panic!("bug while building request {n}");
            }
            let answer = self.voice.send(message);
            let after = self.bug == Bug::AfterAnswer;
            async move {
                let answer = answer.await;
                if after {
                    panic!("bug after the answer");
                }
                answer
            }
        }
    }

    async fn run(
        voice: ScriptedVoice,
        bug: Bug,
        ledger: &Arc<MemoryLedger>,
    ) -> (RecordOutcome, usize) {
        let buggy = Buggy {
            voice,
            bug,
            built: AtomicUsize::new(0),
        };
        let engine = BatchEngine::new(buggy, settings()).with_ledger(Some(ledger.clone()));
        let report = engine
            .run(&[sent("m", BODY, Duration::ZERO)], in_seconds(30))
            .await;
        let requests = engine.primary.sender.voice.requests();
        (report.outcomes[0].clone(), requests)
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_while_the_first_request_is_built_is_transient_and_releases_the_claim() {
        let ledger = Arc::new(MemoryLedger::default());
        let (outcome, requests) =
            run(ScriptedVoice::new(accepted()), Bug::Building(1), &ledger).await;
        assert_eq!(outcome.fate, Fate::Transient, "{outcome:?}");
        assert_eq!(outcome.reason.as_ref().unwrap().code, Code::Panic);
        assert_eq!(requests, 0);
        assert_eq!(
            ledger.entry("m"),
            None,
            "released: the next delivery may call"
        );
        assert!(
            outcome.destination.is_some(),
            "the line names the masked destination"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_after_a_send_that_placed_nothing_is_still_before_the_send() {
        // Throttled (certainly placed nothing), retried in place, and the retry's request
        // panics while it is built: nothing was ever placed.
        let ledger = Arc::new(MemoryLedger::default());
        let voice = ScriptedVoice::new(accepted()).first(vec![throttled()]);
        let (outcome, requests) = run(voice, Bug::Building(2), &ledger).await;
        assert_eq!(requests, 1);
        assert_eq!(outcome.fate, Fate::Transient, "{outcome:?}");
        assert_eq!(ledger.entry("m"), None, "released, not unknown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_after_the_answer_is_abandoned_and_recorded_unknown() {
        let ledger = Arc::new(MemoryLedger::default());
        let (outcome, requests) =
            run(ScriptedVoice::new(accepted()), Bug::AfterAnswer, &ledger).await;
        assert_eq!(requests, 1);
        assert_eq!(outcome.fate, Fate::Abandoned, "{outcome:?}");
        assert_eq!(outcome.reason.as_ref().unwrap().code, Code::Panic);
        assert_eq!(outcome.attempts, 1, "the call counts as an attempt");
        assert!(outcome.destination.is_some());
        assert!(
            outcome.expires_at.is_some(),
            "its expiry spreads its last receives"
        );
        let entry = ledger.entry("m").expect("recorded");
        assert_eq!(entry.status, ledger::Status::Unknown);
    }
}

#[tokio::test(start_paused = true)]
async fn a_redriven_letter_counts_its_time_to_live_from_the_requests_first_send() {
    let settings = settings();
    let ttl = settings.message_ttl;
    let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings);
    // Redriven just now, first sent a time to live and a minute ago.
    let redriven = Record {
        first_sent_at: Some(SystemTime::now() - ttl - Duration::from_secs(60)),
        ..sent("late", BODY, Duration::ZERO)
    };
    // Alive by its SentTimestamp, a first send later than that extends nothing.
    let extended = Record {
        first_sent_at: Some(SystemTime::now() + ttl),
        ..sent("alive", BODY, ttl - Duration::from_secs(60))
    };
    let report = engine.run(&[redriven, extended], in_seconds(30)).await;
    assert_eq!(report.outcomes[0].fate, Fate::Expired);
    assert_eq!(report.outcomes[1].fate, Fate::Sent);
    assert_eq!(
        engine.primary.sender.requests(),
        1,
        "the late one never called"
    );
    let left = report.outcomes[1].expires_at.unwrap() - Instant::now();
    assert!(
        left <= Duration::from_secs(60),
        "its SentTimestamp counts: {left:?}"
    );
}

/// Redial in the call path: the body kept for it, a redial kept until its time, the daily
/// limit ending it, and a message's own `Redial` without the means to redial.
mod redial {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory_ledger::MemoryLedger;
    use crate::core::ledger::Finish;
    use crate::core::ports::OutcomeLedger;
    use crate::core::redial::{CallOf, RedialOn};

    const ASKING: &str = r#"{"DestinationPhoneNumber": "+12065550142", "Redial": {"On": ["BUSY"], "MaxCalls": 2}, "Content": {"PlainTextMessage": {"Text": "Disk full"}}}"#;

    fn policy() -> RedialPolicy {
        RedialPolicy {
            on: vec![RedialOn::NoAnswer],
            max_calls: 3,
            interval: Duration::from_secs(120),
        }
    }

    fn engine(
        voice: ScriptedVoice,
        ledger: &Arc<MemoryLedger>,
    ) -> BatchEngine<ScriptedVoice, Arc<MemoryLedger>> {
        let settings = EngineSettings {
            redial: Some(policy()),
            ..settings()
        };
        BatchEngine::new(voice, settings).with_ledger(Some(Arc::clone(ledger)))
    }

    fn redial_of(call: u8, at_ms: Option<u64>) -> Record<'static> {
        Record {
            redial: Some(CallOf {
                call,
                request_key: "order-42",
                at_ms,
            }),
            ..sent("redial-sqs", BODY, Duration::ZERO)
        }
    }

    /// The request `order-42` placed with `body` kept for a redial, and its call 2 queued by
    /// the status path.
    async fn requested(ledger: &MemoryLedger, body: &str) {
        let now_ms = epoch_ms(SystemTime::now());
        let claim = Claim {
            key: "order-42".into(),
            entry: Entry {
                status: Status::InProgress,
                body_hash: ledger::body_hash(body),
                claim_id: "first".into(),
                lease_until_ms: now_ms + 60_000,
                expiration: now_ms / 1_000 + 86_400,
                voice_message_id: None,
            },
            now_ms,
            on_unknown: UnknownOutcome::Retry,
            request: ledger::RequestIds::default(),
            keep: Some(Keep {
                body: body.to_owned(),
                policy: policy(),
                first_sent_ms: now_ms,
                ttl: Duration::from_secs(3_600),
            }),
        };
        ledger.claim(&claim).await.unwrap();
        let sent = Finish::Sent {
            voice_message_id: Some("voice-1".into()),
            region: None,
        };
        ledger.finish(&claim, &sent).await.unwrap();
        assert!(ledger.mark_redial("order-42", 2).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_call_keeps_its_body_and_policy_and_a_redial_claims_its_own_key() {
        let ledger = Arc::new(MemoryLedger::default());
        let engine = engine(ScriptedVoice::new(accepted()), &ledger);
        let first = Record {
            idempotency_key: "order-42".into(),
            ..sent("sqs-1", ASKING, Duration::from_secs(5))
        };
        let report = engine.run(&[first], in_seconds(30)).await;
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
        let kept = ledger
            .request("order-42")
            .await
            .unwrap()
            .unwrap()
            .keep
            .unwrap();
        assert_eq!(kept.body, ASKING);
        assert_eq!(
            kept.policy,
            RedialPolicy {
                on: vec![RedialOn::Busy],
                max_calls: 2,
                interval: Duration::from_secs(120),
            },
            "the message's own over the function's"
        );
        assert_eq!(kept.ttl, Duration::from_secs(3_600));
        assert!(ledger.mark_redial("order-42", 2).await.unwrap());
        let second = Record {
            body: Some(ASKING),
            ..redial_of(2, None)
        };
        let report = engine
            .run(std::slice::from_ref(&second), in_seconds(30))
            .await;
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
        let entry = ledger.entry("redial#2#order-42").unwrap();
        assert_eq!(entry.status, Status::Sent);
        assert_eq!(
            ledger
                .request("redial#2#order-42")
                .await
                .unwrap()
                .unwrap()
                .keep,
            None,
            "the body is kept once, with the request"
        );
        // The same redial delivered again: its own key stands, no second call.
        let again = engine.run(&[second], in_seconds(30)).await;
        assert_eq!(again.outcomes[0].fate, Fate::Duplicate);
        assert_eq!(engine.primary.sender.started.lock().unwrap().len(), 2);
    }

    /// The request's outcome fixed at the end of call `call`.
    fn fixing(call: u8) -> crate::core::delivery::Fix<'static> {
        crate::core::delivery::Fix {
            outcome_key: "order-42",
            unplaced: None,
            outcome: crate::core::delivery::Outcome::Unknown,
            detail: "{}".into(),
            expiration: u64::MAX / 1_000,
            publishing_until_ms: 0,
            now_ms: 0,
            guard: Some(crate::core::delivery::Guard {
                request_key: "order-42",
                call,
                queued_body: None,
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_redial_its_request_no_longer_wants_is_never_called() {
        let ledger = Arc::new(MemoryLedger::default());
        let engine = engine(ScriptedVoice::new(accepted()), &ledger);
        requested(&ledger, BODY).await;
        let not_wanted = |record: Record<'static>, why: &str| {
            let engine = &engine;
            let why = why.to_owned();
            async move {
                let report = engine
                    .run(std::slice::from_ref(&record), in_seconds(30))
                    .await;
                let outcome = &report.outcomes[0];
                assert_eq!(outcome.fate, Fate::Duplicate, "{why}");
                assert_eq!(
                    outcome.reason.as_ref().unwrap().code,
                    Code::RedialNotDue,
                    "{why}"
                );
                assert_eq!(
                    crate::core::outcome_timer::plan(outcome, &record),
                    None,
                    "{why}: no timer for a call that is not the request's"
                );
            }
        };
        // Another body under the request's key (a producer setting the reserved attributes).
        not_wanted(
            Record {
                body: Some(BODY_TO_OTHER),
                ..redial_of(2, None)
            },
            "another body",
        )
        .await;
        not_wanted(redial_of(3, None), "a call not queued").await;
        // The outcome fixed (the body removed with it): a late copy of the redial. Call 1's
        // end cannot fix it while call 2 is queued.
        use crate::core::delivery::Fixed;
        assert_eq!(ledger.fix(&fixing(1)).await.unwrap(), Fixed::Superseded);
        assert_eq!(ledger.fix(&fixing(2)).await.unwrap(), Fixed::Written);
        not_wanted(redial_of(2, None), "the outcome fixed").await;
        assert!(engine.primary.sender.started.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_redial_received_before_its_time_is_kept_until_then_never_called_early() {
        let ledger = Arc::new(MemoryLedger::default());
        let voice = ScriptedVoice::new(accepted());
        let engine = engine(voice, &ledger);
        let at_ms = epoch_ms(SystemTime::now()) + 1_800_000;
        let report = engine
            .run(&[redial_of(2, Some(at_ms))], in_seconds(30))
            .await;
        let outcome = &report.outcomes[0];
        assert_eq!(outcome.fate, Fate::Deferred);
        assert_eq!(outcome.reason.as_ref().unwrap().code, Code::RedialScheduled);
        let wait = outcome.retry_at.unwrap() - Instant::now();
        assert!(
            (Duration::from_secs(1_799)..=Duration::from_secs(1_800)).contains(&wait),
            "{wait:?}"
        );
        assert_eq!(outcome.attempts, 0);
        assert!(
            ledger.entry("redial#2#order-42").is_none(),
            "not even claimed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_redial_refused_for_the_daily_limit_ends_without_waiting_for_the_next_day() {
        let ledger = Arc::new(MemoryLedger::default());
        let engine = engine(ScriptedVoice::new(daily_limited()), &ledger);
        requested(&ledger, BODY).await;
        let report = engine.run(&[redial_of(2, None)], in_seconds(30)).await;
        let outcome = &report.outcomes[0];
        assert_eq!(outcome.fate, Fate::Permanent);
        assert_eq!(outcome.reason.as_ref().unwrap().code, Code::DailyLimit);
        assert_eq!(outcome.retry_at, None);
        // A first call at the same limit still waits for the next day, as before.
        let first = engine
            .run(&[sent("first", BODY, Duration::ZERO)], in_seconds(30))
            .await;
        assert_ne!(
            first.outcomes[0].reason.as_ref().unwrap().code,
            Code::DailyLimit
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_asking_for_redial_without_the_ledger_is_called_once_and_counted() {
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings());
        let report = engine
            .run(
                &[
                    sent("asks", ASKING, Duration::ZERO),
                    sent("plain", BODY, Duration::ZERO),
                ],
                in_seconds(30),
            )
            .await;
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
        assert!(report.outcomes[0].redial_unavailable);
        assert!(!report.outcomes[1].redial_unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn under_v1_a_redial_throttled_again_while_others_go_through_ends_at_the_recipients_limit(
    ) {
        // v1 names no daily limit: the engine reads a throttle repeated while other calls
        // go through as the recipient's own limit.
        let ledger = Arc::new(MemoryLedger::default());
        let settings = EngineSettings {
            redial: Some(policy()),
            send_rate: SendRate::per_second(10.0),
            max_attempts: 5,
            ..settings()
        };
        let voice = ScriptedVoice::new(accepted()).for_destination(OTHER, throttled());
        let engine = BatchEngine::new(voice, settings).with_ledger(Some(Arc::clone(&ledger)));
        requested(&ledger, BODY_TO_OTHER).await;
        let redial = Record {
            body: Some(BODY_TO_OTHER),
            ..redial_of(2, None)
        };
        let records = [
            redial,
            sent("a", BODY, Duration::ZERO),
            sent("b", BODY, Duration::ZERO),
        ];
        let report = engine.run(&records, in_seconds(30)).await;
        let limited = &report.outcomes[0];
        assert_eq!(limited.fate, Fate::Permanent);
        assert_eq!(limited.reason.as_ref().unwrap().code, Code::DailyLimit);
        assert_eq!(limited.attempts, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_redial_its_request_no_longer_wants_is_not_dead_lettered() {
        let ledger = Arc::new(MemoryLedger::default());
        let engine = engine(ScriptedVoice::new(accepted()), &ledger);
        requested(&ledger, BODY).await;
        let late = Record {
            sent_at: Some(SystemTime::now() - Duration::from_secs(7_200)),
            ..redial_of(3, None)
        };
        let report = engine.run(&[late], in_seconds(30)).await;
        assert_eq!(report.outcomes[0].fate, Fate::Duplicate);
        assert_eq!(
            report.outcomes[0].reason.as_ref().unwrap().code,
            Code::RedialNotDue
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_whose_life_outlasts_the_ledger_is_called_once_not_kept() {
        let ledger = Arc::new(MemoryLedger::default());
        let settings = EngineSettings {
            redial: Some(policy()),
            ledger_ttl: Duration::from_secs(7_200),
            outcome_wait: Duration::from_secs(3_600),
            ..settings()
        };
        let engine = BatchEngine::new(ScriptedVoice::new(accepted()), settings)
            .with_ledger(Some(Arc::clone(&ledger)));
        // 3,601 s + 3,600 s of wait > 7,200 s of ledger.
        let long = r#"{"DestinationPhoneNumber": "+12065550142", "TimeToLive": 3601, "Redial": {"On": ["BUSY"], "MaxCalls": 2}, "Content": {"PlainTextMessage": {"Text": "Disk full"}}}"#;
        let first = Record {
            idempotency_key: "order-42".into(),
            ..sent("sqs-1", long, Duration::ZERO)
        };
        let report = engine.run(&[first], in_seconds(30)).await;
        assert_eq!(report.outcomes[0].fate, Fate::Sent);
        assert!(report.outcomes[0].redial_unavailable);
        assert_eq!(
            ledger.request("order-42").await.unwrap().unwrap().keep,
            None
        );
    }
}
