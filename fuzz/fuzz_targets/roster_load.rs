#![no_main]
//! See `hotline_fuzz::roster_load`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_fuzz::roster_load(data);
});
