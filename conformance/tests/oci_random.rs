//! OCI ingestion against composefs-oci 0.9.4 on random images: one to three tar layers over a
//! small namespace (so later layers hit earlier paths), with directories, inline and external
//! files, symlinks, hardlinks, whiteouts, opaque markers, PAX nanosecond mtimes and xattrs.
//! Each case is written as an OCI layout, imported by composefs-oci and by us: both refuse it,
//! or both build the same tree (every stat field, xattr, content and hardlink, printed with
//! composefs-rs's dumpfile writer) with the same V1 and V2 image ids.

use std::path::Path;

use cfs_erofs::oci::ids::{image_id as our_id, IdVersion};
use cfs_erofs::oci::layout::tree_from_layout;
use cfs_erofs::oci::{TarOptions, XattrFilter};
use cfs_erofs::tree::HashAlgorithm;
use composefs::erofs::format::FormatVersion;
use composefs::fsverity::Sha256HashValue;
use composefs::generic_tree::XattrFiltering;
use composefs::tree::FileSystem;
use conformance::composefs_rs::{dump, image_id, import_layout, to_composefs_rs};
use conformance::oci_gen::{arb_layers, tars, write_layout, Entry};
use proptest::prelude::*;

/// composefs-oci's tree of a layout, or its error.
fn theirs(layout: &Path) -> Result<FileSystem<Sha256HashValue>, String> {
    import_layout::<Sha256HashValue>(layout, XattrFiltering::AllowlistOnly).map(|i| i.fs)
}

/// Runs one case: `Ok(true)` when both built the same tree and ids, `Ok(false)` when both refused.
fn check(layers: &[Vec<Entry>]) -> Result<bool, TestCaseError> {
    let tars = tars(layers);
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), &tars);
    let opts = TarOptions {
        algorithm: HashAlgorithm::Sha256,
        digest_store: None,
    };
    let ours = tree_from_layout(dir.path(), None, &opts, XattrFilter::AllowlistOnly);
    match (theirs(dir.path()), ours) {
        (Ok(fs), Ok(tree)) => {
            prop_assert_eq!(
                dump(&to_composefs_rs::<Sha256HashValue>(&tree)),
                dump(&fs),
                "tree"
            );
            for (v, fv) in [
                (IdVersion::V1, FormatVersion::V1),
                (IdVersion::V2, FormatVersion::V2),
            ] {
                let want = image_id(&fs, fv);
                let got = our_id(&tree, v, HashAlgorithm::Sha256).unwrap().to_hex();
                prop_assert_eq!(got, want, "{:?} id", v);
            }
            Ok(true)
        }
        (Err(_), Err(_)) => Ok(false),
        (t, o) => Err(TestCaseError::fail(format!(
            "outcomes differ: composefs-oci {:?}, ours {:?}",
            t.map(|fs| dump(&fs)),
            o.map(|_| "a tree").map_err(|e| e.to_string())
        ))),
    }
}

/// 128 random images; at least a quarter must build (a suite where both sides only refuse would
/// prove nothing; a typical run builds about 45, the rest both refuse: links to missing paths,
/// children of a directory a later member replaced by a file, …).
#[test]
fn random_layers_equal_composefs_oci() {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;
    let built = Cell::new(0u32);
    let refused = Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = arb_layers();
    let result = runner.run(&strategy, |layers| {
        if check(&layers)? {
            built.set(built.get() + 1);
        } else {
            refused.set(refused.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "built {} images, both refused {}",
        built.get(),
        refused.get()
    );
    assert!(
        built.get() >= 32,
        "only {} of 128 images built",
        built.get()
    );
}
