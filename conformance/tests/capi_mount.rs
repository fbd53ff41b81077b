//! C's own `mount.composefs` 1.0.8 on our libcomposefs.so.1 (`lcfs_mount_fd`) against the
//! same binary on C's library: the mounted trees must list identically (names, metadata,
//! xattrs, file contents read through the object store), and failures must give the same exit
//! status and message; and C's `tests/test-units.sh` passes with C's binaries on our library.
//! Each mount happens in its own private mount namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

use conformance::capi::{assert_ours_loaded, c_binary, library_path, Lib};
use conformance::kernel::mountable;

fn walker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_conformance"))
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs C's mount.composefs on `lib` with `args` in a private mount namespace, then (when it
/// succeeded) lists `target` with file contents. Returns (exit status, stdout, stderr).
fn mount_and_list(lib: Lib, args: &[String], target: &Path) -> (Option<i32>, String, String) {
    let loader = conformance::oracle::oracles_dir()
        .join("prefix/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    let mut cmd = vec![
        q(&loader.display().to_string()),
        "--argv0".into(),
        "mount.composefs".into(),
        "--library-path".into(),
        q(&library_path(lib)),
        q(&c_binary("mount.composefs").display().to_string()),
    ];
    cmd.extend(args.iter().map(|a| q(a)));
    let script = format!(
        "{} && exec {} walk --content {}",
        cmd.join(" "),
        q(&walker().display().to_string()),
        q(&target.display().to_string())
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn c_mount_composefs_on_our_library_mounts_like_c() {
    if !mountable() {
        return;
    }
    assert_ours_loaded("mount.composefs");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d/e")).expect("mkdir");
    std::fs::write(src.join("small"), b"inline\n").expect("write");
    std::fs::write(src.join("d/big"), vec![42u8; 100_000]).expect("write");
    std::fs::write(src.join("d/e/other"), vec![7u8; 5000]).expect("write");
    std::os::unix::fs::symlink("d/big", src.join("link")).expect("symlink");
    let store = dir.path().join("store");
    let image = dir.path().join("image.cfs");
    let o = conformance::capi::c_tool(Lib::Ours, "mkcomposefs")
        .arg(format!("--digest-store={}", store.display()))
        .arg(&src)
        .arg(&image)
        .output()
        .expect("mkcomposefs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).expect("mkdir");
    let s = |p: &Path| p.display().to_string();
    let basedir = format!("basedir={}", s(&store));
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "plain",
            vec!["-o".into(), basedir.clone(), s(&image), s(&target)],
        ),
        (
            "ro",
            vec!["-o".into(), format!("{basedir},ro"), s(&image), s(&target)],
        ),
        (
            "missing image",
            vec![
                "-o".into(),
                basedir.clone(),
                s(&dir.path().join("nope")),
                s(&target),
            ],
        ),
        (
            "bad digest",
            vec![
                "-o".into(),
                format!("{basedir},digest=zz"),
                s(&image),
                s(&target),
            ],
        ),
        ("no basedir", vec![s(&image), s(&target)]),
        (
            "not an image",
            vec![
                "-o".into(),
                basedir.clone(),
                s(&src.join("small")),
                s(&target),
            ],
        ),
    ];
    let mut failures = Vec::new();
    let mut mounted = 0;
    for (what, args) in &cases {
        let c = mount_and_list(Lib::C, args, &target);
        let ours = mount_and_list(Lib::Ours, args, &target);
        if c.0 == Some(0) {
            mounted += 1;
            if !c.1.contains("/d/big") {
                failures.push(format!("{what}: C's mount lists no /d/big:\n{}", c.1));
            }
        }
        if c != ours {
            failures.push(format!("{what}: C {c:?}\nours {ours:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(mounted, 2, "both good mounts must succeed with C's library");
}

/// C's own `tests/test-units.sh` (mkcomposefs, composefs-info and mount.composefs from a
/// BINDIR) with C's binaries on our library, in a private mount namespace.
#[test]
fn c_test_units_sh_passes_on_our_library() {
    if !mountable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let loader = conformance::oracle::oracles_dir()
        .join("prefix/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    for tool in ["mkcomposefs", "composefs-info", "mount.composefs"] {
        let wrapper = dir.path().join(tool);
        let script = format!(
            "#!/bin/sh\nexec {} --argv0 \"$0\" --library-path {} {} \"$@\"\n",
            q(&loader.display().to_string()),
            q(&library_path(Lib::Ours)),
            q(&c_binary(tool).display().to_string())
        );
        std::fs::write(&wrapper, script).expect("write wrapper");
        let mut perm = std::fs::metadata(&wrapper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&wrapper, perm).expect("chmod wrapper");
    }
    let script = conformance::oracle::oracles_dir().join("src/composefs/tests/test-units.sh");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash"])
        .arg(&script)
        .arg(dir.path())
        .env("TMPDIR", dir.path())
        .output()
        .expect("run test-units.sh");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "test-units.sh failed on our library:\n{text}"
    );
    assert_eq!(text.matches(": OK").count(), 4, "{text}");
}
