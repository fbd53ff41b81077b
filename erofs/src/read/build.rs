//! Building a [`Tree`] from a checked walk of an image, in one of two modes (see the module
//! documentation of [`super`]).
#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::image::{ImageView, RawInode};
use super::node::{
    decode_c, flat_data, unescape, CXattrs, XattrRef, ESCAPE_PREFIX, METACOPY, OVERLAY_PREFIX,
    REDIRECT, USER_WHITEOUT, USER_WHITEOUTS,
};
use super::walk::{walk, Entry, Visitor, WalkOptions};
use super::{ReadError, ReadErrorKind as K};
use crate::format::DataLayout;
use crate::tree::{Digest, Directory, FileData, FileType, Inode, InodeId, InodeKind, Tree, Xattr};

/// How to interpret what the writers added to an image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Undo what the writers add, exactly (see the module documentation).
    #[default]
    Clean,
    /// The tree C's `composefs-info` builds (`lcfs_load_node_from_image`), quirks included:
    /// xattrs local-first in C's order, a redirect read with C's extra bytes, every character
    /// device 0 hidden, escaped whiteouts as character devices 0. C's `composefs-dump` loads
    /// its source with the same function, so writing this tree with the V1 writer at the
    /// source's `composefs_version` gives what C's `composefs-dump` writes — including where
    /// that differs from the source (a hardlinked inode moves to its first depth-first path;
    /// a redirect picks up C's extra bytes).
    ComposefsInfo,
}

const UNESCAPED_WHITEOUT: &[u8] = b"trusted.overlay.whiteout";
const UNESCAPED_WHITEOUTS: &[u8] = b"trusted.overlay.whiteouts";
const UNESCAPED_OPAQUE: &[u8] = b"trusted.overlay.opaque";
const USER_OPAQUE: &[u8] = b"user.overlay.opaque";

struct Builder<'a> {
    image: ImageView<'a>,
    mode: ReadMode,
    tree: Option<Tree>,
    stack: Vec<InodeId>,
    /// Inode ids of non-directories by nid, for hardlinks.
    links: HashMap<u64, InodeId>,
    cx: CXattrs<'a>,
}

impl<'a> Builder<'a> {
    fn hidden(&self, r: &RawInode) -> bool {
        r.is_whiteout() && (self.mode == ReadMode::ComposefsInfo || !self.image.is_v2())
    }

    fn inode(&mut self, r: &RawInode) -> Result<Inode, ReadError> {
        match self.mode {
            ReadMode::ComposefsInfo => self.c_inode(r),
            ReadMode::Clean => self.clean_inode(r),
        }
    }

    fn c_inode(&mut self, r: &RawInode) -> Result<Inode, ReadError> {
        let n = decode_c(&self.image, r, &mut self.cx)?;
        let kind = match FileType::from_mode(n.mode) {
            Some(FileType::Directory) => InodeKind::Directory(Directory::default()),
            Some(FileType::Regular) => match n.content {
                Some((b, t)) => InodeKind::Regular(FileData::Inline(concat(b, t))),
                None if n.size == 0 && n.payload.is_none() && n.digest.is_none() => {
                    InodeKind::Regular(FileData::Inline(Box::default()))
                }
                None => InodeKind::Regular(FileData::External {
                    payload: n.payload.map(Into::into),
                    digest: n.digest.and_then(Digest::from_bytes),
                }),
            },
            Some(FileType::Symlink) => InodeKind::Symlink(n.payload.unwrap_or_default().into()),
            Some(FileType::CharDevice) => InodeKind::CharDevice(n.rdev),
            Some(FileType::BlockDevice) => InodeKind::BlockDevice(n.rdev),
            Some(FileType::Fifo) => InodeKind::Fifo,
            Some(FileType::Socket) => InodeKind::Socket,
            None => return Err(ReadError::at(K::UnknownFileType(r.mode), r.offset)),
        };
        let mut inode = Inode::new(kind, (n.mode & 0o7777) as u16);
        inode.uid = n.uid;
        inode.gid = n.gid;
        inode.nlink = n.nlink;
        inode.mtime = n.mtime;
        inode.size = n.size;
        inode.xattrs = self
            .cx
            .list
            .iter()
            .map(|x| Xattr::new(x.name(), x.value))
            .collect();
        Ok(inode)
    }

    fn clean_inode(&mut self, r: &RawInode) -> Result<Inode, ReadError> {
        let image = self.image;
        let is_reg = r.file_type == FileType::Regular;
        let mut payload = None;
        let mut digest = None;
        let mut xattrs: Vec<Xattr> = Vec::new();
        let mut it = image.xattrs(r)?;
        while let Some((x, at, _)) = it.next_entry()? {
            let raw = XattrRef {
                head: x.prefix,
                tail: x.suffix,
                value: x.value,
            };
            let kept = if raw.name_starts_with(OVERLAY_PREFIX) {
                if raw.name_is(METACOPY) {
                    if is_reg {
                        digest = parse_metacopy(x.value).map_err(|k| ReadError::at(k, at))?;
                    }
                    continue;
                }
                if raw.name_is(REDIRECT) {
                    if is_reg {
                        payload = Some(parse_redirect(x.value).map_err(|k| ReadError::at(k, at))?);
                    }
                    continue;
                }
                if !raw.name_starts_with(ESCAPE_PREFIX) {
                    continue;
                }
                unescape(&raw)
            } else {
                raw
            };
            let name = kept.name();
            match xattrs.iter_mut().find(|y| *y.name == *name) {
                Some(y) => y.value = kept.value.into(),
                None => xattrs.push(Xattr::new(name, kept.value)),
            }
        }

        let mut size = r.size;
        let kind = match r.file_type {
            FileType::Directory => InodeKind::Directory(Directory::default()),
            FileType::Regular
                if !image.is_v2() && xattrs.iter().any(|x| &*x.name == UNESCAPED_WHITEOUT) =>
            {
                xattrs.retain(|x| &*x.name != UNESCAPED_WHITEOUT && &*x.name != USER_WHITEOUT);
                size = 0;
                InodeKind::CharDevice(0)
            }
            FileType::Regular if r.layout == DataLayout::ChunkBased => {
                InodeKind::Regular(FileData::External {
                    payload: payload.map(Into::into),
                    digest,
                })
            }
            FileType::Regular => {
                let (b, t) = flat_data(&image, r)?;
                InodeKind::Regular(FileData::Inline(concat(b, t)))
            }
            FileType::Symlink => {
                let (b, t) = flat_data(&image, r)?;
                InodeKind::Symlink(concat(b, t))
            }
            FileType::CharDevice => InodeKind::CharDevice(r.u),
            FileType::BlockDevice => InodeKind::BlockDevice(r.u),
            FileType::Fifo => InodeKind::Fifo,
            FileType::Socket => InodeKind::Socket,
        };
        xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut inode = Inode::new(kind, r.mode & 0o7777);
        inode.uid = r.uid;
        inode.gid = r.gid;
        inode.nlink = r.nlink;
        inode.mtime = r.mtime;
        inode.size = size;
        inode.xattrs = xattrs;
        Ok(inode)
    }
}

fn concat(a: &[u8], b: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v.into_boxed_slice()
}

/// An overlay redirect value: `/` and the object's path below the basedir.
pub(crate) fn parse_redirect(v: &[u8]) -> Result<&[u8], K> {
    match v.split_first() {
        Some((b'/', rest)) if !rest.is_empty() => Ok(rest),
        _ => Err(K::BadRedirect),
    }
}

/// An overlay metacopy value: empty (no digest), or version 0, its own length, flags 0, and
/// an fs-verity algorithm with a digest of that algorithm's size.
pub(crate) fn parse_metacopy(v: &[u8]) -> Result<Option<Digest>, K> {
    if v.is_empty() {
        return Ok(None);
    }
    match v {
        [0, len, 0, alg, digest @ ..] if usize::from(*len) == v.len() => {
            let d = Digest::from_bytes(digest).ok_or(K::BadMetacopy)?;
            if d.algorithm().fsverity_id() != *alg {
                return Err(K::BadMetacopy);
            }
            Ok(Some(d))
        }
        _ => Err(K::BadMetacopy),
    }
}

impl<'a> Visitor<'a> for Builder<'a> {
    type Error = ReadError;

    fn root(&mut self, root: &RawInode) -> Result<(), ReadError> {
        let inode = self.inode(root)?;
        if !inode.is_dir() {
            return Err(ReadError::at(K::RootNotDirectory, root.offset));
        }
        self.tree = Some(Tree::new(inode));
        self.stack.push(InodeId::ROOT);
        Ok(())
    }

    fn entry(&mut self, e: &Entry<'a>) -> Result<bool, ReadError> {
        self.add_entry(e)
            .map_err(|err| err.in_path(&self.path_of(e.name)))
    }

    fn leave(&mut self) -> Result<(), ReadError> {
        self.stack.pop();
        Ok(())
    }
}

impl<'a> Builder<'a> {
    /// The path of `name` in the directory being built, for error messages.
    fn path_of(&self, name: &[u8]) -> String {
        let tree = self.tree.as_ref().expect("root read");
        let mut parts: Vec<&[u8]> = vec![name];
        // Each directory's primary entry is found in its parent on the stack.
        for w in self.stack.windows(2).rev() {
            if let Some(e) = tree
                .dir(w[0])
                .ok()
                .and_then(|d| d.entries().iter().find(|e| e.inode == w[1]))
            {
                parts.push(&e.name);
            }
        }
        let mut p = Vec::new();
        for part in parts.iter().rev() {
            p.push(b'/');
            p.extend_from_slice(part);
        }
        String::from_utf8_lossy(&p).into_owned()
    }

    fn add_entry(&mut self, e: &Entry<'a>) -> Result<bool, ReadError> {
        if self.hidden(&e.inode) {
            return Ok(false);
        }
        let parent = *self.stack.last().expect("inside a directory");
        let dirent_err = |_| ReadError::at(K::BadDirent, e.inode.offset);
        if !e.first {
            let target = *self
                .links
                .get(&e.inode.nid)
                .ok_or(ReadError::at(K::HardlinkedDirectory, e.inode.offset))?;
            let tree = self.tree.as_mut().expect("root read");
            tree.link(parent, e.name, target).map_err(dirent_err)?;
            return Ok(false);
        }
        let inode = self.inode(&e.inode)?;
        let is_dir = inode.is_dir();
        let tree = self.tree.as_mut().expect("root read");
        let id = tree.add(parent, e.name, inode).map_err(dirent_err)?;
        if is_dir {
            self.stack.push(id);
        } else {
            self.links.insert(e.inode.nid, id);
        }
        Ok(is_dir)
    }
}

/// Walks the image (validating it) and builds the tree.
pub(crate) fn build(image: &ImageView<'_>, mode: ReadMode) -> Result<Tree, ReadError> {
    let mut b = Builder {
        image: *image,
        mode,
        tree: None,
        stack: Vec::new(),
        links: HashMap::new(),
        cx: CXattrs::new(),
    };
    let opts = WalkOptions {
        validate: true,
        filter: None,
    };
    walk(image, &opts, &mut b)?;
    let mut tree = b.tree.expect("the walk reads the root");
    if mode == ReadMode::Clean && !image.is_v2() {
        drop_whiteout_marks(&mut tree, image.composefs_version);
    }
    Ok(tree)
}

/// Removes from each directory holding a whiteout the xattrs a V1 writer put there for it.
fn drop_whiteout_marks(tree: &mut Tree, composefs_version: u32) {
    let dirs: Vec<InodeId> = tree
        .inodes()
        .filter(|(_, i)| {
            i.as_dir().is_some_and(|d| {
                d.entries()
                    .iter()
                    .any(|e| matches!(tree.inode(e.inode).kind, InodeKind::CharDevice(0)))
            })
        })
        .map(|(id, _)| id)
        .collect();
    for id in dirs {
        let inode = tree.inode_mut(id);
        inode.xattrs.retain(|x| {
            let n = &*x.name;
            let v = &*x.value;
            !(n == UNESCAPED_WHITEOUTS
                || n == USER_WHITEOUTS
                || composefs_version >= 1
                    && (n == UNESCAPED_OPAQUE || n == USER_OPAQUE)
                    && v == b"x")
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metacopy_values() {
        assert_eq!(parse_metacopy(b""), Ok(None));
        let mut v = vec![0, 36, 0, 1];
        v.extend_from_slice(&[7; 32]);
        assert_eq!(parse_metacopy(&v), Ok(Some(Digest::Sha256([7; 32]))));
        let mut w = vec![0, 68, 0, 2];
        w.extend_from_slice(&[9; 64]);
        assert_eq!(
            parse_metacopy(&w),
            Ok(Some(Digest::Sha512(Box::new([9; 64]))))
        );
        // Wrong algorithm for the length, wrong length byte, wrong version.
        v[3] = 2;
        assert_eq!(parse_metacopy(&v), Err(K::BadMetacopy));
        v[3] = 1;
        v[1] = 35;
        assert_eq!(parse_metacopy(&v), Err(K::BadMetacopy));
        v[1] = 36;
        v[0] = 1;
        assert_eq!(parse_metacopy(&v), Err(K::BadMetacopy));
        assert_eq!(parse_metacopy(&[0, 4, 0, 1]), Err(K::BadMetacopy));
    }

    #[test]
    fn escaped_whiteouts_come_back() {
        use crate::read::tests::{image, Child};
        let img = image(&[Child {
            name: b"w",
            mode: 0o100600,
            data: b"",
            xattrs: &[
                (4, b"overlay.overlay.whiteout", b""),
                (1, b"overlay.whiteout", b""),
                (1, b"keep", b"1"),
            ],
        }]);
        for mode in [ReadMode::Clean, ReadMode::ComposefsInfo] {
            let t = crate::read::read_image_with(&img, mode).unwrap().tree;
            let w = t.inode(t.lookup_path(b"/w").unwrap());
            assert_eq!(w.kind, InodeKind::CharDevice(0), "{mode:?}");
            assert_eq!(w.size, 0);
            assert_eq!(w.permissions, 0o600);
            let names: Vec<&[u8]> = w.xattrs.iter().map(|x| &*x.name).collect();
            assert_eq!(names, [&b"user.keep"[..]], "{mode:?}");
        }
    }
}
