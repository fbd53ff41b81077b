//! `mkcfs-rs` output is atomic under hostile conditions: a read-only destination folder, a
//! full disk, a SIGKILL in the middle of writing the image or filling the digest store. In
//! every case the destination holds either nothing (or its previous content) or a complete
//! image, and every object in the digest store is whole: its content measures to its name.
//!
//! What a SIGKILL can leave: the temporary file `AtomicFile` and `ObjectStore` write into,
//! named `.tmp*`, in the destination's folder or the store's root. It is never at the
//! destination's name or at an object's name, so no reader ever sees it.
//!
//! The full-disk and read-only-mount cases need root (a tmpfs mounted in a private mount
//! namespace with `unshare -m`); without root they say so and pass only when `CI` is not
//! `true`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cfs_erofs::fsverity::digest_file;
use cfs_erofs::read::read_image;
use cfs_erofs::tree::HashAlgorithm;
use conformance::oracle::mkcfs_rs;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Root-only tests return early (with a note) when not root, unless `CI=true`, where they
/// fail: CI runs as root and must run them.
fn need_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{what} needs root, and CI runs as root"
    );
    eprintln!("skipping {what}: needs root (mount namespace)");
    false
}

/// A dumpfile of `dirs` directories holding `files` empty files each.
fn wide_dumpfile(dirs: usize, files: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(dirs * files * 40);
    out.extend_from_slice(b"/ 0 40755 2 0 0 0 0.0 - - -\n");
    for d in 0..dirs {
        writeln!(out, "/d{d:05} 0 40755 2 0 0 0 0.0 - - -").unwrap();
        for f in 0..files {
            writeln!(out, "/d{d:05}/f{f:05} 0 100644 1 0 0 0 0.0 - - -").unwrap();
        }
    }
    out
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs a shell script in a private mount namespace (as root).
fn in_namespace(script: &str) -> std::process::Output {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .output()
        .expect("run unshare")
}

#[test]
fn read_only_destination_folder_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("in.dump");
    fs::write(&dump, wide_dumpfile(2, 3)).unwrap();
    let ro = tmp.path().join("ro");
    fs::create_dir(&ro).unwrap();
    if is_root() {
        // Root ignores permission bits: use a read-only mount.
        let script = format!(
            "mount -t tmpfs -o ro,size=1m tmpfs '{ro}' && '{bin}' --from-file '{dump}' '{ro}/out.img'; \
             echo rc=$?; ls -A '{ro}'",
            ro = ro.display(),
            bin = mkcfs_rs().display(),
            dump = dump.display()
        );
        let o = in_namespace(&script);
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(out.trim(), "rc=1", "stdout: {out}\nstderr: {err}");
        assert!(
            err.contains("failed to open output file: Read-only file system"),
            "{err}"
        );
    } else {
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        let o = Command::new(mkcfs_rs())
            .arg("--from-file")
            .arg(&dump)
            .arg(ro.join("out.img"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("failed to open output file: Permission denied"),
            "{err}"
        );
        assert!(names_in(&ro).is_empty());
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn full_disk_leaves_no_image_and_no_temporary_file() {
    if !need_root("the full-disk test") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // About 1.2 MB of image: 12 × 1000 empty files.
    let dump = tmp.path().join("in.dump");
    fs::write(&dump, wide_dumpfile(12, 1000)).unwrap();
    let small = tmp.path().join("small");
    fs::create_dir(&small).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs '{d}' && echo previous > '{d}/old.img' && \
         '{bin}' --from-file '{dump}' '{d}/new.img'; echo rc=$?; \
         '{bin}' --from-file '{dump}' '{d}/old.img'; echo rc=$?; \
         ls -A '{d}'; cat '{d}/old.img'",
        d = small.display(),
        bin = mkcfs_rs().display(),
        dump = dump.display()
    );
    let o = in_namespace(&script);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    // Both builds fail, only the old image is left, unchanged.
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["rc=1", "rc=1", "old.img", "previous"],
        "stderr: {err}"
    );
    assert_eq!(
        err.matches("No space left on device").count(),
        2,
        "stderr: {err}"
    );
    // The same input on a roomy disk builds: the failure was the disk.
    let ok = Command::new(mkcfs_rs())
        .arg("--from-file")
        .arg(&dump)
        .arg(tmp.path().join("ok.img"))
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(fs::metadata(tmp.path().join("ok.img")).unwrap().len() > 256 << 10);
}

/// Polls `cond` every millisecond for up to `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
        })
        .collect()
}

#[test]
fn sigkill_mid_write_leaves_no_partial_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("in.dump");
    // About 48 MB of image: long enough to be caught while writing.
    fs::write(&dump, wide_dumpfile(1000, 1000)).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let dest = out.join("image.img");
    fs::write(&dest, b"previous").unwrap();
    let mut child = Command::new(mkcfs_rs())
        .arg("--from-file")
        .arg(&dump)
        .arg(&dest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as image bytes have reached the temporary file.
    let started = wait_for(Duration::from_secs(60), || {
        temp_files(&out)
            .iter()
            .any(|p| fs::metadata(p).is_ok_and(|m| m.len() > 0))
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(started, "mkcfs-rs never started writing");
    assert!(!status.success(), "mkcfs-rs finished before the kill");
    // The destination is untouched; the only other file is the documented temporary one.
    assert_eq!(fs::read(&dest).unwrap(), b"previous");
    let leftovers = temp_files(&out);
    assert!(leftovers.len() <= 1, "{leftovers:?}");
    assert_eq!(names_in(&out).len(), 1 + leftovers.len());
    for t in &leftovers {
        // What a SIGKILL leaves is a partial image that no reader accepts.
        let bytes = fs::read(t).unwrap();
        assert!(read_image(&bytes).is_err(), "{}", t.display());
    }
    // A new build afterwards succeeds and replaces the old image.
    let o = Command::new(mkcfs_rs())
        .arg("--from-file")
        .arg(&dump)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(o.success());
    let img = fs::read(&dest).unwrap();
    assert_eq!(read_image(&img).unwrap().tree.len(), 1_001_001);
}

#[test]
fn sigkill_while_filling_the_store_leaves_only_whole_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // Files big enough that copying them takes a while, each with distinct content.
    let files = 24usize;
    for i in 0..files {
        let block: Vec<u8> = (0..1 << 20)
            .map(|j| (i * 31 + j * 7 + j / 4096) as u8)
            .collect();
        let mut f = fs::File::create(src.join(format!("f{i:02}"))).unwrap();
        for _ in 0..16 {
            f.write_all(&block).unwrap();
        }
    }
    let store = tmp.path().join("store");
    let mut child = Command::new(mkcfs_rs())
        .arg("--digest-store")
        .arg(&store)
        .arg("--threads=1")
        .arg(&src)
        .arg(tmp.path().join("out.img"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once an object is being copied (a temporary file in the store has bytes).
    let started = wait_for(Duration::from_secs(120), || {
        store.is_dir()
            && temp_files(&store)
                .iter()
                .any(|p| fs::metadata(p).is_ok_and(|m| m.len() > 0))
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(started, "mkcfs-rs never started filling the store");
    assert!(!status.success(), "mkcfs-rs finished before the kill");
    assert!(!tmp.path().join("out.img").exists());
    // Every object under its final name is whole; temporary files only in the store's root.
    let mut whole = 0;
    for sub in fs::read_dir(&store).unwrap() {
        let sub = sub.unwrap().path();
        let name = sub.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".tmp") {
            continue;
        }
        assert!(sub.is_dir(), "{}", sub.display());
        for obj in fs::read_dir(&sub).unwrap() {
            let obj = obj.unwrap().path();
            let rest = obj.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!rest.starts_with(".tmp"), "{}", obj.display());
            let d = digest_file(HashAlgorithm::Sha256, &obj).unwrap();
            assert_eq!(d.to_hex(), format!("{name}{rest}"), "{}", obj.display());
            whole += 1;
        }
    }
    assert!(temp_files(&store).len() <= 1);
    assert!(whole < files, "every object was written before the kill");
    // Filling the store again completes it.
    let ok = Command::new(mkcfs_rs())
        .arg("--digest-store")
        .arg(&store)
        .arg(&src)
        .arg(tmp.path().join("out.img"))
        .status()
        .unwrap();
    assert!(ok.success());
}
