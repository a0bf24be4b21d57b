//! cargo-fuzz target `ssc_records`: see ../bodies.rs for what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../bodies.rs");

fuzz_target!(|data: &[u8]| ssc_records(data));
