//! The guest's initramfs: a static busybox, host programs with the shared libraries they load,
//! programs from the oracle prefix (Debian sid builds, started through the prefix's own
//! loader), kernel modules, the init script and test inputs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Cpio;
use super::kernel::Module;
use super::VmError;

/// The host's dynamic loader, which also lists a program's libraries (`--list`).
const HOST_LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// Where the oracle prefix's loader and libraries go in the guest.
pub const ORACLE_LIB: &str = "/oracle/lib";

pub struct Initramfs {
    cpio: Cpio,
}

/// The libraries a dynamic program loads, as `(soname or path, resolved host path)`;
/// empty for a static program.
fn libraries(
    loader: &Path,
    library_path: Option<&str>,
    program: &Path,
) -> Result<Vec<PathBuf>, VmError> {
    let mut cmd = Command::new(loader);
    if let Some(lp) = library_path {
        cmd.args(["--library-path", lp]);
    }
    let out = cmd
        .arg("--list")
        .arg(program)
        .output()
        .map_err(|e| VmError::Tool(loader.display().to_string(), e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The loader refuses a static program; anything else is an error.
        if is_static(program)? {
            return Ok(Vec::new());
        }
        return Err(VmError::Tool(
            loader.display().to_string(),
            format!(
                "--list {}: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        } else if line.contains("not found") {
            return Err(VmError::Tool(
                loader.display().to_string(),
                format!("{}: {line}", program.display()),
            ));
        }
    }
    Ok(libs)
}

/// Whether an ELF program has no interpreter (is statically linked).
pub fn is_static(program: &Path) -> Result<bool, VmError> {
    use object::Object as _;
    let data = fs::read(program).map_err(|e| VmError::io(program, e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| VmError::Kernel(format!("{}: not an ELF program: {e}", program.display())))?;
    Ok(file.section_by_name(".interp").is_none())
}

/// The program without its debug sections (a release build keeps line tables, which would
/// triple the initramfs); the program itself when `strip` is missing or fails.
fn stripped(program: &Path) -> Result<Vec<u8>, VmError> {
    let Ok(dir) = tempfile::tempdir() else {
        return read(program);
    };
    let out = dir.path().join("p");
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(program)
        .status()
        .is_ok_and(|s| s.success());
    read(if ok { &out } else { program })
}

fn read(path: &Path) -> Result<Vec<u8>, VmError> {
    fs::read(path).map_err(|e| VmError::io(path, e))
}

impl Initramfs {
    /// Starts an initramfs around a static busybox (`/bin/busybox`; init installs the applet
    /// links).
    pub fn new(busybox: &Path) -> Result<Self, VmError> {
        if !is_static(busybox)? {
            return Err(VmError::Tool(
                busybox.display().to_string(),
                "is not statically linked: install busybox-static (scripts/install-oracles does)"
                    .into(),
            ));
        }
        let mut cpio = Cpio::new();
        for d in [
            "dev", "proc", "sys", "tmp", "run", "data", "results", "sysroot", "etc",
        ] {
            cpio.dir(d);
        }
        cpio.file("bin/busybox", 0o755, &read(busybox)?);
        Ok(Initramfs { cpio })
    }

    /// Adds a host program at `guest` with every library it loads at the host's paths.
    pub fn host_program(&mut self, program: &Path, guest: &str) -> Result<(), VmError> {
        for lib in libraries(Path::new(HOST_LOADER), None, program)? {
            let guest_lib = lib.to_string_lossy().into_owned();
            if !self.cpio.contains(&guest_lib) {
                let data = read(&lib)?;
                self.cpio.file(&guest_lib, 0o755, &data);
            }
        }
        self.cpio.file(guest, 0o755, &stripped(program)?);
        Ok(())
    }

    /// Adds a program from an unpacked Debian prefix (the oracle's sid binaries, which need
    /// that prefix's glibc): the binary at `/oracle/libexec/NAME`, its libraries and loader in
    /// [`ORACLE_LIB`], and a wrapper at `guest` that starts it through that loader.
    pub fn prefixed_program(
        &mut self,
        prefix: &Path,
        program: &Path,
        guest: &str,
    ) -> Result<(), VmError> {
        let libdirs = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
            .iter()
            .map(|d| prefix.join(d).display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let loader = prefix.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
        if !loader.exists() {
            return Err(VmError::Tool(
                loader.display().to_string(),
                "missing: run scripts/install-oracles".into(),
            ));
        }
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for lib in libraries(&loader, Some(&libdirs), program)?
            .into_iter()
            .chain([loader.clone()])
        {
            let base = lib
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let guest_lib = format!("{ORACLE_LIB}/{base}");
            if !self.cpio.contains(&guest_lib) {
                self.cpio.file(&guest_lib, 0o755, &read(&lib)?);
            }
        }
        let real = format!("/oracle/libexec/{name}");
        self.cpio.file(&real, 0o755, &read(program)?);
        let wrapper = format!(
            "#!/bin/sh\nexec {ORACLE_LIB}/ld-linux-x86-64.so.2 --library-path {ORACLE_LIB} {real} \"$@\"\n"
        );
        self.cpio.file(guest, 0o755, wrapper.as_bytes());
        Ok(())
    }

    /// Adds modules as `/lib/modules/NAME.ko`, in load order.
    pub fn modules(&mut self, modules: &[Module]) {
        for m in modules {
            self.cpio
                .file(&format!("lib/modules/{}.ko", m.name), 0o644, &m.data);
        }
    }

    /// Adds any file.
    pub fn file(&mut self, guest: &str, perm: u32, data: &[u8]) {
        self.cpio.file(guest, perm, data);
    }

    /// Adds a symlink.
    pub fn symlink(&mut self, guest: &str, target: &str) {
        self.cpio.symlink(guest, target);
    }

    /// Writes the archive.
    pub fn write(self, path: &Path) -> Result<(), VmError> {
        fs::write(path, self.cpio.finish()).map_err(|e| VmError::io(path, e))
    }
}
