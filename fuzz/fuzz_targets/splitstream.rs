//! Any bytes as a composefs-rs splitstream: parsing returns (never panics), and what parses
//! writes back to a stream with the same named refs and pieces.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cfs_erofs_fuzz::check_splitstream(data));
