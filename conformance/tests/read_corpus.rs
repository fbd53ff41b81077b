//! The reader against the C test corpus: every image C builds from a corpus dumpfile reads
//! back, in both modes.

mod read_support;

use cfs_erofs::read::{read_image, read_image_with, validate, ReadMode};
use read_support::corpus_images;

#[test]
fn every_corpus_image_reads() {
    let images = corpus_images();
    assert!(images.len() >= 15, "corpus too small: {}", images.len());
    for c in images {
        validate(&c.bytes).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let clean = read_image(&c.bytes).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let info = read_image_with(&c.bytes, ReadMode::ComposefsInfo)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert!(clean.composefs_version <= 1, "{}", c.name);
        assert_eq!(clean.tree.len(), info.tree.len(), "{}", c.name);
    }
}

/// The facts of a tree the image format keeps: xattrs sorted by name, directory sizes and
/// link counts and the sizes of devices, FIFOs and sockets zeroed (writers recompute or drop
/// them), the first depth-first name of each inode primary.
fn normalise(tree: &mut cfs_erofs::Tree) {
    use cfs_erofs::{InodeId, InodeKind};
    for i in 0..tree.len() {
        let inode = tree.inode_mut(InodeId(i as u32));
        inode.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        match inode.kind {
            InodeKind::Directory(_) => {
                inode.nlink = 0;
                inode.size = 0;
            }
            InodeKind::CharDevice(_)
            | InodeKind::BlockDevice(_)
            | InodeKind::Fifo
            | InodeKind::Socket => inode.size = 0,
            _ => {}
        }
    }
    tree.normalize_primary_entries();
}

/// Every corpus dumpfile, parsed, equals the clean tree read back from C's image of it, up to
/// the normalisations the format imposes.
#[test]
fn clean_read_equals_the_parsed_dumpfile() {
    use cfs_erofs::dumpfile::{parse_bytes, write_to_vec, ParseOptions};
    for c in corpus_images() {
        let mut source = parse_bytes(&c.dump, &ParseOptions { strict: false })
            .unwrap_or_else(|e| panic!("{}: {}", c.name, e.message()));
        let mut read = read_image(&c.bytes).unwrap().tree;
        normalise(&mut source);
        normalise(&mut read);
        let a = write_to_vec(&source);
        let b = write_to_vec(&read);
        if a != b {
            let la: Vec<&[u8]> = a.split(|&x| x == b'\n').collect();
            let lb: Vec<&[u8]> = b.split(|&x| x == b'\n').collect();
            let i = la
                .iter()
                .zip(&lb)
                .position(|(x, y)| x != y)
                .unwrap_or(la.len().min(lb.len()));
            panic!(
                "{}: line {i} differs\nsource: {}\nread:   {}",
                c.name,
                String::from_utf8_lossy(la.get(i).copied().unwrap_or_default()),
                String::from_utf8_lossy(lb.get(i).copied().unwrap_or_default())
            );
        }
    }
}
