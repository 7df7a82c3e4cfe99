//! The fuzz corpora as ordinary tests: every file of `fuzz/corpus/<target>/` and of
//! `fuzz/regressions/<target>/` goes through the body of its fuzz target
//! (`jetrack::fuzzing`), so that stable `cargo test` covers what the fuzzers found (see
//! "Fuzzing" in docs/operations.md).

use std::fs;
use std::path::{Path, PathBuf};

use jetrack::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of one folder, sorted; none when the folder does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Replays every input of `kind` (`corpus` or `regressions`); the file's name is in the
/// message of a failure.
fn replay(kind: &str) -> usize {
    let mut count = 0;
    for (name, body) in TARGETS {
        for file in files(&fuzz_dir().join(kind).join(name)) {
            let data = fs::read(&file).unwrap();
            let run = std::panic::catch_unwind(|| body(&data));
            assert!(run.is_ok(), "{name} fails on {}", file.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_target_has_a_corpus_and_a_binary() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no target {name}"
        );
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let source = fs::read_to_string(&source).unwrap();
        assert!(
            source.contains(&format!("jetrack::fuzzing::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not call jetrack::fuzzing::{name}"
        );
    }
    // A folder for a target that does not exist would never be replayed.
    for kind in ["corpus", "regressions"] {
        let Ok(dirs) = fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for dir in dirs {
            let dir = dir.unwrap().file_name();
            let dir = dir.to_string_lossy();
            assert!(
                TARGETS.iter().any(|(name, _)| *name == dir),
                "fuzz/{kind}/{dir} names no target"
            );
        }
    }
}

#[test]
fn the_corpora_replay_without_a_failure() {
    assert!(replay("corpus") >= TARGETS.len());
}

#[test]
fn the_regressions_replay_without_a_failure() {
    replay("regressions");
}
