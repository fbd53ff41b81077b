//! The planning phase: from a borrowed tree to everything the emitter needs, without touching
//! or cloning the tree. In order:
//!
//! 1. writer order (BFS for V1, DFS for V2), including the V1 whiteout stubs;
//! 2. image-wide facts (minimum mtime, ACL flag, whiteout parents, the V1 version upgrade);
//! 3. validation in C's depth-first order, so the first error is the one C reports;
//! 4. each inode's final xattr list (escaped, writer-added, ordered) interned into a
//!    [`PairTable`] that counts uses, and the shared xattr table;
//! 5. sizes, compact/extended, placement and data blocks of every inode.
//!
//! Memory per written inode is one [`Node`] plus 4 bytes per xattr; per distinct xattr pair one
//! [`Pair`](super::xattrs::Pair). Cost is linear in the tree size (the shared table sort aside).

#![forbid(unsafe_code)]

use crate::format::{round_up, BLOCK_SIZE, INODES_START, SLOT_SIZE, XATTR_HEADER_SIZE};
use crate::tree::{
    display_bytes, Directory, FileData, FileType, InodeId, InodeKind, Mtime, Tree, Xattr,
};

use super::dirents::{dir_size, DirIter, Entry};
use super::policy::{Family, Order, Placement, Policy, SharedKey};
use super::xattrs::{
    escaped_name, Fixed, PairTable, Resolver, XRef, ACL_ACCESS, ACL_DEFAULT, METACOPY, NOT_SHARED,
    REDIRECT, SELINUX,
};
use super::WriteError;

/// Where a written inode comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Src {
    Tree(InodeId),
    /// V1 whiteout stub number `k` (named `%02x`).
    Stub(u8),
}

/// Node flag: a directory with a user whiteout among its primary entries.
const WHITEOUT_PARENT: u8 = 1;

/// One written inode (40 bytes: there is one per file).
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub src: Src,
    /// Writer index of the directory holding the primary entry (the root: itself).
    pub parent: u32,
    /// Start of this inode's pair ids in [`Plan::xattr_ids`].
    pub xattr_start: u32,
    flags: u8,
    pub compact: bool,
    /// Slot number (`position / 32`); the zero padding in front of the inode is the gap from
    /// the end of the previous one.
    pub nid: u64,
    pub n_blocks: u32,
    /// Inline tail bytes after the xattrs.
    pub tail: u32,
    /// First data block, relative to the start of the data area.
    pub first_block: u32,
}

/// What the data of an inode is, after the writer's rewrites.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Data<'t> {
    Dir(&'t Directory),
    /// Inline content, non-empty.
    Inline(&'t [u8]),
    /// External content of `size` > 0 bytes.
    External {
        size: u64,
        has_digest: bool,
    },
    Symlink(&'t [u8]),
    None,
}

/// The inode fields C would see, after the writer's rewrites.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta<'t> {
    pub ftype: FileType,
    pub permissions: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Mtime,
    /// The node's `st_size` (for devices, FIFOs and sockets as the source gave it).
    pub st_size: u64,
    pub rdev: u32,
    /// Link count of a non-directory.
    pub nlink: u32,
    pub data: Data<'t>,
}

impl Meta<'_> {
    pub fn mode(&self) -> u16 {
        (self.ftype.mode_bits() | u32::from(self.permissions)) as u16
    }
}

/// The whole plan of one image.
pub(crate) struct Plan<'t> {
    pub tree: &'t Tree,
    pub policy: Policy,
    pub nodes: Vec<Node>,
    /// Writer index of each tree inode (`u32::MAX`: not written).
    idx_of: Vec<u32>,
    /// V1 root only: which stub names are absent from the tree (so get a stub).
    stubs: Option<Box<[bool; 256]>>,
    stub_idx: Box<[u32; 256]>,
    /// Index of the root's `security.selinux` among its xattrs (copied to the stubs).
    root_selinux: Option<usize>,
    /// V2: number of entries naming each tree inode.
    ref_counts: Vec<u32>,
    /// Redirects derived from digests (see [`Resolver::derived`]).
    derived: Vec<u8>,
    derived_at: Vec<u32>,
    pub xattr_ids: Vec<u32>,
    pub pairs: PairTable,
    /// Pair ids of the shared table, in table order.
    pub shared: Vec<u32>,
    pub shared_size: u64,
    pub min_mtime: Mtime,
    pub has_acl: bool,
    pub inodes_end: u64,
    pub data_start: u64,
    pub n_data_blocks: u64,
}

const NONE: u32 = u32::MAX;

/// C's per-inode xattr budget (`LCFS_INODE_EXTERNAL_XATTR_MAX`).
const XATTR_BUDGET: i64 = (u16::MAX / 2) as i64;

impl<'t> Plan<'t> {
    /// Plans the image of `tree`. For V1, `min_version`/`max_version` are final (C's
    /// defaulting already applied); the upgrade rule is applied here.
    pub fn new(
        tree: &'t Tree,
        family: Family,
        min_version: u32,
        max_version: u32,
    ) -> Result<Self, WriteError> {
        let mut policy = Policy {
            family,
            composefs_version: match family {
                Family::V1 => min_version,
                Family::V2 => 2,
            },
        };
        if family == Family::V1 && (min_version > 1 || max_version > 1) {
            return Err(WriteError::InvalidVersion {
                min: min_version,
                max: max_version,
            });
        }
        let max_version = max_version.max(min_version);

        let root_dir = tree.root().as_dir().ok_or(WriteError::RootNotDirectory)?;
        let stubs = policy.overlay_rewrites().then(|| {
            let mut s = Box::new([false; 256]);
            for (k, name) in super::dirents::STUB_NAMES.iter().enumerate() {
                s[k] = root_dir.get(name).is_none();
            }
            s
        });
        let mut plan = Plan {
            tree,
            policy,
            nodes: Vec::with_capacity(tree.len() + 256),
            idx_of: vec![NONE; tree.len()],
            stubs,
            stub_idx: Box::new([NONE; 256]),
            root_selinux: tree.root().xattrs.iter().position(|x| &*x.name == SELINUX),
            ref_counts: Vec::new(),
            derived: Vec::new(),
            derived_at: Vec::new(),
            xattr_ids: Vec::new(),
            pairs: PairTable::new(0),
            shared: Vec::new(),
            shared_size: 0,
            min_mtime: tree.root().mtime,
            has_acl: false,
            inodes_end: 0,
            data_start: 0,
            n_data_blocks: 0,
        };
        match policy.order() {
            Order::BreadthFirst => plan.order_bfs()?,
            Order::DepthFirst => plan.order_dfs()?,
        }
        if family == Family::V2 {
            plan.ref_counts = tree.reference_counts();
        }
        let has_whiteouts = plan.scan_facts();
        if family == Family::V1 && min_version < 1 && max_version >= 1 && has_whiteouts {
            policy.composefs_version = 1;
        }
        plan.policy = policy;
        if policy.redirect_from_digest() {
            plan.derive_redirects();
        }
        plan.validate()?;
        plan.collect_xattrs();
        plan.build_shared_table();
        plan.layout()?;
        Ok(plan)
    }

    fn push(&mut self, src: Src, parent: u32) -> Result<u32, WriteError> {
        let idx = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i != NONE)
            .ok_or(WriteError::TooManyInodes)?;
        match src {
            Src::Tree(id) => {
                if self.idx_of[id.index()] != NONE {
                    return Err(WriteError::BadStructure {
                        path: path_of(self.tree, id),
                        reason: "inode reached by more than one primary entry",
                    });
                }
                self.idx_of[id.index()] = idx;
            }
            Src::Stub(k) => self.stub_idx[k as usize] = idx,
        }
        self.nodes.push(Node {
            src,
            parent,
            xattr_start: 0,
            flags: 0,
            compact: false,
            nid: 0,
            n_blocks: 0,
            tail: 0,
            first_block: 0,
        });
        Ok(idx)
    }

    /// C's `lcfs_compute_tree` queue: children in name order, hardlinks skipped.
    fn order_bfs(&mut self) -> Result<(), WriteError> {
        self.push(Src::Tree(InodeId::ROOT), 0)?;
        let mut i = 0usize;
        while i < self.nodes.len() {
            if let Src::Tree(id) = self.nodes[i].src {
                if let Some(dir) = self.tree.inode(id).as_dir() {
                    let stubs = if i == 0 { self.stubs.take() } else { None };
                    for (_, e) in DirIter::new(dir.entries(), stubs.as_deref()) {
                        match e {
                            Entry::Tree(e) if !e.link => {
                                self.push(Src::Tree(e.inode), i as u32)?;
                            }
                            Entry::Stub(k) => {
                                self.push(Src::Stub(k), i as u32)?;
                            }
                            _ => {}
                        }
                    }
                    if i == 0 {
                        self.stubs = stubs;
                    }
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// composefs-rs V2: a directory, then each entry in name order, subdirectories
    /// recursively; a leaf at its first occurrence (hardlink entries included).
    fn order_dfs(&mut self) -> Result<(), WriteError> {
        self.push(Src::Tree(InodeId::ROOT), 0)?;
        let mut stack: Vec<(InodeId, u32, usize)> = vec![(InodeId::ROOT, 0, 0)];
        while let Some(top) = stack.last_mut() {
            let (dir, me, pos) = *top;
            let entries = self.tree.dir(dir).map(|d| d.entries()).unwrap_or(&[]);
            let Some(e) = entries.get(pos) else {
                stack.pop();
                continue;
            };
            top.2 += 1;
            let target = self.tree.inode(e.inode);
            if target.is_dir() {
                if !e.link {
                    let idx = self.push(Src::Tree(e.inode), me)?;
                    stack.push((e.inode, idx, 0));
                }
            } else if self.idx_of[e.inode.index()] == NONE {
                self.push(Src::Tree(e.inode), me)?;
            }
        }
        Ok(())
    }

    /// Minimum mtime, HAS_ACL and whiteout parents; returns whether any user whiteout exists.
    fn scan_facts(&mut self) -> bool {
        let tree = self.tree;
        let mut any_whiteout = false;
        let mut min = tree.root().mtime;
        for i in 0..self.nodes.len() {
            let Src::Tree(id) = self.nodes[i].src else {
                continue;
            };
            let inode = tree.inode(id);
            let m = inode.mtime;
            if (m.sec, m.nsec) < (min.sec, min.nsec) {
                min = m;
            }
            if inode
                .xattrs
                .iter()
                .any(|x| &*x.name == ACL_ACCESS || &*x.name == ACL_DEFAULT)
            {
                self.has_acl = true;
            }
            if is_whiteout(&inode.kind) && i != 0 {
                any_whiteout = true;
                let p = self.nodes[i].parent as usize;
                self.nodes[p].flags |= WHITEOUT_PARENT;
            }
        }
        self.min_mtime = min;
        any_whiteout
    }

    /// The inode fields of written inode `i`.
    pub fn meta(&self, i: usize) -> Meta<'t> {
        let tree = self.tree;
        let root = tree.root();
        match self.nodes[i].src {
            Src::Stub(_) => Meta {
                ftype: FileType::CharDevice,
                permissions: 0o644,
                uid: root.uid,
                gid: root.gid,
                mtime: root.mtime,
                st_size: 0,
                rdev: 0,
                nlink: 1,
                data: Data::None,
            },
            Src::Tree(id) => {
                let n = tree.inode(id);
                let mut m = Meta {
                    ftype: n.file_type(),
                    permissions: n.permissions & 0o7777,
                    uid: n.uid,
                    gid: n.gid,
                    mtime: n.mtime,
                    st_size: n.size,
                    rdev: n.rdev(),
                    nlink: n.nlink,
                    data: Data::None,
                };
                if self.policy.family == Family::V2 {
                    m.nlink = self.ref_counts[id.index()];
                }
                match &n.kind {
                    InodeKind::Directory(d) => m.data = Data::Dir(d),
                    InodeKind::Regular(FileData::Inline(c)) => {
                        m.st_size = c.len() as u64;
                        if !c.is_empty() {
                            m.data = Data::Inline(c);
                        }
                    }
                    InodeKind::Regular(FileData::External { digest, .. }) if n.size > 0 => {
                        m.data = Data::External {
                            size: n.size,
                            has_digest: digest.is_some(),
                        };
                    }
                    InodeKind::Symlink(t) => {
                        m.st_size = t.len() as u64;
                        m.data = Data::Symlink(t);
                    }
                    InodeKind::CharDevice(0) if self.policy.overlay_rewrites() && i != 0 => {
                        // An escaped whiteout: an empty regular file.
                        m.ftype = FileType::Regular;
                        m.st_size = 0;
                    }
                    _ => {}
                }
                m
            }
        }
    }

    /// Directory link count: 2 + subdirectories named by primary entries.
    pub fn dir_nlink(&self, d: &Directory) -> u32 {
        let subdirs = d
            .entries()
            .iter()
            .filter(|e| !e.link && self.tree.inode(e.inode).is_dir())
            .count();
        2u32.saturating_add(subdirs as u32)
    }

    /// The directory's written entries (with `.`, `..` and, for the V1 root, the stubs).
    pub fn dir_entries(&self, i: usize, d: &'t Directory) -> DirIter<'t, '_> {
        let stubs = if i == 0 { self.stubs.as_deref() } else { None };
        DirIter::new(d.entries(), stubs)
    }

    /// Writer index an entry of directory `i` points at.
    pub fn entry_target(&self, i: usize, e: Entry<'_>) -> Result<usize, WriteError> {
        let idx = match e {
            Entry::Tree(e) => self.idx_of[e.inode.index()],
            Entry::Dot => i as u32,
            Entry::DotDot => self.nodes[i].parent,
            Entry::Stub(k) => self.stub_idx[k as usize],
        };
        if idx == NONE {
            let Entry::Tree(e) = e else {
                unreachable!("dots and stubs always have inodes")
            };
            return Err(WriteError::BadStructure {
                path: path_of(self.tree, e.inode),
                reason: "hardlink to an inode that no primary entry reaches",
            });
        }
        Ok(idx as usize)
    }

    /// Writer-added xattrs of written inode `i`, in the order C adds them.
    fn writer_xattrs(&self, i: usize, out: &mut Vec<XRef>) {
        let Src::Tree(id) = self.nodes[i].src else {
            return;
        };
        let inode = self.tree.inode(id);
        if let InodeKind::Regular(FileData::External { payload, digest }) = &inode.kind {
            if inode.size > 0 {
                out.push(XRef::metacopy(id));
                if payload.as_ref().is_some_and(|p| !p.is_empty())
                    || (digest.is_some() && self.policy.redirect_from_digest())
                {
                    out.push(XRef::redirect(id));
                }
            }
        }
        if !self.policy.overlay_rewrites() {
            return;
        }
        if i != 0 && is_whiteout(&inode.kind) {
            out.push(XRef::fixed(Fixed::EscapedWhiteout));
            out.push(XRef::fixed(Fixed::UserWhiteout));
        }
        if self.nodes[i].flags & WHITEOUT_PARENT != 0 {
            out.push(XRef::fixed(Fixed::EscapedWhiteouts));
            out.push(XRef::fixed(Fixed::UserWhiteouts));
            if self.policy.opaque_whiteout_parents() {
                out.push(XRef::fixed(Fixed::EscapedOpaqueX));
                out.push(XRef::fixed(Fixed::UserOpaqueX));
            }
        }
        if i == 0 {
            out.push(XRef::fixed(Fixed::OpaqueY));
        }
    }

    pub fn resolver(&self) -> Resolver<'_> {
        Resolver {
            tree: self.tree,
            escape: true,
            prefixes: self.policy.prefixes(),
            derived: &self.derived,
            derived_at: &self.derived_at,
        }
    }

    /// Object-path redirects for written external files that have a digest but no payload.
    fn derive_redirects(&mut self) {
        let tree = self.tree;
        for n in &self.nodes {
            let Src::Tree(id) = n.src else { continue };
            let inode = tree.inode(id);
            if let InodeKind::Regular(FileData::External {
                payload,
                digest: Some(d),
            }) = &inode.kind
            {
                if inode.size > 0 && payload.as_ref().is_none_or(|p| p.is_empty()) {
                    if self.derived_at.is_empty() {
                        self.derived_at = vec![NONE; tree.len()];
                    }
                    self.derived_at[id.index()] = self.derived.len() as u32;
                    super::xattrs::push_redirect(&mut self.derived, d);
                }
            }
        }
    }

    /// The final xattrs of written inode `i` in on-disk order.
    fn final_xattrs(&self, i: usize, out: &mut Vec<XRef>, added: &mut Vec<XRef>) {
        out.clear();
        added.clear();
        let res = self.resolver();
        match self.nodes[i].src {
            Src::Stub(_) => {
                if let Some(s) = self.root_selinux {
                    out.push(XRef::user(InodeId::ROOT, s));
                }
            }
            Src::Tree(id) => {
                self.writer_xattrs(i, added);
                let user = &self.tree.inode(id).xattrs;
                if self.policy.sort_inode_xattrs() {
                    out.extend((0..user.len()).map(|k| XRef::user(id, k)));
                    // Setting an xattr replaces one of the same name.
                    for &a in added.iter() {
                        let an = res.name(a);
                        match out.iter().position(|&x| res.name(x).eq_bytes(&an)) {
                            Some(p) => out[p] = a,
                            None => out.push(a),
                        }
                    }
                    out.sort_unstable_by(|&a, &b| res.name(a).cmp_bytes(&res.name(b)));
                } else {
                    // composefs-rs: its own xattrs first, then the user's by original name.
                    out.extend(added.iter().copied());
                    let start = out.len();
                    out.extend((0..user.len()).map(|k| XRef::user(id, k)));
                    out[start..].sort_unstable_by(|a, b| {
                        let na = &user[a.user_index().unwrap_or(0)].name;
                        let nb = &user[b.user_index().unwrap_or(0)].name;
                        na.cmp(nb)
                    });
                }
            }
        }
    }

    /// Interns every inode's final xattrs and counts uses.
    fn collect_xattrs(&mut self) {
        let total: usize = self.nodes.len()
            + self
                .nodes
                .iter()
                .map(|n| match n.src {
                    Src::Tree(id) => self.tree.inode(id).xattrs.len(),
                    Src::Stub(_) => 0,
                })
                .sum::<usize>();
        let res = self.resolver();
        let mut table = PairTable::new(total / 2);
        let mut ids = Vec::with_capacity(total);
        let mut starts = Vec::with_capacity(self.nodes.len());
        let (mut list, mut added, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..self.nodes.len() {
            starts.push(ids.len() as u32);
            self.final_xattrs(i, &mut list, &mut added);
            for &r in &list {
                ids.push(table.add_use(&res, r, &mut scratch));
            }
        }
        table.freeze();
        for (n, s) in self.nodes.iter_mut().zip(starts) {
            n.xattr_start = s;
        }
        self.pairs = table;
        self.xattr_ids = ids;
    }

    /// Pair ids of written inode `i`.
    pub fn xattrs_of(&self, i: usize) -> &[u32] {
        let start = self.nodes[i].xattr_start as usize;
        let end = self
            .nodes
            .get(i + 1)
            .map_or(self.xattr_ids.len(), |n| n.xattr_start as usize);
        &self.xattr_ids[start..end]
    }

    /// Shares every pair used by more than one inode; orders and places the table.
    fn build_shared_table(&mut self) {
        let shared = {
            let res = self.resolver();
            let pairs = &self.pairs.pairs;
            let mut shared: Vec<u32> = (0..pairs.len() as u32)
                .filter(|&id| pairs[id as usize].count() > 1)
                .collect();
            let key = |id: u32| {
                let p = &pairs[id as usize];
                let name = res.name(p.xref);
                let (index, suffix) = super::xattrs::split_prefix(name, res.prefixes);
                SharedKey {
                    name,
                    index,
                    suffix,
                    value: res.value(p.xref),
                }
            };
            let policy = self.policy;
            shared.sort_unstable_by(|&a, &b| policy.shared_cmp(&key(a), &key(b)));
            shared
        };
        self.shared_size = self.pairs.place_shared(&shared);
        self.shared = shared;
    }

    /// Whether xattr number `k` of an inode, whose first `n_shared_before` shared-table pairs
    /// were referenced, is referenced from the shared table (at most 128 per inode).
    pub fn is_shared(&self, id: u32, n_shared_before: usize) -> bool {
        self.pairs.pairs[id as usize].shared_offset() != NOT_SHARED
            && n_shared_before < self.policy.max_shared_refs()
    }

    /// (number of shared references, size of the xattr area) of written inode `i`.
    pub fn xattr_area(&self, i: usize) -> (usize, u64) {
        let ids = self.xattrs_of(i);
        if ids.is_empty() {
            return (0, 0);
        }
        let mut n_shared = 0usize;
        let mut local = 0u64;
        for &id in ids {
            if self.is_shared(id, n_shared) {
                n_shared += 1;
            } else {
                local += u64::from(self.pairs.pairs[id as usize].size());
            }
        }
        (n_shared, XATTR_HEADER_SIZE + 4 * n_shared as u64 + local)
    }

    /// Whole data blocks and inline tail bytes before placement.
    fn data_size(&self, i: usize, meta: &Meta<'t>) -> Result<(u32, u32), WriteError> {
        Ok(match meta.data {
            Data::Dir(d) => {
                // Every entry must point at a written inode; check while sizing.
                let mut err = None;
                let it = self.dir_entries(i, d).map(|(name, e)| {
                    if err.is_none() {
                        if let Err(x) = self.entry_target(i, e) {
                            err = Some(x);
                        }
                    }
                    name.len()
                });
                let s = dir_size(it);
                if let Some(e) = err {
                    return Err(e);
                }
                s
            }
            Data::Inline(c) => {
                let len = c.len() as u64;
                match self.policy.placement() {
                    Placement::V1 => {
                        let (mut n, mut t) = (len / BLOCK_SIZE, len % BLOCK_SIZE);
                        if t > BLOCK_SIZE / 2 {
                            n += 1;
                            t = 0;
                        }
                        (n as u32, t as u32)
                    }
                    Placement::V2 => (0, len as u32),
                }
            }
            Data::External { size, has_digest } => {
                (0, 4 * self.policy.chunking(size, has_digest).1 as u32)
            }
            Data::Symlink(t) => (0, t.len() as u32),
            Data::None => (0, 0),
        })
    }

    /// Sizes, compact decision, placement and data blocks of every inode (§2.2, §2.6).
    fn layout(&mut self) -> Result<(), WriteError> {
        let mut pos = INODES_START;
        let mut blocks = 0u64;
        for i in 0..self.nodes.len() {
            let meta = self.meta(i);
            let (mut n_blocks, mut tail) = self.data_size(i, &meta)?;
            let (nlink, size) = match meta.data {
                Data::Dir(d) => (
                    self.dir_nlink(d),
                    u64::from(n_blocks) * BLOCK_SIZE + u64::from(tail),
                ),
                _ => (meta.nlink, meta.st_size),
            };
            let compact = !self.policy.always_extended()
                && meta.mtime == self.min_mtime
                && nlink <= u32::from(u16::MAX)
                && meta.uid <= u32::from(u16::MAX)
                && meta.gid <= u32::from(u16::MAX)
                && size <= u64::from(u32::MAX);
            let h: u64 = if compact { 32 } else { 64 };
            let (_, x) = self.xattr_area(i);
            let slot_pos = round_up(pos, SLOT_SIZE);
            let extra = match self.policy.placement() {
                Placement::V1 => pad_v1(&meta, slot_pos, h + x, &mut n_blocks, &mut tail),
                Placement::V2 => pad_v2(&meta, slot_pos, h + x, tail),
            };
            let at = slot_pos + extra;
            // V2 keeps all inline data after the inode and only pads to the next block, so data
            // that cannot fit in one block would cross a boundary (or, at a multiple of 4096,
            // leave a block it never writes): the kernel refuses such an image. composefs-rs
            // never inlines that much; we refuse rather than write an unreadable image.
            if self.policy.placement() == Placement::V2 && tail > 0 {
                let start = (at + h + x) % BLOCK_SIZE;
                if u64::from(tail) >= BLOCK_SIZE || start + u64::from(tail) > BLOCK_SIZE {
                    return Err(WriteError::BadStructure {
                        path: self.path(i),
                        reason: "inline data too large for the V2 layout (it would cross a block)",
                    });
                }
            }
            let node = &mut self.nodes[i];
            node.compact = compact;
            node.nid = at / SLOT_SIZE;
            node.n_blocks = n_blocks;
            node.tail = tail;
            node.first_block = blocks as u32;
            blocks += u64::from(n_blocks);
            pos = at + h + x + u64::from(tail);
        }
        self.inodes_end = round_up(pos, SLOT_SIZE);
        self.data_start = round_up(self.inodes_end + self.shared_size, BLOCK_SIZE);
        self.n_data_blocks = blocks;
        if self.nodes[0].nid > u64::from(u16::MAX) {
            return Err(WriteError::TooManyInodes);
        }
        Ok(())
    }

    /// Checks, in C's depth-first order, everything C's writer would refuse.
    fn validate(&self) -> Result<(), WriteError> {
        let tree = self.tree;
        let mut path: Vec<u8> = Vec::new();
        // (dir, next entry, path length, whiteout adds already checked)
        let mut stack: Vec<(InodeId, usize, usize, bool)> = vec![];
        self.validate_inode(InodeId::ROOT, b"/")?;
        stack.push((InodeId::ROOT, 0, 0, false));
        while let Some(top) = stack.last_mut() {
            let (dir, pos, plen, _) = *top;
            let Some(e) = tree.dir(dir).ok().and_then(|d| d.entries().get(pos)) else {
                stack.pop();
                continue;
            };
            top.1 += 1;
            if e.link {
                continue;
            }
            path.truncate(plen);
            path.push(b'/');
            path.extend_from_slice(&e.name);
            self.validate_inode(e.inode, &path)?;
            let child = tree.inode(e.inode);
            if self.policy.overlay_rewrites() && is_whiteout(&child.kind) {
                let top = stack.last_mut().expect("parent frame");
                if !top.3 {
                    top.3 = true;
                    let adds = self.parent_adds(true, false);
                    if let Err(k) = check_budget(&tree.inode(dir).xattrs, &adds) {
                        return Err(budget_error(&path[..plen], adds[k].0));
                    }
                }
            }
            if child.is_dir() {
                stack.push((e.inode, 0, path.len(), false));
            }
        }
        if self.policy.overlay_rewrites() {
            let root_has_whiteouts = self.nodes[0].flags & WHITEOUT_PARENT != 0;
            let adds = self.parent_adds(root_has_whiteouts, true);
            if let Err(k) = check_budget(&tree.root().xattrs, &adds) {
                return Err(budget_error(b"/", adds[k].0));
            }
        }
        Ok(())
    }

    /// Xattrs the writer adds to a directory with whiteouts (when `whiteouts`), then, for
    /// the root, `opaque=y`: (name, value length).
    fn parent_adds(&self, whiteouts: bool, root: bool) -> Vec<(&'static [u8], usize)> {
        let mut v = Vec::new();
        if whiteouts {
            v.push(Fixed::EscapedWhiteouts);
            v.push(Fixed::UserWhiteouts);
            if self.policy.opaque_whiteout_parents() {
                v.push(Fixed::EscapedOpaqueX);
                v.push(Fixed::UserOpaqueX);
            }
        }
        if root {
            v.push(Fixed::OpaqueY);
        }
        v.into_iter().map(|f| (f.name(), f.value().len())).collect()
    }

    /// Per-inode checks: xattr limits, external file size, symlink target.
    fn validate_inode(&self, id: InodeId, path: &[u8]) -> Result<(), WriteError> {
        let inode = self.tree.inode(id);
        let path_s = || display_path(path);
        let mut budget = 0i64;
        for (k, x) in inode.xattrs.iter().enumerate() {
            if x.name.is_empty() || x.name.len() > 255 || x.name.contains(&0) {
                return Err(WriteError::XattrName {
                    path: path_s(),
                    name: display_bytes(&x.name),
                });
            }
            if x.value.len() > usize::from(u16::MAX) {
                return Err(WriteError::XattrValue {
                    path: path_s(),
                    name: display_bytes(&x.name),
                });
            }
            if inode.xattrs[..k].iter().any(|y| y.name == x.name) {
                return Err(WriteError::DuplicateXattr {
                    path: path_s(),
                    name: display_bytes(&x.name),
                });
            }
            budget += 7 + x.name.len() as i64 + x.value.len() as i64;
        }
        if !inode.xattrs.is_empty() && budget + 12 > XATTR_BUDGET {
            return Err(WriteError::XattrBudget {
                path: path_s(),
                name: display_bytes(&inode.xattrs.last().expect("non-empty").name),
            });
        }
        let mut adds: [(&[u8], usize); 2] = [(b"", 0); 2];
        let mut n_adds = 0;
        match &inode.kind {
            InodeKind::Regular(FileData::External { payload, digest }) if inode.size > 0 => {
                let chunks = self.policy.chunking(inode.size, digest.is_some()).1;
                if chunks > MAX_CHUNKS {
                    return Err(WriteError::FileTooLarge {
                        path: path_s(),
                        size: inode.size,
                    });
                }
                adds[0] = (
                    METACOPY,
                    digest.as_ref().map_or(0, |d| 4 + d.as_bytes().len()),
                );
                n_adds = 1;
                if let Some(p) = payload.as_ref().filter(|p| !p.is_empty()) {
                    adds[1] = (REDIRECT, 1 + p.len());
                    n_adds = 2;
                } else if let Some(d) = digest
                    .as_ref()
                    .filter(|_| self.policy.redirect_from_digest())
                {
                    adds[1] = (REDIRECT, super::xattrs::redirect_len(d));
                    n_adds = 2;
                }
            }
            InodeKind::Symlink(t) if t.is_empty() || t.len() > 4095 || t.contains(&0) => {
                return Err(WriteError::InvalidSymlink { path: path_s() });
            }
            k if self.policy.overlay_rewrites() && id != InodeId::ROOT && is_whiteout(k) => {
                adds = [
                    (Fixed::EscapedWhiteout.name(), 0),
                    (Fixed::UserWhiteout.name(), 0),
                ];
                n_adds = 2;
            }
            _ => {}
        }
        if let Err(k) = check_budget(&inode.xattrs, &adds[..n_adds]) {
            return Err(budget_error(path, adds[k].0));
        }
        Ok(())
    }
}

/// C's limit on block-map entries of an external file (`LCFS_MAX_NONINLINE_CHUNKS`).
const MAX_CHUNKS: u64 = 1024;

fn budget_error(path: &[u8], name: &[u8]) -> WriteError {
    WriteError::XattrBudget {
        path: display_path(path),
        name: display_bytes(name),
    }
}

fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        display_bytes(path)
    }
}

/// A user whiteout: a character device with device number 0.
fn is_whiteout(kind: &InodeKind) -> bool {
    matches!(kind, InodeKind::CharDevice(0))
}

/// Replays C's per-inode xattr size accounting (`lcfs_node_set_xattr_internal`) over the
/// writer's additions to an inode whose user xattrs are `user`. C writes a deep clone of the
/// tree, and the clone starts every inode's running size at 0 whatever xattrs it copied; the
/// size is unsigned, so replacing an existing xattr can wrap it below zero, and the next check
/// then fails. Returns the index of the first addition that C would refuse.
fn check_budget(user: &[Xattr], adds: &[(&[u8], usize)]) -> Result<(), usize> {
    let mut n = user.len() as i64;
    let mut size: i64 = 0;
    for (k, &(name, vlen)) in adds.iter().enumerate() {
        let existing = adds[..k]
            .iter()
            .rev()
            .find(|(a, _)| *a == name)
            .map(|&(_, v)| v)
            .or_else(|| {
                user.iter()
                    .find(|x| escaped_name(&x.name, true).eq_slice(name))
                    .map(|x| x.value.len())
            });
        if let Some(old) = existing {
            n -= 1;
            if n > 0 {
                size -= 7 + name.len() as i64 + old as i64;
            } else {
                size = 0;
            }
        }
        let mut entry = 7 + name.len() as i64 + vlen as i64;
        if n == 0 {
            entry += 12;
        }
        // A negative sum is a wrapped, huge size_t in C.
        if size + entry < 0 || size + entry > XATTR_BUDGET {
            return Err(k);
        }
        size += entry;
        n += 1;
    }
    Ok(())
}

/// §2.6 V1: padding in front of an inode at slot position `pos` whose inode header and
/// xattrs take `non_tail` bytes, so that its tail does not cross a block boundary. May turn
/// the tail into a data block (symlink promotion, oversized chunk tables).
fn pad_v1(meta: &Meta<'_>, pos: u64, non_tail: u64, n_blocks: &mut u32, tail: &mut u32) -> u64 {
    let t = u64::from(*tail);
    if let Data::Symlink(_) = meta.data {
        let total = non_tail + t;
        if total / BLOCK_SIZE > 0 {
            *n_blocks += 1;
            *tail = 0;
        }
        if pos / BLOCK_SIZE != (pos + total - 1) / BLOCK_SIZE {
            return round_up(pos, BLOCK_SIZE) - pos;
        }
        return 0;
    }
    let remainder = BLOCK_SIZE - (pos + non_tail) % BLOCK_SIZE;
    if remainder >= t {
        return 0;
    }
    let extra = round_up(remainder, SLOT_SIZE);
    if t <= BLOCK_SIZE - (pos + non_tail + extra) % BLOCK_SIZE {
        return extra;
    }
    *n_blocks += 1;
    *tail = 0;
    round_up(pos, BLOCK_SIZE) - pos
}

/// §2.6 V2: padding for FLAT_INLINE inodes whose tail would cross (or end on) a boundary.
fn pad_v2(meta: &Meta<'_>, pos: u64, non_tail: u64, tail: u32) -> u64 {
    let inline = match meta.data {
        Data::Dir(_) | Data::Inline(_) | Data::Symlink(_) => tail > 0,
        _ => false,
    };
    if !inline {
        return 0;
    }
    let start = pos + non_tail;
    let end = start + u64::from(tail) % BLOCK_SIZE;
    if (start - 1) / BLOCK_SIZE == end / BLOCK_SIZE {
        return 0;
    }
    let pad = BLOCK_SIZE - (start - 1) % BLOCK_SIZE;
    round_up(pos + pad, SLOT_SIZE) - pos
}

/// The path of a tree inode's primary entry, for error messages (a full search: errors only).
pub(crate) fn path_of(tree: &Tree, target: InodeId) -> String {
    if target == InodeId::ROOT {
        return "/".to_owned();
    }
    let mut found = None;
    let mut stack: Vec<(InodeId, usize, usize)> = vec![(InodeId::ROOT, 0, 0)];
    let mut path: Vec<u8> = Vec::new();
    let mut seen = vec![false; tree.len()];
    seen[0] = true;
    'walk: while let Some(top) = stack.last_mut() {
        let (dir, pos, plen) = *top;
        let Some(e) = tree.dir(dir).ok().and_then(|d| d.entries().get(pos)) else {
            stack.pop();
            continue;
        };
        top.1 += 1;
        path.truncate(plen);
        path.push(b'/');
        path.extend_from_slice(&e.name);
        if e.inode == target {
            found = Some(path.clone());
            if !e.link {
                break 'walk;
            }
        }
        if !e.link && tree.inode(e.inode).is_dir() && !seen[e.inode.index()] {
            seen[e.inode.index()] = true;
            stack.push((e.inode, 0, path.len()));
        }
    }
    found.map_or_else(
        || format!("<unreachable inode {}>", target.0),
        |p| display_bytes(&p),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_of(data: Data<'static>) -> Meta<'static> {
        Meta {
            ftype: FileType::Regular,
            permissions: 0o644,
            uid: 0,
            gid: 0,
            mtime: Mtime::default(),
            st_size: 0,
            rdev: 0,
            nlink: 1,
            data,
        }
    }

    #[test]
    fn v1_tail_padding_moves_the_inode_to_the_block_end() {
        // §2.6: a 2048-byte inline file whose slot-aligned start would be 11680 (compact, no
        // xattrs) is placed at 12256 and its tail starts at 12288.
        let m = meta_of(Data::Inline(&[0u8; 2048]));
        let (mut n, mut t) = (0, 2048);
        let extra = pad_v1(&m, 11680, 32, &mut n, &mut t);
        assert_eq!(11680 + extra, 12256);
        assert_eq!((n, t), (0, 2048));
        // Room enough: no padding.
        let (mut n, mut t) = (0, 100);
        assert_eq!(pad_v1(&m, 8192, 32, &mut n, &mut t), 0);
    }

    #[test]
    fn v1_full_chunk_tables_fit_only_when_aligned() {
        let m = meta_of(Data::External {
            size: 1 << 53,
            has_digest: false,
        });
        // Header + xattrs a multiple of 32: the 4096-byte table starts a block.
        let (mut n, mut t) = (0, 4096);
        let extra = pad_v1(&m, 4096 + 320, 64, &mut n, &mut t);
        assert_eq!((4096 + 320 + extra + 64) % 4096, 0);
        assert_eq!((n, t), (0, 4096));
        // Otherwise the table becomes a data block and the inode starts a block.
        let (mut n, mut t) = (0, 4096);
        let extra = pad_v1(&m, 4096 + 320, 64 + 20, &mut n, &mut t);
        assert_eq!(4096 + 320 + extra, 8192);
        assert_eq!((n, t), (1, 0));
    }

    #[test]
    fn v1_symlink_promotion() {
        // §2.6: compact, no xattrs: 4063 bytes inline at a block start, 4064 promoted.
        let m = meta_of(Data::Symlink(b"x"));
        let (mut n, mut t) = (0, 4063);
        assert_eq!(pad_v1(&m, 1152, 32, &mut n, &mut t), 4096 - 1152);
        assert_eq!((n, t), (0, 4063));
        let (mut n, mut t) = (0, 4064);
        assert_eq!(pad_v1(&m, 1152, 32, &mut n, &mut t), 4096 - 1152);
        assert_eq!((n, t), (1, 0));
        // 4050 bytes with 40 bytes of xattrs: promoted.
        let (mut n, mut t) = (0, 4050);
        pad_v1(&m, 4096, 32 + 40, &mut n, &mut t);
        assert_eq!((n, t), (1, 0));
        // A small symlink that fits stays put.
        let (mut n, mut t) = (0, 10);
        assert_eq!(pad_v1(&m, 1152, 32, &mut n, &mut t), 0);
    }

    #[test]
    fn v2_tail_padding() {
        // §2.6 V2: a directory inode at 7136 with a 2043-byte tail moves to 8160.
        let d: &'static Directory = Box::leak(Box::default());
        let m = meta_of(Data::Dir(d));
        assert_eq!(7136 + pad_v2(&m, 7136, 64, 2043), 8160);
        let m = meta_of(Data::Inline(b"x"));
        assert_eq!(pad_v2(&m, 1152, 64, 10), 0);
    }

    #[test]
    fn budget_replay_matches_c() {
        let x = |n: &[u8], v: usize| Xattr::new(n, vec![b'v'; v]);
        // C's writer works on a clone whose running size starts at 0: user xattrs do not count.
        let user = [x(b"user.a", 32742)];
        assert_eq!(
            check_budget(&user, &[(METACOPY, 36), (REDIRECT, 70)]),
            Ok(())
        );
        // Replacing a non-empty user xattr while others remain wraps the size below zero.
        let wo = [
            (Fixed::EscapedWhiteout.name(), 0),
            (Fixed::UserWhiteout.name(), 0),
        ];
        let user = [x(b"user.a", 1), x(b"trusted.overlay.whiteout", 1)];
        assert_eq!(check_budget(&user, &wo), Err(0));
        // An empty one replaces cleanly, and so does a lone one (the size restarts at 0).
        let user = [x(b"user.a", 1), x(b"trusted.overlay.whiteout", 0)];
        assert_eq!(check_budget(&user, &wo), Ok(()));
        let user = [x(b"trusted.overlay.whiteout", 100)];
        assert_eq!(check_budget(&user, &wo), Ok(()));
        // The second addition can pay for a replacement with the first one's size.
        let user = [x(b"user.a", 1), x(b"user.overlay.whiteout", 39)];
        assert_eq!(check_budget(&user, &wo), Ok(()));
        let user = [x(b"user.a", 1), x(b"user.overlay.whiteout", 40)];
        assert_eq!(check_budget(&user, &wo), Err(1));
    }
}
