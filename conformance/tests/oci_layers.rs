//! OCI ingestion against composefs-rs 0.9.4, on every fixture of `fixtures/oci/`.
//!
//! composefs-oci imports each layout into a temporary repository and builds its filesystem
//! (`create_filesystem`, then `transform_for_boot` for the bootable tree); we build ours from the
//! same folder. Both trees are printed with composefs-rs's own dumpfile writer (ours converted to
//! its tree type first), so every stat field, xattr, content reference and hardlink is compared.
//! The image ids composefs-rs computes for each fixture (V1 and V2, plain and bootable) are
//! pinned in insta snapshots, ready for the comparison with our writer.

use std::path::{Path, PathBuf};

use cfs_erofs::oci::boot::{transform_for_boot, DigestStore};
use cfs_erofs::oci::ids::{image_id as our_id, IdVersion};
use cfs_erofs::oci::layout::tree_from_layout;
use cfs_erofs::oci::{TarOptions, XattrFilter};
use cfs_erofs::tree::{HashAlgorithm, Tree};

use composefs::erofs::format::FormatVersion;
use composefs::fsverity::{FsVerityHashValue, Sha256HashValue, Sha512HashValue};
use composefs::generic_tree::XattrFiltering;
use composefs_boot::BootOps;
use conformance::composefs_rs::{dump, image_id, import_layout, to_composefs_rs, Imported};

const FIXTURES: [&str; 4] = ["synthetic", "debian", "crate", "bootable"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/oci")
        .join(name)
}

/// composefs-rs's view of one fixture: repository, plain tree.
fn import<H: FsVerityHashValue>(name: &str, filter: XattrFiltering) -> Imported<H> {
    import_layout(&fixture(name), filter).expect("composefs-oci import")
}

struct Ours {
    store: tempfile::TempDir,
    tree: Tree,
}

fn ours(name: &str, alg: HashAlgorithm, filter: XattrFilter) -> Ours {
    let store = tempfile::tempdir().unwrap();
    let opts = TarOptions {
        algorithm: alg,
        digest_store: Some(store.path().to_owned()),
    };
    let tree = tree_from_layout(fixture(name), None, &opts, filter).expect("our ingestion");
    Ours { store, tree }
}

/// Compares plain and bootable trees for one fixture and returns composefs-rs's image ids.
fn compare<H: FsVerityHashValue>(name: &str, alg: HashAlgorithm) -> String {
    let theirs = import::<H>(name, XattrFiltering::AllowlistOnly);
    let mut ours = ours(name, alg, XattrFilter::AllowlistOnly);
    let expected = dump(&theirs.fs);
    assert_eq!(
        dump(&to_composefs_rs::<H>(&ours.tree)),
        expected,
        "{name}: plain tree"
    );

    let (v1, v2) = (
        image_id(&theirs.fs, FormatVersion::V1),
        image_id(&theirs.fs, FormatVersion::V2),
    );
    assert_eq!(
        our_id(&ours.tree, IdVersion::V1, alg).unwrap().to_hex(),
        v1,
        "{name}: V1 id"
    );
    assert_eq!(
        our_id(&ours.tree, IdVersion::V2, alg).unwrap().to_hex(),
        v2,
        "{name}: V2 id"
    );
    let mut ids = format!("expected_v1_id: {v1}\nexpected_v2_id: {v2}\n");
    let mut boot = theirs.fs.clone();
    let their_boot = boot.transform_for_boot(&theirs.repo);
    let our_boot = transform_for_boot(&mut ours.tree, &DigestStore(ours.store.path().to_owned()));
    match (their_boot, our_boot) {
        (Ok(_), Ok(_)) => {
            if name == "bootable" {
                // The image's own policy was applied (not just labels stripped), and a
                // hardlink whose names get different labels was split.
                let d = dump(&boot);
                assert!(
                    d.contains("tool_exec_t") && d.contains("modules_object_t"),
                    "{d}"
                );
                assert!(!d.contains("host_t"), "{d}");
            }
            assert_eq!(
                dump(&to_composefs_rs::<H>(&ours.tree)),
                dump(&boot),
                "{name}: bootable tree"
            );
            let (v1, v2) = (
                image_id(&boot, FormatVersion::V1),
                image_id(&boot, FormatVersion::V2),
            );
            let ours_v1 = our_id(&ours.tree, IdVersion::V1, alg).unwrap().to_hex();
            let ours_v2 = our_id(&ours.tree, IdVersion::V2, alg).unwrap().to_hex();
            assert_eq!(ours_v1, v1, "{name}: bootable V1 id");
            assert_eq!(ours_v2, v2, "{name}: bootable V2 id");
            ids += &format!("expected_v1_bootable_id: {v1}\nexpected_v2_bootable_id: {v2}\n");
        }
        (Err(_), Err(_)) => ids += "bootable: not a bootable image (both refuse)\n",
        (a, b) => panic!("{name}: bootable transform disagrees: theirs {a:?}, ours {b:?}"),
    }
    ids
}

#[test]
fn sha256_trees_and_ids_match_composefs_rs() {
    for name in FIXTURES {
        let ids = compare::<Sha256HashValue>(name, HashAlgorithm::Sha256);
        insta::assert_snapshot!(format!("{name}_sha256"), ids);
    }
}

#[test]
fn sha512_trees_match_composefs_rs() {
    for name in FIXTURES {
        let ids = compare::<Sha512HashValue>(name, HashAlgorithm::Sha512);
        insta::assert_snapshot!(format!("{name}_sha512"), ids);
    }
}

#[test]
fn user_xattrs_kept_like_composefs_rs() {
    let theirs = import::<Sha256HashValue>("synthetic", XattrFiltering::KeepUserXattrs);
    let ours = ours(
        "synthetic",
        HashAlgorithm::Sha256,
        XattrFilter::KeepUserXattrs,
    );
    let expected = dump(&theirs.fs);
    assert!(expected.contains("user.note"));
    assert_eq!(
        dump(&to_composefs_rs::<Sha256HashValue>(&ours.tree)),
        expected
    );
}
