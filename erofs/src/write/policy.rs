//! The layout policy: every point where the V1 family (C mkcomposefs 1.0.8) and V2
//! (composefs-rs legacy) lay out the same tree differently (§6.3). The planner and the emitter
//! ask the policy; they contain no version checks of their own.

#![forbid(unsafe_code)]

use std::cmp::Ordering;

use crate::format::{BLOCK_BITS, CHUNK_FORMAT_BLKBITS_MASK, XATTR_PREFIXES};
use crate::tree::Mtime;

use super::xattrs::Cat;

/// The two layout families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    V1,
    V2,
}

/// Order in which inodes are numbered and written (§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Breadth-first; an inode sits where the walk meets its primary entry (C).
    BreadthFirst,
    /// Depth-first pre-order; a leaf sits at its first occurrence (composefs-rs V2).
    DepthFirst,
}

/// Rule that keeps inline tails from crossing block boundaries (§2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// C: pad so the tail fits its block, promote symlinks whose inode would not fit one.
    V1,
    /// composefs-rs V2: pad FLAT_INLINE inodes when the tail would cross a boundary.
    V2,
}

/// EROFS xattr name prefixes in C's matching order (C never uses index 5, `lustre.`).
const PREFIXES_V1: [(u8, &[u8]); 5] = [
    (1, b"user."),
    (2, b"system.posix_acl_access"),
    (3, b"system.posix_acl_default"),
    (4, b"trusted."),
    (6, b"security."),
];

/// A shared xattr as the table orders it.
pub(crate) struct SharedKey<'a> {
    pub name: Cat<'a>,
    pub index: u8,
    pub suffix: Cat<'a>,
    pub value: Cat<'a>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub family: Family,
    /// The header's composefs_version (after the V1 upgrade rule).
    pub composefs_version: u32,
}

impl Policy {
    pub fn order(&self) -> Order {
        match self.family {
            Family::V1 => Order::BreadthFirst,
            Family::V2 => Order::DepthFirst,
        }
    }

    /// Whether user whiteouts become escaped regular files, the root gets `opaque=y` and 256
    /// whiteout stubs (§5.6, §5.7).
    pub fn overlay_rewrites(&self) -> bool {
        self.family == Family::V1
    }

    /// Whether directories holding whiteouts are also marked opaque `x`.
    pub fn opaque_whiteout_parents(&self) -> bool {
        self.family == Family::V1 && self.composefs_version >= 1
    }

    /// Whether every inode is extended (else compact when it fits, §2.2).
    pub fn always_extended(&self) -> bool {
        self.family == Family::V2
    }

    /// `i_ino`: the writer-order index (V1) or the nid (V2).
    pub fn ino(&self, index: u32, nid: u64) -> u32 {
        match self.family {
            Family::V1 => index,
            Family::V2 => nid as u32,
        }
    }

    pub fn prefixes(&self) -> &'static [(u8, &'static [u8])] {
        match self.family {
            Family::V1 => &PREFIXES_V1,
            // composefs-rs V2 abbreviates every prefix EROFS defines, `lustre.` included.
            Family::V2 => &XATTR_PREFIXES,
        }
    }

    /// Whether an inode's xattrs are sorted by full name (V1) rather than kept in the
    /// writer's list order (V2: metacopy, redirect, then the user's by original name).
    pub fn sort_inode_xattrs(&self) -> bool {
        self.family == Family::V1
    }

    /// Order of the shared xattr table (§5.4).
    pub fn shared_cmp(&self, a: &SharedKey<'_>, b: &SharedKey<'_>) -> Ordering {
        match self.family {
            // Descending by name, then value length, then value bytes.
            Family::V1 => b
                .name
                .cmp_bytes(&a.name)
                .then(b.value.len().cmp(&a.value.len()))
                .then_with(|| b.value.cmp_bytes(&a.value)),
            // Ascending by (index, suffix, value).
            Family::V2 => a
                .index
                .cmp(&b.index)
                .then_with(|| a.suffix.cmp_bytes(&b.suffix))
                .then_with(|| a.value.cmp_bytes(&b.value)),
        }
    }

    /// Superblock `xattr_blkaddr`.
    pub fn xattr_blkaddr(&self, inodes_end: u64) -> u32 {
        match self.family {
            Family::V1 => (inodes_end / crate::format::BLOCK_SIZE) as u32,
            Family::V2 => 0,
        }
    }

    /// The 32-bit reference to a shared xattr at `offset` bytes into the table.
    pub fn shared_ref(&self, inodes_end: u64, offset: u64) -> u32 {
        match self.family {
            Family::V1 => ((inodes_end % crate::format::BLOCK_SIZE + offset) / 4) as u32,
            Family::V2 => ((inodes_end + offset) / 4) as u32,
        }
    }

    pub fn placement(&self) -> Placement {
        match self.family {
            Family::V1 => Placement::V1,
            Family::V2 => Placement::V2,
        }
    }

    /// Chunk format (`i_u`) and number of 4-byte block-map entries of an external file of
    /// `size` > 0 bytes (§2.7). composefs-rs V2 writes its one entry only for files with a
    /// digest.
    pub fn chunking(&self, size: u64, has_digest: bool) -> (u16, u64) {
        match self.family {
            Family::V1 => {
                let bits = chunk_bits(size);
                let count = size.div_ceil(1u64 << bits);
                (bits as u16 - u16::from(BLOCK_BITS), count)
            }
            Family::V2 => (CHUNK_FORMAT_BLKBITS_MASK, u64::from(has_digest)),
        }
    }

    /// Whether an external file without a payload but with a digest gets a redirect to the
    /// digest's object path (composefs-rs); C writes a redirect only from the payload.
    pub fn redirect_from_digest(&self) -> bool {
        self.family == Family::V2
    }

    /// How many shared xattrs one inode may reference; the rest are stored locally.
    pub fn max_shared_refs(&self) -> usize {
        match self.family {
            Family::V1 => crate::format::MAX_SHARED_XATTRS_PER_INODE,
            Family::V2 => usize::MAX,
        }
    }

    /// Superblock build time from the minimum mtime of the written inodes.
    pub fn build_time(&self, min: Mtime) -> Mtime {
        match self.family {
            Family::V1 => min,
            Family::V2 => Mtime::default(),
        }
    }

    /// The nanoseconds an extended inode stores.
    pub fn mtime_nsec(&self, m: Mtime) -> u32 {
        match self.family {
            Family::V1 => m.nsec,
            Family::V2 => 0,
        }
    }

    /// composefs header flags.
    pub fn header_flags(&self, has_acl: bool) -> u32 {
        match self.family {
            Family::V1 if has_acl => crate::format::COMPOSEFS_FLAGS_HAS_ACL,
            _ => 0,
        }
    }
}

/// log2 of the chunk size C picks for a file: the smallest power of two ≥ size, clamped to
/// 4096 … 2^43.
pub(crate) fn chunk_bits(size: u64) -> u32 {
    let bits = if size <= 1 {
        // ilog2(0) is undefined in C; its result is clamped up to 12 either way.
        0
    } else {
        (size - 1).ilog2() + 1
    };
    bits.clamp(
        u32::from(BLOCK_BITS),
        u32::from(BLOCK_BITS) + u32::from(CHUNK_FORMAT_BLKBITS_MASK),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> Policy {
        Policy {
            family: Family::V1,
            composefs_version: 0,
        }
    }

    #[test]
    fn chunk_formats_match_the_note() {
        let p = v1();
        let chunking = |s| p.chunking(s, true);
        assert_eq!(chunking(1), (0, 1));
        assert_eq!(chunking(4096), (0, 1));
        assert_eq!(chunking(4097), (1, 1));
        assert_eq!(chunking(1 << 20), (8, 1));
        assert_eq!(chunking((1 << 20) + 1), (9, 1));
        assert_eq!(chunking(1 << 42), (30, 1));
        assert_eq!(chunking((1 << 42) + 1), (31, 1));
        assert_eq!(chunking(1 << 43), (31, 1));
        assert_eq!(chunking((1 << 43) + 1), (31, 2));
        assert_eq!(chunking(1 << 53), (31, 1024));
        assert_eq!(chunking((1 << 53) + 1), (31, 1025));
        let v2 = Policy {
            family: Family::V2,
            composefs_version: 2,
        };
        assert_eq!(v2.chunking(1 << 50, true), (31, 1));
        assert_eq!(v2.chunking(1 << 50, false), (31, 0));
    }

    fn key<'a>(name: &'a [u8], value: &'a [u8]) -> SharedKey<'a> {
        SharedKey {
            name: Cat::plain(name),
            index: 0,
            suffix: Cat::plain(name),
            value: Cat::plain(value),
        }
    }

    #[test]
    fn v1_shared_table_is_descending() {
        // §5.4: user.x=aa, user.x=c, user.x=b in that order.
        let p = v1();
        let mut ks = [
            key(b"user.x", b"b"),
            key(b"user.x", b"aa"),
            key(b"user.x", b"c"),
        ];
        ks.sort_by(|a, b| p.shared_cmp(a, b));
        let vals: Vec<_> = ks.iter().map(|k| k.value.tail).collect();
        assert_eq!(vals, [&b"aa"[..], b"c", b"b"]);
        // user.b, user.a2, user.a, trusted.t, security.selinux.
        let mut ks = [
            key(b"security.selinux", b"v"),
            key(b"user.a", b"v"),
            key(b"trusted.t", b"v"),
            key(b"user.b", b"v"),
            key(b"user.a2", b"v"),
        ];
        ks.sort_by(|a, b| p.shared_cmp(a, b));
        let names: Vec<_> = ks.iter().map(|k| k.name.tail).collect();
        assert_eq!(
            names,
            [
                &b"user.b"[..],
                b"user.a2",
                b"user.a",
                b"trusted.t",
                b"security.selinux"
            ]
        );
    }

    #[test]
    fn shared_references() {
        // §5.4: inodes_end = 4×4096 + 1440: the first entry's reference is 360.
        assert_eq!(v1().shared_ref(4 * 4096 + 1440, 0), 360);
        assert_eq!(v1().xattr_blkaddr(4 * 4096 + 1440), 4);
        let v2 = Policy {
            family: Family::V2,
            composefs_version: 2,
        };
        assert_eq!(v2.shared_ref(2240, 0), 560);
    }
}
