//! Builds an image from a dumpfile with composefs-rs 0.9.4 (its dumpfile parser and
//! `mkfs_erofs_versioned`), so `scripts/bench` can time it and measure its memory beside
//! `mkcfs-rs` on the same inputs.
//!
//! Usage: `composefs_rs_mkfs [--v0 | --v2] DUMPFILE IMAGE` (default `--v0`, C's layout).

use composefs::dumpfile::dumpfile_to_filesystem;
use composefs::erofs::format::FormatVersion;
use composefs::erofs::writer::{mkfs_erofs_versioned, ValidatedFileSystem};
use composefs::fsverity::Sha256HashValue;

fn main() {
    let mut version = FormatVersion::V0;
    let mut paths = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--v0" => version = FormatVersion::V0,
            "--v2" => version = FormatVersion::V2,
            _ => paths.push(a),
        }
    }
    let [input, output] = &paths[..] else {
        eprintln!("usage: composefs_rs_mkfs [--v0 | --v2] DUMPFILE IMAGE");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(input).unwrap_or_else(|e| fail("read", e));
    let fs = dumpfile_to_filesystem::<Sha256HashValue>(&text).unwrap_or_else(|e| fail("parse", e));
    drop(text);
    let fs = ValidatedFileSystem::new(fs).unwrap_or_else(|e| fail("validate", e));
    let image = mkfs_erofs_versioned(&fs, version);
    std::fs::write(output, &image).unwrap_or_else(|e| fail("write", e));
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("composefs_rs_mkfs: {what}: {e:#}");
    std::process::exit(1)
}
