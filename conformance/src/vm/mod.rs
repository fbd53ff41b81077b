//! Kernel truth in virtual machines: boot a Debian kernel package under qemu with an initramfs
//! built here, run a shell script in the guest, and bring its results back.
//!
//! The host needs no fs-verity and no kernel installed: the kernel and its modules come from
//! the `.deb` (`dpkg -x`), the guest's disk is an ext4 with the `verity` feature made by
//! `mkfs.ext4 -d`, and the results come back as a tar archive on a second, raw disk. The
//! console carries `@@step NAME` markers, so a guest that fails, hangs or panics is reported
//! with the step it was in. [`suite`] holds the tests the CI runs in every kernel.

pub mod cpio;
pub mod disk;
pub mod guest;
pub mod initramfs;
pub mod kernel;
pub mod matrix;
pub mod qemu;
pub mod suite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use initramfs::Initramfs;
pub use kernel::Kernel;
pub use qemu::{Accel, Machine};

/// What can go wrong around a guest.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel package: {0}")]
    Kernel(String),
    #[error("{0}: {1}")]
    Tool(String, String),
    #[error("boot: {0}")]
    Boot(String),
    /// The guest stopped in `step`: failed, timed out or crashed.
    #[error("guest step `{step}` failed: {detail}\n--- console (last lines) ---\n{console}")]
    Guest {
        step: String,
        detail: String,
        console: String,
    },
    #[error("results: {0}")]
    Results(String),
}

impl VmError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        VmError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Modules every guest loads when the kernel does not build them in.
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "loop",
    "erofs",
    "overlay",
    "fuse",
    // fs-verity with sha512 needs the hash; often a module
    "sha512_generic",
];

/// Everything one boot needs.
#[derive(Clone, Debug)]
pub struct GuestSpec {
    /// The kernel package (several files when it is split into image/binary/modules).
    pub kernel_debs: Vec<PathBuf>,
    /// A scratch folder for the unpacked kernel, initramfs and disks.
    pub work: PathBuf,
    /// Host programs (path on the host, path in the guest), with their libraries.
    pub host_programs: Vec<(PathBuf, String)>,
    /// The unpacked oracle prefix (`.oracles/prefix`), for `oracle_programs`.
    pub oracle_prefix: PathBuf,
    /// Programs of the oracle prefix (path on the host, wrapper path in the guest).
    pub oracle_programs: Vec<(PathBuf, String)>,
    /// Extra files of the initramfs (guest path, mode, contents).
    pub files: Vec<(String, u32, Vec<u8>)>,
    /// Extra symlinks of the initramfs (guest path, target).
    pub symlinks: Vec<(String, String)>,
    /// A folder copied onto the guest's ext4 (`/dev/vda`, mounted at `/data`).
    pub data: PathBuf,
    /// The test script, run by the guest's init with `/data` mounted; it writes its results
    /// under `/results` and calls `fail MESSAGE` when a step cannot go on.
    pub script: String,
    /// Appended to the kernel command line.
    pub cmdline: String,
    pub memory_mib: u32,
    pub deadline: Duration,
}

/// What a finished guest reported.
#[derive(Debug)]
pub struct GuestRun {
    pub kernel_version: String,
    pub accel: Accel,
    /// Guest uptime when init started (seconds).
    pub boot_secs: f64,
    /// Wall time from starting qemu to its exit.
    pub elapsed: Duration,
    pub console: String,
    /// The files the guest left under `/results`.
    pub results: BTreeMap<String, Vec<u8>>,
}

impl GuestRun {
    /// A result file as text (empty when absent).
    pub fn text(&self, name: &str) -> String {
        self.results
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }
}

/// The guest's `/init`: sets up the machine, loads modules, mounts the data disk, runs the
/// test script, then writes the results disk and powers off.
fn init_script() -> &'static str {
    r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/usr/bin:/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "@@booted $(cut -d' ' -f1 /proc/uptime)"
STEP=setup
step() { STEP="$1"; echo "@@step $1"; }
finish() {
  cd /
  tar -cf /dev/vdb -C /results . || echo "@@fail results: tar to /dev/vdb"
  sync
  echo "@@end $1"
  poweroff -f
}
fail() { echo "@@fail $STEP: $*"; printf '%s\n%s\n' "$STEP" "$*" > /results/failed; finish fail; }
step modules
for m in $(cat /etc/modules.load); do insmod "/lib/modules/$m.ko" || fail "insmod $m"; done
step devices
i=0
while [ $i -lt 100 ] && ! { [ -b /dev/vda ] && [ -b /dev/vdb ]; }; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] && [ -b /dev/vdb ] || fail "virtio disks /dev/vda and /dev/vdb did not appear"
for fs in erofs overlay ext4 fuse; do grep -qw "$fs" /proc/filesystems || fail "the kernel has no $fs"; done
[ -e /dev/loop-control ] || fail "no /dev/loop-control"
mount -t ext4 /dev/vda /data || fail "mount the ext4 data disk"
uname -r > /results/uname
step script
( . /test/run.sh )
rc=$?
[ $rc = 0 ] || fail "the test script ended with status $rc"
echo "@@done"
finish ok
"#
}

/// Boots `spec`'s kernel with its script and returns what the guest reported. A guest that
/// calls `fail`, crashes or outlives the deadline is an error naming its last step.
pub fn boot(spec: &GuestSpec) -> Result<GuestRun, VmError> {
    std::fs::create_dir_all(&spec.work).map_err(|e| VmError::io(&spec.work, e))?;
    let unpacked = spec.work.join("kernel");
    let _ = std::fs::remove_dir_all(&unpacked);
    let kernel = Kernel::unpack(&spec.kernel_debs, &unpacked)?;
    let modules = kernel.modules_for(MODULES)?;

    let mut ramfs = Initramfs::new(Path::new("/bin/busybox"))?;
    ramfs.modules(&modules);
    let order: String = modules.iter().map(|m| format!("{}\n", m.name)).collect();
    ramfs.file("etc/modules.load", 0o644, order.as_bytes());
    ramfs.file("init", 0o755, init_script().as_bytes());
    ramfs.file("test/run.sh", 0o755, spec.script.as_bytes());
    for (host, guest) in &spec.host_programs {
        ramfs.host_program(host, guest)?;
    }
    for (host, guest) in &spec.oracle_programs {
        ramfs.prefixed_program(&spec.oracle_prefix, host, guest)?;
    }
    for (guest, mode, data) in &spec.files {
        ramfs.file(guest, *mode, data);
    }
    for (guest, target) in &spec.symlinks {
        ramfs.symlink(guest, target);
    }
    let initrd = spec.work.join("initramfs.cpio");
    ramfs.write(&initrd)?;

    let data_disk = spec.work.join("data.ext4");
    disk::make_ext4(&data_disk, &spec.data, 256)?;
    let results_disk = spec.work.join("results.tar");
    disk::make_results_disk(&results_disk, 256)?;

    let machine = Machine {
        kernel: kernel.image.clone(),
        initrd,
        cmdline: format!("console=ttyS0 quiet panic=-1 {}", spec.cmdline),
        disks: vec![data_disk, results_disk.clone()],
        memory_mib: spec.memory_mib,
        cpus: 1,
        deadline: spec.deadline,
    };
    let console_log = spec.work.join("console.log");
    let b = machine.run(&console_log)?;
    let last_step = b
        .console
        .lines()
        .rev()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("@@step "))
        .unwrap_or("boot")
        .to_string();
    let console_tail = qemu::tail(&b.console, 60);
    if b.timed_out {
        return Err(VmError::Guest {
            step: last_step,
            detail: format!(
                "no power-off within {:?} ({} TCG/KVM: {})",
                spec.deadline,
                kernel.version,
                b.accel.name()
            ),
            console: console_tail,
        });
    }
    if let Some(f) = b
        .console
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("@@fail "))
    {
        let (step, detail) = f.split_once(": ").unwrap_or(("?", f));
        return Err(VmError::Guest {
            step: step.to_string(),
            detail: detail.to_string(),
            console: console_tail,
        });
    }
    if !b
        .console
        .lines()
        .any(|l| l.trim_end_matches('\r') == "@@done")
    {
        return Err(VmError::Guest {
            step: last_step,
            detail: "the guest stopped before the end of its script (kernel panic or crash)".into(),
            console: console_tail,
        });
    }
    let boot_secs = b
        .console
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("@@booted "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let results = disk::read_results(&results_disk)?;
    Ok(GuestRun {
        kernel_version: kernel.version,
        accel: b.accel,
        boot_secs,
        elapsed: b.elapsed,
        console: b.console,
        results,
    })
}

/// The kernel packages of one `.oracles/vm/kernels/NAME` folder (every `.deb` in it).
pub fn kernel_debs(name: &str) -> Result<Vec<PathBuf>, VmError> {
    let dir = crate::oracle::oracles_dir().join("vm/kernels").join(name);
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| {
            VmError::Kernel(format!(
                "{}: {e} (scripts/install-oracles fetches the VM kernels)",
                dir.display()
            ))
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    if debs.is_empty() {
        return Err(VmError::Kernel(format!(
            "{}: no .deb (run scripts/install-oracles)",
            dir.display()
        )));
    }
    Ok(debs)
}
