//! The C test corpus through our V1 writer: every buildable dumpfile of composefs 1.0.8's
//! `tests/assets`, built as its `test-checksums.sh` does (strict parsing except three files,
//! `--min-version=V --max-version=V` where a `.version` file exists). Each image must have
//! the sha256 pinned in the corpus and equal C mkcomposefs' image byte for byte.

mod v1_common;

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::write::{image_bytes, WriteOptions};
use v1_common::{c_image, sha256_hex, Versions};

struct Case {
    name: String,
    dump: Vec<u8>,
    strict: bool,
    versions: Versions,
    pinned: String,
}

fn cases() -> Vec<Case> {
    conformance::corpus::assets()
        .into_iter()
        .map(|a| Case {
            name: a.name,
            dump: a.dump,
            strict: a.strict,
            versions: a.version.map_or(Versions::Default, Versions::Exact),
            pinned: a.pinned_sha256,
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
