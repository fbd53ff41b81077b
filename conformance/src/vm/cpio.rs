//! A minimal writer of the `newc` cpio format the kernel unpacks as an initramfs.
//!
//! Only what an initramfs needs: directories, regular files and symlinks, all owned by root,
//! written in the order given (parents are created on demand, so an entry never precedes the
//! directory holding it).

use std::collections::BTreeSet;

/// An initramfs being built in memory.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    next_ino: u32,
    dirs: BTreeSet<String>,
    names: BTreeSet<String>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Cpio {
    pub fn new() -> Self {
        Self {
            next_ino: 1,
            ..Self::default()
        }
    }

    /// Adds a directory (and its parents) unless it exists.
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.dirs.insert(path.to_string());
        self.entry(path, S_IFDIR | 0o755, b"");
    }

    /// Adds a regular file with permission bits `perm`. A second file of the same name
    /// replaces nothing: the first one wins (the kernel would overwrite, so callers must not
    /// rely on order).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        let path = self.prepare(path);
        if self.names.insert(path.clone()) {
            self.entry(&path, S_IFREG | (perm & 0o7777), data);
        }
    }

    /// Adds a symlink `path → target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = self.prepare(path);
        if self.names.insert(path.clone()) {
            self.entry(&path, S_IFLNK | 0o777, target.as_bytes());
        }
    }

    /// Whether a file or symlink of this name was added.
    pub fn contains(&self, path: &str) -> bool {
        self.names.contains(path.trim_matches('/'))
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, b"");
        self.out
    }

    fn prepare(&mut self, path: &str) -> String {
        let path = path.trim_matches('/').to_string();
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        path
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            if mode & S_IFDIR == S_IFDIR { 2 } else { 1 },
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            0, // rdev major
            0, // rdev minor
            name.len() as u32 + 1,
            0, // checksum (newc has none)
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    /// Pads to a multiple of four bytes, as newc aligns headers and data.
    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_alignment() {
        let mut c = Cpio::new();
        c.file("a/b", 0o755, b"hello");
        let out = c.finish();
        // "a" directory first, then the file, then the trailer; every header at a 4-byte mark.
        assert_eq!(&out[..6], b"070701");
        let name_a = &out[110..112];
        assert_eq!(name_a, b"a\0");
        let second = out.windows(6).skip(1).position(|w| w == b"070701").unwrap() + 1;
        assert_eq!(second % 4, 0);
        assert_eq!(&out[second + 110..second + 114], b"a/b\0");
        let mode = u32::from_str_radix(
            std::str::from_utf8(&out[second + 14..second + 22]).unwrap(),
            16,
        )
        .unwrap();
        assert_eq!(mode, S_IFREG | 0o755);
        assert!(out.ends_with(&[0; 0]) && out.len() % 4 == 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
