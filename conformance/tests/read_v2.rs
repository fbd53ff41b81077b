//! The reader on composefs-rs V2 images (composefs_version 2): the clean tree equals the
//! dumpfile the image was written from, and `composefs-info` output equals C's, which reads V2
//! images too.

mod read_support;

use std::path::{Path, PathBuf};

use cfs_erofs::dumpfile::{parse_bytes, write_to_vec, ParseOptions};
use cfs_erofs::info;
use cfs_erofs::read::{read_image, read_image_with, ReadMode};
use cfs_erofs::{InodeId, InodeKind, Tree};
use conformance::oracle::Oracle;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/read_support")
        .join(name)
}

fn normalise(tree: &mut Tree) {
    for i in 0..tree.len() {
        let inode = tree.inode_mut(InodeId(i as u32));
        inode.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        if inode.is_dir() {
            inode.nlink = 0;
            inode.size = 0;
        }
    }
    tree.normalize_primary_entries();
}

#[test]
fn v2_image_reads_back_to_its_dumpfile() {
    let bytes = std::fs::read(fixture("v2feat.img")).unwrap();
    let dump = std::fs::read(fixture("v2feat.dump")).unwrap();
    let image = read_image(&bytes).unwrap();
    assert_eq!(image.composefs_version, 2);
    let mut read = image.tree;
    // V2 keeps whiteouts as character devices 0.
    let w = read.lookup_path(b"/a/w").expect("V2 whiteout kept");
    assert!(matches!(read.inode(w).kind, InodeKind::CharDevice(0)));
    assert_eq!(
        read.inode(read.lookup_path(b"/a").unwrap())
            .xattr(b"lustre.x"),
        Some(&b"y"[..])
    );
    let mut source = parse_bytes(&dump, &ParseOptions { strict: true }).unwrap();
    normalise(&mut read);
    normalise(&mut source);
    assert_eq!(
        String::from_utf8_lossy(&write_to_vec(&read)),
        String::from_utf8_lossy(&write_to_vec(&source))
    );
    // composefs-info hides the whiteouts.
    let c = read_image_with(&bytes, ReadMode::ComposefsInfo)
        .unwrap()
        .tree;
    assert!(c.lookup_path(b"/a/w").is_none());
    assert!(c.lookup_path(b"/e/w2").is_none());
}

#[test]
fn v2_info_matches_c() {
    let path = fixture("v2feat.img");
    let bytes = std::fs::read(&path).unwrap();
    for cmd in ["dump", "ls", "objects"] {
        let out = Oracle::ComposefsInfo
            .command()
            .arg(cmd)
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut ours = Vec::new();
        match cmd {
            "dump" => info::dump(&bytes, None, &mut ours),
            "ls" => info::ls(&bytes, None, &mut ours),
            _ => info::objects_images([&bytes[..]], None, false, None, &mut ours),
        }
        .unwrap();
        assert!(!out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&out.stdout),
            "{cmd}"
        );
    }
}
