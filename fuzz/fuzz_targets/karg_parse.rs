//! Any text as a kernel command line and as one argument: parsing returns (never panics),
//! and every parsed argument writes back to text that parses to the same argument.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cfs_erofs_fuzz::check_karg_parse(data));
