//! A canonical listing of a mounted filesystem, for comparing what the kernel shows with what a
//! tree says it should show.
//!
//! One line per entry, depth-first in byte order of names, root first:
//! `PATH TYPE PERM UID GID SIZE MTIME NLINK RDEV TARGET CONTENT XATTRS`, where byte strings are
//! hex (`-` when empty), CONTENT is the sha256 of a regular file's bytes (or `-` when not read),
//! and XATTRS is `name=value,…` in hex, sorted by name. Directory sizes are `-`: they depend on
//! the layout, not on the tree.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// One entry of a listing, before formatting.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: char,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// `None` for directories.
    pub size: Option<u64>,
    pub mtime: (i64, u32),
    pub nlink: u64,
    pub rdev: u32,
    pub target: Vec<u8>,
    /// sha256 of the content, when read.
    pub content: Option<[u8; 32]>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn hex_or_dash(b: &[u8]) -> String {
    if b.is_empty() {
        "-".into()
    } else {
        hex::encode(b)
    }
}

impl Entry {
    pub fn line(&self) -> String {
        let mut xattrs = String::new();
        for (i, (n, v)) in self.xattrs.iter().enumerate() {
            if i > 0 {
                xattrs.push(',');
            }
            let _ = write!(xattrs, "{}={}", hex_or_dash(n), hex_or_dash(v));
        }
        format!(
            "{} {} {:o} {} {} {} {}.{} {} {} {} {} {}",
            String::from_utf8_lossy(&self.path),
            self.kind,
            self.perm,
            self.uid,
            self.gid,
            self.size.map_or("-".into(), |s| s.to_string()),
            self.mtime.0,
            self.mtime.1,
            self.nlink,
            self.rdev,
            hex_or_dash(&self.target),
            self.content.map_or("-".into(), hex::encode),
            if xattrs.is_empty() {
                "-".into()
            } else {
                xattrs
            },
        )
    }
}

/// Joins a listing into text, one line per entry.
pub fn format(entries: &[Entry]) -> String {
    entries.iter().map(|e| e.line() + "\n").collect()
}

/// Walks a mounted tree. `read_content(entry)` decides which regular files are read (files
/// whose bytes live in an object store read as zeros from a bare EROFS mount).
pub fn walk(root: &Path, read_content: &dyn Fn(&Entry) -> bool) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk_into(root, b"/".to_vec(), read_content, &mut out)?;
    Ok(out)
}

fn walk_into(
    path: &Path,
    rel: Vec<u8>,
    read_content: &dyn Fn(&Entry) -> bool,
    out: &mut Vec<Entry>,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    };
    let target = if ft.is_symlink() {
        fs::read_link(path)?.as_os_str().as_bytes().to_vec()
    } else {
        Vec::new()
    };
    let mut entry = Entry {
        path: rel.clone(),
        kind,
        perm: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: (!ft.is_dir()).then(|| meta.size()),
        mtime: (meta.mtime(), meta.mtime_nsec() as u32),
        nlink: meta.nlink(),
        rdev: meta.rdev() as u32,
        target,
        content: None,
        xattrs: read_xattrs(path)?,
    };
    if ft.is_file() && read_content(&entry) {
        entry.content = Some(Sha256::digest(fs::read(path)?).into());
    }
    out.push(entry);
    if ft.is_dir() {
        let mut names: Vec<Vec<u8>> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let mut child = rel.clone();
            if child.len() > 1 {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            walk_into(
                &path.join(OsStr::from_bytes(&name)),
                child,
                read_content,
                out,
            )?;
        }
    }
    Ok(())
}

fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut value = vec![0u8; 65536];
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let c = std::ffi::CString::new(name).map_err(io::Error::other)?;
        let len = rustix::fs::lgetxattr(path, c.as_c_str(), &mut value[..])?;
        out.push((name.to_vec(), value[..len].to_vec()));
    }
    out.sort();
    Ok(out)
}
