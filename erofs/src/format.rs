//! On-disk structures and constants of composefs images: the composefs header, the EROFS
//! superblock, compact and extended inodes, xattr headers and entries, and directory entries.
//!
//! Every structure is declared once, as a little-endian `#[repr(C)]` struct whose size is
//! asserted at compile time, and is read and written through `zerocopy` — no offsets are
//! computed by hand anywhere else. Writers and the reader both build on this module; it knows
//! nothing of either.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Block size of every composefs image.
pub const BLOCK_SIZE: u64 = 4096;
/// log2 of [`BLOCK_SIZE`].
pub const BLOCK_BITS: u8 = 12;
/// Inodes are addressed in 32-byte slots: nid = byte offset / 32 (meta_blkaddr is 0).
pub const SLOT_SIZE: u64 = 32;

/// Magic of the composefs header at offset 0.
pub const COMPOSEFS_MAGIC: u32 = 0xD078_629A;
/// The only composefs header version.
pub const COMPOSEFS_HEADER_VERSION: u32 = 1;
/// Header flag: some inode has a POSIX ACL xattr.
pub const COMPOSEFS_FLAGS_HAS_ACL: u32 = 1;

/// Offset of the EROFS superblock.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// EROFS superblock magic.
pub const EROFS_MAGIC: u32 = 0xE0F5_E1E2;
/// Offset of the first inode: right after the superblock.
pub const INODES_START: u64 = SUPERBLOCK_OFFSET + 128;

pub const FEATURE_COMPAT_SB_CHKSUM: u32 = 0x1;
pub const FEATURE_COMPAT_MTIME: u32 = 0x2;
pub const FEATURE_COMPAT_XATTR_FILTER: u32 = 0x4;
/// The compat features every composefs writer sets.
pub const COMPOSEFS_FEATURE_COMPAT: u32 = FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER;
/// Incompat feature bit for chunk-based files. composefs writers do not set it, though they use
/// chunk-based inodes; readers must accept it either way.
pub const FEATURE_INCOMPAT_CHUNKED_FILE: u32 = 0x4;

/// `i_format` bit 0: extended (64-byte) inode.
pub const INODE_EXTENDED: u16 = 1;
/// `i_format` bits 1..=3 hold the data layout.
pub const INODE_LAYOUT_SHIFT: u16 = 1;
pub const INODE_LAYOUT_MASK: u16 = 0x7;

/// Data layouts (EROFS `EROFS_INODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DataLayout {
    /// Data in whole blocks starting at `i_u`.
    FlatPlain = 0,
    /// Whole blocks at `i_u`, the last partial block right after the inode (the "tail").
    FlatInline = 2,
    /// A chunk index after the inode maps chunks to blocks; composefs only writes holes.
    ChunkBased = 4,
}

impl DataLayout {
    pub fn from_format(i_format: u16) -> Option<DataLayout> {
        match (i_format >> INODE_LAYOUT_SHIFT) & INODE_LAYOUT_MASK {
            0 => Some(DataLayout::FlatPlain),
            2 => Some(DataLayout::FlatInline),
            4 => Some(DataLayout::ChunkBased),
            _ => None,
        }
    }

    /// The `i_format` value of this layout for a compact or extended inode.
    pub const fn i_format(self, extended: bool) -> u16 {
        ((self as u16) << INODE_LAYOUT_SHIFT) | extended as u16
    }
}

/// Low bits of a chunk-based inode's `i_u`: chunk size as log2(bytes) − 12.
pub const CHUNK_FORMAT_BLKBITS_MASK: u16 = 0x1F;
/// Chunk-format bit for 8-byte chunk indexes (composefs uses 4-byte block maps: never set).
pub const CHUNK_FORMAT_INDEXES: u16 = 0x20;
/// A hole in a chunk block map.
pub const NULL_ADDR: u32 = 0xFFFF_FFFF;

/// composefs header, offset 0.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ComposefsHeader {
    pub magic: U32,
    pub version: U32,
    pub flags: U32,
    pub composefs_version: U32,
    pub unused: [U32; 4],
}

/// EROFS superblock, offset 1024.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Superblock {
    pub magic: U32,
    pub checksum: U32,
    pub feature_compat: U32,
    pub blkszbits: u8,
    pub extslots: u8,
    pub root_nid: U16,
    pub inos: U64,
    pub build_time: U64,
    pub build_time_nsec: U32,
    pub blocks: U32,
    pub meta_blkaddr: U32,
    pub xattr_blkaddr: U32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub feature_incompat: U32,
    pub available_compr_algs: U16,
    pub extra_devices: U16,
    pub devt_slotoff: U16,
    pub dirblkbits: u8,
    pub xattr_prefix_count: u8,
    pub xattr_prefix_start: U32,
    pub packed_nid: U64,
    pub xattr_filter_reserved: u8,
    pub reserved2: [u8; 23],
}

/// Compact inode (32 bytes): no mtime (it is the superblock's build time), 16-bit ids.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct CompactInode {
    pub format: U16,
    pub xattr_icount: U16,
    pub mode: U16,
    pub nlink: U16,
    pub size: U32,
    pub reserved: U32,
    /// Block address, rdev or chunk format, by type and layout.
    pub u: U32,
    pub ino: U32,
    pub uid: U16,
    pub gid: U16,
    pub reserved2: U32,
}

/// Extended inode (64 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ExtendedInode {
    pub format: U16,
    pub xattr_icount: U16,
    pub mode: U16,
    pub reserved: U16,
    pub size: U64,
    pub u: U32,
    pub ino: U32,
    pub uid: U32,
    pub gid: U32,
    /// Seconds; the signed value stored as unsigned.
    pub mtime: U64,
    pub mtime_nsec: U32,
    pub nlink: U32,
    pub reserved2: [u8; 16],
}

/// Header of an inode's xattr area.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrHeader {
    /// Bloom filter: bit set = that name hash is absent ([`xattr_filter_bit`]).
    pub name_filter: U32,
    pub shared_count: u8,
    pub reserved: [u8; 7],
}

/// Header of one xattr entry; the name suffix and the value follow, padded to 4 bytes.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrEntry {
    pub name_len: u8,
    pub name_index: u8,
    pub value_size: U16,
}

/// Directory entry; names follow all entries of the block.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Dirent {
    pub nid: U64,
    pub nameoff: U16,
    pub file_type: u8,
    pub reserved: u8,
}

const _: () = {
    assert!(size_of::<ComposefsHeader>() == 32);
    assert!(size_of::<Superblock>() == 128);
    assert!(size_of::<CompactInode>() == 32);
    assert!(size_of::<ExtendedInode>() == 64);
    assert!(size_of::<XattrHeader>() == 12);
    assert!(size_of::<XattrEntry>() == 4);
    assert!(size_of::<Dirent>() == 12);
};

/// Size of an xattr area header.
pub const XATTR_HEADER_SIZE: u64 = 12;
/// Size of an xattr entry header.
pub const XATTR_ENTRY_SIZE: u64 = 4;
/// Size of a directory entry.
pub const DIRENT_SIZE: u64 = 12;
/// Seed of the xattr bloom filter hash (`EROFS_XATTR_FILTER_SEED`).
pub const XATTR_FILTER_SEED: u32 = 0x25BB_E08F;
/// An inode can reference at most this many shared xattrs (C's limit).
pub const MAX_SHARED_XATTRS_PER_INODE: usize = 128;

/// EROFS directory-entry file types.
pub mod file_type {
    pub const UNKNOWN: u8 = 0;
    pub const REGULAR: u8 = 1;
    pub const DIRECTORY: u8 = 2;
    pub const CHAR_DEVICE: u8 = 3;
    pub const BLOCK_DEVICE: u8 = 4;
    pub const FIFO: u8 = 5;
    pub const SOCKET: u8 = 6;
    pub const SYMLINK: u8 = 7;
}

/// The directory-entry file type of an inode type.
pub fn dirent_type(t: crate::tree::FileType) -> u8 {
    use crate::tree::FileType;
    match t {
        FileType::Regular => file_type::REGULAR,
        FileType::Directory => file_type::DIRECTORY,
        FileType::CharDevice => file_type::CHAR_DEVICE,
        FileType::BlockDevice => file_type::BLOCK_DEVICE,
        FileType::Fifo => file_type::FIFO,
        FileType::Socket => file_type::SOCKET,
        FileType::Symlink => file_type::SYMLINK,
    }
}

/// The xattr name prefixes EROFS can abbreviate, by index. The matching order of a writer is
/// its own policy (C never uses `lustre.`); this table only says what each index means.
pub const XATTR_PREFIXES: [(u8, &[u8]); 6] = [
    (1, b"user."),
    (2, b"system.posix_acl_access"),
    (3, b"system.posix_acl_default"),
    (4, b"trusted."),
    (5, b"lustre."),
    (6, b"security."),
];

/// The prefix bytes of a name index, `None` for an index EROFS does not define.
pub fn xattr_prefix(index: u8) -> Option<&'static [u8]> {
    match index {
        0 => Some(b""),
        _ => XATTR_PREFIXES
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, p)| *p),
    }
}

/// Bit of the xattr bloom filter for a name index and suffix.
pub fn xattr_filter_bit(index: u8, suffix: &[u8]) -> u32 {
    crate::xxh32::xxh32(suffix, XATTR_FILTER_SEED.wrapping_add(u32::from(index))) & 31
}

/// Rounds `x` up to a multiple of `n` (a power of two).
pub const fn round_up(x: u64, n: u64) -> u64 {
    (x + n - 1) & !(n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_bits_match_known_values() {
        // Values from the format note (§5.3), observed in C-written images.
        assert_eq!(xattr_filter_bit(2, b""), 30);
        assert_eq!(xattr_filter_bit(3, b""), 21);
        assert_eq!(xattr_filter_bit(4, b"overlay.metacopy"), 31);
        assert_eq!(xattr_filter_bit(4, b"overlay.redirect"), 17);
        assert_eq!(xattr_filter_bit(4, b"overlay.opaque"), 20);
        assert_eq!(xattr_filter_bit(1, b"overlay.whiteout"), 9);
        assert_eq!(xattr_filter_bit(6, b"selinux"), 11);
        assert_eq!(xattr_filter_bit(6, b"capability"), 29);
    }

    #[test]
    fn layouts_round_trip() {
        for l in [
            DataLayout::FlatPlain,
            DataLayout::FlatInline,
            DataLayout::ChunkBased,
        ] {
            for ext in [false, true] {
                assert_eq!(DataLayout::from_format(l.i_format(ext)), Some(l));
            }
        }
        assert_eq!(DataLayout::ChunkBased.i_format(true), 9);
    }
}
