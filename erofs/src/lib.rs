//! `cfs_erofs`: the composefs image format.
//!
//! composefs stores a filesystem tree as a small EROFS metadata image whose regular files point
//! at fs-verity-named objects outside it. This crate holds, floor by floor:
//!
//! - ground: [`tree`] (the one in-memory model), [`format`] (on-disk structures), [`fsverity`];
//! - middle: inputs that build a tree ([`dumpfile`], [`scan`], [`oci`]), the layout engine
//!   [`write`] (V1 = C mkcomposefs 1.0.8, V2 = composefs-rs legacy), the reader [`read`],
//!   kernel command-line arguments [`karg`], and kernel mounting [`mount`] (the only user of the
//!   small `unsafe` syscall module `sys`);
//! - top: the `mkcfs-rs` binary, thin over this library.
//!
//! Arrows point down only: the tree imports no input or writer, the reader imports no writer.

pub mod atomic;
pub mod diff;
pub mod dumpfile;
pub mod format;
pub mod fsverity;
pub mod info;
pub mod karg;
pub mod mount;
pub mod oci;
pub mod read;
pub mod repo;
pub mod scan;
pub mod store;
mod sys;
pub mod tree;
pub mod write;
mod xxh32;

pub use tree::{
    Digest, DirEntry, FileData, FileType, HashAlgorithm, Inode, InodeId, InodeKind, Mtime, Tree,
    Xattr,
};

/// An I/O error as C's `strerror` would print it: the OS message without Rust's
/// ` (os error N)` suffix, so that messages match the C tools'.
pub fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}
