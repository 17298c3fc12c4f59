#![no_main]
//! The PROXY protocol header parser (see `hotline_fuzz::proxy_header`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_fuzz::proxy_header(data);
});
