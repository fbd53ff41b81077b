//! The dumpfile writer: the text C `composefs-info dump` prints for a tree.
//!
//! Entries are printed depth-first in sorted order from `/`. An inode named once gets a full
//! line (and, for a directory, its children). An inode with several names gets its full line at
//! its primary entry (the tree's `link == false` entry; the first name met if it has none) and an
//! `@` line everywhere else, repeating the full line's fields and naming its path as PAYLOAD —
//! C's parser resolves `@` lines after the whole file, so a link may come before its target.
//! For a tree read from an image the primary entry is the first name met, which is exactly how
//! C's `composefs-info dump` prints it; for any other tree, writing then parsing keeps which
//! entry is primary (V1 places a hardlinked inode at its primary entry).
//!
//! Fields are printed from the tree as they are: values an image writer recomputes (directory
//! SIZE and NLINK, the SIZE of devices) appear as the tree holds them, which for a tree read
//! from an image is what the image says.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use super::escape::{escape_into, EscapeMode};
use crate::tree::{DirEntry, FileData, Inode, InodeId, InodeKind, Tree};

/// Walks the tree depth-first in sorted order, entering directories only through their primary
/// entries, calling `f(dir, position, path, entry)`.
fn walk_entries(tree: &Tree, mut f: impl FnMut(InodeId, usize, &[u8], &DirEntry) -> bool) {
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
        if f(dir, pos, &path, entry) && tree.inode(entry.inode).is_dir() {
            stack.push((entry.inode, 0, path.len()));
        }
    }
}

/// Writes `tree` as a dumpfile.
pub fn write(tree: &Tree, mut out: impl Write) -> io::Result<()> {
    const FLUSH_AT: usize = 1 << 16;
    let refs = tree.reference_counts();
    // For every inode with several names: the entry printed in full, and its path.
    let mut full_at: Vec<Option<(InodeId, usize)>> = vec![None; tree.len()];
    let mut first_at: Vec<Option<(InodeId, usize)>> = vec![None; tree.len()];
    let mut full_path: Vec<Option<Box<[u8]>>> = vec![None; tree.len()];
    let mut first_path: Vec<Option<Box<[u8]>>> = vec![None; tree.len()];
    walk_entries(tree, |dir, pos, path, e| {
        let i = e.inode.index();
        if refs[i] > 1 {
            if first_at[i].is_none() {
                first_at[i] = Some((dir, pos));
                first_path[i] = Some(path.into());
            }
            if !e.link && full_at[i].is_none() {
                full_at[i] = Some((dir, pos));
                full_path[i] = Some(path.into());
            }
        }
        !e.link
    });
    for i in 0..tree.len() {
        if full_at[i].is_none() {
            full_at[i] = first_at[i].take();
            full_path[i] = first_path[i].take();
        }
    }
    // C builds the root's path from its (absent) name: an `@` line to the root has an empty
    // PAYLOAD.
    full_path[0] = Some(Box::default());

    let mut buf = Vec::with_capacity(FLUSH_AT + 8192);
    line(&mut buf, b"/", tree.root(), None);
    let mut result = Ok(());
    walk_entries(tree, |dir, pos, path, e| {
        let i = e.inode.index();
        let inode = tree.inode(e.inode);
        let full = i != 0 && (refs[i] <= 1 || full_at[i] == Some((dir, pos)));
        if full {
            line(&mut buf, path, inode, None);
        } else {
            line(
                &mut buf,
                path,
                inode,
                Some(full_path[i].as_deref().unwrap_or_default()),
            );
        }
        if buf.len() >= FLUSH_AT && result.is_ok() {
            result = out.write_all(&buf);
            buf.clear();
        }
        full
    });
    result?;
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
