//! The sample events in `events/` and the fake's scripts, read one way for every test.

use std::path::{Path, PathBuf};

use aws_lambda_events::sqs::SqsEvent;

pub fn events_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/events"))
}

/// An event file's text, as stored.
pub fn read(name: &str) -> String {
    std::fs::read_to_string(events_dir().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// An event file with its records stamped as sent now (see [`super::sent_now`]).
pub fn sent_now(name: &str) -> SqsEvent {
    serde_json::from_str(&super::sent_now(&read(name))).expect("an SQS event")
}

/// A copy of an event file stamped as sent now, for tools that read a file.
pub fn sent_now_copy(name: &str) -> PathBuf {
    let copy = std::env::temp_dir().join(format!("voice-dispatch-{}-{name}", std::process::id()));
    std::fs::write(&copy, super::sent_now(&read(name))).expect("a temporary copy");
    copy
}

/// The voice fake's script that answers the mixed batch row by row.
pub fn mixed_batch_script() -> voice_fake::Script {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/voice-fake/scripts/mixed-batch.json"
    ))
    .expect("the fake's script");
    voice_fake::Script::from_json(&script).expect("a valid script")
}

/// The message ids of an event file, in order.
pub fn ids(name: &str) -> Vec<String> {
    sent_now(name)
        .records
        .iter()
        .map(|record| record.message_id.clone().unwrap_or_default())
        .collect()
}

/// What `batchItemFailures` holds for each sample event against the mixed-batch script, with
/// no dead-letter queue: the mixed batch's first two are sent and the rest reported; every
/// hostile body but the last, valid one is reported; the others are all sent.
pub fn expected_failures(name: &str) -> Vec<String> {
    let ids = ids(name);
    match name {
        "mixed-batch.json" => ids[2..].to_vec(),
        "hostile-bodies.json" => ids[..ids.len() - 1].to_vec(),
        _ => Vec::new(),
    }
}
