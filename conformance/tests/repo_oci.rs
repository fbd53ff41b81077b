//! `mkcfs-rs oci … --repo` against composefs-oci 0.9.4's `pull("oci:LAYOUT:REF")`: the same
//! OCI layout imported by both into fresh repositories (sha256, insecure, V1 default + V2
//! extra) must give the same `meta.json`, the same objects (every one of ours byte-identical
//! to theirs, since objects are named by their digest; theirs has exactly the garbage its own
//! `gc_dry_run` reports besides), the same symlinks, folder and file modes, and the same refs.
//! The one object composefs-oci writes nondeterministically (the final manifest splitstream of a
//! multi-layer image, whose stream-ref order comes from a hash map) must mean the same: same
//! named refs and object. composefs-rs's `fsck`, `oci_fsck` and `gc_dry_run` accept ours, and
//! composefs-oci reads back the image ids we recorded and recomputes them from our streams.

use std::path::Path;
use std::process::Command;

use conformance::composefs_repo::{self as cr, Entry};
use conformance::oracle::mkcfs_rs;
use proptest::prelude::*;

const TAG: &str = "img:latest";

/// Imports with our command line; returns the printed default image id.
fn ours(layout: &Path, reference: &str, repo: &Path, bootable: bool) -> Result<String, String> {
    let mut cmd = Command::new(mkcfs_rs());
    cmd.args(["oci", "--ref", reference, "--repo"])
        .arg(repo)
        .args([
            "--tag",
            TAG,
            "--insecure",
            "--erofs-version",
            "1",
            "--erofs-extra",
            "2",
        ])
        .arg("--print-digest")
        .arg(layout);
    if bootable {
        cmd.arg("--bootable");
    }
    let out = cmd.output().expect("run mkcfs-rs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Compares two repositories that imported the same image; `Err` describes the first difference.
fn compare(theirs: &Path, ours: &Path, bootable: bool) -> Result<(), String> {
    let t = cr::entries(theirs);
    let o = cr::entries(ours);
    let theirs_garbage = cr::verdict(theirs)?.garbage?.0;
    // Our checker on their repository: sound, and the same garbage their GC finds.
    let repo = cfs_erofs::repo::Repository::open(theirs).map_err(|e| e.to_string())?;
    let problems = cfs_erofs::repo::check::fsck(&repo).map_err(|e| e.to_string())?;
    if !problems.is_empty() {
        return Err(format!("our fsck of theirs: {problems:?}"));
    }
    let ours_gc = cfs_erofs::repo::check::gc(&repo, true).map_err(|e| e.to_string())?;
    if ours_gc.objects.len() as u64 != theirs_garbage || !ours_gc.links.is_empty() {
        return Err(format!(
            "our gc --dry-run of theirs: {ours_gc:?}; composefs-rs finds {theirs_garbage} objects"
        ));
    }
    drop(repo);
    let v = cr::verdict(ours)?;
    v.fsck
        .map_err(|e| format!("composefs-rs fsck of ours: {e}"))?;
    v.oci_fsck
        .map_err(|e| format!("composefs-oci oci_fsck of ours: {e}"))?;
    let g = v.garbage.map_err(|e| format!("gc_dry_run of ours: {e}"))?;
    if g.0 != 0 {
        return Err(format!("gc_dry_run finds {} garbage objects in ours", g.0));
    }
    if std::fs::read(theirs.join("meta.json")).unwrap()
        != std::fs::read(ours.join("meta.json")).unwrap()
    {
        return Err("meta.json differs".into());
    }
    // Streams composefs-oci may write in another order: the manifest of a multi-layer image,
    // and the config of a bootable one. They must mean the same.
    let mut reordered = Vec::new();
    for (path, e) in &o {
        if path.starts_with("objects/") {
            continue;
        }
        let te = t.get(path).ok_or_else(|| format!("{path}: only in ours"))?;
        if te == e {
            continue;
        }
        let may_differ = path.starts_with("streams/oci-manifest-")
            || (bootable && path.starts_with("streams/oci-config-"));
        if may_differ && matches!(e, Entry::Link(_)) {
            let (a, b) = (
                cr::meaning(theirs, &cr::resolve(theirs, path)),
                cr::meaning(ours, &cr::resolve(ours, path)),
            );
            if a != b {
                return Err(format!("{path}: theirs {a}, ours {b}"));
            }
            reordered.push(path.clone());
            continue;
        }
        return Err(format!("{path}: theirs {te:?}, ours {e:?}"));
    }
    for path in t.keys() {
        if !path.starts_with("objects/") && !o.contains_key(path) {
            return Err(format!("{path}: only in theirs"));
        }
    }
    // Objects: ours ⊆ theirs (same name = same bytes), apart from reordered streams (and any
    // config/manifest they lead to); theirs has its garbage besides.
    let ours_objects: Vec<&String> = o
        .keys()
        .filter(|p| p.starts_with("objects/") && matches!(o[*p], Entry::File(..)))
        .collect();
    let theirs_objects: Vec<&String> = t
        .keys()
        .filter(|p| p.starts_with("objects/") && matches!(t[*p], Entry::File(..)))
        .collect();
    let only_ours: Vec<_> = ours_objects
        .iter()
        .filter(|p| !t.contains_key(**p))
        .collect();
    if only_ours.len() > reordered.len() {
        return Err(format!("objects only in ours: {only_ours:?}"));
    }
    for p in &ours_objects {
        if let Some(te) = t.get(*p) {
            if te != &o[*p] {
                return Err(format!("{p}: theirs {te:?}, ours {:?}", o[*p]));
            }
        }
    }
    let only_theirs = theirs_objects
        .iter()
        .filter(|p| !o.contains_key(**p))
        .count() as u64;
    if only_theirs != theirs_garbage + only_ours.len() as u64 {
        return Err(format!(
            "theirs has {only_theirs} objects we lack; its garbage is {theirs_garbage}, our reordered streams {}",
            only_ours.len()
        ));
    }
    // composefs-oci reads our ids and recomputes them from our layer streams.
    let ids_t = cr::recorded_ids(theirs, TAG)?;
    let ids_o = cr::recorded_ids(ours, TAG)?;
    if ids_t != ids_o {
        return Err(format!("recorded ids: theirs {ids_t:?}, ours {ids_o:?}"));
    }
    let computed = cr::computed_ids(ours, TAG)?;
    if [ids_o[0].clone(), ids_o[1].clone()]
        != [Some(computed[0].clone()), Some(computed[1].clone())]
    {
        return Err(format!(
            "recorded {ids_o:?}, composefs-rs computes {computed:?}"
        ));
    }
    Ok(())
}

fn one(layout: &Path, reference: &str, bootable: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let (t, o) = (dir.path().join("theirs"), dir.path().join("ours"));
    cr::pull(layout, reference, &t, TAG, bootable)?;
    let printed = ours(layout, reference, &o, bootable)?;
    compare(&t, &o, bootable)?;
    let ids = cr::recorded_ids(&o, TAG)?;
    let default = if bootable { &ids[2] } else { &ids[0] };
    if default.as_deref() != Some(printed.as_str()) {
        return Err(format!("printed {printed}, recorded {ids:?}"));
    }
    Ok(())
}

#[test]
fn fixtures_import_like_composefs_oci() {
    let root = conformance::oracle::repo_root().join("fixtures/oci");
    let mut n = 0;
    for (name, bootable) in [
        ("synthetic", false),
        ("debian", false),
        ("crate", false),
        ("bootable", false),
        ("bootable", true),
    ] {
        if let Err(e) = one(&root.join(name), name, bootable) {
            panic!("{name} (bootable {bootable}): {e}");
        }
        n += 1;
    }
    eprintln!("{n} fixture imports identical to composefs-oci");
}

/// Random images (the generator of `oci_random`): where composefs-oci imports one, so do we,
/// into an equivalent repository; where it refuses, we refuse too.
#[test]
fn random_images_import_like_composefs_oci() {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;
    let built = Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&conformance::oci_gen::arb_layers(), |layers| {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        conformance::oci_gen::write_layout(&layout, &conformance::oci_gen::tars(&layers));
        let (t, o) = (dir.path().join("theirs"), dir.path().join("ours"));
        match (
            cr::pull(&layout, "random", &t, TAG, false),
            ours(&layout, "random", &o, false),
        ) {
            (Ok(()), Ok(_)) => {
                compare(&t, &o, false).map_err(TestCaseError::fail)?;
                built.set(built.get() + 1);
            }
            (Err(_), Err(_)) => {}
            (a, b) => {
                return Err(TestCaseError::fail(format!(
                    "outcomes differ: composefs-oci {a:?}, ours {b:?}"
                )))
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("{} of 24 random images imported identically", built.get());
    assert!(built.get() >= 4, "only {} images built", built.get());
}

/// A real image: Debian 12 minbase (mmdebstrap), packed by umoci, built by
/// `scripts/install-oracles` (scripts/oracles.d/30-debian-oci.sh).
#[test]
fn debian_image_imports_like_composefs_oci() {
    let layout = conformance::oracle::oracles_dir().join("debian-oci");
    assert!(
        layout.join("index.json").exists(),
        "the Debian OCI image is missing at {}: run scripts/install-oracles",
        layout.display()
    );
    if let Err(e) = one(&layout, "debian", false) {
        panic!("debian: {e}");
    }
}
