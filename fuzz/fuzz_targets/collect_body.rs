//! Fuzz target `collect_body`. Its body is `jetrack::fuzzing::collect_body`, which
//! `tests/fuzz_corpus.rs` also replays on the checked-in corpus (see "Fuzzing" in
//! docs/operations.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetrack::fuzzing::collect_body(data));
