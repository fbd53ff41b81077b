//! Atomic file output: write to a temporary file in the destination folder, fsync, rename into
//! place. A failure at any point (bad input discovered mid-write, a full disk, a signal) leaves
//! no partial file behind and an existing file at the destination untouched.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file being written that appears at its destination only on [`AtomicFile::commit`].
/// Dropping it without committing removes the temporary file.
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
    mode: u32,
    /// Whether the process umask still applies to `mode`.
    masked: bool,
}

impl AtomicFile {
    /// Creates the temporary file beside `dest`. `mode` is applied (after the process umask)
    /// on commit; temporary files are private until then.
    pub fn create(dest: &Path, mode: u32) -> io::Result<AtomicFile> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new().prefix(".tmp").tempfile_in(dir)?;
        Ok(AtomicFile {
            temp,
            dest: dest.to_path_buf(),
            mode,
            masked: true,
        })
    }

    /// Like [`AtomicFile::create`], but `mode` is applied as is, ignoring the umask: for
    /// replacing an existing file while keeping its permissions, as rewriting it in place would.
    pub fn create_with_exact_mode(dest: &Path, mode: u32) -> io::Result<AtomicFile> {
        let mut f = AtomicFile::create(dest, mode)?;
        f.masked = false;
        Ok(f)
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Sets the final permissions, flushes the data to disk and renames the file into place.
    pub fn commit(self) -> io::Result<()> {
        let file = self.temp.as_file();
        let mode = if self.masked {
            self.mode & !current_umask()
        } else {
            self.mode
        };
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()?;
        self.temp.persist(&self.dest).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.temp.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// The process umask (read by setting and restoring it; the CLI is single-threaded here).
fn current_umask() -> u32 {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.as_raw_mode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("img");
        std::fs::write(&dest, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&dest, 0o644).unwrap();
            f.write_all(b"new, but abandoned").unwrap();
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn committed_file_replaces_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("img");
        let mut f = AtomicFile::create(&dest, 0o644).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
