//! cargo-fuzz target `apdu_response`: see ../bodies.rs for what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../bodies.rs");

fuzz_target!(|data: &[u8]| apdu_response(data));
