//! An OCI image layout built from fuzzer bytes: `index.json`, then blobs, separated by
//! `--blob--` lines, with `@N`/`#N`/`%N` placeholders in the JSON records replaced by blob N's digest, size and
//! diff_id so that mutated manifests and configs still pass the digest checks and reach the
//! JSON, reference and layer code. Opening and reading the layout must return, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cfs_erofs_fuzz::check_oci_layout(data));
