//! Fuzz target `stats_query`. Its body is `jetrack::fuzzing::stats_query`, which
//! `tests/fuzz_corpus.rs` also replays on the checked-in corpus (see "Fuzzing" in
//! docs/operations.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetrack::fuzzing::stats_query(data));
