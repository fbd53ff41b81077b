//! Kernel truth in virtual machines (issue 12): Debian's own kernels, booted under qemu with an
//! initramfs the harness builds, enforce fs-verity on composefs mounts — C's mount.composefs is
//! the control, ours must give the same outcome in every case. One boot per kernel runs the
//! whole suite (`conformance::vm::suite`).
//!
//! The kernels are fetched by `scripts/install-oracles` (scripts/oracles.d/60-vm.sh):
//! bookworm's 6.1 (no overlayfs `verity=`, no file-backed EROFS: the loop-device and legacy
//! overlay paths) and sid's newest. A missing kernel, qemu or busybox fails the test.

use std::path::PathBuf;
use std::time::Duration;

use conformance::oracle::mkcfs_rs;

// Each test boots one kernel; cargo runs the two in parallel (about four minutes each under
// TCG, most of it the matrix).
use conformance::vm::{self, suite};

fn run(name: &str) {
    let debs = vm::kernel_debs(name).unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::Builder::new()
        .prefix(&format!("cfs-vm-{name}-"))
        .tempdir()
        .expect("scratch folder");
    let cfg = suite::Config {
        name: name.to_string(),
        kernel_debs: debs,
        work: work.path().to_path_buf(),
        mkcfs_rs: mkcfs_rs(),
        conformance: PathBuf::from(env!("CARGO_BIN_EXE_conformance")),
        mount_tools: vec![suite::MountTool::C, suite::MountTool::Ours],
        deadline: Duration::from_secs(600),
        matrix_limit: None,
    };
    let start = std::time::Instant::now();
    let report = suite::run(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("{}", report.summary());
    eprintln!(
        "{name}: {:.1} s in all (host preparation included)",
        start.elapsed().as_secs_f64()
    );
    check_pin(name, &report.matrix_table);
    assert!(
        report.failures.is_empty(),
        "{name}: {} failure(s):\n{}",
        report.failures.len(),
        report.summary()
    );
}

/// The kernel matrix is pinned in `tests/vm/matrix-NAME.txt` (and published in docs/FORMAT.md):
/// any change fails. `CFS_VM_PIN=1` rewrites the pin after a deliberate change.
fn check_pin(name: &str, table: &str) {
    let pin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vm")
        .join(format!("matrix-{name}.txt"));
    if std::env::var_os("CFS_VM_PIN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(pin.parent().unwrap()).unwrap();
        std::fs::write(&pin, table).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(&pin)
        .unwrap_or_else(|e| panic!("{}: {e} (CFS_VM_PIN=1 writes it)", pin.display()));
    assert!(
        pinned == table,
        "{name}: the kernel matrix changed (CFS_VM_PIN=1 re-pins it after a deliberate change)\n--- pinned\n{pinned}\n--- now\n{table}"
    );
}

#[test]
fn bookworm_6_1() {
    run("bookworm");
}

#[test]
fn sid_newest() {
    run("sid");
}
