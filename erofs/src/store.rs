//! An object store in C mkcomposefs's `--digest-store` layout: each external file's content at
//! `DIR/XX/<rest of the hex digest>`, the path its overlay redirect names.
//!
//! Objects are written atomically (temporary file in the store's root, `fchmod 0644`, fsync,
//! rename), so a crash or error never leaves a half-written object under its final name. An
//! object that already exists is left alone: its name is its content's digest.
//!
//! Like C mkcomposefs, each new object gets fs-verity enabled before it is renamed into place
//! ([`try_enable_verity`]), so that overlayfs `verity=require` can check it; where the
//! filesystem or kernel has no fs-verity the object is stored without.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::tree::HashAlgorithm;

/// A digest store rooted at a folder.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    root: PathBuf,
    verity: HashAlgorithm,
}

/// Tries to enable fs-verity (`alg`, 4096-byte blocks, no salt) on the finished file at
/// `path`, which must not be open for writing. Every failure is ignored, as C mkcomposefs
/// ignores it: a filesystem or kernel without fs-verity, a file that already has it. Returns
/// whether the kernel enabled it.
pub fn try_enable_verity(path: &Path, alg: HashAlgorithm) -> bool {
    use std::os::fd::AsFd as _;
    File::open(path)
        .and_then(|f| crate::fsverity::kernel::enable(f.as_fd(), alg))
        .is_ok()
}

impl ObjectStore {
    /// A store whose objects get sha256 fs-verity, like C mkcomposefs's.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ObjectStore {
            root: root.into(),
            verity: HashAlgorithm::Sha256,
        }
    }

    /// The fs-verity algorithm enabled on new objects (the image's digest algorithm, so that
    /// the kernel's measurement matches the metacopy digest).
    pub fn with_verity_algorithm(mut self, alg: HashAlgorithm) -> Self {
        self.verity = alg;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with this payload (`XX/rest`) lives.
    pub fn path_of(&self, payload: &str) -> PathBuf {
        self.root.join(payload.trim_start_matches('/'))
    }

    pub fn contains(&self, payload: &str) -> bool {
        fs::symlink_metadata(self.path_of(payload)).is_ok()
    }

    /// Copies `src` into the store as `payload` (reflink where the filesystem allows, else a
    /// kernel-side copy), unless the object already exists.
    pub fn insert_file(&self, payload: &str, src: &Path) -> io::Result<()> {
        self.insert_with(payload, |dst| {
            let mut source = File::open(src)?;
            if rustix::fs::ioctl_ficlone(&*dst, &source).is_err() {
                io::copy(&mut source, dst)?;
            }
            Ok(())
        })
    }

    /// Streams `src` into the store as `payload`, unless the object already exists.
    pub fn insert_reader(&self, payload: &str, src: &mut dyn Read) -> io::Result<()> {
        self.insert_with(payload, |dst| io::copy(src, dst).map(drop))
    }

    /// Writes an object through `fill`, atomically, unless it already exists.
    pub fn insert_with(
        &self,
        payload: &str,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        let dest = self.path_of(payload);
        if let Some(parent) = dest.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)?;
        }
        if fs::symlink_metadata(&dest).is_ok() {
            return Ok(());
        }
        let mut temp = tempfile::Builder::new()
            .prefix(".tmp")
            .tempfile_in(&self.root)?;
        fill(temp.as_file_mut())?;
        let file = temp.as_file_mut();
        file.flush()?;
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        // fs-verity needs the file closed for writing, before it gets its final name.
        let temp = temp.into_temp_path();
        try_enable_verity(&temp, self.verity);
        temp.persist(&dest).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_land_under_their_payload_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(dir.path());
        let src = dir.path().join("src");
        fs::write(&src, b"content").unwrap();
        store.insert_file("ab/cdef", &src).unwrap();
        assert_eq!(fs::read(dir.path().join("ab/cdef")).unwrap(), b"content");
        let mode = fs::metadata(dir.path().join("ab/cdef"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        // A second insert of the same name leaves the first object alone.
        store.insert_reader("ab/cdef", &mut &b"other"[..]).unwrap();
        assert_eq!(fs::read(dir.path().join("ab/cdef")).unwrap(), b"content");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_failed_fill_leaves_no_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(dir.path());
        let err = store
            .insert_with("ab/cd", |_| Err(io::Error::other("boom")))
            .unwrap_err();
        assert_eq!(err.to_string(), "boom");
        assert!(!store.contains("ab/cd"));
        assert_eq!(fs::read_dir(dir.path().join("ab")).unwrap().count(), 0);
    }
}
