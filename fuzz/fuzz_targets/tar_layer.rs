//! Any bytes as a tar layer (raw, with header checksums fixed, or gzip-compressed): reading,
//! merging and the OCI transform return (never panic); a merged tree the writers accept reads
//! back equal from its V1 and V2 images.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cfs_erofs_fuzz::check_tar_layer(data));
