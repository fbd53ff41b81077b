//! Our V2 writer against composefs-rs 0.9.4's `mkfs_erofs_versioned(…, FormatVersion::V2)`:
//! the §14 vectors, and random trees within what composefs-rs can represent, fed to it through
//! its own dumpfile parser. Images must be byte-identical.

mod v1_common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::tree::{Digest, FileData, Inode, InodeId, InodeKind, Tree};
use cfs_erofs::write::{image_bytes, WriteOptions};
use composefs::dumpfile::dumpfile_to_filesystem;
use composefs::erofs::format::FormatVersion;
use composefs::erofs::writer::{mkfs_erofs_versioned, ValidatedFileSystem};
use composefs::fsverity::Sha256HashValue;
use conformance::oracle::repo_root;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use v1_common::{
    build_tree, make_v2_compatible, save_regression, to_dumpfile, tree_strategy, verity_hex,
};

/// composefs-rs' V2 image of a dumpfile, or why it refused it.
fn rs_v2(dump: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(dump).map_err(|e| e.to_string())?;
    let fs = dumpfile_to_filesystem::<Sha256HashValue>(text).map_err(|e| format!("{e:#}"))?;
    let fs = ValidatedFileSystem::new(fs).map_err(|e| format!("{e:#}"))?;
    catch_unwind(AssertUnwindSafe(|| {
        mkfs_erofs_versioned(&fs, FormatVersion::V2).into_vec()
    }))
    .map_err(|_| "composefs-rs panicked".to_owned())
}

fn ours_v2(tree: &Tree) -> Vec<u8> {
    image_bytes(tree, &WriteOptions::v2()).expect("our V2 writer")
}

/// §14: V2 digests of the minimal and "simple" trees.
#[test]
fn format_note_vectors() {
    let dir = repo_root().join("fixtures/dumpfiles");
    for (name, want) in [
        (
            "minimal",
            "086b702a519b57d6ef5aea6f8b3f2be24355cd1fb835cd80fb4e3d388b24d5a5",
        ),
        (
            "simple",
            "a8fcd41f8b313bede69f462f2af0a38d64b99a6333f5df884ea9ab4037fac722",
        ),
    ] {
        let dump = std::fs::read(dir.join(format!("{name}.dump"))).unwrap();
        let tree = parse_bytes(&dump, &ParseOptions { strict: true }).unwrap();
        let ours = ours_v2(&tree);
        assert_eq!(verity_hex(&ours), want, "{name}");
        assert!(
            ours == rs_v2(&dump).unwrap(),
            "{name}: differs from composefs-rs"
        );
    }
}

/// An external file with a digest but no payload: composefs-rs names the object by its
/// digest; so does our V2 writer (C, and our V1, write no redirect then).
#[test]
fn redirect_from_digest_without_payload() {
    let d = [0xabu8; 32];
    let mut tree = Tree::new(Inode::directory(0o755));
    let mut f = Inode::new(
        InodeKind::Regular(FileData::External {
            payload: None,
            digest: Some(Digest::Sha256(d)),
        }),
        0o644,
    );
    f.size = 1234;
    tree.add(InodeId::ROOT, b"f", f.clone()).unwrap();
    // The same tree with the payload composefs-rs would derive.
    let mut with_payload = Tree::new(Inode::directory(0o755));
    if let InodeKind::Regular(FileData::External { payload, .. }) = &mut f.kind {
        *payload = Some(Digest::Sha256(d).object_path().into_bytes().into());
    }
    with_payload.add(InodeId::ROOT, b"f", f).unwrap();
    assert!(ours_v2(&tree) == ours_v2(&with_payload));
    let v1 = image_bytes(&tree, &WriteOptions::v1()).unwrap();
    assert!(!v1.windows(8).any(|w| w == b"redirect"));
}

fn cases() -> u32 {
    std::env::var("V2_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

#[test]
fn random_trees_equal_composefs_rs() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let refused = std::cell::Cell::new(0u32);
    let make = |root: &v1_common::Meta, ops: &[v1_common::Op]| {
        let mut tree = build_tree(root, ops);
        make_v2_compatible(&mut tree);
        let dump = to_dumpfile(&tree);
        (tree, dump)
    };
    let result = runner.run(&tree_strategy(), |(root, ops)| {
        let (tree, dump) = make(&root, &ops);
        let theirs = match rs_v2(&dump) {
            Ok(b) => b,
            Err(e) => {
                if std::env::var_os("V2_SHOW_REFUSALS").is_some() {
                    eprintln!("refused: {}", e.lines().last().unwrap_or(""));
                }
                refused.set(refused.get() + 1);
                return Ok(());
            }
        };
        let ours = image_bytes(&tree, &WriteOptions::v2()).map_err(|e| {
            TestCaseError::fail(format!("composefs-rs wrote an image, we failed: {e}"))
        })?;
        if ours != theirs {
            let at = ours.iter().zip(&theirs).position(|(a, b)| a != b);
            return Err(TestCaseError::fail(format!(
                "V2 differs from composefs-rs (ours {} bytes, theirs {}, first difference at {at:?})",
                ours.len(),
                theirs.len()
            )));
        }
        Ok(())
    });
    eprintln!(
        "{} of {} trees refused by composefs-rs",
        refused.get(),
        cases()
    );
    match result {
        Ok(()) => assert!(
            refused.get() * 10 <= cases(),
            "composefs-rs refused too many generated trees: the generator needs fixing"
        ),
        Err(TestError::Fail(why, (root, ops))) => {
            let (_, dump) = make(&root, &ops);
            let saved = save_regression(&dump, "v2");
            let text = String::from_utf8_lossy(&dump);
            let shown: String = text.chars().take(3000).collect();
            panic!("{why}\nshrunk case saved to {}:\n{shown}", saved.display());
        }
        Err(e) => panic!("{e}"),
    }
}
