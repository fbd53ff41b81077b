//! `mkcfs-rs` as a drop-in for C mkcomposefs 1.0.8, from directories built on disk: the same
//! image bytes, the same `--print-digest` line, the same digest-store contents, under every
//! option set; the same exit codes and messages for usage errors; and no image left behind on
//! failure (where C leaves an empty file).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conformance::oracle::Oracle;

fn ours() -> Command {
    Command::new(conformance::oracle::mkcfs_rs())
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Sets an xattr, ignoring filesystems that refuse the namespace (e.g. `trusted.` as non-root).
fn setx(path: &Path, name: &str, value: &[u8]) {
    let c = std::ffi::CString::new(name).unwrap();
    let _ = rustix::fs::lsetxattr(path, c.as_c_str(), value, rustix::fs::XattrFlags::empty());
}

/// A directory with every kind of entry C reads.
fn build_tree(root: &Path) {
    let w = |p: &str, data: &[u8]| fs::write(root.join(p), data).unwrap();
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    w("zero", b"");
    w("sixty-four", &[b'a'; 64]);
    w("sixty-five", &[b'b'; 65]);
    w("dir/big", &vec![7u8; 3 * 4096 + 17]);
    w("dir/sub/page", &vec![9u8; 4096]);
    w("dir/same-content", &[b'b'; 65]);
    fs::hard_link(root.join("sixty-five"), root.join("hardlink")).unwrap();
    symlink("sixty-four", root.join("link")).unwrap();
    symlink("x".repeat(1000), root.join("dir/long-link")).unwrap();
    let odd = root.join(OsStr::from_bytes(b"odd name \xff=\\\n"));
    fs::write(&odd, b"odd").unwrap();
    let long = root.join("n".repeat(255));
    fs::write(&long, b"long name").unwrap();
    fs::set_permissions(root.join("dir/big"), fs::Permissions::from_mode(0o4755)).unwrap();
    setx(&root.join("sixty-five"), "user.a", b"1");
    setx(&root.join("dir"), "user.dir", b"shared");
    setx(&root.join("empty"), "user.dir", b"shared");
    setx(&root.join("zero"), "trusted.overlay.opaque", b"y");
    setx(&root.join("zero"), "security.test", b"\x00\x01");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    if is_root() {
        for (name, ft, dev) in [
            (
                "chr",
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::makedev(1, 3),
            ),
            (
                "blk",
                rustix::fs::FileType::BlockDevice,
                rustix::fs::makedev(8, 1),
            ),
            ("whiteout", rustix::fs::FileType::CharacterDevice, 0),
        ] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                root.join(name),
                ft,
                rustix::fs::Mode::from_raw_mode(0o600),
                dev,
            )
            .unwrap();
        }
    }
}

fn compare(src: &Path, opts: &[&str], store: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let (img_c, img_r) = (tmp.path().join("c.img"), tmp.path().join("r.img"));
    let (st_c, st_r) = (tmp.path().join("store-c"), tmp.path().join("store-r"));
    let mut c = Oracle::Mkcomposefs.command();
    let mut r = ours();
    for (cmd, img, st) in [(&mut c, &img_c, &st_c), (&mut r, &img_r, &st_r)] {
        cmd.args(opts).arg("--print-digest");
        if store {
            cmd.arg(format!("--digest-store={}", st.display()));
        }
        cmd.arg(src).arg(img);
    }
    let (oc, or) = (run(c), run(r));
    assert!(
        oc.status.success(),
        "C failed with {opts:?}: {}",
        String::from_utf8_lossy(&oc.stderr)
    );
    assert!(
        or.status.success(),
        "we failed with {opts:?}: {}",
        String::from_utf8_lossy(&or.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&or.stdout),
        String::from_utf8_lossy(&oc.stdout),
        "digest line, {opts:?}"
    );
    assert!(
        fs::read(&img_r).unwrap() == fs::read(&img_c).unwrap(),
        "image bytes differ with {opts:?}"
    );
    if store {
        assert_eq!(
            listing(&st_r),
            listing(&st_c),
            "digest store differs with {opts:?}"
        );
    }
}

/// Every file of a store with its content.
fn listing(root: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.push((
                    e.path().strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(e.path()).unwrap(),
                    meta.permissions().mode() & 0o777,
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn directory_input_matches_c_under_every_option_set() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let sets: &[&[&str]] = &[
        &[],
        &["--use-epoch"],
        &["--skip-xattrs"],
        &["--user-xattrs"],
        &["--skip-devices"],
        &["--min-version=1"],
        &["--max-version=0"],
        &["--use-epoch", "--skip-devices", "--threads=1"],
    ];
    for opts in sets {
        compare(&src, opts, false);
    }
    compare(&src, &[], true);
    compare(&src, &["--use-epoch"], true);
}

#[test]
fn print_digest_only_and_stdout_match_c() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let oc = run({
        let mut c = Oracle::Mkcomposefs.command();
        c.args(["--print-digest-only", "--use-epoch"]).arg(&src);
        c
    });
    let or = run({
        let mut c = ours();
        c.args(["--print-digest-only", "--use-epoch"]).arg(&src);
        c
    });
    assert!(oc.status.success() && or.status.success());
    assert_eq!(or.stdout, oc.stdout);
    // `-` as IMAGE writes to stdout.
    let oc = run({
        let mut c = Oracle::Mkcomposefs.command();
        c.args(["--use-epoch"]).arg(&src).arg("-");
        c
    });
    let or = run({
        let mut c = ours();
        c.args(["--use-epoch"]).arg(&src).arg("-");
        c
    });
    assert!(or.stdout == oc.stdout, "image on stdout differs");
}

#[test]
fn dumpfile_from_stdin_matches_c() {
    let dump =
        fs::read(conformance::oracle::repo_root().join("fixtures/dumpfiles/example.dump")).unwrap();
    let c = conformance::oracle::run_with_input(
        {
            let mut c = Oracle::Mkcomposefs.command();
            c.args(["--from-file", "-", "-"]);
            c
        },
        &dump,
    );
    let r = conformance::oracle::run_with_input(
        {
            let mut c = ours();
            c.args(["--from-file", "-", "-"]);
            c
        },
        &dump,
    );
    assert!(c.status.success() && r.status.success());
    assert!(r.stdout == c.stdout, "image differs");
}

/// Usage errors: same exit code (1) and the same first line as C.
#[test]
fn usage_errors_match_c() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    let cases: &[&[&str]] = &[
        &[],
        &["--from-file"],
        &["a", "b", "c"],
        &["--print-digest-only", "a", "b"],
        &["--min-version=x", "a", "b"],
        &["--max-version=", "a", "b"],
        &["--threads=0", "a", "b"],
        &["--threads=z", "a", "b"],
        &["--bogus", "a", "b"],
        &["--use-epoch=1", "a", "b"],
        &["--digest-store"],
        &["", "b"],
        &["a"],
    ];
    for args in cases {
        let oc = run({
            let mut c = Oracle::Mkcomposefs.command();
            c.args(*args);
            c
        });
        let or = run({
            let mut c = ours();
            c.args(*args);
            c
        });
        assert_eq!(or.status.code(), oc.status.code(), "exit code for {args:?}");
        let first = |o: &Output| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        };
        let strip = |s: String| s.replace("mkcfs-rs", "mkcomposefs");
        assert_eq!(
            strip(first(&or)),
            first(&oc),
            "first stderr line for {args:?}"
        );
    }
    let _ = img;
}

/// `--help`: C's usage text word for word (on stderr, exit 1, as C does), plus the one line of
/// the option only we have.
#[test]
fn help_is_c_usage_plus_erofs_version() {
    let c = run({
        let mut c = Oracle::Mkcomposefs.command();
        c.arg("--help");
        c
    });
    let o = run({
        let mut c = ours();
        c.args(["mkcomposefs", "--help"]);
        c
    });
    assert_eq!(o.status.code(), c.status.code());
    assert_eq!(o.stdout, c.stdout);
    let ours = String::from_utf8_lossy(&o.stderr);
    let extra: Vec<&str> = ours
        .lines()
        .filter(|l| l.trim_start().starts_with("--erofs-version"))
        .collect();
    assert_eq!(extra.len(), 1, "{ours}");
    let without: String = ours
        .lines()
        .filter(|l| !l.trim_start().starts_with("--erofs-version"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without, String::from_utf8_lossy(&c.stderr));
}

/// Failing builds: exit 1 with C's message, and no image left at the destination (C leaves an
/// empty file: a documented difference). An existing image is left untouched.
#[test]
fn failures_leave_no_image() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.dump");
    fs::write(
        &bad,
        b"/ 0 40755 2 0 0 0 0.0 - - -\n/a 0 644 1 0 0 0 0.0 - - -\n",
    )
    .unwrap();
    let img = tmp.path().join("out.img");
    let oc = run({
        let mut c = Oracle::Mkcomposefs.command();
        c.arg("--from-file").arg(&bad).arg(&img);
        c
    });
    assert_eq!(oc.status.code(), Some(1));
    assert_eq!(
        fs::read(&img).unwrap().len(),
        0,
        "C leaves an empty image behind"
    );
    fs::remove_file(&img).unwrap();
    let or = run({
        let mut c = ours();
        c.arg("--from-file").arg(&bad).arg(&img);
        c
    });
    assert_eq!(or.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&or.stderr);
    assert!(msg.starts_with("mkcfs-rs: Invalid mode 644"), "{msg}");
    assert!(!img.exists(), "no image may be left behind");
    // An existing image survives a failed rebuild, and no temporary file is left.
    fs::write(&img, b"previous").unwrap();
    let or = run({
        let mut c = ours();
        c.arg("--from-file").arg(&bad).arg(&img);
        c
    });
    assert_eq!(or.status.code(), Some(1));
    assert_eq!(fs::read(&img).unwrap(), b"previous");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
}

/// Run through a symlink named `mkcomposefs`, messages carry that name, as C's do.
#[test]
fn symlink_named_mkcomposefs_is_a_drop_in() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("mkcomposefs");
    symlink(conformance::oracle::mkcfs_rs(), &link).unwrap();
    let o = Command::new(&link)
        .args(["--from-file", "/nonexistent", "x"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "mkcomposefs: open `/nonexistent`: No such file or directory\n"
    );
}
