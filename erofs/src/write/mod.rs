//! The layout engine: turns a [`Tree`] into composefs image bytes.
//!
//! One engine serves both layout families. V1 (`composefs_version` 0/1) is byte-identical to C
//! mkcomposefs 1.0.8; V2 is composefs-rs 0.9.4's legacy `FormatVersion::V2`. Everything they
//! disagree on is a question to [`policy::Policy`]; the rest is shared:
//!
//! - [`plan`]: writer order, the writer's own xattrs (overlay escaping, metacopy/redirect,
//!   whiteouts, stubs, root opaque), the shared xattr table, sizes, positions and data blocks —
//!   all computed from the borrowed tree, which is never modified or cloned;
//! - [`emit`]: streams the planned image to any `Write` in file order.
//!
//! Memory stays proportional to the number of inodes and xattrs (a few dozen bytes each), and
//! the image itself is never held in memory.

#![forbid(unsafe_code)]

mod dirents;
mod emit;
mod plan;
mod policy;
mod xattrs;

use std::io::Write;

use crate::tree::Tree;

use plan::{Plan, Src};
use policy::Family;

/// The layout family of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FormatVersion {
    /// C mkcomposefs 1.0.8 layout, `composefs_version` 0 or 1.
    V1,
    /// composefs-rs legacy layout, `composefs_version` 2.
    V2,
}

/// How to write an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriteOptions {
    pub version: FormatVersion,
    /// V1 only: the lowest composefs_version to write (C `--min-version`, final value).
    pub min_version: u32,
    /// V1 only: the highest composefs_version the upgrade rule may pick (C `--max-version`).
    pub max_version: u32,
}

impl WriteOptions {
    /// V1 with C's defaults: min 0, max 1 (upgraded to 1 when the tree has whiteouts).
    pub fn v1() -> Self {
        WriteOptions {
            version: FormatVersion::V1,
            min_version: 0,
            max_version: 1,
        }
    }

    /// V2.
    pub fn v2() -> Self {
        WriteOptions {
            version: FormatVersion::V2,
            min_version: 2,
            max_version: 2,
        }
    }

    /// V1 with exactly this composefs_version (C `--min-version=V --max-version=V`).
    pub fn v1_exact(version: u32) -> Self {
        WriteOptions {
            version: FormatVersion::V1,
            min_version: version,
            max_version: version,
        }
    }
}

/// What was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// Image length in bytes (a multiple of 4096).
    pub size: u64,
    /// The header's composefs_version (after the V1 upgrade rule).
    pub composefs_version: u32,
    /// Inodes written (for V1 including the whiteout stubs).
    pub inodes: u64,
    /// Entries in the shared xattr table.
    pub shared_xattrs: usize,
}

/// Why an image could not be written. Messages follow C's wording where C has one.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("Invalid argument: composefs version {min}..{max} is not supported (at most 1)")]
    InvalidVersion { min: u32, max: u32 },
    #[error("the root of the tree is not a directory")]
    RootNotDirectory,
    #[error("{path}: File too large ({size} bytes need more than 1024 chunks)")]
    FileTooLarge { path: String, size: u64 },
    #[error("{path}: invalid xattr name {name:?} (1 to 255 bytes, no NUL)")]
    XattrName { path: String, name: String },
    #[error("{path}: xattr {name:?} has a value over 65535 bytes")]
    XattrValue { path: String, name: String },
    #[error("{path}: xattr {name:?} appears twice")]
    DuplicateXattr { path: String, name: String },
    #[error("{path}: xattrs exceed the per-inode limit of 32767 bytes (at {name:?})")]
    XattrBudget { path: String, name: String },
    #[error("{path}: too many xattrs for one inode")]
    TooManyXattrs { path: String },
    #[error("{path}: invalid symlink target (1 to 4095 bytes, no NUL)")]
    InvalidSymlink { path: String },
    #[error("{path}: {reason}")]
    BadStructure { path: String, reason: &'static str },
    #[error("too many inodes for one image")]
    TooManyInodes,
    #[error("image larger than 2^32 blocks")]
    ImageTooLarge,
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}

fn plan_for<'t>(tree: &'t Tree, opts: &WriteOptions) -> Result<Plan<'t>, WriteError> {
    match opts.version {
        FormatVersion::V1 => Plan::new(tree, Family::V1, opts.min_version, opts.max_version),
        FormatVersion::V2 => Plan::new(tree, Family::V2, 2, 2),
    }
}

fn summary(plan: &Plan<'_>, size: u64) -> ImageSummary {
    ImageSummary {
        size,
        composefs_version: plan.policy.composefs_version,
        inodes: plan.nodes.len() as u64,
        shared_xattrs: plan.shared.len(),
    }
}

/// Writes the image of `tree` to `out`. The tree is only read.
pub fn write_image(
    tree: &Tree,
    opts: &WriteOptions,
    out: impl Write,
) -> Result<ImageSummary, WriteError> {
    let plan = plan_for(tree, opts)?;
    let size = emit::emit(&plan, out)?;
    Ok(summary(&plan, size))
}

/// The image of `tree` as bytes.
pub fn image_bytes(tree: &Tree, opts: &WriteOptions) -> Result<Vec<u8>, WriteError> {
    let mut v = Vec::new();
    write_image(tree, opts, &mut v)?;
    Ok(v)
}

/// Writes several images of one tree (e.g. V1 and V2), one per `opts[k]` into `outs[k]`.
/// Options that resolve to the same layout (same family and final composefs_version) share
/// one plan. All plans are made, and so all errors found, before anything is written.
pub fn write_images(
    tree: &Tree,
    opts: &[WriteOptions],
    outs: &mut [&mut dyn Write],
) -> Result<Vec<ImageSummary>, WriteError> {
    assert_eq!(opts.len(), outs.len(), "one output per option set");
    let mut plans: Vec<Plan<'_>> = Vec::new();
    let mut which = Vec::with_capacity(opts.len());
    for o in opts {
        let p = plan_for(tree, o)?;
        let same = plans.iter().position(|q| {
            q.policy.family == p.policy.family
                && q.policy.composefs_version == p.policy.composefs_version
        });
        match same {
            Some(k) => which.push(k),
            None => {
                which.push(plans.len());
                plans.push(p);
            }
        }
    }
    let mut res = Vec::with_capacity(opts.len());
    for (k, out) in which.into_iter().zip(outs.iter_mut()) {
        let size = emit::emit(&plans[k], &mut **out)?;
        res.push(summary(&plans[k], size));
    }
    Ok(res)
}

impl Plan<'_> {
    /// Path of written inode `i`, for error messages.
    pub(crate) fn path(&self, i: usize) -> String {
        match self.nodes[i].src {
            Src::Tree(id) => plan::path_of(self.tree, id),
            Src::Stub(k) => format!("/{:02x}", k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{FileData, Inode, InodeId, InodeKind};

    fn sample() -> Tree {
        let mut t = Tree::new(Inode::directory(0o755));
        let d = t.add(InodeId::ROOT, b"d", Inode::directory(0o755)).unwrap();
        let mut f = Inode::new(
            InodeKind::Regular(FileData::Inline(b"hi"[..].into())),
            0o644,
        );
        f.set_xattr(b"user.x", b"1");
        let f = t.add(d, b"f", f).unwrap();
        t.link(InodeId::ROOT, b"g", f).unwrap();
        t.add(d, b"wh", Inode::new(InodeKind::CharDevice(0), 0o644))
            .unwrap();
        t
    }

    #[test]
    fn write_images_equals_separate_writes_and_shares_plans() {
        let t = sample();
        let before = t.clone();
        let opts = [
            WriteOptions::v1(),
            WriteOptions::v2(),
            WriteOptions::v1_exact(1),
            WriteOptions::v1_exact(0),
        ];
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); opts.len()];
        let mut outs: Vec<&mut dyn Write> = bufs.iter_mut().map(|b| b as &mut dyn Write).collect();
        let sums = write_images(&t, &opts, &mut outs).unwrap();
        for (k, o) in opts.iter().enumerate() {
            assert_eq!(bufs[k], image_bytes(&t, o).unwrap(), "{o:?}");
            assert_eq!(sums[k].size, bufs[k].len() as u64);
        }
        // The whiteout upgrades the default to version 1: same image as --min-version=1.
        assert_eq!(sums[0].composefs_version, 1);
        assert_eq!(bufs[0], bufs[2]);
        assert_eq!(sums[3].composefs_version, 0);
        assert_eq!(sums[1].composefs_version, 2);
        // 256 stubs (none collide) plus root, d, f and the whiteout.
        assert_eq!(sums[0].inodes, 260);
        assert_eq!(sums[1].inodes, 4);
        assert_eq!(t, before, "the writer must not modify the tree");
    }

    #[test]
    fn versions_above_one_are_invalid() {
        let t = sample();
        for (min, max) in [(2, 2), (0, 2), (2, 0)] {
            let o = WriteOptions {
                version: FormatVersion::V1,
                min_version: min,
                max_version: max,
            };
            assert!(matches!(
                image_bytes(&t, &o),
                Err(WriteError::InvalidVersion { .. })
            ));
        }
    }

    #[test]
    fn images_are_whole_blocks_with_the_header_in_front() {
        let t = sample();
        for o in [WriteOptions::v1(), WriteOptions::v2()] {
            let b = image_bytes(&t, &o).unwrap();
            assert_eq!(b.len() % 4096, 0);
            assert_eq!(&b[..4], &crate::format::COMPOSEFS_MAGIC.to_le_bytes());
            assert_eq!(&b[1024..1028], &crate::format::EROFS_MAGIC.to_le_bytes());
        }
    }

    #[test]
    fn structural_errors_carry_the_path() {
        // A hardlink to an inode no primary entry reaches.
        let mut t = Tree::new(Inode::directory(0o755));
        let f = t.push_inode(Inode::new(InodeKind::Fifo, 0o644));
        t.replace(InodeId::ROOT, b"orphan-link", f, true).unwrap();
        let e = image_bytes(&t, &WriteOptions::v1()).unwrap_err();
        assert!(e.to_string().contains("/orphan-link"), "{e}");
        // An inode with two primary entries.
        let mut t = Tree::new(Inode::directory(0o755));
        let f = t
            .add(InodeId::ROOT, b"a", Inode::new(InodeKind::Fifo, 0o644))
            .unwrap();
        t.replace(InodeId::ROOT, b"b", f, false).unwrap();
        assert!(matches!(
            image_bytes(&t, &WriteOptions::v1()),
            Err(WriteError::BadStructure { .. })
        ));
        // A symlink target C cannot store.
        let mut t = Tree::new(Inode::directory(0o755));
        t.add(
            InodeId::ROOT,
            b"s",
            Inode::new(InodeKind::Symlink(vec![b'x'; 4096].into()), 0o777),
        )
        .unwrap();
        let e = image_bytes(&t, &WriteOptions::v1()).unwrap_err();
        assert!(e.to_string().starts_with("/s:"), "{e}");
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        hex::decode(s).unwrap()
    }

    /// §1.3 and §2.1: the start of the minimal image, byte for byte.
    #[test]
    fn minimal_image_matches_the_note() {
        let t = Tree::new(Inode::directory(0o755));
        let b = image_bytes(&t, &WriteOptions::v1()).unwrap();
        assert_eq!(b.len(), 16384);
        assert_eq!(&b[0..16], hex("9a62 78d0 0100 0000 0000 0000 0000 0000"));
        assert_eq!(
            &b[0x400..0x410],
            hex("e2e1 f5e0 0000 0000 0600 0000 0c00 2400")
        );
        assert_eq!(
            &b[0x410..0x420],
            hex("0101 0000 0000 0000 0000 0000 0000 0000")
        );
        assert_eq!(
            &b[0x420..0x430],
            hex("0000 0000 0400 0000 0000 0000 0200 0000")
        );
        // Root: compact, 6 xattr words, filter without the `overlay.opaque` bit (20).
        assert_eq!(
            &b[0x480..0x490],
            hex("0000 0600 ed41 0200 0010 0000 0000 0000")
        );
        assert_eq!(
            &b[0x490..0x4a0],
            hex("0300 0000 0000 0000 0000 0000 0000 0000")
        );
        assert_eq!(
            &b[0x4a0..0x4b0],
            hex("ffff efff 0000 0000 0000 0000 0e04 0100")
        );
        assert_eq!(&b[0x4b0..0x4c0], b"overlay.opaquey\0");
        // First stub "00": chardev 0644, ino 1.
        assert_eq!(
            &b[0x4c0..0x4d0],
            hex("0000 0000 a421 0100 0000 0000 0000 0000")
        );
        assert_eq!(
            &b[0x4d0..0x4e0],
            hex("0000 0000 0100 0000 0000 0000 0000 0000")
        );
        // Root directory block 3: ".", ".." then "00".
        assert_eq!(
            &b[0x3000..0x3010],
            hex("2400 0000 0000 0000 180c 0200 2400 0000")
        );
        assert_eq!(
            &b[0x3010..0x3020],
            hex("0000 0000 190c 0200 2600 0000 0000 0000")
        );
        assert_eq!(&b[0x3020..0x3024], hex("1b0c 0300"));
    }

    /// §2.2 and §7: the minimum mtime (signed) is the build time; only inodes at that mtime,
    /// with small ids, link counts and sizes are compact. A FIFO's SIZE counts though its
    /// i_size is 0.
    #[test]
    fn build_time_and_compact_decision() {
        let mut t = Tree::new(Inode::directory(0o755));
        t.root_mut().mtime = crate::tree::Mtime::new(5, 0);
        let mut old = Inode::new(InodeKind::Fifo, 0o644);
        old.mtime = crate::tree::Mtime::new(-1, 7);
        t.add(InodeId::ROOT, b"old", old).unwrap();
        let mut big = Inode::new(InodeKind::Fifo, 0o644);
        big.mtime = crate::tree::Mtime::new(-1, 7);
        big.size = 5_000_000_000;
        t.add(InodeId::ROOT, b"zbig", big).unwrap();
        let b = image_bytes(&t, &WriteOptions::v1()).unwrap();
        let sb = 1024;
        assert_eq!(&b[sb + 24..sb + 32], &u64::MAX.to_le_bytes());
        assert_eq!(&b[sb + 32..sb + 36], &7u32.to_le_bytes());
        // Root (mtime 5 ≠ min): extended, 64 bytes, at nid 36.
        let fmt = |nid: usize| u16::from_le_bytes([b[nid * 32], b[nid * 32 + 1]]);
        assert_eq!(fmt(36) & 1, 1);
        // Find the children through the root's directory block.
        let root_blk = u32::from_le_bytes(b[36 * 32 + 16..36 * 32 + 20].try_into().unwrap());
        let dir = &b[root_blk as usize * 4096..][..4096];
        let nameoff0 = u16::from_le_bytes([dir[8], dir[9]]) as usize;
        let n = nameoff0 / 12;
        let mut found = 0;
        for k in 0..n {
            let e = &dir[k * 12..k * 12 + 12];
            let nid = u64::from_le_bytes(e[..8].try_into().unwrap()) as usize;
            let off = u16::from_le_bytes([e[8], e[9]]) as usize;
            let end = if k + 1 < n {
                u16::from_le_bytes([dir[k * 12 + 20], dir[k * 12 + 21]]) as usize
            } else {
                dir[off..]
                    .iter()
                    .position(|&c| c == 0)
                    .map_or(4096, |p| off + p)
            };
            let name = &dir[off..end];
            if name == b"old" {
                assert_eq!(fmt(nid) & 1, 0, "old is compact");
                found += 1;
            }
            if name == b"zbig" {
                assert_eq!(fmt(nid) & 1, 1, "zbig is extended");
                let size = u64::from_le_bytes(b[nid * 32 + 8..nid * 32 + 16].try_into().unwrap());
                assert_eq!(size, 0);
                found += 1;
            }
        }
        assert_eq!(found, 2);
    }
}
