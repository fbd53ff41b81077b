//! Round trips through the image format:
//!
//! - random trees ([`arb_tree`]) written as V1 and V2 images and read back in clean mode equal
//!   the original up to the normalisations the format imposes ([`normalise_for`]);
//! - every image C builds from the corpus, read back and written again by our V1 writer, is
//!   byte-identical to C's;
//! - random images written by the `mkcfs-rs` binary (V1 and V2) dump exactly as C
//!   `composefs-info dump` dumps them.

mod read_support;
mod v1_common;

use cfs_erofs::dumpfile::write_to_vec;
use cfs_erofs::info;
use cfs_erofs::read::read_image;
use cfs_erofs::tree::{FileData, InodeId, InodeKind, Tree};
use cfs_erofs::write::{image_bytes, WriteOptions};
use conformance::oracle::{mkcfs_rs, run_with_input, Oracle};
use conformance::strategy::{arb_tree, canonicalize};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use read_support::corpus_images;

/// The two layout families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    V1,
    V2,
}

impl Layout {
    fn options(self) -> WriteOptions {
        match self {
            Layout::V1 => WriteOptions::v1(),
            Layout::V2 => WriteOptions::v2(),
        }
    }

    /// The random tree as this layout's tests use it. V2 is composefs-rs's layout, defined by
    /// what composefs-rs writes: trees are kept within what it can represent (see
    /// `make_v2_compatible`; notably inline data ≤ 512 bytes and symlinks ≤ 1024 bytes, which
    /// V2 stores inline without the V1 block-boundary rules).
    fn tree(self, tree: &Tree) -> Tree {
        let mut t = tree.clone();
        if self == Layout::V2 {
            v1_common::make_v2_compatible(&mut t);
        }
        t
    }
}

/// Is this inode a whiteout (character device 0)?
fn is_whiteout(kind: &InodeKind) -> bool {
    matches!(kind, InodeKind::CharDevice(0))
}

/// Xattrs the V1 writer sets on a whiteout (replacing a user xattr of the same name once the
/// user's `trusted.overlay.*` is escaped) and the clean reader removes.
const V1_WHITEOUT_MARKS: [&[u8]; 2] = [b"trusted.overlay.whiteout", b"user.overlay.whiteout"];

/// The same on a directory holding a whiteout (composefs_version 1, which whiteouts select).
const V1_WHITEOUT_PARENT_MARKS: [&[u8]; 4] = [
    b"trusted.overlay.whiteouts",
    b"user.overlay.whiteouts",
    b"trusted.overlay.opaque",
    b"user.overlay.opaque",
];

/// What `tree` looks like after a write in `layout` and a clean read (the reader's module doc
/// lists the same facts from its side):
///
/// - inodes in depth-first order, the first depth-first name of each inode its primary entry
///   ([`canonicalize`]): the image has no arena order and no notion of which name came first;
/// - each inode's xattrs sorted by name: the writers reorder them;
/// - directory size 0 (the image stores its own dirent size, not the source's) and directory
///   nlink recomputed as 2 + subdirectories, which both writers do;
/// - devices, FIFOs and sockets have size 0: their i_size is written as 0 (C only lets the
///   source size choose between compact and extended inodes);
/// - V1 keeps the source nlink of every non-directory; V2 recomputes it as the number of names
///   the inode has in the tree;
/// - V2 drops mtime nanoseconds (composefs-rs stores seconds only);
/// - V2 names an external file that has a digest but no payload by its digest's object path
///   (the redirect composefs-rs derives), so it reads back with that payload;
/// - V1 whiteouts (character devices 0, escaped into regular files) come back as whiteouts,
///   but a user xattr named like one the writer adds for them (on the whiteout, or on a
///   directory naming one) is dropped together with the writer's own.
fn normalise_for(layout: Layout, tree: &Tree) -> Tree {
    let mut t = canonicalize(tree);
    let refs = t.reference_counts();
    let n = t.len();
    let subdirs: Vec<u32> = (0..n)
        .map(|i| match t.inode(InodeId(i as u32)).as_dir() {
            Some(d) => d
                .entries()
                .iter()
                .filter(|e| !e.link && t.inode(e.inode).is_dir())
                .count() as u32,
            None => 0,
        })
        .collect();
    let whiteout_parents: Vec<bool> = (0..n)
        .map(|i| match t.inode(InodeId(i as u32)).as_dir() {
            Some(d) => {
                layout == Layout::V1
                    && d.entries()
                        .iter()
                        .any(|e| is_whiteout(&t.inode(e.inode).kind))
            }
            None => false,
        })
        .collect();
    for i in 0..n {
        let id = InodeId(i as u32);
        let inode = t.inode_mut(id);
        inode.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        if layout == Layout::V1 && i != 0 && is_whiteout(&inode.kind) {
            inode
                .xattrs
                .retain(|x| !V1_WHITEOUT_MARKS.contains(&&*x.name));
        }
        if whiteout_parents[i] {
            inode
                .xattrs
                .retain(|x| !V1_WHITEOUT_PARENT_MARKS.contains(&&*x.name));
        }
        match &mut inode.kind {
            InodeKind::Directory(_) => {
                inode.size = 0;
                inode.nlink = 2 + subdirs[i];
            }
            InodeKind::CharDevice(_)
            | InodeKind::BlockDevice(_)
            | InodeKind::Fifo
            | InodeKind::Socket => inode.size = 0,
            InodeKind::Regular(FileData::External {
                payload,
                digest: Some(d),
            }) if layout == Layout::V2 && payload.is_none() => {
                *payload = Some(d.object_path().into_bytes().into());
            }
            _ => {}
        }
        if layout == Layout::V2 {
            inode.mtime.nsec = 0;
            if !inode.is_dir() {
                inode.nlink = refs[i];
            }
        }
    }
    t
}

/// The tree read back from an image, in the same normal form (sizes of directories zeroed,
/// xattrs sorted, depth-first numbering).
fn read_back(image: &[u8]) -> Result<Tree, String> {
    let mut t = canonicalize(&read_image(image).map_err(|e| e.to_string())?.tree);
    for i in 0..t.len() {
        let inode = t.inode_mut(InodeId(i as u32));
        inode.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        if inode.is_dir() {
            inode.size = 0;
        }
    }
    Ok(t)
}

/// Compares two trees through their dumpfiles, so a failure shows the first differing line.
fn same_tree(what: &str, got: &Tree, want: &Tree) -> Result<(), TestCaseError> {
    let (g, w) = (write_to_vec(got), write_to_vec(want));
    if g != w {
        let gl: Vec<&[u8]> = g.split(|&b| b == b'\n').collect();
        let wl: Vec<&[u8]> = w.split(|&b| b == b'\n').collect();
        let at = gl.iter().zip(&wl).position(|(a, b)| a != b).unwrap_or(0);
        return Err(TestCaseError::fail(format!(
            "{what}: line {at} differs\n read: {}\n want: {}",
            String::from_utf8_lossy(gl.get(at).unwrap_or(&&b""[..])),
            String::from_utf8_lossy(wl.get(at).unwrap_or(&&b""[..])),
        )));
    }
    prop_assert_eq!(got, want, "{}: trees differ beyond their dumpfiles", what);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Write V1 and V2, read back clean: the original up to [`normalise_for`].
    #[test]
    fn random_trees_round_trip_through_v1_and_v2(tree in arb_tree()) {
        for layout in [Layout::V1, Layout::V2] {
            let tree = layout.tree(&tree);
            let image = image_bytes(&tree, &layout.options())
                .map_err(|e| TestCaseError::fail(format!("{layout:?} write: {e}")))?;
            let read = read_back(&image)
                .map_err(|e| TestCaseError::fail(format!("{layout:?} read: {e}")))?;
            same_tree(&format!("{layout:?}"), &read, &normalise_for(layout, &tree))?;
        }
    }
}

/// The normalisation is not vacuous: a tree with every normalised feature differs from its
/// normal form in each layout, and reads back equal to it.
#[test]
fn normalisations_are_needed_and_sufficient() {
    use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
    let dump = b"/ 0 40755 7 0 0 0 10.5 - - - user.b=2 user.a=1\n\
/d 123 40700 9 1 2 0 11.7 - - -\n\
/d/wh 55 20000 3 0 0 0 12.9 - - - user.overlay.whiteout=u\n\
/f 10 100644 5 0 0 0 13.1 - - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
/p 77 10644 1 0 0 0 14.2 - - -\n\
/l 0 @100644 0 0 0 0 0.0 /f - -\n";
    let tree = parse_bytes(dump, &ParseOptions::default()).unwrap();
    for layout in [Layout::V1, Layout::V2] {
        let want = normalise_for(layout, &tree);
        assert_ne!(
            write_to_vec(&canonicalize(&tree)),
            write_to_vec(&want),
            "{layout:?}"
        );
        let image = image_bytes(&tree, &layout.options()).unwrap();
        same_tree(&format!("{layout:?}"), &read_back(&image).unwrap(), &want).unwrap();
    }
}

/// Every image C builds from the corpus, read (clean) and written again by our V1 writer with
/// the image's composefs_version, gives C's bytes back.
#[test]
fn corpus_images_are_rewritten_byte_for_byte() {
    let images = corpus_images();
    assert!(images.len() >= 15, "corpus too small: {}", images.len());
    for c in images {
        let read = read_image(&c.bytes).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let ours = image_bytes(&read.tree, &WriteOptions::v1_exact(read.composefs_version))
            .unwrap_or_else(|e| panic!("{}: write: {e}", c.name));
        if ours != c.bytes {
            let at = ours.iter().zip(&c.bytes).position(|(a, b)| a != b);
            panic!(
                "{}: rewritten image differs from C's at byte {at:?} (ours {} bytes, C {})",
                c.name,
                ours.len(),
                c.bytes.len()
            );
        }
    }
}

/// `mkcfs-rs --from-file` on a tree's dumpfile, in `layout`.
fn mkcfs_rs_image(tree: &Tree, layout: Layout, dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join(format!("{layout:?}.img"));
    let mut cmd = std::process::Command::new(mkcfs_rs());
    cmd.env_remove("CFS_PARSE_STRICT");
    if layout == Layout::V2 {
        cmd.arg("--erofs-version=2");
    }
    cmd.arg("--from-file").arg("-").arg(&out);
    let o = run_with_input(cmd, &write_to_vec(tree));
    assert!(
        o.status.success(),
        "mkcfs-rs {layout:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(&out).expect("read image")
}

/// C `composefs-info dump` of an image file; it must succeed.
fn c_dump(path: &std::path::Path) -> Vec<u8> {
    let c = Oracle::ComposefsInfo
        .command()
        .arg("dump")
        .arg(path)
        .output()
        .expect("run composefs-info");
    assert!(
        c.status.success(),
        "C composefs-info dump failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&c.stderr)
    );
    c.stdout
}

/// Found by the random test below: C never reads a last local xattr entry of 4 bytes (empty
/// name suffix and value), but does read one that is followed by another entry.
#[test]
fn info_dump_skips_a_final_empty_local_xattr_as_c_does() {
    use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
    let dump = b"/ 0 40755 2 0 0 0 0.0 - - -\n\
/f 0 100644 1 0 0 0 0.0 - - - user.=\n\
/g 0 100644 1 0 0 0 0.0 - - - user.=x trusted.=\n\
/h 0 100644 1 0 0 0 0.0 - - - user.a=\n";
    let tree = parse_bytes(dump, &ParseOptions::default()).unwrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = mkcfs_rs_image(&tree, Layout::V1, dir.path());
    let c = c_dump(&dir.path().join("V1.img"));
    let mut ours = Vec::new();
    info::dump(&image, None, &mut ours).unwrap();
    assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&c));
    assert!(!String::from_utf8_lossy(&c).contains("/f 0 100644 1 0 0 0 0.0 - - - user.="));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random V1 and V2 images written by `mkcfs-rs`: our `info::dump` equals C's
    /// `composefs-info dump` byte for byte.
    #[test]
    fn info_dump_of_random_images_matches_c(tree in arb_tree()) {
        let dir = tempfile::tempdir().expect("tempdir");
        for layout in [Layout::V1, Layout::V2] {
            let image = mkcfs_rs_image(&layout.tree(&tree), layout, dir.path());
            let c = c_dump(&dir.path().join(format!("{layout:?}.img")));
            let mut ours = Vec::new();
            info::dump(&image, None, &mut ours)
                .map_err(|e| TestCaseError::fail(format!("{layout:?} dump: {e}")))?;
            if ours != c {
                let at = ours.iter().zip(&c).position(|(a, b)| a != b).unwrap_or(0);
                let from = at.saturating_sub(120);
                return Err(TestCaseError::fail(format!(
                    "{layout:?}: dumps differ at byte {at}\n ours: {}\n C:    {}",
                    String::from_utf8_lossy(&ours[from..(at + 120).min(ours.len())]),
                    String::from_utf8_lossy(&c[from..(at + 120).min(c.len())]),
                )));
            }
        }
    }
}
