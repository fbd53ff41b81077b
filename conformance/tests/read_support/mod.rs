//! Shared by the reader and `info` conformance tests: the C test corpus built into images with
//! the C oracle, the way composefs's `test-checksums.sh` builds them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use conformance::corpus::{assets, NON_STRICT};
use conformance::oracle::{run_with_input, Oracle};

/// One corpus dumpfile and the image C built from it.
pub struct CorpusImage {
    /// Asset file name, e.g. `special.dump` or `config.dump.gz`.
    pub name: String,
    /// The (gunzipped) dumpfile.
    pub dump: Vec<u8>,
    /// Where the image was written.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Builds one dumpfile with C `mkcomposefs --from-file`, with the asset's version pinned when a
/// `.version` file exists and strict parsing unless the asset is one of the non-strict ones.
pub fn build_with_c(name: &str, dump: &[u8], version: Option<u32>, out: &Path) -> Vec<u8> {
    let mut cmd = Oracle::Mkcomposefs.command();
    if let Some(v) = version {
        cmd.arg(format!("--min-version={v}"))
            .arg(format!("--max-version={v}"));
    }
    cmd.arg("--from-file").arg("-").arg(out);
    if NON_STRICT.contains(&name) {
        cmd.env_remove("CFS_PARSE_STRICT");
    } else {
        cmd.env("CFS_PARSE_STRICT", "1");
    }
    let o = run_with_input(cmd, dump);
    assert!(
        o.status.success(),
        "mkcomposefs failed on {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(out).expect("read image")
}

fn build_all() -> (tempfile::TempDir, Vec<CorpusImage>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = assets()
        .into_iter()
        .map(|a| {
            let path = dir.path().join(format!("{}.img", a.name));
            let bytes = build_with_c(&a.name, &a.dump, a.version, &path);
            CorpusImage {
                name: a.name,
                dump: a.dump,
                path,
                bytes,
            }
        })
        .collect();
    (dir, images)
}

/// Every buildable corpus asset, built once per test binary.
pub fn corpus_images() -> &'static [CorpusImage] {
    static IMAGES: OnceLock<(tempfile::TempDir, Vec<CorpusImage>)> = OnceLock::new();
    &IMAGES.get_or_init(build_all).1
}

/// A corpus image by asset name.
pub fn corpus_image(name: &str) -> &'static CorpusImage {
    corpus_images()
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no corpus asset {name}"))
}

/// Builds a small image from dumpfile text with C's defaults (strict parsing).
pub fn c_image(dump: &str, dir: &Path, name: &str) -> Vec<u8> {
    build_with_c(name, dump.as_bytes(), None, &dir.join(name))
}

/// Shows where two outputs first differ.
pub fn assert_same(what: &str, ours: &[u8], c: &[u8]) {
    if ours != c {
        let at = ours
            .iter()
            .zip(c)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(c.len()));
        let from = at.saturating_sub(200);
        panic!(
            "{what}: outputs differ at byte {at} (ours {} bytes, C {} bytes)\nours: {}\nC:    {}",
            ours.len(),
            c.len(),
            String::from_utf8_lossy(&ours[from..(at + 200).min(ours.len())]),
            String::from_utf8_lossy(&c[from..(at + 200).min(c.len())]),
        );
    }
}
