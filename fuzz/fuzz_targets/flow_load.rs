#![no_main]
//! See `hotline_fuzz::flow_load`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_fuzz::flow_load(data);
});
