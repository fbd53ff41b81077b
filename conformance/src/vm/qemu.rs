//! Running one machine under `qemu-system-x86_64`: KVM when it really runs guest code, TCG
//! otherwise; the serial console to a file; a hard deadline after which the machine is killed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::VmError;

const QEMU: &str = "qemu-system-x86_64";

/// How the guest's CPU is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The accelerator to use, probed once per process. `CFS_VM_ACCEL=kvm|tcg` forces one.
///
/// `/dev/kvm` existing is not enough: on some hosts (nested virtualisation) qemu opens it and
/// then aborts or never runs a guest instruction. The probe starts the firmware under KVM with
/// the CPU model the real runs use and waits for it to write to the debug port; if nothing
/// arrives in time, TCG it is.
pub fn accel() -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| match std::env::var("CFS_VM_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("tcg") => Accel::Tcg,
        _ => {
            if kvm_runs_guest_code(Duration::from_secs(3)) {
                Accel::Kvm
            } else {
                Accel::Tcg
            }
        }
    })
}

fn kvm_runs_guest_code(wait: Duration) -> bool {
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return false;
    }
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let log = dir.path().join("debugcon");
    let child = Command::new(QEMU)
        .args([
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-nodefaults",
            "-display",
            "none",
            "-m",
            "64",
        ])
        .arg("-chardev")
        .arg(format!("file,id=dbg,path={}", log.display()))
        .args(["-device", "isa-debugcon,iobase=0x402,chardev=dbg"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let start = Instant::now();
    let mut ok = false;
    while start.elapsed() < wait {
        if fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
            ok = true;
            break;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    ok
}

/// A machine to boot.
#[derive(Clone, Debug)]
pub struct Machine {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// Raw disk images, attached as virtio disks `vda`, `vdb`, … in order.
    pub disks: Vec<PathBuf>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// The machine is killed after this long.
    pub deadline: Duration,
}

/// What a boot left behind.
#[derive(Debug)]
pub struct Boot {
    pub accel: Accel,
    /// The serial console, as text.
    pub console: String,
    pub elapsed: Duration,
    /// `true` when the deadline killed the machine.
    pub timed_out: bool,
}

impl Machine {
    /// Boots the machine and waits for it to power off (or for the deadline). The console is
    /// also kept in `console_log`.
    pub fn run(&self, console_log: &Path) -> Result<Boot, VmError> {
        let accel = accel();
        let mut cmd = Command::new(QEMU);
        cmd.args([
            "-accel",
            accel.name(),
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args([
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            &self.cpus.to_string(),
        ])
        .args(["-monitor", "none", "-serial"])
        .arg(format!("file:{}", console_log.display()))
        .arg("-kernel")
        .arg(&self.kernel)
        .arg("-initrd")
        .arg(&self.initrd)
        .arg("-append")
        .arg(&self.cmdline);
        if accel == Accel::Kvm {
            cmd.args(["-cpu", "host"]);
        } else {
            cmd.args(["-cpu", "max"]);
        }
        for d in &self.disks {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio,cache=unsafe",
                d.display()
            ));
        }
        let start = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                VmError::Tool(
                    QEMU.into(),
                    format!("{e} (scripts/install-oracles installs qemu-system-x86)"),
                )
            })?;
        let (status, timed_out, stderr) = wait_with_deadline(child, self.deadline)?;
        let elapsed = start.elapsed();
        let console =
            String::from_utf8_lossy(&fs::read(console_log).unwrap_or_default()).into_owned();
        if !timed_out && !status {
            return Err(VmError::Boot(format!(
                "{QEMU} failed: {}\nconsole:\n{}",
                stderr.trim(),
                tail(&console, 40)
            )));
        }
        Ok(Boot {
            accel,
            console,
            elapsed,
            timed_out,
        })
    }
}

fn wait_with_deadline(
    mut child: Child,
    deadline: Duration,
) -> Result<(bool, bool, String), VmError> {
    let start = Instant::now();
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                return Ok((st.success(), false, reader.join().unwrap_or_default()));
            }
            Ok(None) if start.elapsed() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok((false, true, reader.join().unwrap_or_default()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(VmError::Tool(QEMU.into(), e.to_string())),
        }
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
