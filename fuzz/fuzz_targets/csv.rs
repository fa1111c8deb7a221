//! The csv reader on arbitrary bytes: see `downhill::fuzzing::csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| downhill::fuzzing::csv(data));
