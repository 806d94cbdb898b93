//! The pickle machine alone, on arbitrary bytes: an error or a value, never a panic, a hang or
//! unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = changedet_models::pth::parse_pickle(data);
});
