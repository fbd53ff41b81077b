//! The `mount.composefs` command line against C's mount.composefs 1.0.8, each case in a
//! private mount namespace with a private /tmp:
//!
//! - bad command lines and bad images fail with C's exit code, stdout and stderr, byte for
//!   byte, and mount nothing; the digest is checked before anything else;
//! - mount(8)'s helper flags (`-n -v -s -f`), which C refuses, are accepted (a documented
//!   divergence);
//! - mount(8) itself runs our helper for `mount -t composefs`;
//! - every option set (`ro`/`rw`, `verity`, `tryverity`, several basedirs, a basedir with a
//!   comma, `upperdir`/`workdir`) gives the mount C's gives, as /proc/self/mountinfo shows.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use cfs_erofs::write::{image_bytes, WriteOptions};
use conformance::kernel::{tree_with_objects, v1_image_with_objects};
use conformance::namespace::{
    self, composefs_tmpdirs, data_dir, loop_devices_under, mount_count, mountinfo, umount,
};
use conformance::oracle::{mkcfs_rs_as, Oracle};

/// Replaces the invoked path (getopt names argv[0] as run) so C's and our outputs compare.
fn normalized(out: &Output, argv0: &Path) -> (Option<i32>, String, String) {
    let fix = |b: &[u8]| String::from_utf8_lossy(b).replace(argv0.to_str().unwrap(), "ARGV0");
    (out.status.code(), fix(&out.stdout), fix(&out.stderr))
}

#[test]
fn bad_command_lines_and_images_fail_like_c() {
    if !namespace::enter("bad_command_lines_and_images_fail_like_c") {
        return;
    }
    namespace::private_tmp();
    let c = Oracle::MountComposefs.get();
    let dir = data_dir();
    let ours = mkcfs_rs_as(dir.path(), "mount.composefs");
    let d = dir.path();
    let objects = d.join("objects");
    let (tree, _) = tree_with_objects(&objects);
    let img_bytes = image_bytes(&tree, &WriteOptions::v1()).unwrap();
    fs::write(d.join("img"), &img_bytes).unwrap();
    fs::write(d.join("text"), b"hello\n").unwrap();
    fs::write(d.join("empty"), b"").unwrap();
    fs::write(d.join("short"), &img_bytes[..20]).unwrap();
    let mut bad_magic = img_bytes.clone();
    bad_magic[0] ^= 1;
    fs::write(d.join("badmagic"), &bad_magic).unwrap();
    let mut not_erofs = img_bytes.clone();
    not_erofs[1024] ^= 1;
    fs::write(d.join("noterofs"), &not_erofs).unwrap();
    fs::create_dir(d.join("mnt")).unwrap();
    fs::create_dir(d.join("upper")).unwrap();
    fs::create_dir(d.join("work")).unwrap();
    let digest = cfs_erofs::fsverity::digest(cfs_erofs::HashAlgorithm::Sha256, &img_bytes).to_hex();
    let table: Vec<String> = [
        "",
        "-h",
        "-x",
        "-h -x",
        "-x -h",
        "--help",
        "-t",
        "-o",
        "-t ext4 img mnt",
        "-t composefs",
        "img",
        "-o basedir=objects img",
        "img mnt",
        "-o ro img mnt",
        "-o basedir=objects -o ro img mnt",
        "-o basedir img mnt",
        "-o basedir= img mnt",
        "-o basedir=objects: img mnt",
        "-o basedir=:objects img mnt",
        "-o basedir=objects::objects img mnt",
        "-o basedir=objects,noatime img mnt",
        "-o basedir=objects,defaults img mnt",
        "-o basedir=objects, img mnt",
        "-o ,basedir=objects img mnt",
        "-o  img mnt",
        "-o basedir=objects,digest img mnt",
        "-o basedir=objects,upperdir img mnt",
        "-o basedir=objects,workdir img mnt",
        "-o basedir=objects,idmap img mnt",
        "-o basedir=objects,upperdir=upper img mnt",
        "-o basedir=objects,workdir=work img mnt",
        "-o basedir=objects,idmap=nonexistent img mnt",
        "-o basedir=objects,idmap=text img mnt",
        "-o basedir=objects missing mnt",
        "-o basedir=objects,digest=zz missing mnt",
        "-o basedir=objects,digest=zz img mnt",
        "-o basedir=objects,digest=abc img mnt",
        &format!("-o basedir=objects,digest={digest}{digest}00 img mnt"),
        &format!("-o basedir=objects,digest={digest} img mnt"),
        "-o basedir=objects,digest=00 img mnt",
        // The digest is checked before anything else is mounted or looked up.
        &format!("-o basedir=objects,digest={digest} img nonexistent"),
        &format!("-o basedir=nonexistent,digest={digest} img mnt"),
        "-o basedir=objects,digest=00 text mnt",
        "-o basedir=objects text mnt",
        "-o basedir=objects empty mnt",
        "-o basedir=objects short mnt",
        "-o basedir=objects badmagic mnt",
        "-o basedir=objects noterofs mnt",
        "-o basedir=objects img nonexistent",
        "-o basedir=objects img text",
        "-o basedir=nonexistent img mnt",
        "-o basedir=objects:nonexistent img mnt",
        "-o basedir=objects,upperdir=nonexistent,workdir=work img mnt",
        "-o basedir=objects,upperdir=upper,workdir=nonexistent img mnt",
        "-o basedir=objects,verity,digest=00 img mnt",
        "-o basedir=objects mnt img",
        "-o basedir=objects . mnt",
        "-o basedir=objects d mnt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut same = 0;
    for case in &table {
        let args: Vec<&str> = case.split(' ').filter(|a| !a.is_empty()).collect();
        let args: Vec<&str> = if case.contains("-o  ") {
            // `-o ''`: an empty option string.
            let mut a = vec!["-o", ""];
            a.extend(args.iter().skip(1));
            a
        } else {
            args
        };
        let before = mount_count();
        let oc = Command::new(&c)
            .args(&args)
            .current_dir(d)
            .output()
            .unwrap();
        let or = Command::new(&ours)
            .args(&args)
            .current_dir(d)
            .output()
            .unwrap();
        let (nc, nr) = (normalized(&oc, &c), normalized(&or, &ours));
        assert_eq!(
            nr, nc,
            "`mount.composefs {case}`: ours (left) differs from C (right)"
        );
        assert_eq!(mount_count(), before, "`{case}` left a mount behind");
        same += 1;
    }
    assert!(
        composefs_tmpdirs().is_empty(),
        "left behind: {:?}",
        composefs_tmpdirs()
    );
    assert!(loop_devices_under(d).is_empty());
    // Divergence: mount(8)'s helper flags, which C refuses.
    for flag in ["-n", "-v", "-s", "-f"] {
        let args = [flag, "-o", "rw,basedir=objects", "img", "mnt"];
        let oc = Command::new(&c).args(args).current_dir(d).output().unwrap();
        assert_eq!(oc.status.code(), Some(1), "C accepts {flag} now");
        let or = Command::new(&ours)
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            or.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&or.stderr)
        );
        if flag == "-f" {
            assert!(mountinfo(&d.join("mnt")).is_none(), "-f mounted");
        } else {
            umount(&d.join("mnt"));
        }
    }
    // -s: unknown options are ignored instead of fatal.
    let or = Command::new(&ours)
        .args([
            "-s",
            "-o",
            "ro,noatime,basedir=objects,x-foo=1",
            "img",
            "mnt",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        or.status.success(),
        "{}",
        String::from_utf8_lossy(&or.stderr)
    );
    umount(&d.join("mnt"));
    eprintln!(
        "{same}/{} bad command lines and images: exit code and messages equal to C's",
        table.len()
    );
}

#[test]
fn mount8_runs_our_helper() {
    if !namespace::enter("mount8_runs_our_helper") {
        return;
    }
    namespace::private_tmp();
    let dir = data_dir();
    let (image, objects, expect) = v1_image_with_objects(dir.path());
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    // mount(8) looks for /sbin/mount.TYPE; in this namespace /usr/sbin (where /sbin points on
    // merged-/usr systems, and which mount(8) also searches) holds only ours.
    let sbin = dir.path().join("sbin");
    fs::create_dir(&sbin).unwrap();
    mkcfs_rs_as(&sbin, "mount.composefs");
    for target in ["/usr/sbin", "/sbin"] {
        if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            let st = Command::new("mount")
                .args(["--bind", sbin.to_str().unwrap(), target])
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
    let basedir = format!("basedir={}", objects.display());
    for extra in [&[][..], &["-v"], &["-n"], &["-o", "ro"]] {
        let out = Command::new("mount")
            .args(extra)
            .args([
                "-t",
                "composefs",
                image.to_str().unwrap(),
                mnt.to_str().unwrap(),
                "-o",
                &basedir,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, fstype, source, _) = mountinfo(&mnt).expect("mounted");
        assert_eq!((fstype.as_str(), source.as_str()), ("overlay", "composefs"));
        let content = fs::read(mnt.join("file0")).unwrap();
        assert_eq!(&content, &expect[&b"/file0"[..]]);
        umount(&mnt);
    }
}

#[test]
fn options_reach_the_kernel_as_c_passes_them() {
    if !namespace::enter("options_reach_the_kernel_as_c_passes_them") {
        return;
    }
    namespace::private_tmp();
    let c = Oracle::MountComposefs.get();
    let dir = data_dir();
    let ours = mkcfs_rs_as(dir.path(), "mount.composefs");
    let d = dir.path();
    // A basedir whose name needs escaping in an option string, and a second one.
    let objects = d.join("obj,ects");
    let (tree, _) = tree_with_objects(&objects);
    fs::create_dir(d.join("more")).unwrap();
    fs::write(
        d.join("img"),
        image_bytes(&tree, &WriteOptions::v1()).unwrap(),
    )
    .unwrap();
    fs::create_dir(d.join("mnt")).unwrap();
    let o = objects.to_str().unwrap().replace(',', "\\,");
    let cases = [
        format!("basedir={o}"),
        format!("ro,basedir={o}"),
        format!("basedir={o},rw"),
        format!("basedir={o},verity"),
        format!("basedir={o},tryverity"),
        format!("basedir={o},tryverity,verity,ro"),
        format!("basedir={o}:{}", d.join("more").display()),
        format!("basedir={o},upperdir=upper,workdir=work"),
        format!("basedir={o},upperdir=upper,workdir=work,ro"),
    ];
    let mut same = 0;
    for opts in &cases {
        let mut seen = Vec::new();
        for tool in [&c, &ours] {
            for sub in ["upper", "work"] {
                let _ = fs::remove_dir_all(d.join(sub));
                fs::create_dir(d.join(sub)).unwrap();
            }
            let out = Command::new(tool)
                .args(["-o", opts, "img", "mnt"])
                .current_dir(d)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} -o {opts}: {}",
                tool.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let (mount_opts, fstype, source, sup) = mountinfo(&d.join("mnt")).expect("mounted");
            let sup: Vec<String> = sup
                .split(',')
                .map(|s| match s.split_once("=/tmp/.composefs.") {
                    Some((k, _)) => format!("{k}=TMP"),
                    None => s.to_owned(),
                })
                .collect();
            seen.push((mount_opts, fstype, source, sup.join(",")));
            umount(&d.join("mnt"));
        }
        assert_eq!(
            seen[1], seen[0],
            "-o {opts}: ours (left) and C's (right) mounts differ"
        );
        same += 1;
    }
    assert!(composefs_tmpdirs().is_empty());
    eprintln!(
        "{same}/{} option sets reach the kernel as C passes them",
        cases.len()
    );
}
