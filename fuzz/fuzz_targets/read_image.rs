//! Any bytes as an image: both reader modes, validation and the composefs-info outputs must
//! return (never panic), agree with each other, and a clean tree the writer accepts must read
//! back equal from our own V1 image of it.
#![no_main]

use cfs_erofs::info;
use cfs_erofs::read::{read_image, read_image_with, validate, ReadMode};
use cfs_erofs::write::{image_bytes, WriteOptions};
use cfs_erofs_fuzz::{assert_same_tree, normalise, walk_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let clean = read_image(data);
    let cinfo = read_image_with(data, ReadMode::ComposefsInfo);
    let valid = validate(data);
    let mut sink = std::io::sink();
    let dumped = info::dump(data, None, &mut sink);
    let _ = info::ls(data, None, &mut sink);
    let mut objects = info::Objects::new();
    let _ = objects.add_image(data, None);
    // dump checks exactly what the composefs-info tree build checks.
    assert_eq!(cinfo.is_ok(), dumped.is_ok(), "{:?} vs {:?}", cinfo.err(), dumped.err());
    // Both tree builds check the whole image first.
    assert_eq!(clean.is_ok(), cinfo.is_ok(), "{:?} vs {:?}", clean.err(), cinfo.err());
    if clean.is_ok() {
        assert!(valid.is_ok(), "read but not valid: {:?}", valid.err());
    }
    if let Ok(c) = &cinfo {
        walk_all(&c.tree);
    }
    let Ok(image) = clean else { return };
    walk_all(&image.tree);
    let _ = cfs_erofs::dumpfile::write_to_vec(&image.tree);
    // What was read, written again by our V1 writer, reads back the same.
    let Ok(again) = image_bytes(&image.tree, &WriteOptions::v1()) else {
        return;
    };
    let mut back = read_image(&again).expect("our own image of a read tree reads").tree;
    let mut orig = image.tree;
    normalise(&mut orig, false);
    normalise(&mut back, false);
    assert_same_tree("read → V1 → read", &orig, &back);
});
