//! Shared by the reader and `info` conformance tests: the C test corpus built into images with
//! the C oracle, the way composefs's `test-checksums.sh` builds them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use conformance::oracle::{corpus_dir, run_with_input, Oracle};

/// Assets `test-checksums.sh` builds without `CFS_PARSE_STRICT`.
const NONSTRICT: [&str; 3] = [
    "no-newline.dump",
    "longlink.dump",
    "honggfuzz-longlink-unterminated.dump",
];

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

/// Reads an asset, gunzipping `.gz` ones with the system `gzip`.
fn read_asset(path: &Path) -> Vec<u8> {
    if path.extension().is_some_and(|e| e == "gz") {
        let out = Command::new("gzip")
            .arg("-dc")
            .arg(path)
            .output()
            .expect("run gzip");
        assert!(out.status.success(), "gzip -dc {}", path.display());
        out.stdout
    } else {
        std::fs::read(path).expect("read asset")
    }
}

/// Builds one dumpfile with C `mkcomposefs --from-file`, with the asset's version pinned when a
/// `.version` file exists and strict parsing unless the asset is one of the non-strict ones.
pub fn build_with_c(name: &str, dump: &[u8], version: Option<&str>, out: &Path) -> Vec<u8> {
    let mut cmd = Oracle::Mkcomposefs.command();
    if let Some(v) = version {
        cmd.arg(format!("--min-version={v}"))
            .arg(format!("--max-version={v}"));
    }
    cmd.arg("--from-file").arg("-").arg(out);
    if NONSTRICT.contains(&name) {
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
    let corpus = corpus_dir();
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .expect("read corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| {
            (n.ends_with(".dump") || n.ends_with(".dump.gz")) && !n.starts_with("should-fail")
        })
        .collect();
    names.sort();
    let images = names
        .into_iter()
        .map(|name| {
            let asset = corpus.join(&name);
            let dump = read_asset(&asset);
            let version = std::fs::read_to_string(corpus.join(format!("{name}.version")))
                .ok()
                .map(|v| v.trim().to_owned());
            let path = dir.path().join(format!("{name}.img"));
            let bytes = build_with_c(&name, &dump, version.as_deref(), &path);
            CorpusImage {
                name,
                dump,
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
