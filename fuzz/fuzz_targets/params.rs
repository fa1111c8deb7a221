//! The params reader on arbitrary bytes: see `downhill::fuzzing::params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| downhill::fuzzing::params(data));
