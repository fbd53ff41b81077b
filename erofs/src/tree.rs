//! The one filesystem model shared by every input and output of the crate.
//!
//! A [`Tree`] is an arena of [`Inode`]s addressed by [`InodeId`]; the root is always
//! [`InodeId::ROOT`]. Directories hold their entries sorted by raw name bytes (the order every
//! composefs layout writes them in), and an entry points at an inode id, so one inode reachable
//! from several names is a hardlink. Each inode other than the root has exactly one *primary*
//! entry (`link == false`); the others are hardlink entries. The primary entry matters to the V1
//! layout, which places an inode where its breadth-first walk meets the primary entry (C's
//! "defining dumpfile line").
//!
//! Names, symlink targets, payloads and xattrs are raw bytes: nothing here assumes UTF-8.
//! The model keeps what sources say, even where the format later normalises it (the NLINK of a
//! dumpfile line, the SIZE of a FIFO), because C's writer lets those values reach the bytes.
//!
//! This module is the ground floor: it imports no input, writer or command-line code.

use std::fmt;
use std::sync::Arc;

/// Index of an inode in a [`Tree`]'s arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InodeId(pub u32);

impl InodeId {
    /// The root directory of every tree.
    pub const ROOT: InodeId = InodeId(0);

    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Longest name a directory entry can carry (EROFS and Linux both cap it at 255 bytes).
pub const NAME_MAX: usize = 255;

/// Modification time: signed seconds since the epoch and a nanosecond count.
///
/// The nanoseconds are not range-checked: C's dumpfile parser accepts any u32 and its writer
/// stores it verbatim, so the model must be able to carry it too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mtime {
    pub sec: i64,
    pub nsec: u32,
}

impl Mtime {
    pub const fn new(sec: i64, nsec: u32) -> Self {
        Mtime { sec, nsec }
    }
}

/// Which fs-verity hash an object digest uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HashAlgorithm {
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// Digest length in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The fs-verity algorithm number (`FS_VERITY_HASH_ALG_*`).
    pub const fn fsverity_id(self) -> u8 {
        match self {
            HashAlgorithm::Sha256 => 1,
            HashAlgorithm::Sha512 => 2,
        }
    }

    /// Lower-case name as used on kernel command lines and in the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }
}

/// An fs-verity digest of a file's content (sha256 or sha512).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Digest {
    Sha256([u8; 32]),
    Sha512(Box<[u8; 64]>),
}

impl Digest {
    /// Builds a digest from raw bytes; the length picks the algorithm (32 or 64).
    pub fn from_bytes(bytes: &[u8]) -> Option<Digest> {
        match bytes.len() {
            32 => Some(Digest::Sha256(bytes.try_into().ok()?)),
            64 => Some(Digest::Sha512(Box::new(bytes.try_into().ok()?))),
            _ => None,
        }
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        match self {
            Digest::Sha256(_) => HashAlgorithm::Sha256,
            Digest::Sha512(_) => HashAlgorithm::Sha512,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Digest::Sha256(d) => d,
            Digest::Sha512(d) => &d[..],
        }
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// The object path composefs uses for this digest: `XX/rest` in lower-case hex.
    pub fn object_path(&self) -> String {
        let h = self.to_hex();
        format!("{}/{}", &h[..2], &h[2..])
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm().name(), self.to_hex())
    }
}

/// One extended attribute: full name (`user.foo`, `trusted.overlay.x`, …) and value, raw bytes.
///
/// Name and value are shared slices: a large tree repeats a handful of names and labels
/// (`security.selinux`, its few contexts) on most inodes, and an [`XattrInterner`] lets them all
/// point at one copy. Equality, order and hashing are by content.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xattr {
    pub name: Arc<[u8]>,
    pub value: Arc<[u8]>,
}

impl Xattr {
    pub fn new(name: impl Into<Arc<[u8]>>, value: impl Into<Arc<[u8]>>) -> Self {
        Xattr {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Hands out shared copies of xattr names and values, so that inputs building large trees store
/// each repeated byte string once.
///
/// A direct-mapped cache of recent strings: bounded memory and constant time per lookup, at
/// the price of occasionally storing a string twice when two hot strings collide. Strings longer
/// than [`XattrInterner::MAX_LEN`] are never shared (they are rarely repeated).
pub struct XattrInterner {
    slots: Box<[Option<Arc<[u8]>>]>,
}

impl Default for XattrInterner {
    fn default() -> Self {
        XattrInterner::new()
    }
}

impl XattrInterner {
    /// Longest string looked up in the cache.
    pub const MAX_LEN: usize = 256;
    const SLOTS: usize = 4096;

    pub fn new() -> Self {
        XattrInterner {
            slots: vec![None; Self::SLOTS].into_boxed_slice(),
        }
    }

    /// A shared slice with the bytes of `b`.
    pub fn intern(&mut self, b: &[u8]) -> Arc<[u8]> {
        if b.len() > Self::MAX_LEN {
            return b.into();
        }
        let slot = &mut self.slots[crate::xxh32::xxh32(b, 0) as usize % Self::SLOTS];
        match slot {
            Some(s) if **s == *b => s.clone(),
            _ => slot.insert(b.into()).clone(),
        }
    }

    /// An xattr whose name and value are shared where they were seen before.
    pub fn xattr(&mut self, name: &[u8], value: &[u8]) -> Xattr {
        Xattr {
            name: self.intern(name),
            value: self.intern(value),
        }
    }
}

/// Where a regular file's bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileData {
    /// Content stored in the image itself; its length equals the inode's size.
    /// An empty file is `Inline` with no bytes.
    Inline(Box<[u8]>),
    /// Content stored outside the image, in an object store. `payload` is the object path the
    /// overlay redirect names (C writes it verbatim after a `/`); `digest` is the content's
    /// fs-verity digest, recorded in the overlay metacopy xattr.
    External {
        payload: Option<Box<[u8]>>,
        digest: Option<Digest>,
    },
}

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirEntry {
    pub name: Box<[u8]>,
    pub inode: InodeId,
    /// `true` for an extra name of an inode whose primary entry is elsewhere (a hardlink).
    pub link: bool,
}

/// A directory's entries, kept sorted by name bytes and unique. `.` and `..` are implicit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Directory {
    entries: Vec<DirEntry>,
}

impl Directory {
    pub fn entries(&self) -> &[DirEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Binary search by name. Appending in sorted order (the common case for dumpfiles and
    /// directory scans) is checked first so that building a large directory stays linear.
    fn position(&self, name: &[u8]) -> Result<usize, usize> {
        match self.entries.last() {
            None => Err(0),
            Some(last) if &*last.name < name => Err(self.entries.len()),
            _ => self.entries.binary_search_by(|e| (*e.name).cmp(name)),
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<&DirEntry> {
        self.position(name).ok().map(|i| &self.entries[i])
    }

    /// Removes every entry; the inodes stay in the arena until [`Tree::compact`].
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// What kind of file an inode is, with the data that only that kind has.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InodeKind {
    Directory(Directory),
    Regular(FileData),
    /// Symlink target, 1…4095 raw bytes.
    Symlink(Box<[u8]>),
    /// Device number as EROFS stores it (Linux `new_encode_dev`, 32 bits).
    CharDevice(u32),
    BlockDevice(u32),
    Fifo,
    Socket,
}

/// The type of an inode without its data; also the order of `S_IF*` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Directory,
    Regular,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::Fifo => 0o010000,
            FileType::CharDevice => 0o020000,
            FileType::Directory => 0o040000,
            FileType::BlockDevice => 0o060000,
            FileType::Regular => 0o100000,
            FileType::Symlink => 0o120000,
            FileType::Socket => 0o140000,
        }
    }

    /// Decodes the `S_IFMT` bits of a full mode; `None` for an unknown type.
    pub const fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & S_IFMT {
            0o010000 => FileType::Fifo,
            0o020000 => FileType::CharDevice,
            0o040000 => FileType::Directory,
            0o060000 => FileType::BlockDevice,
            0o100000 => FileType::Regular,
            0o120000 => FileType::Symlink,
            0o140000 => FileType::Socket,
            _ => return None,
        })
    }
}

/// Mask of the file-type bits of a mode.
pub const S_IFMT: u32 = 0o170000;

/// An inode: metadata common to every type, type-specific data, and xattrs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Inode {
    /// Permission bits only (`0o7777`: rwx, setuid, setgid, sticky). The type comes from `kind`.
    pub permissions: u16,
    pub uid: u32,
    pub gid: u32,
    /// Link count as the source gave it. Writers decide what they store (C keeps it for
    /// non-directories; directories and V2 recompute it).
    pub nlink: u32,
    pub mtime: Mtime,
    /// `st_size` as the source gave it. For regular files the content length; for symlinks the
    /// target length; for devices, FIFOs and sockets whatever the source said (C's V1 writer
    /// looks at it when choosing compact inodes); ignored for directories.
    pub size: u64,
    pub kind: InodeKind,
    /// Xattrs in a deterministic order: as the source gave them, with a later value for the
    /// same name replacing the earlier one in place (see [`Inode::set_xattr`]).
    pub xattrs: Vec<Xattr>,
}

impl Inode {
    /// A new inode of the given kind, with zeroed metadata, nlink 1 and size derived from the
    /// kind where it has one.
    pub fn new(kind: InodeKind, permissions: u16) -> Self {
        let size = match &kind {
            InodeKind::Regular(FileData::Inline(c)) => c.len() as u64,
            InodeKind::Symlink(t) => t.len() as u64,
            _ => 0,
        };
        Inode {
            permissions: permissions & 0o7777,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: Mtime::default(),
            size,
            kind,
            xattrs: Vec::new(),
        }
    }

    pub fn directory(permissions: u16) -> Self {
        let mut i = Inode::new(InodeKind::Directory(Directory::default()), permissions);
        i.nlink = 2;
        i
    }

    pub fn file_type(&self) -> FileType {
        match self.kind {
            InodeKind::Directory(_) => FileType::Directory,
            InodeKind::Regular(_) => FileType::Regular,
            InodeKind::Symlink(_) => FileType::Symlink,
            InodeKind::CharDevice(_) => FileType::CharDevice,
            InodeKind::BlockDevice(_) => FileType::BlockDevice,
            InodeKind::Fifo => FileType::Fifo,
            InodeKind::Socket => FileType::Socket,
        }
    }

    /// Full `st_mode`: type bits plus permission bits.
    pub fn mode(&self) -> u32 {
        self.file_type().mode_bits() | u32::from(self.permissions)
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, InodeKind::Directory(_))
    }

    pub fn as_dir(&self) -> Option<&Directory> {
        match &self.kind {
            InodeKind::Directory(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_dir_mut(&mut self) -> Option<&mut Directory> {
        match &mut self.kind {
            InodeKind::Directory(d) => Some(d),
            _ => None,
        }
    }

    /// Device number for character and block devices, 0 otherwise.
    pub fn rdev(&self) -> u32 {
        match self.kind {
            InodeKind::CharDevice(r) | InodeKind::BlockDevice(r) => r,
            _ => 0,
        }
    }

    pub fn xattr(&self, name: &[u8]) -> Option<&[u8]> {
        self.xattrs
            .iter()
            .find(|x| &*x.name == name)
            .map(|x| &*x.value)
    }

    /// Sets an xattr; an existing one of the same name has its value replaced in place, as C's
    /// `lcfs_node_set_xattr` does.
    pub fn set_xattr(&mut self, name: &[u8], value: &[u8]) {
        match self.xattrs.iter_mut().find(|x| &*x.name == name) {
            Some(x) => x.value = value.into(),
            None => {
                // Most inodes carry one or two xattrs: grow one at a time, not to 4.
                self.xattrs.reserve_exact(1);
                self.xattrs.push(Xattr::new(name, value))
            }
        }
    }

    /// Removes an xattr by name; returns whether it was present.
    pub fn remove_xattr(&mut self, name: &[u8]) -> bool {
        let before = self.xattrs.len();
        self.xattrs.retain(|x| &*x.name != name);
        before != self.xattrs.len()
    }
}

/// Why the tree refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("an entry named {0:?} already exists")]
    Exists(String),
    #[error("inode {0} is not a directory")]
    NotADirectory(u32),
    #[error("no entry named {0:?}")]
    NotFound(String),
}

/// Position of the first `byte` in `hay`, eight bytes at a time (the classic "has a zero
/// byte" word trick on `word ^ byte*0x01..01`). Inputs scan every name, path and dumpfile line
/// for separators and NULs, so this beats a byte loop by a wide margin on long lines.
pub(crate) fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(byte));
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes")) ^ pattern;
        // Exact for the lowest matching byte: borrows only propagate upwards.
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| at + i)
}

/// Shows raw name bytes readably in errors.
pub fn display_bytes(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Checks a single path component as every composefs writer needs it: 1…255 bytes, no `/`, no
/// NUL, not `.` or `..`.
pub fn check_name(name: &[u8]) -> Result<(), TreeError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > NAME_MAX {
        "longer than 255 bytes"
    } else if name == b"." || name == b".." {
        "`.` and `..` are implicit"
    } else if find_byte(name, b'/').is_some() {
        "contains `/`"
    } else if find_byte(name, 0).is_some() {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(TreeError::InvalidName {
        name: display_bytes(name),
        reason,
    })
}

/// A filesystem tree: an arena of inodes, the root at [`InodeId::ROOT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    inodes: Vec<Inode>,
}

impl Tree {
    /// A tree holding only a root directory.
    pub fn new(root: Inode) -> Self {
        assert!(root.is_dir(), "the root of a tree must be a directory");
        Tree { inodes: vec![root] }
    }

    pub fn root(&self) -> &Inode {
        &self.inodes[0]
    }

    pub fn root_mut(&mut self) -> &mut Inode {
        &mut self.inodes[0]
    }

    /// Number of inodes in the arena (including any not reachable since a removal).
    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn inode(&self, id: InodeId) -> &Inode {
        &self.inodes[id.index()]
    }

    pub fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        &mut self.inodes[id.index()]
    }

    /// All inodes of the arena with their ids.
    pub fn inodes(&self) -> impl ExactSizeIterator<Item = (InodeId, &Inode)> {
        self.inodes
            .iter()
            .enumerate()
            .map(|(i, n)| (InodeId(i as u32), n))
    }

    pub fn dir(&self, id: InodeId) -> Result<&Directory, TreeError> {
        self.inodes[id.index()]
            .as_dir()
            .ok_or(TreeError::NotADirectory(id.0))
    }

    fn dir_mut(&mut self, id: InodeId) -> Result<&mut Directory, TreeError> {
        self.inodes[id.index()]
            .as_dir_mut()
            .ok_or(TreeError::NotADirectory(id.0))
    }

    /// Adds a new inode under `parent` as its primary entry `name`.
    pub fn add(
        &mut self,
        parent: InodeId,
        name: &[u8],
        inode: Inode,
    ) -> Result<InodeId, TreeError> {
        let id = InodeId(u32::try_from(self.inodes.len()).expect("more than 2^32 inodes"));
        self.insert_entry(parent, name, id, false)?;
        self.inodes.push(inode);
        Ok(id)
    }

    /// Adds a hardlink entry `name` under `parent` to the existing inode `target`.
    pub fn link(&mut self, parent: InodeId, name: &[u8], target: InodeId) -> Result<(), TreeError> {
        self.insert_entry(parent, name, target, true)
    }

    /// Inserts a new entry in its sorted place; an existing entry of that name is an error.
    fn insert_entry(
        &mut self,
        parent: InodeId,
        name: &[u8],
        inode: InodeId,
        link: bool,
    ) -> Result<(), TreeError> {
        check_name(name)?;
        let dir = self.dir_mut(parent)?;
        let pos = match dir.position(name) {
            Ok(_) => return Err(TreeError::Exists(display_bytes(name))),
            Err(pos) => pos,
        };
        let name = name.into();
        dir.entries.insert(pos, DirEntry { name, inode, link });
        Ok(())
    }

    /// Inserts `name` → `target` under `parent`, replacing any entry of that name. Returns the
    /// entry that was replaced. The replaced inode stays in the arena until [`Tree::compact`].
    pub fn replace(
        &mut self,
        parent: InodeId,
        name: &[u8],
        target: InodeId,
        link: bool,
    ) -> Result<Option<DirEntry>, TreeError> {
        check_name(name)?;
        let dir = self.dir_mut(parent)?;
        let entry = DirEntry {
            name: name.into(),
            inode: target,
            link,
        };
        match dir.position(name) {
            Ok(i) => Ok(Some(std::mem::replace(&mut dir.entries[i], entry))),
            Err(i) => {
                dir.entries.insert(i, entry);
                Ok(None)
            }
        }
    }

    /// Adds an inode to the arena without naming it; name it with [`Tree::replace`].
    pub fn push_inode(&mut self, inode: Inode) -> InodeId {
        let id = InodeId(u32::try_from(self.inodes.len()).expect("more than 2^32 inodes"));
        self.inodes.push(inode);
        id
    }

    /// Removes the entry `name` from `parent`.
    pub fn unlink(&mut self, parent: InodeId, name: &[u8]) -> Result<DirEntry, TreeError> {
        let dir = self.dir_mut(parent)?;
        match dir.position(name) {
            Ok(i) => Ok(dir.entries.remove(i)),
            Err(_) => Err(TreeError::NotFound(display_bytes(name))),
        }
    }

    /// Empties a directory (its inodes stay in the arena until [`Tree::compact`]).
    pub fn clear_dir(&mut self, dir: InodeId) -> Result<(), TreeError> {
        self.dir_mut(dir)?.clear();
        Ok(())
    }

    /// Looks a name up in a directory.
    pub fn lookup(&self, dir: InodeId, name: &[u8]) -> Option<&DirEntry> {
        self.inodes[dir.index()].as_dir()?.get(name)
    }

    /// Resolves an absolute or relative path from the root. Empty components and `.` are
    /// skipped; `..` is not supported (returns `None`).
    pub fn lookup_path(&self, path: &[u8]) -> Option<InodeId> {
        let mut cur = InodeId::ROOT;
        for comp in path.split(|&b| b == b'/') {
            if comp.is_empty() || comp == b"." {
                continue;
            }
            if comp == b".." {
                return None;
            }
            cur = self.lookup(cur, comp)?.inode;
        }
        Some(cur)
    }

    /// Releases spare capacity left by growing the arena, directory entry lists and xattr lists
    /// one element at a time. Inputs that build large trees call it once at the end.
    pub fn shrink_to_fit(&mut self) {
        self.inodes.shrink_to_fit();
        for inode in &mut self.inodes {
            inode.xattrs.shrink_to_fit();
            if let InodeKind::Directory(d) = &mut inode.kind {
                d.entries.shrink_to_fit();
            }
        }
    }

    /// Number of entries across the tree that name each inode (hardlinks included), indexed by
    /// inode id. The root counts 1. Unreachable inodes count 0.
    pub fn reference_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.inodes.len()];
        counts[0] = 1;
        for inode in &self.inodes {
            if let Some(d) = inode.as_dir() {
                for e in d.entries() {
                    counts[e.inode.index()] = counts[e.inode.index()].saturating_add(1);
                }
            }
        }
        counts
    }

    /// Visits every reachable entry depth-first in sorted name order, calling `f(parent, entry,
    /// depth)`. Directories are entered only through primary entries, so a hardlinked directory
    /// is visited once. Iterative: deep trees cannot overflow the stack.
    pub fn walk(&self, mut f: impl FnMut(InodeId, &DirEntry, usize)) {
        let mut stack: Vec<(InodeId, usize)> = vec![(InodeId::ROOT, 0)];
        while let Some((dir, pos)) = stack.pop() {
            let Some(d) = self.inodes[dir.index()].as_dir() else {
                continue;
            };
            if let Some(e) = d.entries.get(pos) {
                stack.push((dir, pos + 1));
                f(dir, e, stack.len());
                if !e.link && self.inodes[e.inode.index()].is_dir() {
                    stack.push((e.inode, 0));
                }
            }
        }
    }

    /// Drops inodes that no entry reaches any more and renumbers the rest in their old order,
    /// then makes sure every reachable inode has exactly one primary entry: an inode whose
    /// primary entry was removed gets its first remaining name in depth-first order.
    pub fn compact(&mut self) {
        // Reachability through any entry (hardlinks included), from the root.
        let n = self.inodes.len();
        let mut reached = vec![false; n];
        reached[0] = true;
        let mut queue = vec![InodeId::ROOT];
        while let Some(id) = queue.pop() {
            if let Some(d) = self.inodes[id.index()].as_dir() {
                for e in d.entries() {
                    if !reached[e.inode.index()] {
                        reached[e.inode.index()] = true;
                        queue.push(e.inode);
                    }
                }
            }
        }
        let mut remap = vec![u32::MAX; n];
        let mut next = 0u32;
        for (i, r) in reached.iter().enumerate() {
            if *r {
                remap[i] = next;
                next += 1;
            }
        }
        if next as usize != n {
            let old = std::mem::take(&mut self.inodes);
            self.inodes = old
                .into_iter()
                .zip(reached.iter())
                .filter_map(|(inode, r)| r.then_some(inode))
                .collect();
            for inode in &mut self.inodes {
                if let Some(d) = inode.as_dir_mut() {
                    for e in &mut d.entries {
                        e.inode = InodeId(remap[e.inode.index()]);
                    }
                }
            }
        }
        self.normalize_primary_entries();
    }

    /// Makes the first name of each inode in depth-first sorted order its primary entry and
    /// every later name a link. This is the convention of composefs-rs and of `composefs-info
    /// dump` (which prints the first occurrence in full and later ones as `@` lines).
    pub fn normalize_primary_entries(&mut self) {
        let n = self.inodes.len();
        let mut seen = vec![false; n];
        seen[0] = true;
        // Walk with explicit indices so entries can be updated in place.
        let mut stack: Vec<(InodeId, usize)> = vec![(InodeId::ROOT, 0)];
        while let Some((dir, pos)) = stack.pop() {
            let len = match self.inodes[dir.index()].as_dir() {
                Some(d) => d.entries.len(),
                None => continue,
            };
            if pos >= len {
                continue;
            }
            stack.push((dir, pos + 1));
            let target = self.inodes[dir.index()].as_dir().unwrap().entries[pos].inode;
            let first = !seen[target.index()];
            seen[target.index()] = true;
            if let Some(d) = self.inodes[dir.index()].as_dir_mut() {
                d.entries[pos].link = !first;
            }
            if first && self.inodes[target.index()].is_dir() {
                stack.push((target, 0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &[u8]) -> Inode {
        Inode::new(InodeKind::Regular(FileData::Inline(content.into())), 0o644)
    }

    #[test]
    fn add_keeps_entries_sorted_and_unique() {
        let mut t = Tree::new(Inode::directory(0o755));
        for name in [&b"b"[..], b"a", b"c", b"\xff", b"+x"] {
            t.add(InodeId::ROOT, name, file(b"")).unwrap();
        }
        let names: Vec<&[u8]> = t
            .root()
            .as_dir()
            .unwrap()
            .entries()
            .iter()
            .map(|e| &*e.name)
            .collect();
        assert_eq!(names, [&b"+x"[..], b"a", b"b", b"c", b"\xff"]);
        assert!(matches!(
            t.add(InodeId::ROOT, b"a", file(b"")),
            Err(TreeError::Exists(_))
        ));
    }

    #[test]
    fn names_are_checked() {
        let mut t = Tree::new(Inode::directory(0o755));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0", &[b'x'; 256]] {
            assert!(t.add(InodeId::ROOT, bad, file(b"")).is_err(), "{bad:?}");
        }
        assert!(t.add(InodeId::ROOT, &[b'x'; 255], file(b"")).is_ok());
    }

    #[test]
    fn hardlinks_share_an_inode_and_compact_repairs_primaries() {
        let mut t = Tree::new(Inode::directory(0o755));
        let d = t.add(InodeId::ROOT, b"d", Inode::directory(0o755)).unwrap();
        let f = t.add(d, b"f", file(b"x")).unwrap();
        t.link(InodeId::ROOT, b"z", f).unwrap();
        assert_eq!(t.reference_counts()[f.index()], 2);
        // Removing the primary entry leaves the link; compaction makes it primary.
        t.unlink(InodeId::ROOT, b"d").unwrap();
        t.compact();
        assert_eq!(t.len(), 2);
        let e = t.lookup(InodeId::ROOT, b"z").unwrap();
        assert!(!e.link);
        assert_eq!(t.inode(e.inode).size, 1);
    }

    #[test]
    fn find_byte_matches_a_byte_loop() {
        let mut hay: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) | 1).collect();
        for len in 0..hay.len() {
            for at in 0..len {
                for b in [0u8, b' ', 0x80, 0xff] {
                    let saved = hay[at];
                    hay[at] = b;
                    let want = hay[..len].iter().position(|&c| c == b);
                    assert_eq!(find_byte(&hay[..len], b), want, "{len} {at} {b}");
                    hay[at] = saved;
                }
            }
            assert_eq!(find_byte(&hay[..len], 0), None);
        }
        // Bytes just above and below the needle do not match (borrow propagation).
        assert_eq!(find_byte(&[1, 0x20, 0x21, 0x1f, 0x20], 0x20), Some(1));
        assert_eq!(
            find_byte(&[0x21, 0x00, 0x1f, 0xa0, 0, 0, 0, 0, 0x20], 0x20),
            Some(8)
        );
    }

    #[test]
    fn walk_is_depth_first_sorted() {
        let mut t = Tree::new(Inode::directory(0o755));
        let a = t.add(InodeId::ROOT, b"a", Inode::directory(0o755)).unwrap();
        t.add(a, b"x", file(b"")).unwrap();
        t.add(InodeId::ROOT, b"b", file(b"")).unwrap();
        let mut seen = Vec::new();
        t.walk(|_, e, _| seen.push(e.name.clone()));
        assert_eq!(
            seen,
            vec![b"a"[..].into(), b"x"[..].into(), b"b"[..].into()]
        );
    }
}
