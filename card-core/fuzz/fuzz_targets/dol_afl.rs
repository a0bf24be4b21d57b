//! cargo-fuzz target `dol_afl`: see ../bodies.rs for what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../bodies.rs");

fuzz_target!(|data: &[u8]| dol_afl(data));
