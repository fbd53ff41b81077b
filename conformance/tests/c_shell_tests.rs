//! C composefs 1.0.8's own shell tests (tests/*.sh of the source package that
//! `scripts/install-oracles` unpacks), run against our five drop-ins — `mkcomposefs`,
//! `composefs-info`, `mount.composefs`, `composefs-dump`, `composefs-fuse`, all symlinks to
//! mkcfs-rs, in BINDIR and first on PATH — and, as a control, against C's five tools. Both runs
//! of a script go at the same time (separate temporary folders and mount namespaces).
//!
//! A script passing is not enough: the scripts skip silently what the machine lacks, so each
//! test also reads the output and fails when a part was skipped — `has_fuse=y` and ten FUSE
//! mounts for test-random-fuse, the mount.composefs and umount lines of integration.sh, the
//! four `Test …: OK` lines of test-units, one `Verifying` line per asset. Arguments are what
//! tests/meson.build passes (its asset lists are read from the file). `fs-verity` is absent from
//! this kernel, so test-units' digest-mount part checks nothing on either side (see the
//! README).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use conformance::oracle::{mkcfs_rs, oracles_dir, Oracle};

const TOOLS: [&str; 5] = [
    "mkcomposefs",
    "composefs-info",
    "mount.composefs",
    "composefs-dump",
    "composefs-fuse",
];

/// Whose tools a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Ours,
    C,
}

/// C's source tree (tests/ holds the scripts, gendir and dumpdir).
fn c_source() -> PathBuf {
    let p = oracles_dir().join("src/composefs");
    assert!(
        p.join("tests/test-lib.sh").exists(),
        "C composefs sources missing at {}: run scripts/install-oracles",
        p.display()
    );
    p
}

/// A folder with the five tool names, and one with the helper tools the scripts take from
/// PATH (fsck.erofs, fsverity): never C's composefs tools on our side's PATH.
struct Bins {
    _dir: tempfile::TempDir,
    bindir: PathBuf,
    path: String,
}

fn bins(side: Side) -> Bins {
    let dir = tempfile::tempdir().unwrap();
    let bindir = dir.path().join("bin");
    let helpers = dir.path().join("helpers");
    std::fs::create_dir_all(&bindir).unwrap();
    std::fs::create_dir_all(&helpers).unwrap();
    for name in TOOLS {
        let target = match (side, name) {
            (Side::Ours, _) => mkcfs_rs(),
            (Side::C, "mkcomposefs") => Oracle::Mkcomposefs.get(),
            (Side::C, "composefs-info") => Oracle::ComposefsInfo.get(),
            (Side::C, "composefs-dump") => Oracle::ComposefsDump.get(),
            (Side::C, "composefs-fuse") => Oracle::ComposefsFuse.get(),
            (Side::C, _) => {
                let p = oracles_dir().join("bin").join(name);
                assert!(
                    p.exists(),
                    "C's {name} is missing: run scripts/install-oracles"
                );
                p
            }
        };
        symlink(target, bindir.join(name)).unwrap();
    }
    for o in [Oracle::FsckErofs, Oracle::Fsverity] {
        symlink(o.get(), helpers.join(o.name())).unwrap();
    }
    let path = format!(
        "{}:{}:{}",
        bindir.display(),
        helpers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Bins {
        _dir: dir,
        bindir,
        path,
    }
}

/// FUSE must be usable, or test-random-fuse would silently skip its FUSE half.
fn require_fuse() {
    let fusermount = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join("fusermount").exists());
    assert!(
        fusermount,
        "`fusermount` is not on PATH: install Debian's fuse3 (scripts/install-oracles does)"
    );
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: this kernel has no FUSE (CONFIG_FUSE_FS)"
    );
}

/// One run of a script: its output and how long it took.
struct Run {
    side: Side,
    out: Output,
    took: Duration,
}

impl Run {
    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    /// Fails unless the script exited 0, showing the end of its output.
    fn assert_passed(&self, script: &str) {
        let text = self.text();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        assert!(
            self.out.status.success(),
            "{script} with {:?} tools failed ({}):\n{}",
            self.side,
            self.out.status,
            tail.join("\n")
        );
    }

    fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
}

/// How to run one script.
struct Script<'a> {
    name: &'a str,
    args: Vec<String>,
    /// Run in a private mount namespace (scripts that mount).
    unshare: bool,
    /// Working directory (C's source root for integration.sh).
    cwd: Option<PathBuf>,
    /// Extra environment; `{scratch}` is replaced by a fresh folder.
    env: Vec<(&'a str, String)>,
}

/// Runs `script` for both sides at once.
fn run_both(script: &Script<'_>) -> (Run, Run) {
    let tests = c_source().join("tests");
    let one = |side: Side| -> Run {
        let b = bins(side);
        let scratch = tempfile::Builder::new()
            .prefix("cfs-c-tests")
            .tempdir_in("/var/tmp")
            .unwrap();
        let tmp = scratch.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut args: Vec<String> = Vec::new();
        let mut cmd = if script.unshare {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "bash"]);
            c
        } else {
            Command::new("bash")
        };
        args.push(tests.join(script.name).display().to_string());
        for a in &script.args {
            args.push(a.replace("{bindir}", &b.bindir.display().to_string()));
        }
        cmd.args(&args)
            .env("PATH", &b.path)
            .env("TMPDIR", &tmp)
            .env_remove("seed")
            .env_remove("can_whiteout")
            .env_remove("has_fuse")
            .env_remove("has_fsck")
            .env_remove("has_fsverity")
            .current_dir(script.cwd.clone().unwrap_or_else(|| tmp.clone()));
        for (k, v) in &script.env {
            cmd.env(
                k,
                v.replace("{scratch}", &scratch.path().display().to_string()),
            );
        }
        let start = Instant::now();
        let out = cmd.output().expect("run bash");
        let took = start.elapsed();
        eprintln!(
            "{} with {side:?} tools: {} in {:.1} s",
            script.name,
            if out.status.success() { "pass" } else { "FAIL" },
            took.as_secs_f64()
        );
        Run { side, out, took }
    };
    std::thread::scope(|s| {
        let c = s.spawn(|| one(Side::C));
        let ours = one(Side::Ours);
        (ours, c.join().expect("control run"))
    })
}

/// A `name = [ 'a', 'b', … ]` list of tests/meson.build.
fn meson_list(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(c_source().join("tests/meson.build")).unwrap();
    let start = text
        .find(&format!("{name} = "))
        .unwrap_or_else(|| panic!("{name} not in tests/meson.build"));
    let rest = &text[start..];
    let open = rest.find('[').unwrap();
    let close = open + rest[open..].find(']').unwrap();
    rest[open + 1..close]
        .split(',')
        .map(|s| s.trim().trim_matches('\'').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn assets_dir() -> String {
    c_source().join("tests/assets").display().to_string()
}

/// The `Test options:` line shows each value the script decided on.
fn option(run: &Run, key: &str) -> String {
    let text = run.text();
    let line = text
        .lines()
        .find(|l| l.starts_with("Test options:"))
        .unwrap_or_else(|| panic!("{:?}: no `Test options:` line", run.side));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing from {line}"))
        .to_string()
}

#[test]
fn test_units() {
    let (ours, c) = run_both(&Script {
        name: "test-units.sh",
        args: vec!["{bindir}".into()],
        unshare: true,
        cwd: None,
        env: vec![],
    });
    for r in [&c, &ours] {
        r.assert_passed("test-units.sh");
        for t in [
            "test_inline",
            "test_objects",
            "test_mount_digest",
            "test_composefs_info_measure_files",
        ] {
            assert_eq!(r.count(&format!("Test {t}: OK")), 1, "{:?}: {t}", r.side);
        }
    }
}

#[test]
fn test_checksums() {
    // meson passes test_assets = test_assets_small + the three big ones.
    let mut assets = meson_list("test_assets_small");
    let text = std::fs::read_to_string(c_source().join("tests/meson.build")).unwrap();
    let big = text
        .split("test_assets = test_assets_small + ")
        .nth(1)
        .unwrap();
    let big = &big[big.find('[').unwrap() + 1..big.find(']').unwrap()];
    assets.extend(
        big.split(',')
            .map(|s| s.trim().trim_matches('\'').to_string())
            .filter(|s| !s.is_empty()),
    );
    let present = assets
        .iter()
        .filter(|a| Path::new(&assets_dir()).join(a).exists())
        .count();
    assert!(present >= 15, "only {present} of meson's assets exist");
    let (ours, c) = run_both(&Script {
        name: "test-checksums.sh",
        args: vec!["{bindir}".into(), assets_dir(), assets.join(" ")],
        unshare: false,
        cwd: None,
        env: vec![],
    });
    for r in [&c, &ours] {
        r.assert_passed("test-checksums.sh");
        assert_eq!(option(r, "has_fsck"), "y", "fsck.erofs must run");
        assert_eq!(
            r.count("Verifying "),
            present,
            "{:?}: every asset checked",
            r.side
        );
    }
}

#[test]
fn test_dump_filtered() {
    let (ours, c) = run_both(&Script {
        name: "test-dump-filtered.sh",
        args: vec!["{bindir}".into(), assets_dir()],
        unshare: false,
        cwd: None,
        env: vec![],
    });
    for r in [&c, &ours] {
        r.assert_passed("test-dump-filtered.sh");
        assert!(r.text().lines().any(|l| l == "ok"), "{:?}", r.side);
    }
}

#[test]
fn test_should_fail() {
    let cases = meson_list("test_assets_should_fail");
    assert_eq!(cases.len(), 14);
    let mut args = vec!["{bindir}".to_string()];
    args.extend(cases.iter().map(|c| format!("{}/{c}", assets_dir())));
    let (ours, c) = run_both(&Script {
        name: "test-should-fail.sh",
        args,
        unshare: false,
        cwd: None,
        env: vec![],
    });
    for r in [&c, &ours] {
        r.assert_passed("test-should-fail.sh");
        assert_eq!(r.count("ok /"), 14, "{:?}", r.side);
    }
}

#[test]
fn test_random_fuse() {
    require_fuse();
    let (ours, c) = run_both(&Script {
        name: "test-random-fuse.sh",
        args: vec!["{bindir}".into()],
        unshare: true,
        cwd: None,
        env: vec![],
    });
    for r in [&c, &ours] {
        r.assert_passed("test-random-fuse.sh");
        assert_eq!(
            option(r, "has_fuse"),
            "y",
            "{:?}: the FUSE half must run",
            r.side
        );
        assert_eq!(
            option(r, "can_whiteout"),
            "y",
            "{:?}: whiteouts must be generated",
            r.side
        );
        assert_eq!(
            option(r, "has_fsck"),
            "y",
            "{:?}: fsck.erofs must run",
            r.side
        );
        assert_eq!(
            r.count("Generating root dir"),
            10,
            "{:?}: ten random trees",
            r.side
        );
        assert_eq!(
            r.count("Mounting composefs image using fuse"),
            10,
            "{:?}: ten FUSE mounts",
            r.side
        );
    }
    eprintln!(
        "test-random-fuse: ours {:.0} s, C {:.0} s",
        ours.took.as_secs_f64(),
        c.took.as_secs_f64()
    );
}

#[test]
fn integration() {
    let (ours, c) = run_both(&Script {
        name: "integration.sh",
        args: vec![],
        unshare: true,
        cwd: Some(c_source()),
        env: vec![("cfsroot", "{scratch}/cfsroot".into())],
    });
    for r in [&c, &ours] {
        r.assert_passed("integration.sh");
        // set -x traces every command: both trees (/usr/bin, a gendir tree) went through
        // mount.composefs, were compared and unmounted.
        assert_eq!(r.count("+ mount.composefs -o basedir="), 2, "{:?}", r.side);
        assert_eq!(
            r.count("+ diff -u src-dump.txt mnt-dump.txt"),
            2,
            "{:?}",
            r.side
        );
        assert_eq!(r.count("+ umount mnt"), 2, "{:?}", r.side);
        assert_eq!(r.count("+ run_test /usr/bin --no-nlink"), 1, "{:?}", r.side);
    }
}
