//! Xattrs as the layout engine sees them: references into the caller's tree instead of copies.
//!
//! The writer rewrites xattrs (overlay escaping, metacopy/redirect, whiteout marks, the root's
//! opaque mark) but must not mutate or clone the tree, and a million-file tree carries millions
//! of xattrs. So a final xattr is an [`XRef`] (8 bytes: an inode and a slot) whose name and value
//! are produced on demand as [`Cat`]s, two borrowed slices laid end to end (an escaped name is
//! `trusted.overlay.overlay.` + the tail of the user's name; a metacopy value is a 4-byte
//! header + the digest). Identical (name, value) pairs are interned in a [`PairTable`], an
//! open-addressing hash table of indexes, which counts uses for xattr sharing.

#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::io::{self, Write};

use crate::format::{round_up, xattr_filter_bit, XATTR_ENTRY_SIZE};
use crate::tree::{Digest, FileData, InodeId, InodeKind, Tree};

/// Bytes made of two slices, `head` then `tail`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cat<'a> {
    pub head: &'a [u8],
    pub tail: &'a [u8],
}

impl<'a> Cat<'a> {
    pub const EMPTY: Cat<'static> = Cat {
        head: b"",
        tail: b"",
    };

    pub fn plain(b: &'a [u8]) -> Self {
        Cat { head: b"", tail: b }
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    pub fn starts_with(&self, p: &[u8]) -> bool {
        if p.len() > self.len() {
            return false;
        }
        let h = p.len().min(self.head.len());
        self.head[..h] == p[..h] && self.tail[..p.len() - h] == p[h..]
    }

    /// The bytes after the first `n`.
    pub fn skip(&self, n: usize) -> Cat<'a> {
        if n <= self.head.len() {
            Cat {
                head: &self.head[n..],
                tail: self.tail,
            }
        } else {
            Cat {
                head: b"",
                tail: &self.tail[n - self.head.len()..],
            }
        }
    }

    /// Byte-wise lexicographic order of the concatenations (C `strcmp`/`memcmp` order).
    pub fn cmp_bytes(&self, other: &Cat<'_>) -> Ordering {
        let (mut a, mut a_rest) = (self.head, self.tail);
        let (mut b, mut b_rest) = (other.head, other.tail);
        loop {
            if a.is_empty() {
                a = std::mem::take(&mut a_rest);
            }
            if b.is_empty() {
                b = std::mem::take(&mut b_rest);
            }
            if a.is_empty() || b.is_empty() {
                return self.len().cmp(&other.len());
            }
            let n = a.len().min(b.len());
            match a[..n].cmp(&b[..n]) {
                Ordering::Equal => {
                    a = &a[n..];
                    b = &b[n..];
                }
                o => return o,
            }
        }
    }

    pub fn eq_bytes(&self, other: &Cat<'_>) -> bool {
        self.len() == other.len() && self.cmp_bytes(other) == Ordering::Equal
    }

    pub fn eq_slice(&self, other: &[u8]) -> bool {
        self.len() == other.len() && self.starts_with(other)
    }

    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.head)?;
        out.write_all(self.tail)
    }

    /// The bytes as one slice, copied into `buf` only when they are split.
    pub fn contiguous<'b>(&self, buf: &'b mut Vec<u8>) -> &'b [u8]
    where
        'a: 'b,
    {
        if self.head.is_empty() {
            self.tail
        } else if self.tail.is_empty() {
            self.head
        } else {
            buf.clear();
            buf.extend_from_slice(self.head);
            buf.extend_from_slice(self.tail);
            buf
        }
    }
}

/// The prefix every overlayfs xattr shares; user xattrs under it are escaped.
pub(crate) const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";
/// What an escaped user xattr name starts with instead of [`OVERLAY_PREFIX`].
pub(crate) const OVERLAY_ESCAPED_PREFIX: &[u8] = b"trusted.overlay.overlay.";
pub(crate) const METACOPY: &[u8] = b"trusted.overlay.metacopy";
pub(crate) const REDIRECT: &[u8] = b"trusted.overlay.redirect";
pub(crate) const SELINUX: &[u8] = b"security.selinux";
pub(crate) const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
pub(crate) const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// Xattrs with a fixed name and value that the V1 writer adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Fixed {
    /// On a user whiteout: the escaped overlay whiteout mark.
    EscapedWhiteout = 0,
    /// On a user whiteout: the userxattr whiteout mark.
    UserWhiteout,
    /// On a directory holding whiteouts.
    EscapedWhiteouts,
    UserWhiteouts,
    /// On a directory holding whiteouts, composefs_version ≥ 1.
    EscapedOpaqueX,
    UserOpaqueX,
    /// On the root.
    OpaqueY,
}

impl Fixed {
    const ALL: [Fixed; 7] = [
        Fixed::EscapedWhiteout,
        Fixed::UserWhiteout,
        Fixed::EscapedWhiteouts,
        Fixed::UserWhiteouts,
        Fixed::EscapedOpaqueX,
        Fixed::UserOpaqueX,
        Fixed::OpaqueY,
    ];

    pub fn name(self) -> &'static [u8] {
        match self {
            Fixed::EscapedWhiteout => b"trusted.overlay.overlay.whiteout",
            Fixed::UserWhiteout => b"user.overlay.whiteout",
            Fixed::EscapedWhiteouts => b"trusted.overlay.overlay.whiteouts",
            Fixed::UserWhiteouts => b"user.overlay.whiteouts",
            Fixed::EscapedOpaqueX => b"trusted.overlay.overlay.opaque",
            Fixed::UserOpaqueX => b"user.overlay.opaque",
            Fixed::OpaqueY => b"trusted.overlay.opaque",
        }
    }

    pub fn value(self) -> &'static [u8] {
        match self {
            Fixed::EscapedOpaqueX | Fixed::UserOpaqueX => b"x",
            Fixed::OpaqueY => b"y",
            _ => b"",
        }
    }
}

const SLOT_METACOPY: u32 = u32::MAX;
const SLOT_REDIRECT: u32 = u32::MAX - 1;
const SLOT_FIXED: u32 = u32::MAX - 16;

/// One final xattr of one inode: the inode it is computed from and which xattr of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct XRef {
    pub inode: InodeId,
    slot: u32,
}

impl XRef {
    /// The inode's own xattr number `index`.
    pub fn user(inode: InodeId, index: usize) -> Self {
        XRef {
            inode,
            slot: index as u32,
        }
    }
    pub fn metacopy(inode: InodeId) -> Self {
        XRef {
            inode,
            slot: SLOT_METACOPY,
        }
    }
    pub fn redirect(inode: InodeId) -> Self {
        XRef {
            inode,
            slot: SLOT_REDIRECT,
        }
    }
    pub fn fixed(f: Fixed) -> Self {
        XRef {
            inode: InodeId::ROOT,
            slot: SLOT_FIXED + f as u32,
        }
    }

    /// The user xattr index, if this is one.
    pub fn user_index(self) -> Option<usize> {
        (self.slot < SLOT_FIXED).then_some(self.slot as usize)
    }
}

/// A user xattr name after overlay escaping.
pub(crate) fn escaped_name(n: &[u8], escape: bool) -> Cat<'_> {
    if escape && n.starts_with(OVERLAY_PREFIX) {
        Cat {
            head: OVERLAY_ESCAPED_PREFIX,
            tail: &n[OVERLAY_PREFIX.len()..],
        }
    } else {
        Cat::plain(n)
    }
}

/// Payload and digest of an external file (both `None` for anything else).
fn external_of(tree: &Tree, id: InodeId) -> (Option<&[u8]>, Option<&Digest>) {
    match &tree.inode(id).kind {
        InodeKind::Regular(FileData::External { payload, digest }) => {
            (payload.as_deref(), digest.as_ref())
        }
        _ => (None, None),
    }
}

/// The overlay metacopy value: version 0, length, flags 0, fs-verity algorithm, digest.
pub(crate) fn metacopy_value(d: &Digest) -> Cat<'_> {
    static H256: [u8; 4] = [0, 36, 0, 1];
    static H512: [u8; 4] = [0, 68, 0, 2];
    let head: &'static [u8] = match d {
        Digest::Sha256(_) => &H256,
        Digest::Sha512(_) => &H512,
    };
    Cat {
        head,
        tail: d.as_bytes(),
    }
}

/// Splits a full name into its EROFS name index and suffix, trying `prefixes` in order; index 0
/// with the full name when none matches.
pub(crate) fn split_prefix<'a>(name: Cat<'a>, prefixes: &[(u8, &[u8])]) -> (u8, Cat<'a>) {
    for &(index, p) in prefixes {
        if name.starts_with(p) {
            return (index, name.skip(p.len()));
        }
    }
    (0, name)
}

/// Size of an xattr entry on disk: header, suffix, value, padded to 4.
pub(crate) fn entry_size(suffix_len: usize, value_len: usize) -> u64 {
    round_up(XATTR_ENTRY_SIZE + suffix_len as u64 + value_len as u64, 4)
}

/// Sentinel for "not in the shared table".
pub(crate) const NOT_SHARED: u32 = u32::MAX;

/// One distinct (name, value) pair. 20 bytes: a million-file tree has a million or two of
/// them (each external file's metacopy and redirect values are usually unique).
#[derive(Clone, Debug)]
pub(crate) struct Pair {
    /// Where its bytes come from (the first inode that had it).
    pub xref: XRef,
    hash: u32,
    /// While collecting: the number of written inodes that carry it. Once the shared table is
    /// built ([`PairTable::place_shared`]): its byte offset there, or [`NOT_SHARED`].
    count_or_offset: u32,
    /// Entry size on disk (low 24 bits; at most 4 + 255 + 65535 + 3) and bloom filter bit.
    size_bit: u32,
}

impl Pair {
    /// Number of written inodes carrying the pair (before [`PairTable::place_shared`]).
    pub fn count(&self) -> u32 {
        self.count_or_offset
    }

    /// Offset in the shared table, or [`NOT_SHARED`] (after [`PairTable::place_shared`]).
    pub fn shared_offset(&self) -> u32 {
        self.count_or_offset
    }

    /// Entry size on disk.
    pub fn size(&self) -> u32 {
        self.size_bit & 0xff_ffff
    }

    /// Bloom filter bit of the name.
    pub fn filter_bit(&self) -> u32 {
        self.size_bit >> 24
    }
}

/// Interns (name, value) pairs and counts their uses; ids are dense `u32`s.
pub(crate) struct PairTable {
    slots: Vec<u32>,
    pub pairs: Vec<Pair>,
}

const EMPTY_SLOT: u32 = u32::MAX;

/// Resolves an [`XRef`] into its final name and value under one policy.
#[derive(Clone, Copy)]
pub(crate) struct Resolver<'a> {
    pub tree: &'a Tree,
    /// Whether user `trusted.overlay.*` names are escaped.
    pub escape: bool,
    pub prefixes: &'static [(u8, &'static [u8])],
    /// Redirect values made from digests (`/XX/rest`), for files without a payload.
    pub derived: &'a [u8],
    /// Per tree inode: start of its redirect in `derived`, or `u32::MAX`.
    pub derived_at: &'a [u32],
}

impl<'a> Resolver<'a> {
    /// The final name (escaped when it is a user `trusted.overlay.*`).
    pub fn name(&self, r: XRef) -> Cat<'a> {
        match r.slot {
            SLOT_METACOPY => Cat::plain(METACOPY),
            SLOT_REDIRECT => Cat::plain(REDIRECT),
            s if s >= SLOT_FIXED => Cat::plain(Fixed::ALL[(s - SLOT_FIXED) as usize].name()),
            i => escaped_name(
                &self.tree.inode(r.inode).xattrs[i as usize].name,
                self.escape,
            ),
        }
    }

    /// The final value.
    pub fn value(&self, r: XRef) -> Cat<'a> {
        match r.slot {
            SLOT_METACOPY => match external_of(self.tree, r.inode).1 {
                Some(d) => metacopy_value(d),
                None => Cat::EMPTY,
            },
            SLOT_REDIRECT => match external_of(self.tree, r.inode) {
                (Some(p), _) if !p.is_empty() => Cat {
                    head: b"/",
                    tail: p,
                },
                (_, Some(d)) => {
                    let start = self
                        .derived_at
                        .get(r.inode.index())
                        .copied()
                        .unwrap_or(u32::MAX);
                    let len = redirect_len(d);
                    match self.derived.get(start as usize..start as usize + len) {
                        Some(v) => Cat::plain(v),
                        None => Cat::EMPTY,
                    }
                }
                _ => Cat::EMPTY,
            },
            s if s >= SLOT_FIXED => Cat::plain(Fixed::ALL[(s - SLOT_FIXED) as usize].value()),
            i => Cat::plain(&self.tree.inode(r.inode).xattrs[i as usize].value),
        }
    }
}

/// Length of `/XX/rest` for a digest.
pub(crate) fn redirect_len(d: &Digest) -> usize {
    2 * d.as_bytes().len() + 2
}

/// Appends `/XX/rest` (lower-case hex) for a digest, as composefs-rs names its objects.
pub(crate) fn push_redirect(out: &mut Vec<u8>, d: &Digest) {
    out.push(b'/');
    out.extend_from_slice(d.object_path().as_bytes());
}

/// Hash of a pair, independent of how its name and value are split into [`Cat`] halves (an
/// escaped user name and a fixed writer name can be the same bytes).
fn pair_hash(name: &Cat<'_>, value: &Cat<'_>, scratch: &mut Vec<u8>) -> u32 {
    let n = fx_hash(name.contiguous(scratch), name.len() as u64);
    let v = fx_hash(value.contiguous(scratch), n);
    // Final avalanche (murmur3 fmix64) so the low bits, which pick the slot, depend on every
    // input bit.
    let mut h = v ^ (v >> 33);
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (h ^ (h >> 33)) as u32
}

/// Word-at-a-time multiplicative hash (FxHash's step): fast on the short names and 32-70 byte
/// digests and paths xattr values mostly are.
fn fx_hash(b: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let mut h = seed;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        h = step(h, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(w));
    }
    step(h, b.len() as u64)
}

impl PairTable {
    pub fn new(expected: usize) -> Self {
        let cap = (expected.max(8) * 2).next_power_of_two();
        PairTable {
            slots: vec![EMPTY_SLOT; cap],
            pairs: Vec::with_capacity(expected),
        }
    }

    /// The id of `r`'s (name, value) pair, adding it if new; counts one use.
    pub fn add_use(&mut self, res: &Resolver<'_>, r: XRef, scratch: &mut Vec<u8>) -> u32 {
        let name = res.name(r);
        let value = res.value(r);
        let hash = pair_hash(&name, &value, scratch);
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let id = self.slots[i];
            if id == EMPTY_SLOT {
                break;
            }
            let p = &self.pairs[id as usize];
            if p.hash == hash
                && res.name(p.xref).eq_bytes(&name)
                && res.value(p.xref).eq_bytes(&value)
            {
                self.pairs[id as usize].count_or_offset += 1;
                return id;
            }
            i = (i + 1) & mask;
        }
        let id = self.pairs.len() as u32;
        let (index, suffix) = split_prefix(name, res.prefixes);
        let filter_bit = xattr_filter_bit(index, suffix.contiguous(scratch)) as u8;
        let size = entry_size(suffix.len(), value.len()) as u32;
        debug_assert!(size <= 0xff_ffff && filter_bit < 32);
        self.pairs.push(Pair {
            xref: r,
            hash,
            count_or_offset: 1,
            size_bit: size | u32::from(filter_bit) << 24,
        });
        self.slots[i] = id;
        // Linear probing stays short up to a 3/4 load with a mixing hash.
        if self.pairs.len() * 4 > self.slots.len() * 3 {
            self.grow();
        }
        id
    }

    fn grow(&mut self) {
        let cap = self.slots.len() * 2;
        let mask = cap - 1;
        let mut slots = vec![EMPTY_SLOT; cap];
        for (id, p) in self.pairs.iter().enumerate() {
            let mut i = p.hash as usize & mask;
            while slots[i] != EMPTY_SLOT {
                i = (i + 1) & mask;
            }
            slots[i] = id as u32;
        }
        self.slots = slots;
    }

    /// Drops the hash index once every pair is known; ids stay valid.
    pub fn freeze(&mut self) {
        self.slots = Vec::new();
    }

    /// Turns use counts into shared-table offsets: `shared` lists the pair ids of the table in
    /// order; every other pair becomes [`NOT_SHARED`]. Returns the table size.
    pub fn place_shared(&mut self, shared: &[u32]) -> u64 {
        for p in &mut self.pairs {
            p.count_or_offset = NOT_SHARED;
        }
        let mut off = 0u64;
        for &id in shared {
            let p = &mut self.pairs[id as usize];
            p.count_or_offset = off as u32;
            off += u64::from(p.size());
        }
        off
    }
}

/// Writes one xattr entry (header, suffix, value, zero padding to 4).
pub(crate) fn write_entry(
    out: &mut impl Write,
    index: u8,
    suffix: Cat<'_>,
    value: Cat<'_>,
) -> io::Result<()> {
    let e = crate::format::XattrEntry {
        name_len: suffix.len() as u8,
        name_index: index,
        value_size: (value.len() as u16).into(),
    };
    out.write_all(zerocopy::IntoBytes::as_bytes(&e))?;
    suffix.write_to(out)?;
    value.write_to(out)?;
    let used = XATTR_ENTRY_SIZE as usize + suffix.len() + value.len();
    let pad = (4 - used % 4) % 4;
    out.write_all(&[0u8; 3][..pad])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cat_compares_as_concatenation() {
        let a = Cat {
            head: b"ab",
            tail: b"cd",
        };
        let b = Cat::plain(b"abcd");
        let c = Cat {
            head: b"abc",
            tail: b"",
        };
        let d = Cat {
            head: b"a",
            tail: b"bce",
        };
        assert!(a.eq_bytes(&b));
        assert_eq!(a.cmp_bytes(&c), Ordering::Greater);
        assert_eq!(c.cmp_bytes(&a), Ordering::Less);
        assert_eq!(a.cmp_bytes(&d), Ordering::Less);
        assert!(a.starts_with(b"abc"));
        assert!(!a.starts_with(b"abd"));
        assert!(a.eq_slice(b"abcd"));
        assert!(a.skip(3).eq_slice(b"d"));
        assert!(a.skip(1).eq_slice(b"bcd"));
        let mut buf = Vec::new();
        assert_eq!(a.contiguous(&mut buf), b"abcd");
    }

    #[test]
    fn escaping_adds_one_level() {
        assert!(escaped_name(b"trusted.overlay.x", true).eq_slice(b"trusted.overlay.overlay.x"));
        assert!(escaped_name(b"trusted.overlay.overlay.x", true)
            .eq_slice(b"trusted.overlay.overlay.overlay.x"));
        assert!(escaped_name(b"user.overlay.x", true).eq_slice(b"user.overlay.x"));
        assert!(escaped_name(b"trusted.overlay.x", false).eq_slice(b"trusted.overlay.x"));
    }

    #[test]
    fn entry_sizes_pad_to_four() {
        assert_eq!(entry_size(14, 1), 20);
        assert_eq!(entry_size(0, 0), 4);
        assert_eq!(entry_size(7, 1), 12);
    }
}
