//! Replays the fuzz targets' checks under a plain `cargo test`: every minimised crasher kept in
//! `fixtures/fuzz-regressions/<target>/`, the fixtures the seed corpora start from, and a few
//! thousand deterministic pseudo-random inputs per target, so that CI exercises the same
//! properties without libFuzzer.
//!
//! The checks are the fuzz crate's own (`fuzz/src/lib.rs`, included here by path): one home
//! for each property, whichever runner drives it.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;

use std::path::{Path, PathBuf};

use conformance::oracle::repo_root;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 7] = [
    ("read_image", fuzz_checks::check_read_image),
    ("dumpfile_parse", fuzz_checks::check_dumpfile_parse),
    ("tar_layer", fuzz_checks::check_tar_layer),
    ("oci_layout", fuzz_checks::check_oci_layout),
    ("karg_parse", fuzz_checks::check_karg_parse),
    ("roundtrip", fuzz_checks::check_roundtrip),
    ("splitstream", fuzz_checks::check_splitstream),
];

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Runs `check` on `data`, naming `what` if it panics.
fn replay(what: &str, check: Check, data: &[u8]) {
    if std::panic::catch_unwind(|| check(data)).is_err() {
        panic!("fuzz check failed on {what}");
    }
}

#[test]
fn kept_crashers_pass() {
    let root = repo_root().join("fixtures/fuzz-regressions");
    let mut n = 0;
    for dir in files_or_dirs(&root) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (_, check) = TARGETS
            .iter()
            .find(|(t, _)| *t == name)
            .unwrap_or_else(|| panic!("{}: no fuzz target of that name", dir.display()));
        for f in files_in(&dir) {
            replay(
                &f.display().to_string(),
                *check,
                &std::fs::read(&f).unwrap(),
            );
            n += 1;
        }
    }
    assert!(n >= 1, "no regression files under {}", root.display());
}

fn files_or_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The repository's own fixtures through the checks they seed.
#[test]
fn fixtures_pass_the_checks() {
    let root = repo_root();
    for f in files_in(&root.join("fixtures/dumpfiles"))
        .into_iter()
        .chain(files_in(&root.join("fixtures/regressions")))
    {
        replay(
            &f.display().to_string(),
            fuzz_checks::check_dumpfile_parse,
            &std::fs::read(&f).unwrap(),
        );
    }
    for f in files_in(&root.join("conformance/tests/read_support")) {
        if f.extension().is_some_and(|e| e == "img") {
            replay(
                &f.display().to_string(),
                fuzz_checks::check_read_image,
                &std::fs::read(&f).unwrap(),
            );
        }
    }
}

/// Every fixture OCI layout, as the `oci_layout` target's records (its digests are literal,
/// so no placeholder is needed), and every layer blob, uncompressed, as a raw and a
/// recompressed `tar_layer` input.
#[test]
fn fixture_layouts_and_layers_pass_the_checks() {
    use std::io::Read;
    let mut layouts = 0;
    for dir in files_or_dirs(&repo_root().join("fixtures/oci")) {
        let Ok(index) = std::fs::read(dir.join("index.json")) else {
            continue;
        };
        let mut records = vec![index];
        for blob in files_in(&dir.join("blobs/sha256")) {
            let data = std::fs::read(&blob).unwrap();
            let mut plain = Vec::new();
            if flate2::read::GzDecoder::new(&data[..])
                .read_to_end(&mut plain)
                .is_err()
            {
                plain = data.clone();
            }
            for mode in [0u8, 2] {
                let mut input = vec![mode];
                input.extend_from_slice(&plain);
                replay(
                    &blob.display().to_string(),
                    fuzz_checks::check_tar_layer,
                    &input,
                );
            }
            records.push(data);
        }
        let joined = records.join(&b"\n--blob--\n"[..]);
        replay(
            &dir.display().to_string(),
            fuzz_checks::check_oci_layout,
            &joined,
        );
        layouts += 1;
    }
    assert!(layouts >= 4, "{layouts} fixture layouts");
}

/// xorshift64*: deterministic bytes for the structured targets.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn pseudo_random_trees_round_trip() {
    for seed in 0..3000u64 {
        let data = pseudo_random(seed, 64 + (seed as usize % 16) * 256);
        replay(&format!("seed {seed}"), fuzz_checks::check_roundtrip, &data);
    }
}

#[test]
fn pseudo_random_text_and_tar() {
    for seed in 0..2000u64 {
        let data = pseudo_random(seed, 1 + (seed as usize % 8) * 300);
        replay(
            &format!("karg seed {seed}"),
            fuzz_checks::check_karg_parse,
            &data,
        );
        replay(
            &format!("dumpfile seed {seed}"),
            fuzz_checks::check_dumpfile_parse,
            &data,
        );
        replay(
            &format!("tar seed {seed}"),
            fuzz_checks::check_tar_layer,
            &data,
        );
        replay(
            &format!("image seed {seed}"),
            fuzz_checks::check_read_image,
            &data,
        );
        replay(
            &format!("splitstream seed {seed}"),
            fuzz_checks::check_splitstream,
            &data,
        );
    }
}

/// The splitstream vectors, whole and cut or flipped at every 97th byte.
#[test]
fn splitstream_vectors_pass_the_check() {
    let dir = repo_root().join("fixtures/vectors/splitstream");
    let mut n = 0;
    for f in files_in(&dir) {
        if f.extension().is_none_or(|e| e != "splitstream") {
            continue;
        }
        let data = std::fs::read(&f).unwrap();
        replay(
            &f.display().to_string(),
            fuzz_checks::check_splitstream,
            &data,
        );
        for at in (0..data.len()).step_by(97) {
            replay("cut", fuzz_checks::check_splitstream, &data[..at]);
            let mut flipped = data.clone();
            flipped[at] ^= 0x55;
            replay("flipped", fuzz_checks::check_splitstream, &flipped);
        }
        n += 1;
    }
    assert!(n >= 10, "{n} splitstream vectors");
}
