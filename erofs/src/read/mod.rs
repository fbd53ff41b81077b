//! The reader: any composefs image (C's V1 layout, composefs_version 0 or 1, or composefs-rs's
//! V2 layout) back into a [`Tree`], checking everything it reads.
//!
//! The reader refuses anything a composefs writer would not produce — short or misaligned
//! images, wrong magics or versions, unknown incompatible features, offsets, nids and blocks out
//! of range, inodes or data blocks that overlap, directory cycles and hardlinked directories,
//! unsorted or duplicate or malformed names, wrong `.`/`..`, xattrs running past their inode or
//! with unknown prefixes, layouts a type cannot have — with a [`ReadError`] that names the
//! offset (and the path, when the walk knows it). It never panics and its work and memory are
//! linear in the image size: each inode is decoded once, each directory read once, and a
//! bitmap over 32-byte slots and data blocks proves that nothing is claimed twice.
//!
//! # Two views of an image
//!
//! [`ReadMode::Clean`] (the default, [`read_image`]) undoes exactly what the writers add, so
//! that a tree written and read back compares equal to the original after the documented
//! normalisations below. [`ReadMode::ComposefsInfo`] builds the tree C's `composefs-info` works
//! on, quirks included (see [`crate::info`], which walks the image directly for speed but
//! applies the same rules).
//!
//! Both modes:
//! - turn the overlay metacopy xattr into the file's digest and the redirect into its payload,
//!   rename `trusted.overlay.overlay.X` back to `trusted.overlay.X`, and drop the other
//!   `trusted.overlay.*` xattrs the writers add (the V1 root's opaque `y`);
//! - give compact inodes the superblock build time as mtime;
//! - make the first entry of an inode in depth-first sorted order its primary entry and the
//!   others hardlinks;
//! - hide V1 whiteout stubs (every character device with rdev 0 in a V1 image is one: V1
//!   writers escape user whiteouts into regular files).
//!
//! Clean mode further:
//! - turns V1 escaped whiteouts (regular files with `trusted.overlay.overlay.whiteout`) back
//!   into character devices 0 with size 0, and drops the xattrs the writer added with them
//!   (`user.overlay.whiteout` on the whiteout; `trusted.overlay.whiteouts`,
//!   `user.overlay.whiteouts`, and for composefs_version 1 the opaque `x` pair, on its parent);
//! - keeps V2 whiteouts (character devices 0, which V2 stores as such);
//! - reads digests from 36-byte (sha256) and 68-byte (sha512) metacopy values and payloads from
//!   the redirect exactly (without C's extra bytes), refusing malformed ones;
//! - sorts each inode's xattrs by name (the writers reorder them anyway).
//!
//! Normalisations a round trip cannot undo: directory nlink is what the writer stored (C and
//! composefs-rs recompute it); devices, FIFOs and sockets have size 0; V2 mtimes have no
//! nanoseconds; a user xattr named like one the writer adds for whiteouts is dropped with it.
#![forbid(unsafe_code)]

pub mod image;
pub mod lazy;
pub(crate) mod node;
pub(crate) mod walk;

mod build;

pub use build::ReadMode;
pub use image::{ImageView, RawDirent, RawInode};
pub use lazy::{Content, DirListing};
pub use node::{CNode, XattrRef};

use crate::tree::{Mtime, Tree};

/// What is wrong with an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadErrorKind {
    #[error("image is shorter than one 4096-byte block")]
    TooShort,
    #[error("image length is not a multiple of 4096")]
    NotBlockMultiple,
    #[error("bad composefs header magic")]
    BadMagic,
    #[error("unsupported composefs header version {0}")]
    BadHeaderVersion(u32),
    #[error("unsupported composefs_version {0}")]
    UnsupportedComposefsVersion(u32),
    #[error("bad EROFS superblock magic")]
    BadSuperblockMagic,
    #[error("block size 2^{0} is not 4096")]
    BadBlockSize(u8),
    #[error("unknown incompatible EROFS features {0:#x}")]
    UnknownIncompatFeatures(u32),
    #[error("superblock field {0} has a value no composefs writer produces")]
    Superblock(&'static str),
    #[error("reserved bytes are not zero")]
    NonZeroReserved,
    #[error("superblock says {superblock} inodes, the tree has {found}")]
    InodeCountMismatch { superblock: u64, found: u64 },
    #[error("read out of range")]
    OutOfRange,
    #[error("nid {0} is out of range")]
    NidOutOfRange(u64),
    #[error("inode runs past the end of the image")]
    InodeOutOfRange,
    #[error("bad inode format {0:#x}")]
    BadInodeFormat(u16),
    #[error("unknown file type in mode {0:#o}")]
    UnknownFileType(u16),
    #[error("data layout not valid for this file type")]
    UnknownDataLayout,
    #[error("size {0} not valid for this file type and layout")]
    BadSize(u64),
    #[error("inline file of {0} bytes is larger than 5000")]
    InlineTooLarge(u64),
    #[error("bad symlink target")]
    BadSymlink,
    #[error("bad chunk format {0:#x}")]
    BadChunkFormat(u32),
    #[error("chunk table entry is not a hole")]
    ChunkNotHole,
    #[error("data block out of range")]
    DataOutOfRange,
    #[error("inline data crosses a block boundary")]
    TailCrossesBlock,
    #[error("data block claimed twice or overlapping metadata")]
    OverlappingBlocks,
    #[error("inode overlaps another inode or the shared xattr table")]
    OverlappingInodes,
    #[error("xattr entry runs past its inode")]
    XattrOverrun,
    #[error("unknown xattr name index {0}")]
    UnknownXattrIndex(u8),
    #[error("xattr name empty, too long or containing NUL")]
    BadXattrName,
    #[error("shared xattr reference out of range")]
    SharedXattrOutOfRange,
    #[error("xattr bloom filter does not match the xattrs")]
    BadXattrFilter,
    #[error("xattrs exceed the per-inode budget")]
    XattrBudget,
    #[error("malformed overlay metacopy xattr")]
    BadMetacopy,
    #[error("malformed overlay redirect xattr")]
    BadRedirect,
    #[error("malformed directory block")]
    BadDirent,
    #[error("directory name offset out of range")]
    BadNameOffset,
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("name contains '/'")]
    NameWithSlash,
    #[error("name contains NUL")]
    NameWithNul,
    #[error("directory names not sorted")]
    UnsortedNames,
    #[error("duplicate name in directory")]
    DuplicateName,
    #[error("'.' does not point at its directory")]
    BadDot,
    #[error("'..' does not point at the parent directory")]
    BadDotDot,
    #[error("directory lacks '.' or '..'")]
    MissingDot,
    #[error("dirent file type differs from the inode's")]
    DirentTypeMismatch,
    #[error("directory cycle")]
    DirectoryCycle,
    #[error("directory reached through two entries")]
    HardlinkedDirectory,
    #[error("root is not a directory")]
    RootNotDirectory,
}

/// A refused image: what, at which byte offset, and under which path when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub kind: ReadErrorKind,
    pub offset: u64,
    pub path: Option<String>,
}

impl ReadError {
    pub(crate) fn at(kind: ReadErrorKind, offset: u64) -> Self {
        ReadError {
            kind,
            offset,
            path: None,
        }
    }

    /// Adds the path of the entry being read, unless one is already there.
    pub(crate) fn in_path(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_owned());
        }
        self
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.kind, self.offset)?;
        if let Some(p) = &self.path {
            write!(f, " (reading {p})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ReadError {}

/// A read image: the tree and the facts of the header and superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub tree: Tree,
    /// 0 or 1 for C's layout, 2 for composefs-rs V2.
    pub composefs_version: u32,
    /// The header's HAS_ACL flag.
    pub has_acl: bool,
    /// The superblock build time (the minimum mtime for V1, 0 for V2).
    pub build_time: Mtime,
}

/// Reads an image into a clean tree ([`ReadMode::Clean`]).
pub fn read_image(bytes: &[u8]) -> Result<Image, ReadError> {
    read_image_with(bytes, ReadMode::Clean)
}

/// Reads an image into a tree in the given mode.
pub fn read_image_with(bytes: &[u8], mode: ReadMode) -> Result<Image, ReadError> {
    let view = ImageView::new(bytes)?;
    let tree = build::build(&view, mode)?;
    Ok(Image {
        tree,
        composefs_version: view.composefs_version,
        has_acl: view.flags & crate::format::COMPOSEFS_FLAGS_HAS_ACL != 0,
        build_time: view.build_time,
    })
}

/// The header's `composefs_version`, checking only what C's `lcfs_version_from_fd` checks:
/// the magic and the header version (a file shorter than the 32-byte header reads as zeros
/// past its end, as C's page-sized mapping does). Everything else is [`read_image_with`]'s job.
pub fn header_composefs_version(bytes: &[u8]) -> Result<u32, ReadError> {
    use crate::format::{ComposefsHeader, COMPOSEFS_HEADER_VERSION, COMPOSEFS_MAGIC};
    use zerocopy::FromBytes;
    let mut padded = [0u8; std::mem::size_of::<ComposefsHeader>()];
    let n = bytes.len().min(padded.len());
    padded[..n].copy_from_slice(&bytes[..n]);
    let header = ComposefsHeader::ref_from_bytes(&padded[..]).expect("exact size");
    if header.magic.get() != COMPOSEFS_MAGIC {
        return Err(ReadError::at(ReadErrorKind::BadMagic, 0));
    }
    if header.version.get() != COMPOSEFS_HEADER_VERSION {
        return Err(ReadError::at(
            ReadErrorKind::BadHeaderVersion(header.version.get()),
            4,
        ));
    }
    Ok(header.composefs_version.get())
}

/// Checks a whole image without building anything.
pub fn validate(bytes: &[u8]) -> Result<(), ReadError> {
    walk::validate(&ImageView::new(bytes)?).map(|_| ())
}

#[cfg(test)]
pub(crate) mod tests;
