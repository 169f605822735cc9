//! FIFO queues: order per message group, a failure holding back the rest of its group, and
//! different groups in parallel.

use std::time::Duration;

use voice_dispatch::core::report::Fate;
use voice_fake::{Behaviour, Script};

use crate::support::*;

const ALICE: &str = "+12065550001";
const BOB: &str = "+12065550002";
const BROKEN: &str = "+12065550003";
const CAROL: &str = "+12065550004";

fn texts_to(harness: &Harness, destination: &str) -> Vec<String> {
    harness
        .fake
        .calls_to(destination)
        .into_iter()
        .filter(|call| call.accepted())
        .map(|call| call.text)
        .collect()
}

#[tokio::test]
async fn records_of_a_group_are_sent_in_order() {
    let harness = Harness::start(Script::default().with_latency(Duration::from_millis(5))).await;
    let mut records = Vec::new();
    for n in 1..=6 {
        records.push(fifo_record(
            &format!("a{n}"),
            "alice",
            &body(ALICE, &format!("a{n}")),
        ));
        records.push(fifo_record(
            &format!("b{n}"),
            "bob",
            &body(BOB, &format!("b{n}")),
        ));
    }
    let report = harness.run(&event(records)).await;
    assert!(reported(&report).is_empty());
    assert_eq!(
        texts_to(&harness, ALICE),
        ["a1", "a2", "a3", "a4", "a5", "a6"]
    );
    assert_eq!(
        texts_to(&harness, BOB),
        ["b1", "b2", "b3", "b4", "b5", "b6"]
    );
}

#[tokio::test]
async fn after_a_transient_failure_the_rest_of_its_group_is_failed_unsent() {
    let harness = Harness::start(Script::default().with(
        BROKEN,
        Behaviour::fail(500, "InternalServiceErrorException"),
    ))
    .await;
    let report = harness
        .run(&event(vec![
            fifo_record("a1", "alice", &body(ALICE, "a1")),
            fifo_record("a2", "alice", &body(BROKEN, "a2")),
            fifo_record("b1", "bob", &body(BOB, "b1")),
            fifo_record("a3", "alice", &body(ALICE, "a3")),
            fifo_record("b2", "bob", &body(BOB, "b2")),
            fifo_record("a4", "alice", &body(ALICE, "a4")),
        ]))
        .await;
    assert_eq!(fate(&report, "a1"), Fate::Sent);
    assert_eq!(fate(&report, "a2"), Fate::Transient);
    for later in ["a3", "a4"] {
        assert_eq!(fate(&report, later), Fate::Deferred, "{later}");
        assert_eq!(
            error_code(&report, later).as_deref(),
            Some("EarlierRecordInGroupFailed")
        );
    }
    assert_eq!(reported(&report), ["a2", "a3", "a4"]);
    assert_eq!(
        texts_to(&harness, ALICE),
        ["a1"],
        "nothing after the failure was sent"
    );
    assert_eq!(
        texts_to(&harness, BOB),
        ["b1", "b2"],
        "other groups are not held back"
    );
}

#[tokio::test]
async fn a_permanent_failure_does_not_hold_back_its_group() {
    // A record that can never be sent gains nothing from waiting, and holding its group
    // back would stall every later message behind it until redrive.
    let harness = Harness::start(Script::default()).await;
    let report = harness
        .run(&event(vec![
            fifo_record("a1", "alice", &body(ALICE, "a1")),
            fifo_record("a2", "alice", "not json"),
            fifo_record("a3", "alice", &body(ALICE, "a3")),
        ]))
        .await;
    assert_eq!(fate(&report, "a2"), Fate::Permanent);
    assert_eq!(reported(&report), ["a2"]);
    assert_eq!(texts_to(&harness, ALICE), ["a1", "a3"]);
}

#[tokio::test]
async fn groups_run_concurrently_but_each_group_one_at_a_time() {
    let harness = Harness::start(Script::default().with_latency(Duration::from_millis(60))).await;
    let mut records = Vec::new();
    for n in 1..=4 {
        for (group, dest) in [("alice", ALICE), ("bob", BOB), ("carol", CAROL)] {
            records.push(fifo_record(&format!("{group}{n}"), group, &body(dest, "x")));
        }
    }
    let report = harness.run(&event(records)).await;
    assert_eq!(report.counts().sent, 12);
    assert_eq!(
        harness.fake.max_in_flight(),
        3,
        "one send per group at a time, all groups at once"
    );
}
