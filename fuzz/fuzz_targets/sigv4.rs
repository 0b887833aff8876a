#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gitsync_fuzz::sigv4(data));
