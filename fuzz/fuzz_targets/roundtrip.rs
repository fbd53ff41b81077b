//! An arbitrary tree written as V1 and V2 reads back equal up to the documented
//! normalisations, and V1 bytes read back and written again are the same bytes.
#![no_main]

use arbitrary::Unstructured;
use cfs_erofs::read::read_image;
use cfs_erofs::write::{image_bytes, WriteOptions};
use cfs_erofs_fuzz::{arb_tree, assert_same_tree, normalise};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(tree) = arb_tree(&mut u) else { return };
    for (opts, v2) in [(WriteOptions::v1(), false), (WriteOptions::v2(), true)] {
        let bytes = match image_bytes(&tree, &opts) {
            Ok(b) => b,
            Err(e) => panic!("the writer refused a generated tree: {e}"),
        };
        let image = read_image(&bytes).unwrap_or_else(|e| panic!("our image does not read: {e}"));
        let mut expected = tree.clone();
        let mut back = image.tree;
        normalise(&mut expected, v2);
        normalise(&mut back, v2);
        assert_same_tree(if v2 { "V2" } else { "V1" }, &expected, &back);
        if !v2 {
            let again = image_bytes(&back, &opts).expect("a read tree writes");
            assert!(again == bytes, "V1 → read → V1 changed the bytes");
        }
    }
});
