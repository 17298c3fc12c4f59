#![no_main]
//! See `hotline_fuzz::engine`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_fuzz::engine(data);
});
