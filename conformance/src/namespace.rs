//! Running a test body inside a private mount namespace, so that its mounts, its `/tmp` and
//! its failures can never touch the host or other tests running at the same time.
//!
//! The test re-executes its own test binary under `unshare -m --propagation private`, filtered
//! to itself; the child finds a marker in its environment and runs the body, where mounting
//! through the library, C's tools or ours is private to it. The parent fails with the child's
//! output when the child fails, and also when it did not run exactly the one test (a filter
//! that matched nothing would otherwise pass).
//!
//! Inside, [`mountinfo`], [`mount_count`], [`composefs_tmpdirs`] and [`loop_devices_under`]
//! tell what a mount left behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the test the current process runs inside the namespace.
const MARKER: &str = "CONFORMANCE_IN_MOUNT_NS";

/// `true` inside the namespace: run the body. `false` in the parent, after the body ran in a
/// child and passed. `test` is the test function's name (its path in the test binary).
pub fn enter(test: &str) -> bool {
    if std::env::var(MARKER).is_ok_and(|t| t == test) {
        return true;
    }
    if let Err(why) = crate::kernel::can_mount() {
        panic!("{test} needs to mount (root, erofs and overlayfs in the kernel): {why}");
    }
    let exe = std::env::current_exe().expect("test executable");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(MARKER, test)
        .output()
        .unwrap_or_else(|e| panic!("unshare (util-linux) is needed to run {test}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("test result: ok. 1 passed") {
        panic!(
            "{test} in a private mount namespace failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
    }
    eprint!("{stderr}");
    false
}

/// Makes `/tmp` of the namespace a fresh tmpfs, so that every `/tmp/.composefs.*` there is
/// the test's own. Only inside [`enter`]'s namespace.
pub fn private_tmp() {
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp"])
        .status()
        .expect("mount tmpfs");
    assert!(st.success(), "mount -t tmpfs tmpfs /tmp failed");
}

/// A folder for a test's images and objects, under the target folder (`target/tmp`), not on
/// the private /tmp: from a tmpfs the kernel mounts EROFS only through a loop device.
pub fn data_dir() -> tempfile::TempDir {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> → target/tmp
    let target: PathBuf = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    let tmp = target.join("tmp");
    fs::create_dir_all(&tmp).expect("target/tmp");
    tempfile::tempdir_in(tmp).expect("data dir")
}

/// The mountinfo line of the mount at `target`: (mount options, fstype, source, super options).
pub fn mountinfo(target: &Path) -> Option<(String, String, String, String)> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let t = target.to_str().unwrap();
    info.lines().rev().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let f: Vec<&str> = pre.split(' ').collect();
        if f.get(4) != Some(&t) {
            return None;
        }
        let g: Vec<&str> = post.splitn(3, ' ').collect();
        Some((
            f[5].into(),
            g[0].into(),
            g[1].into(),
            g.get(2).unwrap_or(&"").to_string(),
        ))
    })
}

/// How many mounts this namespace has.
pub fn mount_count() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// Our `/tmp/.composefs.*` directories (only meaningful with a private /tmp).
pub fn composefs_tmpdirs() -> Vec<String> {
    fs::read_dir("/tmp")
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.starts_with(".composefs.").then_some(n)
        })
        .collect()
}

/// Loop devices whose backing file lies under `dir`.
pub fn loop_devices_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(b) = fs::read_to_string(e.path().join("loop/backing_file")) {
            if Path::new(b.trim()).starts_with(dir) {
                out.push(format!("{name} → {}", b.trim()));
            }
        }
    }
    out
}

/// Unmounts `target`; a failure fails the test.
pub fn umount(target: &Path) {
    rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty())
        .unwrap_or_else(|e| panic!("umount {}: {e}", target.display()));
}
