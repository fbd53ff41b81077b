//! The guest's disks: an ext4 with the `verity` feature holding the test inputs (made on the
//! host with `mkfs.ext4 -O verity -d`, so the host needs no fs-verity), and a raw results disk
//! the guest writes a tar archive to.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::Path;
use std::process::Command;

use super::VmError;

/// Bytes under `dir`, for sizing the filesystem.
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += 4096 + tree_size(&e.path()),
                Ok(m) => total += m.len().div_ceil(4096) * 4096 + 4096,
                Err(_) => {}
            }
        }
    }
    total
}

/// Makes `image` an ext4 with fs-verity support holding a copy of `contents`, with room to
/// spare (`spare_mib`) for what the guest writes.
pub fn make_ext4(image: &Path, contents: &Path, spare_mib: u64) -> Result<(), VmError> {
    let bytes = tree_size(contents) * 2 + (spare_mib + 16) * 1024 * 1024;
    let file = fs::File::create(image).map_err(|e| VmError::io(image, e))?;
    file.set_len(bytes.div_ceil(4096) * 4096)
        .map_err(|e| VmError::io(image, e))?;
    drop(file);
    let out = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-O",
            "verity",
            "-b",
            "4096",
            "-E",
            "root_owner=0:0",
            "-d",
        ])
        .arg(contents)
        .arg(image)
        .output()
        .map_err(|e| VmError::Tool("mkfs.ext4".into(), format!("{e} (install e2fsprogs)")))?;
    if !out.status.success() {
        return Err(VmError::Tool(
            "mkfs.ext4".into(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// A zeroed raw disk of `mib` MiB for the guest's results.
pub fn make_results_disk(image: &Path, mib: u64) -> Result<(), VmError> {
    let file = fs::File::create(image).map_err(|e| VmError::io(image, e))?;
    file.set_len(mib * 1024 * 1024)
        .map_err(|e| VmError::io(image, e))
}

/// The files of the tar archive the guest wrote to the results disk, by path (without `./`).
pub fn read_results(image: &Path) -> Result<BTreeMap<String, Vec<u8>>, VmError> {
    let file = fs::File::open(image).map_err(|e| VmError::io(image, e))?;
    let mut archive = tar::Archive::new(file);
    let mut out = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| VmError::Results(format!("results disk: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| VmError::Results(format!("results disk: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| VmError::Results(e.to_string()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| VmError::Results(format!("{path}: {e}")))?;
        out.insert(path, data);
    }
    Ok(out)
}
