//! Any bytes as an image: both reader modes, validation and the composefs-info outputs must
//! return (never panic), agree with each other, and a clean tree the writer accepts must read
//! back equal from our own V1 image of it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cfs_erofs_fuzz::check_read_image(data));
