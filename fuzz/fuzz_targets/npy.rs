//! The npy reader on arbitrary bytes: see `downhill::fuzzing::npy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| downhill::fuzzing::npy(data));
