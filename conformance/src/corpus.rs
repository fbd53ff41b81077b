//! The C test corpus (`tests/assets` of composefs 1.0.8), read the one way every test needs it:
//! the dumpfiles C's `test-checksums.sh` builds (gunzipped, with their strictness, pinned
//! version and pinned image sha256) and the `should-fail-*` inputs C must refuse.

use std::io::Read;

use crate::oracle::corpus_dir;

/// Assets `test-checksums.sh` builds without `CFS_PARSE_STRICT`.
pub const NON_STRICT: [&str; 3] = [
    "no-newline.dump",
    "longlink.dump",
    "honggfuzz-longlink-unterminated.dump",
];

/// One buildable corpus dumpfile.
#[derive(Clone, Debug)]
pub struct Asset {
    /// File name in the corpus, e.g. `special.dump` or `config.dump.gz`.
    pub name: String,
    /// The dumpfile, gunzipped.
    pub dump: Vec<u8>,
    /// Whether C's test script parses it with `CFS_PARSE_STRICT=1`.
    pub strict: bool,
    /// The `composefs_version` its `.version` file pins (`--min-version=V --max-version=V`).
    pub version: Option<u32>,
    /// The sha256 of C's image, from its `.sha256` file.
    pub pinned_sha256: String,
}

/// File names in the corpus folder that satisfy `keep`, sorted.
fn names(keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("read the C corpus")
        .map(|e| {
            e.expect("corpus entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| keep(n))
        .collect();
    names.sort();
    names
}

/// Every buildable dumpfile of the corpus (at least 15), in name order.
pub fn assets() -> Vec<Asset> {
    let out: Vec<Asset> = names(|n| {
        (n.ends_with(".dump") || n.ends_with(".dump.gz")) && !n.starts_with("should-fail-")
    })
    .into_iter()
    .map(|name| load(&name))
    .collect();
    assert!(
        out.len() >= 15,
        "C corpus incomplete: {} dumpfiles",
        out.len()
    );
    out
}

/// One buildable dumpfile by file name.
pub fn asset(name: &str) -> Asset {
    load(name)
}

fn load(name: &str) -> Asset {
    let dir = corpus_dir();
    let raw = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let dump = if name.ends_with(".gz") {
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut v)
            .unwrap_or_else(|e| panic!("{name}: gunzip: {e}"));
        v
    } else {
        raw
    };
    let side = |ext: &str| {
        std::fs::read_to_string(dir.join(format!("{name}.{ext}")))
            .ok()
            .map(|s| s.trim().to_owned())
    };
    Asset {
        strict: !NON_STRICT.contains(&name),
        version: side("version").map(|v| v.parse().expect("a .version number")),
        pinned_sha256: side("sha256").unwrap_or_else(|| panic!("{name}: no .sha256")),
        name: name.to_owned(),
        dump,
    }
}

/// The `should-fail-*` dumpfiles (C 1.0.8 has 14): (file name, bytes), in name order.
pub fn should_fail() -> Vec<(String, Vec<u8>)> {
    let out: Vec<_> = names(|n| n.starts_with("should-fail-"))
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(corpus_dir().join(&n)).expect("read should-fail file");
            (n, bytes)
        })
        .collect();
    assert_eq!(out.len(), 14, "the C corpus has 14 should-fail files");
    out
}
