//! `byline::fuzzing::fuzz_headers` on arbitrary bytes (see its documentation
//! for the input layout and the invariants asserted). `cargo test` replays
//! the kept corpus `fuzz/corpus/headers` through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| byline::fuzzing::fuzz_headers(data));
