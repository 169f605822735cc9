//! The layout's arrows, read from the source: the core reaches none of the outer rooms,
//! configuration is plain values, reaching neither adapters nor observe, and the use cases
//! (the call path and the status path) reach the outside only through the core's ports.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The places under `room` whose code (tests left out: `#[cfg(test)]` items and the files
/// named `tests.rs` they include) names one of `rooms`.
fn arrows(room: &str, rooms: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let dir = src.join(room);
    // A room is a folder, or a single file (`app.rs`, `status.rs`).
    let files = if dir.is_dir() {
        sources(&dir)
    } else {
        vec![src.join(format!("{room}.rs"))]
    };
    let mut found = Vec::new();
    for file in files {
        if file.file_name().is_some_and(|name| name == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            for target in rooms {
                if line.contains(&format!("crate::{target}")) {
                    found.push(format!(
                        "{}:{}: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
        // Grouped imports: `use crate::{adapters::..., ...};`, over several lines.
        for (at, _) in code.match_indices("crate::{") {
            let group = &code[at..];
            let group = &group[..group.find("};").unwrap_or(group.len())];
            for target in rooms {
                let named = [format!("{{{target}::"), format!(" {target}::")];
                if named.iter().any(|name| group.contains(name.as_str())) {
                    found.push(format!("{}: {}", file.display(), group.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_core_reaches_no_adapter_observer_configuration_or_entry_point() {
    let found = arrows("core", &["adapters", "observe", "config", "app", "wiring"]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn configuration_takes_no_adapter_or_observer_type() {
    let found = arrows("config", &["adapters", "observe", "app", "wiring"]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_use_cases_reach_no_adapter_and_no_wiring() {
    for use_case in ["app", "status"] {
        let found = arrows(use_case, &["adapters", "wiring", "config"]);
        assert!(found.is_empty(), "{use_case}: {found:#?}");
    }
}
