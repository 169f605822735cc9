//! What the release bootstrap (in CI) loads to run: glibc and the unwinder, not glibc's
//! `libm.so.6`. The one C math function the binary calls (`pow`, in the AWS SDK's standard
//! retry strategy) is its own (`src/link.rs`): one shared library fewer to open, map and
//! relocate at every cold start.

use std::time::Duration;

use crate::support::process::one_invocation;
use crate::support::{body, record};

#[tokio::test]
async fn the_bootstrap_places_a_call_without_mapping_glibcs_libm() {
    let run = one_invocation(
        &[],
        vec![record("m1", Some(&body("+12065550101", "hello")))],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(run.answer["batchItemFailures"], serde_json::json!([]));
    assert_eq!(run.calls, 1, "the call was placed");
    assert!(
        run.mapped.iter().any(|file| file.contains("/libc.so")),
        "the maps were read: {:?}",
        run.mapped
    );
    assert!(
        !run.mapped.iter().any(|file| file.contains("/libm.so")),
        "libm is not loaded: {:?}",
        run.mapped
    );
}
