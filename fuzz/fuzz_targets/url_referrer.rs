//! Fuzz target `url_referrer`. Its body is `jetrack::fuzzing::url_referrer`, which
//! `tests/fuzz_corpus.rs` also replays on the checked-in corpus (see "Fuzzing" in
//! docs/operations.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetrack::fuzzing::url_referrer(data));
