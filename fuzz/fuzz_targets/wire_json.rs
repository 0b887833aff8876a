#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gitsync_fuzz::wire_json(data));
