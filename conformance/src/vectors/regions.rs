//! Which part of the format a byte offset of an image belongs to, so that a failing vector says
//! "inode 261 (nid 300, /t): inline tail" instead of a bare offset.
//!
//! The map is computed from the *expected* image through our reader's low-level view
//! ([`ImageView`]): every inode reachable from the root (header, xattr area, inline tail, data
//! blocks), the shared xattr entries, and the fixed header and superblock. Bytes nothing claims
//! are padding.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use cfs_erofs::dumpfile::{escape, EscapeMode};
use cfs_erofs::format::{DataLayout, BLOCK_SIZE, INODES_START, SUPERBLOCK_OFFSET};
use cfs_erofs::read::image::{ChunkEntries, ImageView, RawInode};
use cfs_erofs::read::ReadError;
use cfs_erofs::FileType;

/// A named part of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Region {
    ComposefsHeader,
    Superblock,
    /// The inode header; `index` counts inodes in file order from 0.
    Inode(InodeName),
    InodeXattrs(InodeName),
    /// Inline data after the xattrs: a file or directory tail, a symlink target, a chunk table.
    InlineTail(InodeName),
    DirectoryBlock {
        block: u64,
        of: InodeName,
    },
    DataBlock {
        block: u64,
        of: InodeName,
    },
    SharedXattrTable,
    Padding,
    /// Beyond the end of the expected image.
    PastEnd {
        expected_len: u64,
    },
}

/// How an inode is named in messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InodeName {
    pub index: usize,
    pub nid: u64,
    /// The first path the breadth-first walk met it under, escaped as in dumpfiles.
    pub path: String,
}

impl fmt::Display for InodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inode {} (nid {}, {})", self.index, self.nid, self.path)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::ComposefsHeader => write!(f, "composefs header"),
            Region::Superblock => write!(f, "superblock"),
            Region::Inode(n) => write!(f, "{n}"),
            Region::InodeXattrs(n) => write!(f, "{n}: inode xattrs"),
            Region::InlineTail(n) => write!(f, "{n}: inline tail"),
            Region::DirectoryBlock { block, of } => write!(f, "directory block {block} of {of}"),
            Region::DataBlock { block, of } => write!(f, "data block {block} of {of}"),
            Region::SharedXattrTable => write!(f, "shared xattr table"),
            Region::Padding => write!(f, "padding"),
            Region::PastEnd { expected_len } => {
                write!(f, "past the expected end ({expected_len} bytes)")
            }
        }
    }
}

impl Region {
    /// A short class name (`inode`, `inline tail`, …) for summaries and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Region::ComposefsHeader => "composefs header",
            Region::Superblock => "superblock",
            Region::Inode(_) => "inode",
            Region::InodeXattrs(_) => "inode xattrs",
            Region::InlineTail(_) => "inline tail",
            Region::DirectoryBlock { .. } => "directory block",
            Region::DataBlock { .. } => "data block",
            Region::SharedXattrTable => "shared xattr table",
            Region::Padding => "padding",
            Region::PastEnd { .. } => "past end",
        }
    }
}

/// Byte ranges of an image and what they hold.
pub struct RegionMap {
    len: u64,
    /// `[start, end)` and region; ranges may nest (the most specific wins).
    spans: Vec<(u64, u64, Region)>,
}

impl RegionMap {
    /// Maps an image (normally one our writer made). Fails only when the header or superblock
    /// cannot be read.
    pub fn new(image: &[u8]) -> Result<RegionMap, ReadError> {
        let view = ImageView::new(image)?;
        let mut spans = vec![
            (0, 32, Region::ComposefsHeader),
            (SUPERBLOCK_OFFSET, INODES_START, Region::Superblock),
        ];
        // Breadth-first over directory entries, remembering the first path of each nid.
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([(view.root_nid, "/".to_string())]);
        seen.insert(view.root_nid);
        let mut inodes: Vec<(RawInode, String)> = Vec::new();
        let (mut shared_lo, mut shared_hi) = (u64::MAX, 0);
        // Best effort: a part that cannot be read is left out of the map, not fatal.
        while let Some((nid, path)) = queue.pop_front() {
            let Ok(inode) = view.inode(nid) else {
                continue;
            };
            if let Ok(mut xattrs) = view.xattrs(&inode) {
                while let Ok(Some((x, at, next))) = xattrs.next_entry() {
                    if x.shared {
                        shared_lo = shared_lo.min(at);
                        shared_hi = shared_hi.max(next);
                    }
                }
            }
            if inode.is_dir() {
                let _ = children(&view, &inode, &path, &mut seen, &mut queue);
            }
            inodes.push((inode, path));
        }
        inodes.sort_by_key(|(i, _)| i.offset);
        for (index, (inode, path)) in inodes.into_iter().enumerate() {
            let name = InodeName {
                index,
                nid: inode.nid,
                path,
            };
            let xattr_at = inode.xattr_offset();
            let tail_at = inode.inline_offset();
            spans.push((inode.offset, xattr_at, Region::Inode(name.clone())));
            if tail_at > xattr_at {
                spans.push((xattr_at, tail_at, Region::InodeXattrs(name.clone())));
            }
            let tail = inline_len(&view, &inode);
            if tail > 0 {
                spans.push((tail_at, tail_at + tail, Region::InlineTail(name.clone())));
            }
            let blocks = match (inode.file_type, inode.layout) {
                (
                    FileType::Directory | FileType::Regular | FileType::Symlink,
                    DataLayout::FlatPlain,
                ) => inode.size.div_ceil(BLOCK_SIZE),
                (
                    FileType::Directory | FileType::Regular | FileType::Symlink,
                    DataLayout::FlatInline,
                ) => inode.size / BLOCK_SIZE,
                _ => 0,
            };
            for b in 0..blocks {
                let block = u64::from(inode.u) + b;
                let region = if inode.is_dir() {
                    Region::DirectoryBlock {
                        block,
                        of: name.clone(),
                    }
                } else {
                    Region::DataBlock {
                        block,
                        of: name.clone(),
                    }
                };
                spans.push((block * BLOCK_SIZE, (block + 1) * BLOCK_SIZE, region));
            }
        }
        if shared_lo < shared_hi {
            spans.push((shared_lo, shared_hi, Region::SharedXattrTable));
        }
        Ok(RegionMap {
            len: image.len() as u64,
            spans,
        })
    }

    /// The most specific region holding `offset`.
    pub fn region_at(&self, offset: u64) -> Region {
        if offset >= self.len {
            return Region::PastEnd {
                expected_len: self.len,
            };
        }
        self.spans
            .iter()
            .filter(|(s, e, _)| (*s..*e).contains(&offset))
            .min_by_key(|(s, e, _)| e - s)
            .map(|(_, _, r)| r.clone())
            .unwrap_or(Region::Padding)
    }
}

/// Queues the not yet seen entries of a directory with their paths.
fn children(
    view: &ImageView<'_>,
    dir: &RawInode,
    path: &str,
    seen: &mut HashSet<u64>,
    queue: &mut VecDeque<(u64, String)>,
) -> Result<(), ReadError> {
    let mut chunks = view.dir_chunks(dir)?;
    while let Some((chunk, base)) = chunks.next_chunk()? {
        let mut entries = ChunkEntries::new(chunk, base)?;
        while let Some(d) = entries.next_entry()? {
            if d.name == b"." || d.name == b".." || !seen.insert(d.nid) {
                continue;
            }
            let mut p = if path == "/" {
                String::new()
            } else {
                path.to_string()
            };
            p.push('/');
            p.push_str(&String::from_utf8_lossy(&escape(
                d.name,
                EscapeMode::STANDARD,
            )));
            queue.push_back((d.nid, p));
        }
    }
    Ok(())
}

/// Bytes stored right after an inode's xattrs (the reader's rule, §2.7); none where the reader
/// finds the inline data invalid, as it may be in an image under test.
fn inline_len(view: &ImageView<'_>, inode: &RawInode) -> u64 {
    inode.inline_len(view).unwrap_or(0)
}
