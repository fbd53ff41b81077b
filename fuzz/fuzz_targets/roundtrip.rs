//! An arbitrary tree written as V1 and V2 reads back equal up to the documented
//! normalisations, and V1 bytes read back and written again are the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cfs_erofs_fuzz::check_roundtrip(data));
