//! The libsvm reader on arbitrary bytes: see `downhill::fuzzing::libsvm`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| downhill::fuzzing::libsvm(data));
