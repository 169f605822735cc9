//! How the release bootstrap (in CI) is linked, for its cold start: the code a cold start
//! runs placed together (`link/hot-text.ld`), and glibc and the unwinder loaded, not glibc's
//! `libm.so.6`: the one C math function the binary calls (`pow`: the AWS SDK's adaptive
//! retry rate limiter, tokio's poll-time statistics) is its own (`src/link.rs`), one shared library fewer to open, map and
//! relocate at every cold start.

use std::time::Duration;

use crate::support::process::one_invocation;
use crate::support::{body, record};

#[cfg(target_os = "linux")]
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

/// The size of the section `name` of the ELF file at `path`.
fn section_size(path: &std::path::Path, name: &str) -> Option<u64> {
    use object::{Object, ObjectSection};
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    file.section_by_name(name).map(|section| section.size())
}

/// What `make hot-layout` found each profiled build to run at a cold start, in bytes of code
/// (the `run:` lines of the layout's header).
fn profiled_bytes(layout: &str) -> Vec<u64> {
    layout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("run: "))
        .filter_map(|run| run.split(", ").nth(1)?.strip_suffix(" bytes")?.parse().ok())
        .collect()
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn the_release_bootstraps_startup_code_is_laid_out_together() {
    let layout = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/hot-text.ld"),
    )
    .expect("link/hot-text.ld");
    let profiled = profiled_bytes(&layout);
    assert_eq!(
        profiled.len(),
        2,
        "a run of each release build: {profiled:?}"
    );
    if std::env::var_os("BOOTSTRAP").is_none() {
        // The layout is linked into release builds only, and names their functions: the
        // bootstrap `cargo test` builds is another build. CI sets BOOTSTRAP to what `sam
        // build` made.
        return;
    }
    let bootstrap = crate::emulator::bootstrap();
    let hot = section_size(&bootstrap, ".text.hot");
    assert!(
        hot.is_some(),
        "{} has no .text.hot: the layout was not linked in",
        bootstrap.display()
    );
    // The larger of the two runs: either build's own section is within a few % of it.
    let most = profiled.iter().copied().max().unwrap_or_default();
    let hot = hot.unwrap_or_default();
    assert!(
        hot * 10 >= most * 9,
        "{} places {hot} bytes of startup code together, where the profiled builds ran {profiled:?}: \
         the symbols changed (a dependency or toolchain update); run `make hot-layout`",
        bootstrap.display()
    );
}
