//! The checked depth-first walk over an image's directory tree, shared by the tree builder and
//! the `composefs-info` outputs.
//!
//! The walk visits entries in stored (= sorted) order, depth first, the order in which C's
//! reader builds its tree, so "first visit" here is C's primary node. While walking it checks
//! the structure: names, order, `.`/`..`, dirent types, no directory reached twice (cycles or
//! hardlinked directories), and — when validating — that every inode's metadata and data
//! blocks are disjoint from every other's. Each inode is decoded and checked once, each
//! directory read once, so the cost is linear in the image and the memory (two bitmaps of one
//! bit per 32-byte slot and one per block, plus a frame per directory level) is a small
//! fraction of the image size.
#![forbid(unsafe_code)]

use super::image::{ChunkEntries, DirChunks, ImageView, RawDirent, RawInode};
use super::{ReadError, ReadErrorKind as K};
use crate::format::{DataLayout, BLOCK_SIZE, NULL_ADDR, SLOT_SIZE};
use crate::tree::{FileType, NAME_MAX};

/// A fixed-size bitmap.
#[derive(Clone, Debug, Default)]
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub(crate) fn new(bits: u64) -> Self {
        BitSet {
            words: vec![0; bits.div_ceil(64) as usize],
        }
    }

    pub(crate) fn get(&self, i: u64) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn set(&mut self, i: u64) {
        if let Some(w) = self.words.get_mut((i / 64) as usize) {
            *w |= 1 << (i % 64);
        }
    }
}

/// Largest inline (flat) regular file a composefs writer produces (C's
/// `LCFS_INLINE_CONTENT_MAX`); C's reader refuses larger ones.
pub const INLINE_CONTENT_MAX: u64 = 5000;
/// Longest symlink target (`PATH_MAX` − 1).
pub const SYMLINK_MAX: u64 = 4095;

/// Whole-image bookkeeping of what each inode claims, to find overlaps.
pub(crate) struct Claims {
    /// 32-byte slots covered by an inode's header, xattrs and inline data.
    covered: BitSet,
    /// Data blocks owned by some inode.
    blocks: BitSet,
    n_blocks: u64,
    meta_end: u64,
    shared_min: u64,
    shared_end: u64,
    data_min: u64,
    inodes: u64,
}

impl Claims {
    fn new(image: &ImageView<'_>) -> Self {
        let len = image.bytes().len() as u64;
        Claims {
            covered: BitSet::new(len / SLOT_SIZE),
            blocks: BitSet::new(image.blocks),
            n_blocks: image.blocks,
            meta_end: 0,
            shared_min: u64::MAX,
            shared_end: 0,
            data_min: u64::MAX,
            inodes: 0,
        }
    }

    /// Checks an inode met for the first time: its shape for its type, its inline data, its
    /// xattrs, and that nothing it occupies was claimed before.
    fn check_inode(&mut self, image: &ImageView<'_>, r: &RawInode) -> Result<(), ReadError> {
        check_shape(image, r)?;
        let at = r.offset;
        // Data blocks.
        let (n, _) = r.data_extent();
        if n > 0 {
            let first = u64::from(r.u);
            let end = first
                .checked_add(n)
                .filter(|&e| first > 0 && e <= self.n_blocks)
                .ok_or(ReadError::at(K::DataOutOfRange, at))?;
            for b in first..end {
                if self.blocks.get(b) {
                    return Err(ReadError::at(K::OverlappingBlocks, b * BLOCK_SIZE));
                }
                self.blocks.set(b);
            }
            self.data_min = self.data_min.min(first);
        }

        // Metadata slots.
        let end = r.inline_offset() + r.inline_len(image)?;
        let first_slot = r.offset / SLOT_SIZE;
        let end_slot = end.div_ceil(SLOT_SIZE);
        for s in first_slot..end_slot {
            if self.covered.get(s) {
                return Err(ReadError::at(K::OverlappingInodes, s * SLOT_SIZE));
            }
            self.covered.set(s);
        }
        self.meta_end = self.meta_end.max(end);
        self.inodes += 1;

        if r.file_type == FileType::Symlink {
            let (b, t) = super::node::flat_data(image, r)?;
            if b.contains(&0) || t.contains(&0) {
                return Err(ReadError::at(K::BadSymlink, at));
            }
        }

        // Xattrs: every entry parses, shared ones lie in the table, the filter is right.
        let mut it = image.xattrs(r)?;
        let stored = it.filter;
        let mut bits = 0u32;
        let mut any = false;
        // C's reader refuses an inode whose xattrs exceed its budget; counting every stored
        // entry bounds what any interpretation keeps.
        let mut budget = 12usize;
        while let Some((x, start, end)) = it.next_entry()? {
            any = true;
            budget += 7 + x.prefix.len() + x.suffix.len() + x.value.len();
            if budget > usize::from(u16::MAX) {
                return Err(ReadError::at(K::XattrBudget, start));
            }
            bits |= 1 << crate::format::xattr_filter_bit(x.index, x.suffix);
            if x.shared {
                self.shared_min = self.shared_min.min(start);
                self.shared_end = self.shared_end.max(end);
            }
        }
        if any && image.has_xattr_filter && stored != !bits {
            return Err(ReadError::at(K::BadXattrFilter, r.xattr_offset()));
        }
        Ok(())
    }

    /// Whole-image checks once every inode was seen: metadata, then the shared xattr table,
    /// then data blocks, and the superblock's inode count.
    fn finish(&self, image: &ImageView<'_>) -> Result<(), ReadError> {
        if self.shared_min != u64::MAX && self.shared_min < self.meta_end {
            return Err(ReadError::at(K::OverlappingInodes, self.shared_min));
        }
        let meta = self.meta_end.max(self.shared_end);
        if self.data_min != u64::MAX && meta > self.data_min * BLOCK_SIZE {
            return Err(ReadError::at(
                K::OverlappingBlocks,
                self.data_min * BLOCK_SIZE,
            ));
        }
        if self.inodes != image.inos {
            return Err(ReadError::at(
                K::InodeCountMismatch {
                    superblock: image.inos,
                    found: self.inodes,
                },
                crate::format::SUPERBLOCK_OFFSET + 16,
            ));
        }
        Ok(())
    }
}

/// One entry met by the walk (never `.` or `..`).
pub(crate) struct Entry<'a> {
    pub name: &'a [u8],
    pub inode: RawInode,
    /// First time this inode is met in the walk (the primary entry).
    pub first: bool,
}

/// What the walk reports to.
pub(crate) trait Visitor<'a> {
    /// The visitor's own failures (output errors, say); reading errors convert into it.
    type Error: From<ReadError>;
    fn root(&mut self, root: &RawInode) -> Result<(), Self::Error>;
    /// An entry of the directory last entered; returns whether to enter it (only asked for
    /// directories met for the first time).
    fn entry(&mut self, entry: &Entry<'a>) -> Result<bool, Self::Error>;
    /// The directory last entered is finished.
    fn leave(&mut self) -> Result<(), Self::Error>;
}

/// Options of a walk.
#[derive(Default)]
pub(crate) struct WalkOptions<'f> {
    /// Check that inodes, blocks and shared xattrs do not overlap and that the superblock's
    /// inode count is right; also record which inodes are met more than once.
    pub validate: bool,
    /// Only visit top-level names this accepts (composefs-info `--filter`).
    pub filter: Option<&'f NameFilter<'f>>,
}

/// Decides which top-level names a walk visits.
pub(crate) type NameFilter<'f> = dyn Fn(&[u8]) -> bool + 'f;

/// What a validating walk learned.
pub(crate) struct WalkSummary {
    /// Inodes (by nid) reached through more than one entry.
    pub multi: BitSet,
}

struct Frame<'a> {
    nid: u64,
    parent: u64,
    name: &'a [u8],
    chunks: DirChunks<'a>,
    entries: Option<ChunkEntries<'a>>,
    prev: Option<&'a [u8]>,
    dot: bool,
    dotdot: bool,
}

impl<'a> Frame<'a> {
    fn new(
        image: &ImageView<'a>,
        dir: &RawInode,
        parent: u64,
        name: &'a [u8],
    ) -> Result<Self, ReadError> {
        Ok(Frame {
            nid: dir.nid,
            parent,
            name,
            chunks: image.dir_chunks(dir)?,
            entries: None,
            prev: None,
            dot: false,
            dotdot: false,
        })
    }

    fn next_dirent(&mut self) -> Result<Option<RawDirent<'a>>, ReadError> {
        loop {
            if let Some(e) = &mut self.entries {
                if let Some(d) = e.next_entry()? {
                    return Ok(Some(d));
                }
            }
            match self.chunks.next_chunk()? {
                Some((chunk, off)) => self.entries = Some(ChunkEntries::new(chunk, off)?),
                None => return Ok(None),
            }
        }
    }
}

fn path_of(stack: &[Frame<'_>], name: Option<&[u8]>) -> String {
    let mut p = Vec::new();
    for f in stack.iter().skip(1) {
        p.push(b'/');
        p.extend_from_slice(f.name);
    }
    if let Some(n) = name {
        p.push(b'/');
        p.extend_from_slice(n);
    }
    if p.is_empty() {
        p.push(b'/');
    }
    String::from_utf8_lossy(&p).into_owned()
}

/// Checks one entry name as stored.
/// Checks what needs only the inode itself: its size and layout fit its type (as every
/// composefs writer makes them), a chunk table holds only holes, inline files are small.
pub(crate) fn check_shape(image: &ImageView<'_>, r: &RawInode) -> Result<(), ReadError> {
    let at = r.offset;
    let bad_size = || ReadError::at(K::BadSize(r.size), at);
    let layout_err = || ReadError::at(K::UnknownDataLayout, at);
    match r.file_type {
        FileType::Directory => {
            if r.size == 0 || r.layout == DataLayout::ChunkBased {
                return Err(if r.size == 0 {
                    bad_size()
                } else {
                    layout_err()
                });
            }
            if r.layout == DataLayout::FlatInline && r.size % BLOCK_SIZE == 0 {
                return Err(bad_size());
            }
        }
        FileType::Regular => match r.layout {
            DataLayout::ChunkBased => {
                let (_, _) = r.chunking()?;
                let len = r.inline_len(image)?;
                let table = super::image::slice_at(image.bytes(), r.inline_offset(), len)?;
                if table.chunks_exact(4).any(|c| c != NULL_ADDR.to_le_bytes()) {
                    return Err(ReadError::at(K::ChunkNotHole, r.inline_offset()));
                }
            }
            _ if r.size > INLINE_CONTENT_MAX => {
                return Err(ReadError::at(K::InlineTooLarge(r.size), at))
            }
            _ => {}
        },
        FileType::Symlink => {
            if r.size == 0 || r.size > SYMLINK_MAX || r.layout == DataLayout::ChunkBased {
                return Err(ReadError::at(K::BadSymlink, at));
            }
        }
        FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
            if r.layout != DataLayout::FlatPlain {
                return Err(layout_err());
            }
            if r.size != 0 {
                return Err(bad_size());
            }
        }
    }
    if r.layout == DataLayout::FlatInline && r.size > 0 && r.size % BLOCK_SIZE == 0 {
        return Err(bad_size());
    }
    Ok(())
}

pub(crate) fn check_name(name: &[u8], at: u64) -> Result<(), ReadError> {
    let kind = if name.len() > NAME_MAX {
        K::NameTooLong
    } else if name.contains(&b'/') {
        K::NameWithSlash
    } else if name.contains(&0) {
        K::NameWithNul
    } else {
        return Ok(());
    };
    Err(ReadError::at(kind, at))
}

/// Walks the whole tree depth-first in stored order.
pub(crate) fn walk<'a, V: Visitor<'a>>(
    image: &ImageView<'a>,
    opts: &WalkOptions<'_>,
    visitor: &mut V,
) -> Result<Option<WalkSummary>, V::Error> {
    let slots = image.bytes().len() as u64 / SLOT_SIZE;
    let mut seen = BitSet::new(slots);
    let mut claims = opts.validate.then(|| Claims::new(image));
    let mut multi = opts.validate.then(|| BitSet::new(slots));

    let root = image.inode(image.root_nid)?;
    if !root.is_dir() {
        return Err(ReadError::at(K::RootNotDirectory, root.offset).into());
    }
    if let Some(c) = &mut claims {
        c.check_inode(image, &root).map_err(|e| e.in_path("/"))?;
    }
    seen.set(root.nid);
    visitor.root(&root)?;
    let mut stack = vec![Frame::new(image, &root, root.nid, b"")?];

    loop {
        let depth = stack.len();
        let Some(top) = stack.last_mut() else { break };
        let d = match top.next_dirent() {
            Ok(Some(d)) => d,
            Ok(None) => {
                if !top.dot || !top.dotdot {
                    let nid = top.nid;
                    return Err(ReadError::at(K::MissingDot, nid * SLOT_SIZE)
                        .in_path(&path_of(&stack, None))
                        .into());
                }
                stack.pop();
                if stack.is_empty() {
                    break;
                }
                visitor.leave()?;
                continue;
            }
            Err(e) => return Err(e.in_path(&path_of(&stack, None)).into()),
        };
        let res = (|| -> Result<Option<(RawInode, bool)>, ReadError> {
            let top = stack.last_mut().expect("non-empty stack");
            if top.prev.is_some_and(|p| d.name <= p) {
                let kind = if top.prev == Some(d.name) {
                    K::DuplicateName
                } else {
                    K::UnsortedNames
                };
                return Err(ReadError::at(kind, d.offset));
            }
            top.prev = Some(d.name);
            if d.name == b"." {
                if d.nid != top.nid {
                    return Err(ReadError::at(K::BadDot, d.offset));
                }
                top.dot = true;
                return Ok(None);
            }
            if d.name == b".." {
                if d.nid != top.parent {
                    return Err(ReadError::at(K::BadDotDot, d.offset));
                }
                top.dotdot = true;
                return Ok(None);
            }
            check_name(d.name, d.offset)?;
            let inode = image.inode(d.nid).map_err(|e| match e.kind {
                K::NidOutOfRange(_) => ReadError::at(e.kind, d.offset),
                _ => e,
            })?;
            if d.file_type != crate::format::dirent_type(inode.file_type) {
                return Err(ReadError::at(K::DirentTypeMismatch, d.offset));
            }
            if depth == 1 {
                if let Some(f) = opts.filter {
                    if !f(d.name) {
                        return Ok(None);
                    }
                }
            }
            let first = !seen.get(d.nid);
            if first {
                seen.set(d.nid);
                if let Some(c) = &mut claims {
                    c.check_inode(image, &inode)?;
                }
            } else {
                if inode.is_dir() {
                    let kind = if stack.iter().any(|f| f.nid == d.nid) {
                        K::DirectoryCycle
                    } else {
                        K::HardlinkedDirectory
                    };
                    return Err(ReadError::at(kind, d.offset));
                }
                if let Some(m) = &mut multi {
                    m.set(d.nid);
                }
            }
            Ok(Some((inode, first)))
        })();
        let (inode, first) = match res {
            Ok(Some(x)) => x,
            Ok(None) => continue,
            Err(e) => return Err(e.in_path(&path_of(&stack, Some(d.name))).into()),
        };
        let entry = Entry {
            name: d.name,
            inode,
            first,
        };
        let descend = visitor.entry(&entry)?;
        if first && inode.is_dir() && descend {
            let parent = stack.last().map_or(root.nid, |f| f.nid);
            let frame = Frame::new(image, &inode, parent, d.name)
                .map_err(|e| e.in_path(&path_of(&stack, Some(d.name))))?;
            stack.push(frame);
        }
    }

    if let Some(c) = &claims {
        c.finish(image)?;
    }
    Ok(multi.map(|multi| WalkSummary { multi }))
}

/// A visitor that only lets the walk check.
struct Nop;

impl<'a> Visitor<'a> for Nop {
    type Error = ReadError;
    fn root(&mut self, _: &RawInode) -> Result<(), ReadError> {
        Ok(())
    }
    fn entry(&mut self, _: &Entry<'a>) -> Result<bool, ReadError> {
        Ok(true)
    }
    fn leave(&mut self) -> Result<(), ReadError> {
        Ok(())
    }
}

/// Checks the whole image (a validating walk with nothing built).
pub(crate) fn validate(image: &ImageView<'_>) -> Result<WalkSummary, ReadError> {
    let opts = WalkOptions {
        validate: true,
        filter: None,
    };
    Ok(walk(image, &opts, &mut Nop)?.expect("a validating walk summarises"))
}
