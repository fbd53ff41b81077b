//! Running a test body inside a private mount namespace, so that its mounts, its `/tmp` and
//! its failures can never touch the host or other tests running at the same time.
//!
//! The test re-executes its own test binary under `unshare -m --propagation private`, filtered
//! to itself; the child finds a marker in its environment and runs the body, where mounting
//! through the library, C's tools or ours is private to it. The parent fails with the child's
//! output when the child fails, and also when it did not run exactly the one test (a filter
//! that matched nothing would otherwise pass).

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
