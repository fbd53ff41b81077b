//! The language-neutral vectors (`fixtures/vectors/`) and their runner:
//!
//! - the checked-in set is exactly what the generator produces now;
//! - C mkcomposefs 1.0.8 (with C composefs-info for the dump texts) passes every V1 build;
//! - our `mkcfs-rs` passes every V1 and V2 build (and, as composefs-info, prints the V1 texts);
//! - a broken executable fails, and the failure names the region of the flipped byte;
//! - composefs-rs 0.9.4 (through `cfs-rs-adapter`) writes every V2 image it accepts exactly
//!   as expected, and its other outcomes are exactly the set pinned in
//!   `tests/vectors/composefs-rs-0.9.4.txt` (the README's "Conformance runner" section explains
//!   them), so a change on either side is noticed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use conformance::oracle::{mkcfs_rs, Oracle};
use conformance::vectors::runner::{run, Report, RunConfig, Status};
use conformance::vectors::{make, vectors_dir, Manifest};

fn config(mkcomposefs: PathBuf, info: Option<PathBuf>, erofs_version: u32) -> RunConfig {
    RunConfig {
        vectors_dir: vectors_dir(),
        mkcomposefs,
        composefs_info: info,
        erofs_version,
        filter: None,
        jobs: 0,
    }
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn checked_in_vectors_equal_the_generator() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = make(tmp.path()).expect("generate vectors");
    let want = files(tmp.path());
    let have = files(&vectors_dir());
    let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).collect();
    let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    let changed: Vec<_> = want
        .iter()
        .filter(|(k, v)| have.get(*k).is_some_and(|h| h != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && changed.is_empty(),
        "fixtures/vectors is stale (run scripts/make-vectors): missing {missing:?}, extra {extra:?}, changed {changed:?}"
    );
    // Several hundred vectors, every build of each, every rule family.
    assert!(
        fresh.vectors.len() >= 300,
        "{} vectors",
        fresh.vectors.len()
    );
    for v in &fresh.vectors {
        assert_eq!(v.results.len(), 4, "{}", v.name);
        assert!(!v.rules.is_empty(), "{}", v.name);
    }
    let total: usize = have.values().map(Vec::len).sum();
    assert!(total < 4 << 20, "fixtures/vectors holds {total} bytes");
}

fn assert_all_pass(report: &Report, what: &str, builds: usize) {
    let m = Manifest::load(&vectors_dir()).unwrap();
    assert_eq!(report.outcomes.len(), m.vectors.len() * builds, "{what}");
    assert!(report.all_passed(), "{what}:\n{}", report.table(false));
}

#[test]
fn c_mkcomposefs_passes_every_v1_build() {
    let cfg = config(
        Oracle::Mkcomposefs.get(),
        Some(Oracle::ComposefsInfo.get()),
        1,
    );
    let report = run(&cfg).unwrap();
    assert_all_pass(&report, "C mkcomposefs 1.0.8 + composefs-info", 3);
    // The expected failures are among them: C refuses what the manifest says must fail.
    let m = Manifest::load(&vectors_dir()).unwrap();
    let errors = m
        .vectors
        .iter()
        .flat_map(|v| &v.results)
        .filter(|r| r.error.is_some() && r.build != "v2")
        .count();
    assert!(errors >= 30, "{errors} expected-failure builds");
}

#[test]
fn mkcfs_rs_passes_every_build() {
    // V1, with mkcfs-rs as composefs-info too (a symlink of that name): the dump texts are the
    // ones C composefs-info prints.
    let tmp = tempfile::tempdir().unwrap();
    let info = tmp.path().join("composefs-info");
    std::os::unix::fs::symlink(mkcfs_rs(), &info).unwrap();
    let report = run(&config(mkcfs_rs(), Some(info), 1)).unwrap();
    assert_all_pass(&report, "mkcfs-rs V1", 3);
    // V2, with C composefs-info reading our V2 images: the texts agree except where C's reader
    // prints a hardlinked V2 whiteout (a chardev 0:0 it otherwise hides) as a bare `@` line.
    let report = run(&config(mkcfs_rs(), Some(Oracle::ComposefsInfo.get()), 2)).unwrap();
    let failed: Vec<(&str, &Status)> = report
        .failures()
        .map(|o| (o.vector.as_str(), &o.status))
        .collect();
    assert!(
        failed.len() == 1
            && failed[0].0 == "whiteouts/hardlinked"
            && matches!(failed[0].1, Status::DumpDiffers { .. }),
        "mkcfs-rs V2:\n{}",
        report.table(false)
    );
}

/// A wrapper around mkcfs-rs that overwrites one byte of the image it wrote.
fn broken_executable(dir: &Path, offset: u64, byte: u8) -> PathBuf {
    let p = dir.join(format!("broken-{offset}"));
    let script = format!(
        "#!/bin/sh\n\"{}\" \"$@\" || exit $?\nfor last; do :; done\n\
         printf '\\{:03o}' | dd of=\"$last\" bs=1 seek={offset} conv=notrunc 2>/dev/null\n",
        mkcfs_rs().display(),
        byte
    );
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn a_broken_executable_fails_with_the_region() {
    let tmp = tempfile::tempdir().unwrap();
    // minimal/root-only (V1): header, superblock, root inode, root directory block (block 3),
    // the padding in front of the superblock.
    for (offset, byte, region) in [
        (4u64, 0x7fu8, "composefs header"),
        (1024 + 12, 0x0d, "superblock"),
        (1152 + 4, 0x00, "inode 0 (nid 36, /)"),
        (1152 + 32, 0x00, "inode 0 (nid 36, /): inode xattrs"),
        (
            3 * 4096 + 20,
            0x55,
            "directory block 3 of inode 0 (nid 36, /)",
        ),
        (100, 0x01, "padding"),
    ] {
        let mut cfg = config(broken_executable(tmp.path(), offset, byte), None, 1);
        cfg.filter = Some("minimal/root-only".into());
        let report = run(&cfg).unwrap();
        assert_eq!(report.outcomes.len(), 3);
        for o in &report.outcomes {
            match &o.status {
                Status::Differs {
                    offset: at,
                    region: r,
                    ..
                } => {
                    assert_eq!(*at, offset);
                    assert_eq!(r.to_string(), region, "{}", o.status.message());
                }
                s => panic!("{offset}: {s:?}"),
            }
        }
    }
    // An inline tail, through the command line: exit status, table and JUnit report.
    let junit = tmp.path().join("report.xml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg("--mkcomposefs")
        .arg(broken_executable(tmp.path(), 12288 + 5, 0x2e))
        .args(["--filter", "placement/inline-2048-at-4064", "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("differs at 12293 (0x3005): inode 258 (nid 383, /t): inline tail"),
        "{table}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<failure type=\"differ\"").count(), 3, "{xml}");
    assert!(
        xml.contains("name=\"placement/inline-2048-at-4064\""),
        "{xml}"
    );
}

/// The pinned composefs-rs outcomes: `build vector class [region kind]` per non-passing run.
fn pinned_composefs_rs() -> Vec<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/composefs-rs-0.9.4.txt");
    std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn outcome_lines(report: &Report) -> Vec<String> {
    report
        .failures()
        .map(|o| {
            let mut l = format!("{} {} {}", o.build, o.vector, o.status.class());
            if let Status::Differs { region, .. } = &o.status {
                l.push(' ');
                l.push_str(region.kind());
            }
            l
        })
        .collect()
}

#[test]
fn composefs_rs_outcomes_are_the_documented_ones() {
    let adapter = PathBuf::from(env!("CARGO_BIN_EXE_cfs-rs-adapter"));
    let v1 = run(&config(adapter.clone(), None, 1)).unwrap();
    let v2 = run(&config(adapter, None, 2)).unwrap();
    // Every V2 image composefs-rs writes is the expected one.
    let v2_images: Vec<_> = v2
        .failures()
        .filter(|o| matches!(o.status, Status::Differs { .. }))
        .collect();
    assert!(v2_images.is_empty(), "{}", v2.table(false));
    let mut got = outcome_lines(&v1);
    got.extend(outcome_lines(&v2));
    let want = pinned_composefs_rs();
    let unexpected: Vec<_> = got.iter().filter(|l| !want.contains(l)).collect();
    let gone: Vec<_> = want.iter().filter(|l| !got.contains(l)).collect();
    assert!(
        unexpected.is_empty() && gone.is_empty(),
        "composefs-rs outcomes changed; new: {unexpected:#?}\nno longer: {gone:#?}\n{}\n{}",
        v1.table(false),
        v2.table(false)
    );
}

/// Every "Vectors (§…):" line of docs/FORMAT.md names vectors that exist and that cover one of
/// the line's rules, and every rule a vector claims has a section naming it.
#[test]
fn format_document_names_the_vectors_of_each_rule() {
    let manifest = Manifest::load(&vectors_dir()).expect("manifest");
    let rules: BTreeMap<&str, &[String]> = manifest
        .vectors
        .iter()
        .map(|v| (v.name.as_str(), &v.rules[..]))
        .collect();
    let doc =
        std::fs::read_to_string(conformance::oracle::repo_root().join("docs/FORMAT.md")).unwrap();
    let mut named = std::collections::BTreeSet::new();
    let mut lines = 0;
    for line in doc.lines().filter(|l| l.starts_with("Vectors (")) {
        lines += 1;
        let ids: Vec<&str> = line["Vectors (".len()..line.find("):").expect("closing")]
            .split(", ")
            .collect();
        for name in line
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| rules.contains_key(n))
        {
            assert!(
                rules[name].iter().any(|r| ids.contains(&r.as_str())),
                "{name} is listed under {ids:?} but covers {:?}",
                rules[name]
            );
            named.insert(name);
        }
        for id in &ids {
            let expected: Vec<&str> = rules
                .iter()
                .filter(|(_, r)| r.iter().any(|x| x == id))
                .map(|(n, _)| *n)
                .collect();
            for n in expected {
                assert!(
                    line.contains(&format!("`{n}`")),
                    "{n} covers {id} but is not listed in: {line}"
                );
            }
        }
    }
    assert!(lines >= 40, "only {lines} rule sections name vectors");
    assert!(
        named.len() * 10 >= rules.len() * 9,
        "most vectors are named by some rule section"
    );
}
