//! OCI trees through C mkcomposefs: every fixture's tree (plain and bootable), written as a
//! dumpfile and built by C mkcomposefs 1.0.8, gives the same bytes as our V1 writer, both with
//! C's default versions and with `--min-version=1` (the V1 composefs-rs and the image ids use).

use std::path::Path;

use cfs_erofs::dumpfile::write_to_vec;
use cfs_erofs::oci::boot::{transform_for_boot, DigestStore};
use cfs_erofs::oci::layout::tree_from_layout;
use cfs_erofs::oci::{TarOptions, XattrFilter};
use cfs_erofs::tree::Tree;
use cfs_erofs::write::{image_bytes, WriteOptions};
use conformance::oracle::{run_with_input, Oracle};

fn c_image(dump: &[u8], min1: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("image");
    let mut cmd = Oracle::Mkcomposefs.command();
    if min1 {
        cmd.arg("--min-version=1");
    }
    cmd.arg("--from-file").arg("-").arg(&out);
    let o = run_with_input(cmd, dump);
    assert!(
        o.status.success(),
        "mkcomposefs: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(&out).unwrap()
}

fn check(name: &str, what: &str, tree: &Tree) {
    let dump = write_to_vec(tree);
    for (min1, opts) in [
        (false, WriteOptions::v1()),
        (true, WriteOptions::v1_exact(1)),
    ] {
        let ours = image_bytes(tree, &opts).unwrap();
        let theirs = c_image(&dump, min1);
        assert!(
            ours == theirs,
            "{name} {what} (min-version=1: {min1}): our V1 image differs from C's \
             ({} vs {} bytes)",
            ours.len(),
            theirs.len()
        );
    }
}

#[test]
fn oci_trees_build_identically_with_c_mkcomposefs() {
    for name in ["synthetic", "debian", "crate", "bootable"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/oci")
            .join(name);
        let store = tempfile::tempdir().unwrap();
        let opts = TarOptions {
            digest_store: Some(store.path().to_owned()),
            ..TarOptions::default()
        };
        for filter in [XattrFilter::AllowlistOnly, XattrFilter::KeepUserXattrs] {
            let mut tree = tree_from_layout(&dir, None, &opts, filter).unwrap();
            check(name, &format!("{filter:?}"), &tree);
            if name == "bootable" {
                transform_for_boot(&mut tree, &DigestStore(store.path().to_owned())).unwrap();
                check(name, "bootable", &tree);
            }
        }
    }
}
