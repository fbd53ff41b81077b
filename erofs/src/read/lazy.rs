//! On-demand access for servers that read an image one inode at a time (the FUSE server):
//! each call checks what it touches — the inode's shape, a directory's names and order, the
//! overlay xattrs of a file — as the whole-image walk would, and fails with a [`ReadError`]
//! instead of trusting the bytes. Nothing global (overlaps, cycles, the inode count) is
//! checked here: a server that needs those runs [`super::validate`] once.
#![forbid(unsafe_code)]

use super::build::{parse_metacopy, parse_redirect};
use super::image::{ImageView, RawDirent, RawInode};
use super::node::{flat_data, METACOPY, REDIRECT};
use super::{ReadError, ReadErrorKind as K};
use crate::format::DataLayout;
use crate::tree::{Digest, FileType};

/// A directory's entries, checked: sorted, unique, well-formed names, `.` pointing at the
/// directory itself and `..` present.
#[derive(Clone, Debug)]
pub struct DirListing<'a> {
    /// Entries other than `.` and `..`, in stored (sorted) order.
    pub entries: Vec<RawDirent<'a>>,
    /// The nid `..` names.
    pub parent: u64,
}

/// Where a regular file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content<'a> {
    /// In the image: the data-block part, then the inline tail.
    Inline(&'a [u8], &'a [u8]),
    /// In an object outside the image, named by the overlay redirect (without its leading
    /// `/`), with the fs-verity digest of the metacopy xattr when there is one.
    External {
        payload: Option<&'a [u8]>,
        digest: Option<Digest>,
    },
}

impl<'a> ImageView<'a> {
    /// The inode at `nid`, with every check that needs only the inode: header, shape for its
    /// type, inline part inside one block, data blocks inside the image, a symlink target
    /// without NUL.
    pub fn checked_inode(&self, nid: u64) -> Result<RawInode, ReadError> {
        let r = self.inode(nid)?;
        super::walk::check_shape(self, &r)?;
        let (n, _) = r.data_extent();
        if n > 0 {
            let first = u64::from(r.u);
            first
                .checked_add(n)
                .filter(|&e| first > 0 && e <= self.blocks)
                .ok_or(ReadError::at(K::DataOutOfRange, r.offset))?;
        }
        if r.file_type == FileType::Symlink {
            let (b, t) = flat_data(self, &r)?;
            if b.contains(&0) || t.contains(&0) {
                return Err(ReadError::at(K::BadSymlink, r.offset));
            }
        }
        Ok(r)
    }

    /// The checked entries of directory `dir`.
    pub fn dir_listing(&self, dir: &RawInode) -> Result<DirListing<'a>, ReadError> {
        if !dir.is_dir() {
            return Err(ReadError::at(K::UnknownFileType(dir.mode), dir.offset));
        }
        let mut entries = Vec::new();
        let (mut dot, mut parent) = (false, None);
        let mut prev: Option<&[u8]> = None;
        for d in self.dirents(dir)? {
            if prev.is_some_and(|p| d.name <= p) {
                let kind = if prev == Some(d.name) {
                    K::DuplicateName
                } else {
                    K::UnsortedNames
                };
                return Err(ReadError::at(kind, d.offset));
            }
            prev = Some(d.name);
            match d.name {
                b"." if d.nid != dir.nid => return Err(ReadError::at(K::BadDot, d.offset)),
                b"." => dot = true,
                b".." => parent = Some(d.nid),
                name => {
                    super::walk::check_name(name, d.offset)?;
                    entries.push(d);
                }
            }
        }
        match (dot, parent) {
            (true, Some(parent)) => Ok(DirListing { entries, parent }),
            _ => Err(ReadError::at(K::MissingDot, dir.offset)),
        }
    }

    /// Where the bytes of a regular file or the target of a symlink are. A file with an
    /// overlay redirect is external whatever its layout (as overlayfs reads it); a
    /// chunk-based file without one has no content to serve (`payload` `None`).
    pub fn content(&self, r: &RawInode) -> Result<Content<'a>, ReadError> {
        match r.file_type {
            FileType::Symlink => {
                let (b, t) = flat_data(self, r)?;
                return Ok(Content::Inline(b, t));
            }
            FileType::Regular => {}
            _ => return Err(ReadError::at(K::UnknownDataLayout, r.offset)),
        }
        let (mut payload, mut digest, mut redirect) = (None, None, false);
        let mut it = self.xattrs(r)?;
        while let Some((x, at, _)) = it.next_entry()? {
            let name_is = |n: &[u8]| {
                x.prefix.len() + x.suffix.len() == n.len()
                    && n.starts_with(x.prefix)
                    && n[x.prefix.len()..] == *x.suffix
            };
            if name_is(REDIRECT) {
                payload = Some(parse_redirect(x.value).map_err(|k| ReadError::at(k, at))?);
                redirect = true;
            } else if name_is(METACOPY) {
                digest = parse_metacopy(x.value).map_err(|k| ReadError::at(k, at))?;
            }
        }
        if redirect || r.layout == DataLayout::ChunkBased {
            return Ok(Content::External { payload, digest });
        }
        let (b, t) = flat_data(self, r)?;
        Ok(Content::Inline(b, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::tests::{image, Child};

    #[test]
    fn lazy_access_agrees_with_the_tree() {
        let img = image(&[
            Child {
                name: b"a",
                mode: 0o100644,
                data: b"hello",
                xattrs: &[],
            },
            Child {
                name: b"l",
                mode: 0o120777,
                data: b"target",
                xattrs: &[],
            },
        ]);
        let view = ImageView::new(&img).unwrap();
        let root = view.checked_inode(view.root_nid).unwrap();
        let list = view.dir_listing(&root).unwrap();
        assert_eq!(list.parent, view.root_nid);
        let names: Vec<&[u8]> = list.entries.iter().map(|e| e.name).collect();
        assert_eq!(names, [&b"a"[..], b"l"]);
        let a = view.checked_inode(list.entries[0].nid).unwrap();
        match view.content(&a).unwrap() {
            Content::Inline(b, t) => assert_eq!([b, t].concat(), b"hello"),
            c => panic!("{c:?}"),
        }
        let l = view.checked_inode(list.entries[1].nid).unwrap();
        assert!(matches!(view.content(&l).unwrap(), Content::Inline(_, t) if t == b"target"));
        // A nid in the middle of nowhere is refused, never a panic.
        assert!(view.checked_inode(u64::MAX).is_err());
        assert!(view.dir_listing(&a).is_err());
    }
}
