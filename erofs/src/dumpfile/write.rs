//! The dumpfile writer: the text C `composefs-info dump` prints for a tree.
//!
//! Entries are printed depth-first in sorted order from `/`. The first name met for an inode
//! gets a full line (and, for a directory, its children); every later name is an `@` line that
//! repeats the first one's fields and names the first path as its PAYLOAD. This is how C's
//! reader meets inodes in an image, so the `link` flags of the tree do not matter here.
//!
//! Fields are printed from the tree as they are: values an image writer recomputes (directory
//! SIZE and NLINK, the SIZE of devices) appear as the tree holds them, which for a tree read
//! from an image is what the image says.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use super::escape::{escape_into, EscapeMode};
use crate::tree::{FileData, Inode, InodeId, InodeKind, Tree};

/// Writes `tree` as a dumpfile.
pub fn write(tree: &Tree, mut out: impl Write) -> io::Result<()> {
    const FLUSH_AT: usize = 1 << 16;
    let refs = tree.reference_counts();
    let mut seen = vec![false; tree.len()];
    // First path of every inode that more than one entry names (the targets of `@` lines).
    let mut first_path: Vec<Option<Box<[u8]>>> = vec![None; tree.len()];
    seen[0] = true;
    // C builds the root's path from its (absent) name: an `@` line to the root has an empty
    // PAYLOAD.
    first_path[0] = Some(Box::default());

    let mut buf = Vec::with_capacity(FLUSH_AT + 8192);
    line(&mut buf, b"/", tree.root(), None);
    // Stack of (directory, next entry index, length of its path in `path`).
    let mut path: Vec<u8> = Vec::new();
    let mut stack: Vec<(InodeId, usize, usize)> = vec![(InodeId::ROOT, 0, 0)];
    while let Some(top) = stack.last_mut() {
        let (dir, pos, len) = *top;
        let entries = tree.inode(dir).as_dir().map_or(&[][..], |d| d.entries());
        let Some(entry) = entries.get(pos) else {
            stack.pop();
            continue;
        };
        top.1 += 1;
        path.truncate(len);
        path.push(b'/');
        path.extend_from_slice(&entry.name);
        let id = entry.inode;
        let inode = tree.inode(id);
        if seen[id.index()] {
            let target = first_path[id.index()].as_deref().unwrap_or_default();
            line(&mut buf, &path, inode, Some(target));
        } else {
            seen[id.index()] = true;
            if refs[id.index()] > 1 {
                first_path[id.index()] = Some(path.as_slice().into());
            }
            line(&mut buf, &path, inode, None);
            if inode.is_dir() {
                stack.push((id, 0, path.len()));
            }
        }
        if buf.len() >= FLUSH_AT {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()
}

/// [`write`] into memory.
pub fn write_to_vec(tree: &Tree) -> Vec<u8> {
    let mut v = Vec::new();
    write(tree, &mut v).expect("writing to a Vec cannot fail");
    v
}

fn number(buf: &mut Vec<u8>, n: impl std::fmt::Display) {
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "{n}");
}

/// One line: `PATH SIZE [@]MODE NLINK UID GID RDEV SEC.NSEC PAYLOAD CONTENT DIGEST XATTR…`.
/// `hardlink_to` is the first path of the inode for an `@` line.
fn line(buf: &mut Vec<u8>, path: &[u8], inode: &Inode, hardlink_to: Option<&[u8]>) {
    escape_into(buf, path, EscapeMode::STANDARD);
    buf.push(b' ');
    number(buf, inode.size);
    buf.push(b' ');
    if hardlink_to.is_some() {
        buf.push(b'@');
    }
    let _ = write!(
        buf,
        "{:o} {} {} {} {} {}.{} ",
        inode.mode(),
        inode.nlink,
        inode.uid,
        inode.gid,
        inode.rdev(),
        inode.mtime.sec,
        inode.mtime.nsec
    );
    let (payload, content, digest) = match &inode.kind {
        InodeKind::Symlink(target) => (Some(&**target), None, None),
        InodeKind::Regular(FileData::Inline(c)) => {
            (None, Some(&**c).filter(|c| !c.is_empty()), None)
        }
        InodeKind::Regular(FileData::External { payload, digest }) => (
            payload.as_deref().filter(|p| !p.is_empty()),
            None,
            digest.as_ref(),
        ),
        _ => (None, None, None),
    };
    match hardlink_to.or(payload) {
        Some(p) => escape_into(buf, p, EscapeMode::OPTIONAL),
        None => buf.push(b'-'),
    }
    buf.push(b' ');
    match content {
        Some(c) => escape_into(buf, c, EscapeMode::OPTIONAL),
        None => buf.push(b'-'),
    }
    buf.push(b' ');
    match digest {
        Some(d) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for &b in d.as_bytes() {
                buf.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
        None => buf.push(b'-'),
    }
    for x in &inode.xattrs {
        buf.push(b' ');
        escape_into(buf, &x.name, EscapeMode::XATTR);
        buf.push(b'=');
        escape_into(buf, &x.value, EscapeMode::XATTR);
    }
    buf.push(b'\n');
}
