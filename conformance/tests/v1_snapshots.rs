//! Pinned V1 image digests (fs-verity sha256 of the whole image) of the fixture dumpfiles under
//! `fixtures/dumpfiles/`, for C's default versions, `--min-version=1` and `--max-version=0`.
//! Each digest is also recomputed from C mkcomposefs' image in the same run, and the §14 test
//! vectors of the format note are checked by value.

mod v1_common;

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::write::image_bytes;
use conformance::oracle::repo_root;
use v1_common::{c_image, verity_hex, Versions};

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("fixtures/dumpfiles");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixtures/dumpfiles")
        .map(|e| e.unwrap().path())
        .filter(|p| v1_common::is_file(p, "dump"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// Our digest for one fixture and version setting, checked against C's.
fn digest(name: &str, dump: &[u8], versions: Versions) -> String {
    let tree =
        parse_bytes(dump, &ParseOptions { strict: true }).unwrap_or_else(|e| panic!("{name}: {e}"));
    let ours = image_bytes(&tree, &versions.options()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let theirs = c_image(dump, versions, true).unwrap_or_else(|e| panic!("{name}: C: {e}"));
    assert!(
        ours == theirs,
        "{name} {versions:?}: image differs from C's"
    );
    verity_hex(&ours)
}

#[test]
fn fixture_digests() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 5, "fixtures missing");
    let mut report = String::new();
    for (name, dump) in &fixtures {
        for (label, v) in [
            ("default", Versions::Default),
            ("min1", Versions::Min1),
            ("max0", Versions::Max0),
        ] {
            report.push_str(&format!("{name} {label} {}\n", digest(name, dump, v)));
        }
    }
    insta::assert_snapshot!("v1_fixture_digests", report);
}

/// §14: the minimal and "simple" trees.
#[test]
fn format_note_vectors() {
    let fixtures = fixtures();
    let get = |n: &str| &fixtures.iter().find(|(k, _)| k == n).expect(n).1;
    let expect = [
        (
            "minimal",
            Versions::Default,
            "8f589e8f57ecb88823736b0d857ddca1e1068a23e264fad164b28f7038eb3682",
        ),
        (
            "minimal",
            Versions::Min1,
            "14a26c957c84f6eb774b91205476adc13196c7c33b9dd97d08d43725ecb90b63",
        ),
        (
            "simple",
            Versions::Default,
            "9f3f5620ee0c54708516467d0d58741e7963047c7106b245d94c298259d0fa01",
        ),
        (
            "simple",
            Versions::Min1,
            "ad6db6427568a1e4fdc772cbab7b6063f5eb4b33cb62982a740ba9213e5962b5",
        ),
    ];
    for (name, v, want) in expect {
        assert_eq!(digest(name, get(name), v), want, "{name} {v:?}");
    }
}
