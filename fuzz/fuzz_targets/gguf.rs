//! The GGUF reader on arbitrary bytes: every outcome is a parsed header whose
//! tensors lie inside the buffer, or a described error; never a panic, an
//! out-of-bounds read or an allocation the input did not pay for.
#![no_main]

use byline::engine::gguf::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(h) => {
            for t in &h.tensors {
                assert!(t.offset.checked_add(t.size).is_some_and(|end| end <= data.len() as u64));
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
