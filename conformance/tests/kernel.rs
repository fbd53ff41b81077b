//! The Linux kernel as the reader of record. Every image of the suite is mounted as EROFS in a
//! private mount namespace and listed; the listing must equal what the tree predicts for the
//! layout (types, modes, owners, sizes, nanosecond mtimes, rdev, symlink targets, xattrs, inline
//! contents). Then images are mounted composefs-style — overlayfs with the image as lower layer
//! and an object folder as data-only layer — and every external file must read back its
//! object's bytes while the whiteout stubs stay hidden.
//!
//! Needs root and a kernel with erofs and overlayfs: outside CI the tests say why and pass
//! without checking; with `CI=true` a machine that cannot mount fails them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::tree::{FileData, InodeId, InodeKind, Mtime, Tree};
use cfs_erofs::write::{image_bytes, write_images, WriteOptions};
use conformance::kernel::{
    expected_erofs_view, mount_and_walk, mountable, tree_with_objects, Layout,
};
use conformance::strategy::arb_tree;
use conformance::walk;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn walker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_conformance"))
}

/// The composefs_version a V1 write of `tree` with `opts` ends up with.
fn v1_layout(tree: &Tree, opts: &WriteOptions) -> Layout {
    let mut out = Vec::new();
    let s = write_images(tree, &[*opts], &mut [&mut out]).expect("write");
    Layout::V1 {
        composefs_version: s[0].composefs_version,
    }
}

/// Writes `tree` in each layout, mounts it, and compares the kernel's listing with the
/// prediction. Returns the number of images checked.
fn check_erofs_views(name: &str, tree: &Tree) -> usize {
    let tree = &without_system_xattrs(tree);
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut layouts = vec![
        WriteOptions::v1(),
        WriteOptions::v1_exact(0),
        WriteOptions::v1_exact(1),
    ];
    if v2_readable(tree) {
        layouts.push(WriteOptions::v2());
    }
    for opts in layouts {
        let layout = match opts.version {
            cfs_erofs::write::FormatVersion::V1 => v1_layout(tree, &opts),
            cfs_erofs::write::FormatVersion::V2 => Layout::V2,
        };
        let img = dir.path().join(format!("{n}.img"));
        fs::write(&img, image_bytes(tree, &opts).expect("write image")).unwrap();
        let dump = || {
            let text =
                String::from_utf8_lossy(&cfs_erofs::dumpfile::write_to_vec(tree)).into_owned();
            text.chars().take(4000).collect::<String>()
        };
        let got = mount_and_walk(&walker(), &img, None)
            .inspect_err(|_| keep(&img))
            .unwrap_or_else(|e| panic!("{name} {layout:?}: {e}\ntree:\n{}", dump()));
        let want = walk::format(&expected_erofs_view(tree, layout));
        if got != want {
            let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
            let first = g
                .iter()
                .zip(&w)
                .position(|(a, b)| a != b)
                .unwrap_or(g.len().min(w.len()));
            panic!(
                "{name} {layout:?}: kernel view differs at line {first}\n kernel: {:?}\n  tree:  {:?}\n({} vs {} lines)",
                g.get(first),
                w.get(first),
                g.len(),
                w.len()
            );
        }
        n += 1;
    }
    n
}

/// Whether the V2 layout of `tree` is readable by the kernel. V2 never moves inline data to a
/// block, so an inline file or symlink too long for the rest of the inode's block makes its tail
/// cross a block boundary, which EROFS refuses (EIO). composefs-rs itself never writes such
/// trees: it inlines files up to 64 bytes and reads at most 512-byte inline contents and
/// 1024-byte symlink targets from dumpfiles.
fn v2_readable(tree: &Tree) -> bool {
    tree.inodes().all(|(_, i)| match &i.kind {
        InodeKind::Regular(FileData::Inline(c)) => c.len() <= 512,
        InodeKind::Symlink(t) => t.len() <= 1024,
        _ => true,
    })
}

/// Keeps a failing image for inspection when `KERNEL_TEST_KEEP` names a folder.
fn keep(img: &Path) {
    if let Some(dir) = std::env::var_os("KERNEL_TEST_KEEP") {
        let _ = fs::copy(img, PathBuf::from(dir).join("failing.img"));
    }
}

fn corpus_trees() -> Vec<(String, Tree)> {
    conformance::corpus::assets()
        .into_iter()
        .map(|a| {
            let tree = parse_bytes(&a.dump, &ParseOptions { strict: false }).unwrap();
            (a.name, tree)
        })
        .collect()
}

#[test]
fn kernel_reads_corpus_and_fixture_images_as_the_tree_says() {
    if !mountable() {
        return;
    }
    let mut images = 0;
    for (name, tree) in corpus_trees() {
        images += check_erofs_views(&name, &tree);
    }
    let fixtures = conformance::oracle::repo_root().join("fixtures/dumpfiles");
    for e in fs::read_dir(&fixtures).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "dump") {
            let tree =
                parse_bytes(&fs::read(&p).unwrap(), &ParseOptions { strict: false }).unwrap();
            images += check_erofs_views(&p.display().to_string(), &tree);
        }
    }
    assert!(images >= 3 * 16, "only {images} images checked");
}

/// Keeps to what the kernel reports unchanged: mtimes in the range every 64-bit kernel
/// represents, nanoseconds below one second.
fn kernel_representable(mut tree: Tree) -> Tree {
    let ids: Vec<InodeId> = tree.inodes().map(|(id, _)| id).collect();
    for id in ids {
        let i = tree.inode_mut(id);
        i.mtime = Mtime::new(
            i.mtime.sec.rem_euclid(1 << 34) - (1 << 31),
            i.mtime.nsec % 1_000_000_000,
        );
    }
    tree
}

/// Drops `system.*` xattrs. The listing leaves them out anyway (the kernel interprets them), and
/// a POSIX ACL the kernel finds invalid makes it refuse access to the inode (EIO, EOPNOTSUPP).
fn without_system_xattrs(tree: &Tree) -> Tree {
    let mut tree = tree.clone();
    let ids: Vec<InodeId> = tree.inodes().map(|(id, _)| id).collect();
    for id in ids {
        tree.inode_mut(id)
            .xattrs
            .retain(|x| !x.name.starts_with(b"system."));
    }
    tree
}

#[test]
fn kernel_reads_random_trees_as_the_tree_says() {
    if !mountable() {
        return;
    }
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&arb_tree().prop_map(kernel_representable), |tree| {
            check_erofs_views("random tree", &tree);
            Ok(())
        })
        .unwrap();
}

#[test]
fn composefs_overlay_reads_objects_and_hides_stubs() {
    if !mountable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let (tree, expect) = tree_with_objects(&objects);
    for opts in [WriteOptions::v1(), WriteOptions::v2()] {
        let img = dir.path().join("image.cfs");
        fs::write(&img, image_bytes(&tree, &opts).unwrap()).unwrap();
        let listing = mount_and_walk(&walker(), &img, Some(&objects)).expect("overlay mount");
        let mut seen = BTreeMap::new();
        for line in listing.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let path = f[0].as_bytes().to_vec();
            assert!(
                !(f[1] == "c" && path.len() == 3 && path[0] == b'/'),
                "{opts:?}: stub {} visible through the overlay",
                f[0]
            );
            if f[1] == "f" {
                seen.insert(path, f[10].to_string());
            }
        }
        for (path, content) in &expect {
            use sha2::Digest as _;
            let want = hex::encode(sha2::Sha256::digest(content));
            assert_eq!(
                seen.get(path).map(String::as_str),
                Some(want.as_str()),
                "{opts:?}: {} through the overlay",
                String::from_utf8_lossy(path)
            );
        }
    }
}
