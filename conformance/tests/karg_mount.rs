//! `mkcfs-rs karg mount`, the initramfs boot mount, in a private mount namespace: a store with
//! V1 and V2 images, one image whose content does not measure to its name, and command lines
//! whose first argument is missing, present, lying, of the wrong layout, secure or `?`.
//!
//! This host has no fs-verity, so a secure argument always stops at "no fs-verity digest"
//! before anything is mounted; the virtual-machine tests boot secure arguments for real.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use cfs_erofs::write::{image_bytes, WriteOptions};
use conformance::kernel::tree_with_objects;
use conformance::namespace::{self, composefs_tmpdirs, data_dir, mount_count, mountinfo, umount};
use conformance::oracle::mkcfs_rs;

/// Runs `mkcfs-rs karg mount --store STORE --cmdline FILE TARGET EXTRA…` with `cmdline`.
fn karg_mount(store: &Path, cmdline: &str, target: &Path, extra: &[&str]) -> Output {
    let file = store.with_extension("cmdline");
    fs::write(&file, cmdline).unwrap();
    Command::new(mkcfs_rs())
        .args(["karg", "mount", "--store"])
        .arg(store)
        .arg("--cmdline")
        .arg(&file)
        .arg(target)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn karg_mount_boots_the_first_image_present_and_stops_on_any_other_fault() {
    if !namespace::enter("karg_mount_boots_the_first_image_present_and_stops_on_any_other_fault") {
        return;
    }
    namespace::private_tmp();
    use cfs_erofs::fsverity::digest;
    use cfs_erofs::karg::Karg;
    use cfs_erofs::HashAlgorithm::Sha256;
    let dir = data_dir();
    let store = dir.path().join("store");
    let (tree, expect) = tree_with_objects(&store.join("objects"));
    fs::create_dir_all(store.join("images")).unwrap();
    let put = |bytes: &[u8], name: &str| fs::write(store.join("images").join(name), bytes).unwrap();
    let v1 = image_bytes(&tree, &WriteOptions::v1()).unwrap();
    let v2 = image_bytes(&tree, &WriteOptions::v2()).unwrap();
    let (d1, d2) = (digest(Sha256, &v1), digest(Sha256, &v2));
    put(&v1, &d1.to_hex());
    put(&v2, &d2.to_hex());
    let missing = digest(Sha256, b"no such image");
    let liar = digest(Sha256, b"what the name promises");
    put(&v1, &liar.to_hex());
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mounts = mount_count();
    let insecure_v1 = |d| Karg::v1(d, true).to_string();
    let file0 = &expect[&b"/file0"[..]];

    // The first argument's image is missing: the second boots.
    let cmdline = format!(
        "root=/dev/vda {} init=/sbin/init {}",
        insecure_v1(missing.clone()),
        insecure_v1(d1.clone())
    );
    let out = karg_mount(&store, &cmdline, &mnt, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        insecure_v1(d1.clone())
    );
    let (opts, _, source, sup) = mountinfo(&mnt).expect("mounted");
    assert_eq!(source, "composefs");
    assert!(opts.starts_with("ro"), "{opts}");
    assert!(
        !sup.contains("verity=require"),
        "insecure mounts do not require verity: {sup}"
    );
    assert!(
        sup.contains(&format!("datadir+={}", store.join("objects").display())),
        "{sup}"
    );
    assert_eq!(&fs::read(mnt.join("file0")).unwrap(), file0);
    umount(&mnt);

    // A V2 image through its legacy argument; and a writable root on a tmpfs.
    let out = karg_mount(
        &store,
        &format!("composefs=?{}", d2.to_hex()),
        &mnt,
        &["--tmpfs"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&fs::read(mnt.join("file0")).unwrap(), file0);
    fs::write(mnt.join("new"), b"x").unwrap();
    assert!(mountinfo(&mnt).unwrap().0.starts_with("rw"));
    umount(&mnt);
    assert!(composefs_tmpdirs().is_empty(), "{:?}", composefs_tmpdirs());
    // … or on given directories.
    let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    let (u, w) = (upper.to_str().unwrap(), work.to_str().unwrap());
    let out = karg_mount(
        &store,
        &insecure_v1(d1.clone()),
        &mnt,
        &["--upperdir", u, "--workdir", w],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(mnt.join("new"), b"kept").unwrap();
    umount(&mnt);
    assert_eq!(fs::read(upper.join("new")).unwrap(), b"kept");

    // Faults after the pick stop the boot, naming the argument; nothing is mounted and the
    // next argument is never tried.
    let v2_as_v1 = insecure_v1(d2.clone());
    let v1_as_v2 = format!("composefs=?{}", d1.to_hex());
    let secure = Karg::v1(d1.clone(), false).to_string();
    let cases: Vec<(String, String, &str)> = vec![
        // An image whose content does not measure to its name.
        (
            format!("{} {}", insecure_v1(liar.clone()), insecure_v1(d1.clone())),
            insecure_v1(liar.clone()),
            "digest mismatch",
        ),
        // Layouts that contradict the argument.
        (
            format!("{v2_as_v1} {}", insecure_v1(d1.clone())),
            v2_as_v1.clone(),
            "is a V2",
        ),
        (v1_as_v2.clone(), v1_as_v2.clone(), "is a V1"),
        // A secure argument needs the image's kernel fs-verity digest, which this host cannot
        // give (no CONFIG_FS_VERITY; a file on it cannot carry one): refused before mounting.
        (
            format!("{secure} {}", insecure_v1(d1.clone())),
            secure.clone(),
            "no fs-verity digest",
        ),
        // Nothing present at all.
        (
            insecure_v1(missing.clone()),
            String::new(),
            "no composefs image found",
        ),
        (
            String::from("root=/dev/vda"),
            String::new(),
            "no composefs argument",
        ),
    ];
    for (cmdline, arg, why) in &cases {
        let out = karg_mount(&store, cmdline, &mnt, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "`{cmdline}` must fail: {err}");
        assert!(
            err.contains(arg.as_str()) && err.contains(why),
            "`{cmdline}`: {err}"
        );
        assert!(out.stdout.is_empty());
        assert_eq!(mount_count(), mounts, "`{cmdline}` left a mount");
        assert!(composefs_tmpdirs().is_empty());
    }
    // A failing mount (missing mountpoint) names the argument too.
    let out = karg_mount(
        &store,
        &insecure_v1(d1.clone()),
        &dir.path().join("nowhere"),
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&insecure_v1(d1.clone()))
            && err.contains("No such file"),
        "{err}"
    );
    assert_eq!(mount_count(), mounts);
}
