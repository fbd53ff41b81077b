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
