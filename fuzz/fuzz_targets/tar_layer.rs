//! Any bytes as a tar layer (raw, with header checksums fixed, or gzip-compressed): reading,
//! merging and the OCI transform return (never panic); a merged tree the writers accept reads
//! back equal from its V1 and V2 images.
#![no_main]

use std::io::Write;

use cfs_erofs::oci::merge::{transform_for_oci, LayerMerger, XattrFilter};
use cfs_erofs::oci::tar::{read_layer, TarError, TarOptions};
use cfs_erofs::oci::{apply_layer, MergeError};
use cfs_erofs::read::read_image;
use cfs_erofs::write::{image_bytes, WriteOptions};
use cfs_erofs_fuzz::{assert_same_tree, checksummed_tar, normalise};
use libfuzzer_sys::fuzz_target;

enum Step {
    Tar(#[allow(dead_code)] TarError),
    Merge(#[allow(dead_code)] MergeError),
}

impl From<TarError> for Step {
    fn from(e: TarError) -> Self {
        Step::Tar(e)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let opts = TarOptions::default();
    let mut merger = LayerMerger::new();
    let ok = match mode % 3 {
        0 => read_layer(rest, &opts, |e| merger.apply(e).map_err(Step::Merge)).is_ok(),
        1 => {
            let tar = checksummed_tar(rest);
            read_layer(&tar[..], &opts, |e| merger.apply(e).map_err(Step::Merge)).is_ok()
        }
        _ => {
            let tar = checksummed_tar(rest);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).unwrap();
            let gz = gz.finish().unwrap();
            apply_layer(&mut merger, &gz[..], &opts).is_ok()
        }
    };
    if !ok {
        return;
    }
    let filter = if mode & 0x80 != 0 {
        XattrFilter::KeepUserXattrs
    } else {
        XattrFilter::AllowlistOnly
    };
    let mut tree = merger.into_tree();
    if transform_for_oci(&mut tree, filter).is_err() {
        return;
    }
    for (opts, v2) in [(WriteOptions::v1(), false), (WriteOptions::v2(), true)] {
        let Ok(bytes) = image_bytes(&tree, &opts) else {
            continue;
        };
        let mut back = read_image(&bytes).expect("our image of a layer reads").tree;
        let mut expected = tree.clone();
        normalise(&mut expected, v2);
        normalise(&mut back, v2);
        assert_same_tree(if v2 { "layer → V2" } else { "layer → V1" }, &expected, &back);
    }
});
