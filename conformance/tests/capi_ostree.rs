//! ostree 2026.4 (Debian sid, `scripts/oracles.d/70-ostree.sh`) on our libcomposefs.so.1:
//! its installed composefs tests pass, and commits of real trees record the same
//! `ostree.composefs.digest.v0` and check out byte-identical composefs images as on C's
//! library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conformance::capi::{our_libdir, our_library, Lib};
use conformance::oracle::{oracles_dir, repo_root};

fn ostree_dir() -> PathBuf {
    let d = oracles_dir().join("ostree");
    if !d.join("bin/ostree").exists() {
        panic!(
            "the sid ostree oracle is missing at {}: run scripts/install-oracles",
            d.display()
        );
    }
    d
}

/// A wrapper from the ostree oracle (`ostree`, `composefs-info`, …) on `lib`.
fn tool(lib: Lib, name: &str) -> Command {
    let mut c = Command::new(ostree_dir().join("bin").join(name));
    match lib {
        Lib::C => c.env_remove("CAPI_LIBDIR"),
        Lib::Ours => c.env("CAPI_LIBDIR", our_libdir()),
    };
    c
}

fn ok(o: Output, what: &str) -> Vec<u8> {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

#[test]
fn ostree_loads_our_library() {
    let out = tool(Lib::Ours, "ostree")
        .arg("--version")
        .env("LD_DEBUG", "libs")
        .output()
        .expect("run ostree");
    let trace = String::from_utf8_lossy(&out.stderr);
    let line = trace
        .lines()
        .find(|l| l.contains("calling init:") && l.contains("libcomposefs.so.1"))
        .expect("libcomposefs in the loader trace");
    let path = PathBuf::from(line.rsplit("calling init:").next().unwrap().trim());
    assert_eq!(
        path.canonicalize().unwrap(),
        our_library().canonicalize().unwrap()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("composefs"));
}

/// Runs an installed ostree test as uid 65534 in a fresh directory (its documented setting),
/// on our library; returns its TAP output.
fn installed_test(name: &str) -> String {
    let tests = ostree_dir().join("prefix/usr/libexec/installed-tests/libostree");
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("t");
    std::fs::create_dir(&work).expect("mkdir");
    rustix::fs::chown(
        &work,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .expect("chown (tests run as root)");
    let bin = ostree_dir().join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
        .arg(format!("PATH={path}"))
        .arg(format!("HOME={}", work.display()))
        .arg(format!("G_TEST_SRCDIR={}", tests.display()))
        .arg(format!("G_TEST_BUILDDIR={}", tests.display()))
        .arg(format!(
            "OSTREE_HTTPD={}",
            bin.join("ostree-trivial-httpd").display()
        ))
        .arg(format!("CAPI_LIBDIR={}", our_libdir().display()))
        .arg(tests.join(name))
        .current_dir(&work)
        .output()
        .expect("run setpriv");
    let tap = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !tap.contains("not ok") && !tap.contains("# SKIP"),
        "{name} failed on our library:\n{tap}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tap
}

#[test]
fn installed_test_composefs_passes() {
    let tap = installed_test("test-composefs.sh");
    assert_eq!(
        tap.matches("\nok ").count() + usize::from(tap.starts_with("ok ")),
        4,
        "{tap}"
    );
}

#[test]
fn installed_test_admin_deploy_composefs_passes() {
    let tap = installed_test("test-admin-deploy-composefs.sh");
    assert!(tap.contains("1..1"), "{tap}");
}

/// A tree with what ostree commits: xattrs (user, trusted.overlay, security), hardlinks,
/// symlinks, empty and large files, unusual permissions.
fn make_tree(root: &Path) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("usr/lib/x/big"), vec![3u8; 300_000]).unwrap();
    std::fs::write(root.join("usr/lib/x/small"), b"small\n").unwrap();
    std::fs::write(root.join("etc/empty"), b"").unwrap();
    std::fs::hard_link(root.join("usr/lib/x/small"), root.join("etc/small-link")).unwrap();
    symlink("../usr/lib/x/big", root.join("etc/big-link")).unwrap();
    std::fs::set_permissions(
        root.join("usr/lib/x/small"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    for (f, n, v) in [
        ("usr/lib/x/big", "user.a", &b"1"[..]),
        ("usr/lib/x/big", "trusted.overlay.foo", b"bar"),
        ("etc", "security.selinux", b"system_u:object_r:etc_t:s0\0"),
        ("usr/lib/x/small", "user.empty", b""),
    ] {
        rustix::fs::setxattr(root.join(f), n, v, rustix::fs::XattrFlags::empty())
            .unwrap_or_else(|e| panic!("setxattr {n} on {f}: {e}"));
    }
}

/// Commits `src` into a fresh archive repo on `lib`; returns (metadata digest, checkout
/// --composefs image, checkout --composefs-noverity image).
fn commit_and_checkout(lib: Lib, src: &Path, work: &Path) -> (String, Vec<u8>, Vec<u8>) {
    let repo = work.join(format!("repo-{lib:?}"));
    let r = format!("--repo={}", repo.display());
    ok(
        tool(lib, "ostree")
            .args(["init", &r, "--mode=archive"])
            .output()
            .unwrap(),
        "init",
    );
    ok(
        tool(lib, "ostree")
            .args(["commit", &r, "-b", "t", "--generate-composefs-metadata"])
            .arg(src)
            .output()
            .unwrap(),
        "commit",
    );
    let digest = ok(
        tool(lib, "ostree")
            .args([
                "show",
                &r,
                "--print-hex",
                "--print-metadata-key",
                "ostree.composefs.digest.v0",
                "t",
            ])
            .output()
            .unwrap(),
        "show",
    );
    let mut images = Vec::new();
    for flag in ["--composefs", "--composefs-noverity"] {
        let out = work.join(format!("{lib:?}{flag}.cfs"));
        ok(
            tool(lib, "ostree")
                .args(["checkout", &r, flag, "t"])
                .arg(&out)
                .output()
                .unwrap(),
            "checkout",
        );
        images.push(std::fs::read(&out).unwrap());
    }
    let noverity = images.pop().unwrap();
    let verity = images.pop().unwrap();
    (
        String::from_utf8_lossy(&digest).trim().to_owned(),
        verity,
        noverity,
    )
}

#[test]
fn commits_record_c_digests_and_checkouts_equal_c() {
    let dir = tempfile::tempdir().unwrap();
    let synthetic = dir.path().join("tree");
    make_tree(&synthetic);
    let fixtures = repo_root().join("fixtures");
    let docs = PathBuf::from("/usr/share/doc");
    let mut failures = Vec::new();
    for (k, src) in [synthetic, fixtures, docs].iter().enumerate() {
        let work = dir.path().join(format!("w{k}"));
        std::fs::create_dir(&work).unwrap();
        let c = commit_and_checkout(Lib::C, src, &work);
        let ours = commit_and_checkout(Lib::Ours, src, &work);
        assert_eq!(
            c.0.len(),
            64,
            "{}: no composefs digest recorded",
            src.display()
        );
        if c.0 != ours.0 {
            failures.push(format!(
                "{}: digest {} on ours, {} on C",
                src.display(),
                ours.0,
                c.0
            ));
        }
        if c.1 != ours.1 {
            failures.push(format!(
                "{}: checkout --composefs images differ",
                src.display()
            ));
        }
        if c.2 != ours.2 {
            failures.push(format!(
                "{}: checkout --composefs-noverity images differ",
                src.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// ostree refuses device nodes in a commit; it must do so the same way on both libraries.
#[test]
fn device_nodes_are_refused_alike() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("mknod (needs root)");
    let mut seen = Vec::new();
    for lib in [Lib::C, Lib::Ours] {
        let repo = dir.path().join(format!("r{lib:?}"));
        let r = format!("--repo={}", repo.display());
        ok(
            tool(lib, "ostree")
                .args(["init", &r, "--mode=archive"])
                .output()
                .unwrap(),
            "init",
        );
        let o = tool(lib, "ostree")
            .args(["commit", &r, "-b", "t", "--generate-composefs-metadata"])
            .arg(&src)
            .output()
            .unwrap();
        seen.push((
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ));
    }
    assert_ne!(seen[0].0, Some(0));
    assert_eq!(seen[0], seen[1]);
}
