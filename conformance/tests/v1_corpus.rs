//! The C test corpus through our V1 writer: every buildable dumpfile of composefs 1.0.8's
//! `tests/assets`, built as its `test-checksums.sh` does (strict parsing except three files,
//! `--min-version=V --max-version=V` where a `.version` file exists). Each image must have
//! the sha256 pinned in the corpus and equal C mkcomposefs' image byte for byte.

mod v1_common;

use std::io::Read;

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::write::{image_bytes, WriteOptions};
use conformance::oracle::corpus_dir;
use v1_common::{c_image, sha256_hex, Versions};

/// Built without `CFS_PARSE_STRICT` by C's test script.
const NON_STRICT: [&str; 3] = [
    "no-newline.dump",
    "longlink.dump",
    "honggfuzz-longlink-unterminated.dump",
];

struct Case {
    name: String,
    dump: Vec<u8>,
    strict: bool,
    versions: Versions,
    pinned: String,
}

fn cases() -> Vec<Case> {
    let dir = corpus_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read corpus")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            (n.ends_with(".dump") || n.ends_with(".dump.gz")) && !n.starts_with("should-fail-")
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let raw = std::fs::read(dir.join(&name)).expect("read dumpfile");
            let dump = if name.ends_with(".gz") {
                let mut v = Vec::new();
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_end(&mut v)
                    .expect("gunzip");
                v
            } else {
                raw
            };
            let versions = match std::fs::read_to_string(dir.join(format!("{name}.version"))) {
                Ok(v) => Versions::Exact(v.trim().parse().expect("version number")),
                Err(_) => Versions::Default,
            };
            let pinned = std::fs::read_to_string(dir.join(format!("{name}.sha256")))
                .expect("pinned sha256")
                .trim()
                .to_owned();
            Case {
                strict: !NON_STRICT.contains(&name.as_str()),
                name,
                dump,
                versions,
                pinned,
            }
        })
        .collect()
}

fn options(v: Versions) -> WriteOptions {
    v.options()
}

#[test]
fn corpus_images_equal_pinned_and_c() {
    let cases = cases();
    assert_eq!(cases.len(), 15, "the C corpus has 15 buildable dumpfiles");
    let mut failures = Vec::new();
    for c in &cases {
        let tree = parse_bytes(&c.dump, &ParseOptions { strict: c.strict })
            .unwrap_or_else(|e| panic!("{}: parse: {e}", c.name));
        let ours = match image_bytes(&tree, &options(c.versions)) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{}: our writer failed: {e}", c.name));
                continue;
            }
        };
        let sha = sha256_hex(&ours);
        if sha != c.pinned {
            failures.push(format!("{}: sha256 {sha}, pinned {}", c.name, c.pinned));
        }
        let theirs = c_image(&c.dump, c.versions, c.strict)
            .unwrap_or_else(|e| panic!("{}: C mkcomposefs failed: {e}", c.name));
        if theirs != ours {
            let at = theirs.iter().zip(&ours).position(|(a, b)| a != b);
            failures.push(format!(
                "{}: differs from C (C {} bytes, ours {}, first difference at {at:?})",
                c.name,
                theirs.len(),
                ours.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An external file over 2^53 bytes needs more than 1024 chunks: C's writer refuses it
/// ("File too large", `should-fail-too-big.dump`) and so must ours. 2^53 itself gives a
/// 4096-byte chunk table, inline only when the inode header and xattrs end on a slot
/// boundary, else moved to a data block (§2.7): both must equal C.
#[test]
fn chunk_table_edges() {
    use cfs_erofs::tree::{FileData, Inode, InodeId, InodeKind, Tree};
    let cases = [
        ((1u64 << 53) + 1, 0usize, false),
        (1u64 << 53, 0, true),
        (1u64 << 53, 1, true),
        (1u64 << 53, 5, true),
        ((1u64 << 53) - 1, 3, true),
    ];
    for (size, xattr_len, ok) in cases {
        let mut tree = Tree::new(Inode::directory(0o755));
        let mut f = Inode::new(
            InodeKind::Regular(FileData::External {
                payload: Some(b"ab/cd".as_slice().into()),
                digest: None,
            }),
            0o644,
        );
        f.size = size;
        if xattr_len > 0 {
            f.set_xattr(b"user.k", &vec![b'v'; xattr_len]);
        }
        tree.add(InodeId::ROOT, b"big", f).unwrap();
        tree.add(InodeId::ROOT, b"small", Inode::new(InodeKind::Fifo, 0o644))
            .unwrap();
        let ours = image_bytes(&tree, &WriteOptions::v1());
        let theirs = c_image(&v1_common::to_dumpfile(&tree), Versions::Default, true);
        match (ours, theirs) {
            (Ok(o), Ok(t)) if ok => assert!(o == t, "size {size}, xattr {xattr_len}: differs"),
            (Err(e), Err(c)) if !ok => {
                assert!(e.to_string().contains("File too large"), "{e}");
                assert!(c.contains("File too large"), "{c}");
            }
            (o, t) => panic!(
                "size {size}: ours {:?}, C {:?}",
                o.map(|b| b.len()),
                t.map(|b| b.len())
            ),
        }
    }
}
