#![no_main]
//! The Kannel adapter: authenticate and every parser (see `hotline_fuzz::channel`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hotline_fuzz::channel(hotline_fuzz::Adapter::Kannel, data);
});
