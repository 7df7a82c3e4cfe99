//! Fuzz target `import_body`. Its body is `jetrack::fuzzing::import_body`, which
//! `tests/fuzz_corpus.rs` also replays on the checked-in corpus (see "Fuzzing" in
//! docs/operations.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetrack::fuzzing::import_body(data));
