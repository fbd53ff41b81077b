//! Booting from repositories across implementations:
//! - composefs-setup-root 0.9.4 (built by `scripts/install-oracles`) mounts an image from a
//!   repository `mkcfs-rs oci --repo` wrote, in a private mount namespace against a scratch
//!   sysroot, with a command line whose first composefs argument names a missing image; the
//!   mounted tree's files have the image's contents;
//! - `mkcfs-rs karg resolve --repo` picks the image composefs-setup-root would from a
//!   repository composefs-oci wrote, with its rules (a missing image moves on, `?` needed for
//!   an insecure repository, the repository's algorithm respected).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cfs_erofs::oci::layout::tree_from_layout;
use cfs_erofs::oci::{TarOptions, XattrFilter};
use cfs_erofs::tree::{FileData, InodeKind, Tree};
use conformance::composefs_repo as cr;
use conformance::oracle::{mkcfs_rs, oracles_dir, repo_root};
use sha2::{Digest as _, Sha256};

const LAYOUT: &str = "fixtures/oci/synthetic";

/// Path → sha256 of every regular file of the image's tree (contents from the repository).
fn expected_files(tree: &Tree, objects: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut paths: Vec<(String, cfs_erofs::InodeId)> = Vec::new();
    fn walk(
        t: &Tree,
        dir: cfs_erofs::InodeId,
        prefix: &str,
        out: &mut Vec<(String, cfs_erofs::InodeId)>,
    ) {
        for e in t.dir(dir).unwrap().entries() {
            let p = format!("{prefix}/{}", String::from_utf8_lossy(&e.name));
            if t.inode(e.inode).is_dir() {
                walk(t, e.inode, &p, out);
            } else {
                out.push((p, e.inode));
            }
        }
    }
    walk(tree, cfs_erofs::InodeId::ROOT, "", &mut paths);
    for (p, id) in paths {
        let data = match &tree.inode(id).kind {
            InodeKind::Regular(FileData::Inline(c)) => c.to_vec(),
            InodeKind::Regular(FileData::External { digest, .. }) => {
                std::fs::read(objects.join(digest.as_ref().unwrap().object_path())).unwrap()
            }
            _ => continue,
        };
        out.insert(p, hex::encode(Sha256::digest(&data)));
    }
    out
}

#[test]
fn composefs_setup_root_mounts_our_repository() {
    let setup_root = oracles_dir().join("bin/composefs-setup-root");
    assert!(
        setup_root.exists(),
        "composefs-setup-root is missing at {}: run scripts/install-oracles",
        setup_root.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    let repo = sysroot.join("composefs");
    std::fs::create_dir_all(&sysroot).unwrap();
    let layout = repo_root().join(LAYOUT);
    let o = Command::new(mkcfs_rs())
        .args(["oci", "--repo"])
        .arg(&repo)
        .args([
            "--insecure",
            "--erofs-extra",
            "2",
            "--tag",
            "boot",
            "--print-digest",
        ])
        .arg(&layout)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v1 = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let missing = "5".repeat(64);
    for hex in [&missing, &v1] {
        std::fs::create_dir_all(sysroot.join("state/deploy").join(hex)).unwrap();
    }
    let conf = tmp.path().join("conf.toml");
    std::fs::write(&conf, "[etc]\nmount = \"none\"\n[var]\nmount = \"none\"\n").unwrap();
    let cmdline = format!(
        "quiet composefs.digest=?v1-sha256-12:{missing} composefs.digest=?v1-sha256-12:{v1}"
    );
    let script = format!(
        "set -e\n'{}' --sysroot '{}' --config '{}' --cmdline '{cmdline}' >&2\n\
         cd '{}' && find . -xdev -type f -print0 | sort -z | xargs -0 -r sha256sum\n",
        setup_root.display(),
        sysroot.display(),
        conf.display(),
        sysroot.display(),
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "composefs-setup-root failed: {err}");
    assert!(
        err.contains("not found"),
        "the first karg should be missing: {err}"
    );
    let got: BTreeMap<String, String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let (h, p) = l.split_once("  ").unwrap();
            (p.trim_start_matches('.').to_owned(), h.to_owned())
        })
        .collect();
    let tree = tree_from_layout(
        &layout,
        None,
        &TarOptions::default(),
        XattrFilter::AllowlistOnly,
    )
    .unwrap();
    let want = expected_files(&tree, &repo.join("objects"));
    assert!(!want.is_empty());
    assert_eq!(got, want, "files seen through composefs-setup-root's mount");
}

#[test]
fn karg_resolve_repo_reads_a_composefs_oci_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    cr::pull(&repo_root().join(LAYOUT), "synthetic", &repo, "t", false).unwrap();
    let ids = cr::recorded_ids(&repo, "t").unwrap();
    let (v1, v2) = (ids[0].clone().unwrap(), ids[1].clone().unwrap());
    let resolve = |cmdline: &str| {
        let o = Command::new(mkcfs_rs())
            .args(["karg", "resolve", cmdline, "--repo"])
            .arg(&repo)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        )
    };
    let missing = "6".repeat(64);
    let line = format!("composefs=?{missing} composefs.digest=?v1-sha256-12:{v1} composefs=?{v2}");
    assert_eq!(
        resolve(&line),
        (
            true,
            format!("composefs.digest=?v1-sha256-12:{v1}"),
            String::new()
        )
    );
    assert_eq!(
        resolve(&format!("composefs=?{v2}")).1,
        format!("composefs=?{v2}")
    );
    // Without `?`, an insecure repository is refused.
    let (ok, _, err) = resolve(&format!("composefs.digest=v1-sha256-12:{v1}"));
    assert!(
        !ok && err.contains("not initialized with fs-verity"),
        "{err}"
    );
    // A sha512 argument against a sha256 repository.
    let (ok, _, err) = resolve(&format!("composefs=?{}", "7".repeat(128)));
    assert!(!ok && err.contains("sha256, not sha512"), "{err}");
    // Nothing there at all.
    let (ok, _, err) = resolve(&format!("composefs=?{missing}"));
    assert!(!ok && err.contains("no composefs image found"), "{err}");
}

/// `mkcfs-rs karg mount --repo` mounts an image from a repository composefs-oci wrote (first
/// composefs argument missing), and the mounted tree's files have the image's contents.
#[test]
fn karg_mount_repo_boots_a_composefs_oci_repository() {
    if !conformance::namespace::enter("karg_mount_repo_boots_a_composefs_oci_repository") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let layout = repo_root().join(LAYOUT);
    cr::pull(&layout, "synthetic", &repo, "t", false).unwrap();
    let v2 = cr::recorded_ids(&repo, "t").unwrap()[1].clone().unwrap();
    let cmdline = tmp.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!("ro composefs=?{} composefs=?{v2}\n", "8".repeat(64)),
    )
    .unwrap();
    let target = tmp.path().join("root");
    std::fs::create_dir(&target).unwrap();
    let o = Command::new(mkcfs_rs())
        .args(["karg", "mount", "--repo"])
        .arg(&repo)
        .arg("--cmdline")
        .arg(&cmdline)
        .arg(&target)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("composefs=?{v2}")
    );
    let tree = tree_from_layout(
        &layout,
        None,
        &TarOptions::default(),
        XattrFilter::AllowlistOnly,
    )
    .unwrap();
    let want = expected_files(&tree, &repo.join("objects"));
    let mut got = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(root, &p, out);
            } else if m.is_file() {
                let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    walk(&target, &target, &mut got);
    let _ = rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH);
    assert_eq!(got, want, "files seen through karg mount --repo");
}
