//! Fuzz target `user_agent`. Its body is `jetrack::fuzzing::user_agent`, which
//! `tests/fuzz_corpus.rs` also replays on the checked-in corpus (see "Fuzzing" in
//! docs/operations.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetrack::fuzzing::user_agent(data));
