#![no_main]
//! See `hotline_fuzz::commands`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_fuzz::commands(data);
});
