//! A Debian kernel package, unpacked with `dpkg -x` (never installed): the kernel image, its
//! version and its modules, with each module's dependencies read from its `.modinfo` section
//! (the packages ship no `modules.dep`; depmod runs at install time).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object as _, ObjectSection as _};

use super::VmError;

/// An unpacked kernel package (one `.deb`, or the image package with the `linux-binary-*` and
/// `linux-modules-*` packages newer kernels are split into).
#[derive(Debug)]
pub struct Kernel {
    /// `uname -r` of the kernel.
    pub version: String,
    /// The bootable image (`vmlinuz`).
    pub image: PathBuf,
    /// `…/modules/VERSION`.
    pub modules_dir: PathBuf,
    /// Module name (with `_`) → file.
    index: BTreeMap<String, PathBuf>,
    /// Modules built into the kernel (`modules.builtin`), when the packages ship that list.
    builtin: Option<BTreeSet<String>>,
}

/// One module, decompressed, ready for `insmod`.
#[derive(Debug)]
pub struct Module {
    pub name: String,
    pub data: Vec<u8>,
}

fn norm(name: &str) -> String {
    name.replace('-', "_")
}

impl Kernel {
    /// Unpacks `debs` into `into` and finds the kernel in them.
    pub fn unpack(debs: &[PathBuf], into: &Path) -> Result<Self, VmError> {
        if debs.is_empty() {
            return Err(VmError::Kernel("no kernel package given".into()));
        }
        fs::create_dir_all(into).map_err(|e| VmError::io(into, e))?;
        for deb in debs {
            let out = Command::new("dpkg-deb")
                .arg("-x")
                .arg(deb)
                .arg(into)
                .output()
                .map_err(|e| VmError::Tool("dpkg-deb".into(), e.to_string()))?;
            if !out.status.success() {
                return Err(VmError::Kernel(format!(
                    "dpkg-deb -x {}: {}",
                    deb.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        let mods_root = ["usr/lib/modules", "lib/modules"]
            .iter()
            .map(|p| into.join(p))
            .find(|p| p.is_dir())
            .ok_or_else(|| {
                VmError::Kernel(format!(
                    "{}: no lib/modules in the packages",
                    into.display()
                ))
            })?;
        let version = fs::read_dir(&mods_root)
            .map_err(|e| VmError::io(&mods_root, e))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .next()
            .ok_or_else(|| VmError::Kernel("lib/modules is empty".into()))?;
        let modules_dir = mods_root.join(&version);
        let image = [
            modules_dir.join("vmlinuz"),
            into.join(format!("boot/vmlinuz-{version}")),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| VmError::Kernel(format!("no vmlinuz for {version} in the packages")))?;
        let mut index = BTreeMap::new();
        index_modules(&modules_dir.join("kernel"), &mut index)?;
        let builtin = fs::read_to_string(modules_dir.join("modules.builtin"))
            .ok()
            .map(|text| {
                text.lines()
                    .filter_map(|l| l.rsplit('/').next())
                    .map(|f| norm(f.trim_end_matches(".ko")))
                    .collect()
            });
        Ok(Kernel {
            version,
            image,
            modules_dir,
            index,
            builtin,
        })
    }

    /// Whether the kernel may have `name` built in: listed in `modules.builtin`, or not
    /// shipped as a module when the packages have no such list (sid's split packages). The
    /// guest then checks that the feature is really there.
    pub fn may_be_builtin(&self, name: &str) -> bool {
        match &self.builtin {
            Some(list) => list.contains(&norm(name)),
            None => !self.index.contains_key(&norm(name)),
        }
    }

    /// The modules needed for `wanted`, dependencies first. A wanted module that is built in
    /// is left out; one that is neither built in nor shipped is an error.
    pub fn modules_for(&self, wanted: &[&str]) -> Result<Vec<Module>, VmError> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for w in wanted {
            let w = norm(w);
            if !self.index.contains_key(&w) && self.may_be_builtin(&w) {
                continue;
            }
            self.visit(&w, &mut seen, &mut order, &mut Vec::new())?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<Module>,
        stack: &mut Vec<String>,
    ) -> Result<(), VmError> {
        if seen.contains(name) {
            return Ok(());
        }
        if stack.iter().any(|s| s == name) {
            return Err(VmError::Kernel(format!(
                "module dependency cycle: {stack:?} → {name}"
            )));
        }
        let path = self.index.get(name).ok_or_else(|| {
            VmError::Kernel(format!(
                "kernel {} has no module `{name}` and does not build it in",
                self.version
            ))
        })?;
        let data = decompress(path)?;
        stack.push(name.to_string());
        for dep in
            depends(&data).map_err(|e| VmError::Kernel(format!("{}: {e}", path.display())))?
        {
            self.visit(&norm(&dep), seen, order, stack)?;
        }
        stack.pop();
        seen.insert(name.to_string());
        order.push(Module {
            name: name.to_string(),
            data,
        });
        Ok(())
    }
}

fn index_modules(dir: &Path, index: &mut BTreeMap<String, PathBuf>) -> Result<(), VmError> {
    for e in fs::read_dir(dir).map_err(|e| VmError::io(dir, e))? {
        let e = e.map_err(|e| VmError::io(dir, e))?;
        let p = e.path();
        if p.is_dir() {
            index_modules(&p, index)?;
        } else if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            if let Some(stem) = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .find_map(|ext| name.strip_suffix(ext))
            {
                index.insert(norm(stem), p.clone());
            }
        }
    }
    Ok(())
}

/// A module's bytes, decompressed with the host's `xz`/`zstd`/`gzip` when compressed.
fn decompress(path: &Path) -> Result<Vec<u8>, VmError> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return fs::read(path).map_err(|e| VmError::io(path, e));
    };
    let out = Command::new(tool)
        .args(["-dc"])
        .arg(path)
        .output()
        .map_err(|e| {
            VmError::Tool(
                tool.into(),
                format!("{e} (scripts/install-oracles installs it)"),
            )
        })?;
    if !out.status.success() {
        return Err(VmError::Tool(
            tool.into(),
            format!("{name}: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    Ok(out.stdout)
}

/// The `depends=` field of a module's `.modinfo` section.
fn depends(elf: &[u8]) -> Result<Vec<String>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let data = section.data().map_err(|e| e.to_string())?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|f| f.strip_prefix(b"depends="))
        .flat_map(|v| v.split(|&b| b == b','))
        .filter(|d| !d.is_empty())
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect())
}
