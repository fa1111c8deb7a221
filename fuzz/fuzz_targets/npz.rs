//! The scipy CSR (`.npz`) reader on arbitrary bytes: see `downhill::fuzzing::npz`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| downhill::fuzzing::npz(data));
