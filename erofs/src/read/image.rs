//! A checked view of an image's bytes: the header and superblock, inodes by nid, their xattr
//! entries and their directory chunks.
//!
//! Everything here borrows from the image and allocates nothing, so the walkers above it can
//! visit millions of entries cheaply. Every read goes through `zerocopy` structs from
//! [`crate::format`] and every offset is computed with checked arithmetic: a hostile image
//! yields a [`ReadError`], never a panic.
#![forbid(unsafe_code)]

use zerocopy::FromBytes;

use super::{ReadError, ReadErrorKind as K};
use crate::format::{
    xattr_prefix, CompactInode, ComposefsHeader, DataLayout, Dirent, ExtendedInode, Superblock,
    XattrEntry, XattrHeader, BLOCK_BITS, BLOCK_SIZE, COMPOSEFS_HEADER_VERSION, COMPOSEFS_MAGIC,
    DIRENT_SIZE, EROFS_MAGIC, FEATURE_INCOMPAT_CHUNKED_FILE, INODES_START, SLOT_SIZE,
    SUPERBLOCK_OFFSET, XATTR_ENTRY_SIZE, XATTR_HEADER_SIZE,
};
use crate::tree::{FileType, Mtime};

/// Highest `composefs_version` any writer produces (2 = composefs-rs V2).
pub const MAX_COMPOSEFS_VERSION: u32 = 2;

/// The parsed, checked global structures of an image.
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    pub(crate) bytes: &'a [u8],
    /// Header `composefs_version`: 0 or 1 for C's layout, 2 for composefs-rs V2.
    pub composefs_version: u32,
    /// Header flags (bit 0: some inode has a POSIX ACL).
    pub flags: u32,
    /// The superblock's build time: the mtime of every compact inode.
    pub build_time: Mtime,
    pub root_nid: u64,
    /// Superblock inode count.
    pub inos: u64,
    /// Byte offset that shared xattr references count from (`xattr_blkaddr` × 4096).
    pub(crate) xattr_base: u64,
    /// Number of blocks in the image (= length / 4096).
    pub(crate) blocks: u64,
    /// Whether the xattr bloom filter is present and must be right.
    pub(crate) has_xattr_filter: bool,
}

/// Reads a little-endian struct at `offset`, or fails with `what` out of range.
pub(crate) fn struct_at<T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
    bytes: &[u8],
    offset: u64,
) -> Result<&T, ReadError> {
    let start = usize::try_from(offset).map_err(|_| ReadError::at(K::OutOfRange, offset))?;
    let tail = bytes
        .get(start..)
        .ok_or(ReadError::at(K::OutOfRange, offset))?;
    T::ref_from_prefix(tail)
        .map(|(t, _)| t)
        .map_err(|_| ReadError::at(K::OutOfRange, offset))
}

/// The bytes `[offset, offset + len)`, or an out-of-range error.
pub(crate) fn slice_at(bytes: &[u8], offset: u64, len: u64) -> Result<&[u8], ReadError> {
    let end = offset
        .checked_add(len)
        .ok_or(ReadError::at(K::OutOfRange, offset))?;
    let (s, e) = match (usize::try_from(offset), usize::try_from(end)) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return Err(ReadError::at(K::OutOfRange, offset)),
    };
    bytes.get(s..e).ok_or(ReadError::at(K::OutOfRange, offset))
}

impl<'a> ImageView<'a> {
    /// Checks the header and the superblock.
    pub fn new(bytes: &'a [u8]) -> Result<Self, ReadError> {
        let len = bytes.len() as u64;
        if len < BLOCK_SIZE {
            return Err(ReadError::at(K::TooShort, len));
        }
        if len % BLOCK_SIZE != 0 {
            return Err(ReadError::at(K::NotBlockMultiple, len));
        }
        let header: &ComposefsHeader = struct_at(bytes, 0)?;
        if header.magic.get() != COMPOSEFS_MAGIC {
            return Err(ReadError::at(K::BadMagic, 0));
        }
        if header.version.get() != COMPOSEFS_HEADER_VERSION {
            return Err(ReadError::at(K::BadHeaderVersion(header.version.get()), 4));
        }
        if header.unused.iter().any(|u| u.get() != 0) {
            return Err(ReadError::at(K::NonZeroReserved, 16));
        }
        if let Some(i) = bytes[32..SUPERBLOCK_OFFSET as usize]
            .iter()
            .position(|&b| b != 0)
        {
            return Err(ReadError::at(K::NonZeroReserved, 32 + i as u64));
        }
        let composefs_version = header.composefs_version.get();
        if composefs_version > MAX_COMPOSEFS_VERSION {
            return Err(ReadError::at(
                K::UnsupportedComposefsVersion(composefs_version),
                12,
            ));
        }
        let sb: &Superblock = struct_at(bytes, SUPERBLOCK_OFFSET)?;
        let field = |name: &'static str, rel: u64| {
            ReadError::at(K::Superblock(name), SUPERBLOCK_OFFSET + rel)
        };
        if sb.magic.get() != EROFS_MAGIC {
            return Err(ReadError::at(K::BadSuperblockMagic, SUPERBLOCK_OFFSET));
        }
        if sb.blkszbits != BLOCK_BITS {
            return Err(ReadError::at(
                K::BadBlockSize(sb.blkszbits),
                SUPERBLOCK_OFFSET + 12,
            ));
        }
        let incompat = sb.feature_incompat.get();
        if incompat & !FEATURE_INCOMPAT_CHUNKED_FILE != 0 {
            return Err(ReadError::at(
                K::UnknownIncompatFeatures(incompat & !FEATURE_INCOMPAT_CHUNKED_FILE),
                SUPERBLOCK_OFFSET + 80,
            ));
        }
        if sb.extslots != 0 {
            return Err(field("sb_extslots", 13));
        }
        if sb.meta_blkaddr.get() != 0 {
            return Err(field("meta_blkaddr", 40));
        }
        if sb.extra_devices.get() != 0 {
            return Err(field("extra_devices", 86));
        }
        if sb.dirblkbits != 0 {
            return Err(field("dirblkbits", 90));
        }
        if sb.xattr_prefix_count != 0 {
            return Err(field("xattr_prefix_count", 91));
        }
        if sb.available_compr_algs.get() != 0
            || sb.devt_slotoff.get() != 0
            || sb.xattr_prefix_start.get() != 0
            || sb.packed_nid.get() != 0
            || sb.xattr_filter_reserved != 0
            || sb.reserved2.iter().any(|&b| b != 0)
        {
            return Err(ReadError::at(K::NonZeroReserved, SUPERBLOCK_OFFSET + 84));
        }
        if sb.feature_compat.get() & crate::format::FEATURE_COMPAT_SB_CHKSUM == 0
            && sb.checksum.get() != 0
        {
            return Err(field("checksum", 4));
        }
        let blocks = len / BLOCK_SIZE;
        if u64::from(sb.blocks.get()) != blocks {
            return Err(field("blocks", 36));
        }
        let xattr_base = u64::from(sb.xattr_blkaddr.get()) * BLOCK_SIZE;
        if xattr_base >= len {
            return Err(field("xattr_blkaddr", 44));
        }
        Ok(ImageView {
            bytes,
            composefs_version,
            flags: header.flags.get(),
            build_time: Mtime::new(sb.build_time.get() as i64, sb.build_time_nsec.get()),
            root_nid: u64::from(sb.root_nid.get()),
            inos: sb.inos.get(),
            xattr_base,
            blocks,
            has_xattr_filter: sb.feature_compat.get() & crate::format::FEATURE_COMPAT_XATTR_FILTER
                != 0,
        })
    }

    /// The image bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether this is the V2 (composefs-rs legacy) layout.
    pub fn is_v2(&self) -> bool {
        self.composefs_version >= 2
    }

    /// Decodes the inode header at `nid` and the extent of its xattr area and inline data.
    /// Checks everything that needs only the inode itself.
    pub fn inode(&self, nid: u64) -> Result<RawInode, ReadError> {
        let offset = nid
            .checked_mul(SLOT_SIZE)
            .ok_or(ReadError::at(K::NidOutOfRange(nid), 0))?;
        if offset < INODES_START || offset >= self.bytes.len() as u64 {
            return Err(ReadError::at(K::NidOutOfRange(nid), offset));
        }
        let format = struct_at::<zerocopy::little_endian::U16>(self.bytes, offset)?.get();
        if format & !0xF != 0 {
            return Err(ReadError::at(K::BadInodeFormat(format), offset));
        }
        let extended = format & 1 != 0;
        let layout =
            DataLayout::from_format(format).ok_or(ReadError::at(K::UnknownDataLayout, offset))?;
        let mut r = if extended {
            let e: &ExtendedInode = struct_at(self.bytes, offset)?;
            if e.reserved.get() != 0 || e.reserved2.iter().any(|&b| b != 0) {
                return Err(ReadError::at(K::NonZeroReserved, offset));
            }
            RawInode {
                nid,
                offset,
                header_len: 64,
                layout,
                xattr_icount: e.xattr_icount.get(),
                mode: e.mode.get(),
                nlink: e.nlink.get(),
                size: e.size.get(),
                u: e.u.get(),
                uid: e.uid.get(),
                gid: e.gid.get(),
                mtime: Mtime::new(e.mtime.get() as i64, e.mtime_nsec.get()),
                file_type: FileType::Fifo,
            }
        } else {
            let c: &CompactInode = struct_at(self.bytes, offset)?;
            if c.reserved.get() != 0 || c.reserved2.get() != 0 {
                return Err(ReadError::at(K::NonZeroReserved, offset));
            }
            RawInode {
                nid,
                offset,
                header_len: 32,
                layout,
                xattr_icount: c.xattr_icount.get(),
                mode: c.mode.get(),
                nlink: u32::from(c.nlink.get()),
                size: u64::from(c.size.get()),
                u: c.u.get(),
                uid: u32::from(c.uid.get()),
                gid: u32::from(c.gid.get()),
                mtime: self.build_time,
                file_type: FileType::Fifo,
            }
        };
        r.file_type = FileType::from_mode(u32::from(r.mode))
            .ok_or(ReadError::at(K::UnknownFileType(r.mode), offset + 4))?;
        // The inline part must lie inside the image, and (like the kernel requires) within one
        // block.
        let inline_start = r.inline_offset();
        let inline_len = r.inline_len(self)?;
        let end = inline_start
            .checked_add(inline_len)
            .ok_or(ReadError::at(K::OutOfRange, offset))?;
        if end > self.bytes.len() as u64 {
            return Err(ReadError::at(K::InodeOutOfRange, offset));
        }
        if inline_len > 0 && inline_start / BLOCK_SIZE != (end - 1) / BLOCK_SIZE {
            return Err(ReadError::at(K::TailCrossesBlock, inline_start));
        }
        Ok(r)
    }

    /// Iterates over an inode's xattrs as stored: local entries first, then shared ones — the
    /// order C's reader applies them in.
    pub fn xattrs(&self, inode: &RawInode) -> Result<XattrIter<'a>, ReadError> {
        let area = inode.xattr_offset();
        let size = inode.xattr_size();
        if size == 0 {
            return Ok(XattrIter::empty(self.bytes));
        }
        let header: &XattrHeader = struct_at(self.bytes, area)?;
        if header.reserved.iter().any(|&b| b != 0) {
            return Err(ReadError::at(K::NonZeroReserved, area + 5));
        }
        let shared = u64::from(header.shared_count);
        let local_start = area + XATTR_HEADER_SIZE + 4 * shared;
        let end = area + size;
        if local_start > end {
            return Err(ReadError::at(K::XattrOverrun, area));
        }
        Ok(XattrIter {
            bytes: self.bytes,
            xattr_base: self.xattr_base,
            pos: local_start,
            end,
            shared_pos: area + XATTR_HEADER_SIZE,
            shared_end: local_start,
            filter: header.name_filter.get(),
        })
    }

    /// The directory chunks (full blocks, then the inline tail) of a directory inode.
    pub fn dir_chunks(&self, inode: &RawInode) -> Result<DirChunks<'a>, ReadError> {
        let (blocks, tail) = inode.data_extent();
        let last_len = if inode.layout == DataLayout::FlatPlain && inode.size % BLOCK_SIZE != 0 {
            inode.size % BLOCK_SIZE
        } else {
            BLOCK_SIZE
        };
        let tail_offset = inode.inline_offset();
        let tail = slice_at(self.bytes, tail_offset, tail)?;
        Ok(DirChunks {
            bytes: self.bytes,
            first_block: u64::from(inode.u),
            n_blocks: blocks,
            last_len,
            next: 0,
            tail: Some((tail, tail_offset)).filter(|(t, _)| !t.is_empty()),
        })
    }

    /// Every entry of a directory inode (`.` and `..` included), in on-disk order: the
    /// chunks of [`ImageView::dir_chunks`] decoded one after the other.
    pub fn dirents(&self, inode: &RawInode) -> Result<Vec<RawDirent<'a>>, ReadError> {
        let mut chunks = self.dir_chunks(inode)?;
        let mut out = Vec::new();
        while let Some((chunk, offset)) = chunks.next_chunk()? {
            let mut entries = ChunkEntries::new(chunk, offset)?;
            while let Some(d) = entries.next_entry()? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The bytes of data block `block`.
    pub(crate) fn block(&self, block: u64, len: u64) -> Result<&'a [u8], ReadError> {
        let off = block
            .checked_mul(BLOCK_SIZE)
            .ok_or(ReadError::at(K::DataOutOfRange, block))?;
        slice_at(self.bytes, off, len).map_err(|_| ReadError::at(K::DataOutOfRange, off))
    }
}

/// One decoded inode header (compact or extended), with where its parts lie.
#[derive(Clone, Copy, Debug)]
pub struct RawInode {
    pub nid: u64,
    /// Byte offset of the inode.
    pub offset: u64,
    /// 32 (compact) or 64 (extended).
    pub header_len: u64,
    pub layout: DataLayout,
    pub xattr_icount: u16,
    /// The raw 16-bit `i_mode`.
    pub mode: u16,
    pub nlink: u32,
    pub size: u64,
    /// `i_u`: block address, rdev or chunk format.
    pub u: u32,
    pub uid: u32,
    pub gid: u32,
    /// For compact inodes, the superblock build time.
    pub mtime: Mtime,
    pub file_type: FileType,
}

impl RawInode {
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }

    /// Device number for character and block devices, 0 otherwise.
    pub fn rdev(&self) -> u32 {
        match self.file_type {
            FileType::CharDevice | FileType::BlockDevice => self.u,
            _ => 0,
        }
    }

    /// A character device with rdev 0: an overlay whiteout (V1 stubs, V2 user whiteouts).
    pub fn is_whiteout(&self) -> bool {
        self.file_type == FileType::CharDevice && self.u == 0
    }

    /// Bytes of the xattr area (0 when there are none).
    pub fn xattr_size(&self) -> u64 {
        match self.xattr_icount {
            0 => 0,
            n => XATTR_HEADER_SIZE + (u64::from(n) - 1) * XATTR_ENTRY_SIZE,
        }
    }

    pub fn xattr_offset(&self) -> u64 {
        self.offset + self.header_len
    }

    /// Where the inline data (tail or chunk table) starts.
    pub fn inline_offset(&self) -> u64 {
        self.xattr_offset() + self.xattr_size()
    }

    /// Number of chunks of a chunk-based file, and log2 of the chunk size.
    pub(crate) fn chunking(&self) -> Result<(u64, u32), ReadError> {
        let fmt = self.u;
        let bits = fmt & u32::from(crate::format::CHUNK_FORMAT_BLKBITS_MASK);
        if fmt & !u32::from(crate::format::CHUNK_FORMAT_BLKBITS_MASK) != 0 {
            return Err(ReadError::at(K::BadChunkFormat(fmt), self.offset + 16));
        }
        let chunkbits = u32::from(BLOCK_BITS) + bits;
        let count = self.size.div_ceil(1u64 << chunkbits);
        Ok((count, chunkbits))
    }

    /// Length of the data stored right after the xattrs: the tail of a FLAT_INLINE inode, or
    /// the chunk table of a chunk-based one.
    pub fn inline_len(&self, image: &ImageView<'_>) -> Result<u64, ReadError> {
        Ok(match self.layout {
            DataLayout::FlatPlain => 0,
            DataLayout::FlatInline => self.size % BLOCK_SIZE,
            DataLayout::ChunkBased => {
                if self.file_type != FileType::Regular || self.size == 0 {
                    return Err(ReadError::at(K::UnknownDataLayout, self.offset));
                }
                let (count, _) = self.chunking()?;
                let table = count
                    .checked_mul(4)
                    .ok_or(ReadError::at(K::OutOfRange, self.offset))?;
                let start = self.inline_offset();
                if image.is_v2() {
                    // V2 writes a single hole entry whatever the size, but only for files
                    // with a digest; files without one have no table at all. A hole is never
                    // zero padding nor the start of a next inode, so it is unambiguous.
                    let hole = crate::format::NULL_ADDR.to_le_bytes();
                    match slice_at(image.bytes(), start, 4) {
                        Ok(b) if b == hole => 4,
                        _ => 0,
                    }
                } else if start % BLOCK_SIZE + table <= BLOCK_SIZE {
                    table
                } else if self.offset % BLOCK_SIZE == 0 {
                    // C could not inline this table even with the inode at a block start, so it
                    // wrote it to a data block (whose address the chunk format overwrote).
                    0
                } else {
                    return Err(ReadError::at(K::TailCrossesBlock, start));
                }
            }
        })
    }

    /// Whole data blocks (starting at `i_u`) and inline tail bytes of a flat inode.
    pub(crate) fn data_extent(&self) -> (u64, u64) {
        match self.layout {
            DataLayout::FlatPlain => (self.size.div_ceil(BLOCK_SIZE), 0),
            DataLayout::FlatInline => (self.size / BLOCK_SIZE, self.size % BLOCK_SIZE),
            DataLayout::ChunkBased => (0, 0),
        }
    }
}

/// One xattr entry as stored: the name index, suffix and value, borrowed from the image.
#[derive(Clone, Copy, Debug)]
pub struct RawXattr<'a> {
    pub index: u8,
    pub prefix: &'static [u8],
    pub suffix: &'a [u8],
    pub value: &'a [u8],
    /// Offset of the byte right after the value (C's redirect reading looks there).
    pub value_end: u64,
    pub shared: bool,
}

/// Iterator over an inode's xattr entries: local ones, then shared ones.
pub struct XattrIter<'a> {
    bytes: &'a [u8],
    xattr_base: u64,
    pos: u64,
    end: u64,
    shared_pos: u64,
    shared_end: u64,
    /// The stored bloom filter.
    pub filter: u32,
}

impl<'a> XattrIter<'a> {
    fn empty(bytes: &'a [u8]) -> Self {
        XattrIter {
            bytes,
            xattr_base: 0,
            pos: 0,
            end: 0,
            shared_pos: 0,
            shared_end: 0,
            filter: u32::MAX,
        }
    }

    /// Decodes the entry at `at`, which must end by `limit`.
    fn entry(&self, at: u64, limit: u64, shared: bool) -> Result<(RawXattr<'a>, u64), ReadError> {
        if at.checked_add(XATTR_ENTRY_SIZE).is_none_or(|e| e > limit) {
            return Err(ReadError::at(K::XattrOverrun, at));
        }
        let e: &XattrEntry = struct_at(self.bytes, at)?;
        let name_len = u64::from(e.name_len);
        let value_len = u64::from(e.value_size.get());
        let name_at = at + XATTR_ENTRY_SIZE;
        let value_at = name_at + name_len;
        let value_end = value_at + value_len;
        let next = crate::format::round_up(value_end, 4);
        if next > limit {
            return Err(ReadError::at(K::XattrOverrun, at));
        }
        let prefix = xattr_prefix(e.name_index)
            .ok_or(ReadError::at(K::UnknownXattrIndex(e.name_index), at))?;
        let suffix = slice_at(self.bytes, name_at, name_len)?;
        let full = prefix.len() + suffix.len();
        if full == 0 || full > crate::tree::NAME_MAX || suffix.contains(&0) {
            return Err(ReadError::at(K::BadXattrName, at));
        }
        let value = slice_at(self.bytes, value_at, value_len)?;
        Ok((
            RawXattr {
                index: e.name_index,
                prefix,
                suffix,
                value,
                value_end,
                shared,
            },
            next,
        ))
    }

    /// Offset of the next shared entry to read, if any (for range bookkeeping).
    fn next_shared_offset(&self) -> Result<Option<u64>, ReadError> {
        if self.shared_pos >= self.shared_end {
            return Ok(None);
        }
        let idx = struct_at::<zerocopy::little_endian::U32>(self.bytes, self.shared_pos)?.get();
        let off = self
            .xattr_base
            .checked_add(u64::from(idx) * 4)
            .ok_or(ReadError::at(K::SharedXattrOutOfRange, self.shared_pos))?;
        Ok(Some(off))
    }

    /// Where the inode's local entries end.
    pub fn local_end(&self) -> u64 {
        self.end
    }

    /// The next entry, with (for shared ones) the byte range it occupies.
    pub fn next_entry(&mut self) -> Result<Option<(RawXattr<'a>, u64, u64)>, ReadError> {
        if self.pos < self.end {
            let at = self.pos;
            let (x, next) = self.entry(at, self.end, false)?;
            self.pos = next;
            return Ok(Some((x, at, next)));
        }
        match self.next_shared_offset()? {
            None => Ok(None),
            Some(off) => {
                let limit = self.bytes.len() as u64;
                let (x, next) = self
                    .entry(off, limit, true)
                    .map_err(|e| ReadError::at(K::SharedXattrOutOfRange, e.offset))?;
                self.shared_pos += 4;
                Ok(Some((x, off, next)))
            }
        }
    }
}

/// A directory's chunks: each full data block, then the inline tail.
pub struct DirChunks<'a> {
    bytes: &'a [u8],
    first_block: u64,
    n_blocks: u64,
    /// Length of the last block of a FLAT_PLAIN directory whose size is not block-aligned.
    last_len: u64,
    next: u64,
    tail: Option<(&'a [u8], u64)>,
}

impl<'a> DirChunks<'a> {
    /// The next chunk, with the offset it starts at.
    pub fn next_chunk(&mut self) -> Result<Option<(&'a [u8], u64)>, ReadError> {
        if self.next < self.n_blocks {
            let len = if self.next + 1 == self.n_blocks {
                self.last_len
            } else {
                BLOCK_SIZE
            };
            let block = self
                .first_block
                .checked_add(self.next)
                .ok_or(ReadError::at(K::DataOutOfRange, self.first_block))?;
            self.next += 1;
            let off = block * BLOCK_SIZE;
            let bytes = slice_at(self.bytes, off, len)
                .map_err(|_| ReadError::at(K::DataOutOfRange, off))?;
            return Ok(Some((bytes, off)));
        }
        Ok(self.tail.take())
    }
}

/// One directory entry as stored.
#[derive(Clone, Copy, Debug)]
pub struct RawDirent<'a> {
    pub name: &'a [u8],
    pub nid: u64,
    pub file_type: u8,
    /// Offset of the 12-byte dirent.
    pub offset: u64,
}

/// Parses the entries of one directory chunk.
pub struct ChunkEntries<'a> {
    chunk: &'a [u8],
    base: u64,
    count: usize,
    i: usize,
}

impl<'a> ChunkEntries<'a> {
    pub fn new(chunk: &'a [u8], base: u64) -> Result<Self, ReadError> {
        let first: &Dirent = struct_at(chunk, 0).map_err(|_| ReadError::at(K::BadDirent, base))?;
        let names = u64::from(first.nameoff.get());
        if names == 0 || names % DIRENT_SIZE != 0 || names > chunk.len() as u64 {
            return Err(ReadError::at(K::BadDirent, base));
        }
        Ok(ChunkEntries {
            chunk,
            base,
            count: (names / DIRENT_SIZE) as usize,
            i: 0,
        })
    }

    pub fn next_entry(&mut self) -> Result<Option<RawDirent<'a>>, ReadError> {
        if self.i >= self.count {
            return Ok(None);
        }
        let i = self.i;
        self.i += 1;
        let at = i as u64 * DIRENT_SIZE;
        let d: &Dirent = struct_at(self.chunk, at)?;
        if d.reserved != 0 {
            return Err(ReadError::at(K::NonZeroReserved, self.base + at + 11));
        }
        let start = usize::from(d.nameoff.get());
        let err = ReadError::at(K::BadNameOffset, self.base + at);
        let end = if i + 1 < self.count {
            let next: &Dirent = struct_at(self.chunk, at + DIRENT_SIZE)?;
            usize::from(next.nameoff.get())
        } else {
            let rest = self.chunk.get(start..).ok_or(err.clone())?;
            start + rest.iter().position(|&b| b == 0).unwrap_or(rest.len())
        };
        if start < self.count * DIRENT_SIZE as usize || end <= start || end > self.chunk.len() {
            return Err(err);
        }
        Ok(Some(RawDirent {
            name: &self.chunk[start..end],
            nid: d.nid.get(),
            file_type: d.file_type,
            offset: self.base + at,
        }))
    }
}
