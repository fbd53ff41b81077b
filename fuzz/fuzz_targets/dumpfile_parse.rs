//! Any bytes as a dumpfile: strict and lax parsing return (never panic); the streaming and the
//! in-memory parsers agree; a parsed tree written as a dumpfile parses back to the same text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cfs_erofs_fuzz::check_dumpfile_parse(data));
